package images

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestWordPressImage runs the catalog's wordpress entry on the locally
// built WordPress and MariaDB images as `add` does: the entry's project,
// interpolated by the catalog, deployed by deploy/stack (the same
// containers, environment, volumes and health checks), then the catalog's
// post-install step run verbatim in the WordPress container. It checks that
// the login page answers, that a post made through WordPress's PHP is
// served at its permalink to another container, through the proxy's
// headers, that the administrator exists with the generated password, that
// two fresh volumes get different keys and salts, and that a restart keeps
// the volume's files and stops Apache gracefully.
func TestWordPressImage(t *testing.T) {
	e := dockertest.Engine(t)
	needDebootstrap(t)
	wpTag := builtImage(t, e, "wordpress")
	dbTag := builtImage(t, e, "mariadb")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	labels := dockertest.Labels(t, e)

	site, err := catalog.New(nil).Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	const domain, email = "blog.example.test", "admin@example.test"
	app := dockertest.Unique(t, "wp")
	vars := map[string]string{
		catalog.VarDomain: domain, catalog.VarApp: app,
		"ADMIN_EMAIL": email, "SITE_NAME": "The test site",
	}
	for _, s := range site.Secrets {
		vars[s.Name] = randomSecret(t, s.Length)
	}
	p, err := site.Project(ctx, vars)
	if err != nil {
		t.Fatal(err)
	}
	// The images built here under the test's tags; the catalog's health
	// checks, run every second instead of every 10 or 30.
	for name, svc := range p.Services {
		switch {
		case strings.HasPrefix(svc.Image, "wordpress:"):
			svc.Image = wpTag
		case strings.HasPrefix(svc.Image, "mariadb:"):
			svc.Image = dbTag
		default:
			t.Fatalf("service %s runs %s, which this test does not build", name, svc.Image)
		}
		if svc.HealthCheck == nil {
			t.Fatalf("the catalog's %s service has no health check", name)
		}
		second := types.Duration(time.Second)
		svc.HealthCheck.Interval = &second
		p.Services[name] = svc
	}
	s := &stack.Stack{Engine: e, Labels: labels, HealthTimeout: 5 * time.Minute}
	deployStart := time.Now()
	if err := s.Deploy(ctx, app, stack.Placement{}, p, site.Entry.Service, func(line string) { t.Log(line) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("deployed and healthy in %s", time.Since(deployStart).Round(100*time.Millisecond))
	wp := stack.ContainerName(app, site.Entry.Service)

	// run runs cmd in the container and returns its standard output; it
	// fails the test unless cmd exits 0.
	run := func(t *testing.T, name string, cmd ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code, err := e.Exec(ctx, name, cmd, &stdout, &stderr)
		if err != nil || code != 0 {
			t.Fatalf("%s: %q: exit code %d, %v\n%s%s", name, cmd, code, err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	php := func(t *testing.T, code string) string {
		t.Helper()
		return run(t, wp, "php", "-r", "require '/var/www/html/wp-load.php';\n"+code)
	}

	if len(site.PostInstall) == 0 {
		t.Fatal("the catalog's wordpress entry has no post-install step")
	}
	for _, step := range site.PostInstall {
		start := time.Now()
		run(t, stack.ContainerName(app, step.Service), step.Command...)
		t.Logf("post-install %q took %s", step.Description, time.Since(start).Round(100*time.Millisecond))
	}
	// Run again, as `add` retried after a failure would: nothing to do.
	for _, step := range site.PostInstall {
		run(t, stack.ContainerName(app, step.Service), step.Command...)
	}

	// curl asks the WordPress container for target (a path and query) from
	// another container on the app's network, as the proxy does: the
	// site's Host, and X-Forwarded-Proto https since the proxy terminates
	// TLS. It returns the status and the body.
	curl := func(t *testing.T, target string) (string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code, err := e.Run(ctx, docker.RunSpec{
			Name: dockertest.Unique(t, "wp-curl"), Image: wpTag, Labels: labels, Network: stack.NetworkName(app),
			Cmd: []string{"curl", "-sS", "-H", "Host: " + domain, "-H", "X-Forwarded-Proto: https",
				"-w", "\n%{http_code}", "http://" + wp + target},
			Stdout: &stdout, Stderr: &stderr,
		})
		if err != nil || code != 0 {
			t.Fatalf("curl %s: exit code %d, %v\n%s", target, code, err, stderr.String())
		}
		out := stdout.String()
		i := strings.LastIndex(out, "\n")
		return out[i+1:], out[:max(i, 0)]
	}

	t.Run("login page", func(t *testing.T) {
		status, body := curl(t, "/wp-login.php")
		if status != "200" || !strings.Contains(body, `name="log"`) {
			t.Errorf("/wp-login.php answered %s:\n%.500s", status, body)
		}
	})

	t.Run("post", func(t *testing.T) {
		const title, marker = "A post from the test", "toolbox-marker-7f3a"
		link := strings.TrimSpace(php(t, fmt.Sprintf(`$id = wp_insert_post(array('post_title' => %q, 'post_content' => %q, 'post_status' => 'publish', 'post_author' => 1), true);
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
echo get_permalink($id);`, title, "<p>"+marker+"</p>")))
		u, err := url.Parse(link)
		if err != nil || u.Host != domain || u.Scheme != "https" {
			t.Fatalf("permalink %q, want one on https://%s (WP_HOME from WORDPRESS_CONFIG_EXTRA)", link, domain)
		}
		status, body := curl(t, u.RequestURI())
		if status != "200" || !strings.Contains(body, marker) || !strings.Contains(body, title) {
			t.Errorf("%s answered %s without the post:\n%.2000s", link, status, body)
		}
		// Pretty permalinks go through the image's .htaccess: mod_rewrite
		// on, and AllowOverride letting it act.
		pretty := strings.TrimSpace(php(t, `global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%year%/%monthnum%/%postname%/');
flush_rewrite_rules(false);
$p = get_posts(array('title' => `+fmt.Sprintf("%q", title)+`, 'post_type' => 'post', 'numberposts' => 1));
echo get_permalink($p[0]);`))
		pu, err := url.Parse(pretty)
		if err != nil || !strings.HasSuffix(pu.Path, "/a-post-from-the-test/") {
			t.Fatalf("the pretty permalink is %q, want one ending in /a-post-from-the-test/", pretty)
		}
		if status, body := curl(t, pu.Path); status != "200" || !strings.Contains(body, marker) {
			t.Errorf("%s (rewritten by .htaccess) answered %s without the post:\n%.2000s", pretty, status, body)
		}
	})

	t.Run("administrator", func(t *testing.T) {
		got := php(t, `$u = get_user_by('login', 'admin');
if (!$u) { fwrite(STDERR, "no user admin\n"); exit(1); }
echo $u->user_email, ' ', implode(',', $u->roles), ' ', wp_check_password(getenv('TOOLBOX_ADMIN_PASSWORD'), $u->user_pass, $u->ID) ? 'password-ok' : 'password-wrong', ' ', get_option('blogname');`)
		if want := email + " administrator password-ok " + vars["SITE_NAME"]; got != want {
			t.Errorf("the administrator and site are %q, want %q", got, want)
		}
	})

	t.Run("owners", func(t *testing.T) {
		if got := run(t, wp, "stat", "-c", "%u:%g", "/var/www/html", "/var/www/html/index.php", "/var/www/html/wp-config.php"); got != "33:33\n33:33\n33:33\n" {
			t.Errorf("the volume's files are owned by\n%s, want www-data (33:33)", got)
		}
		if got := run(t, wp, "ps", "-o", "user=", "-C", "apache2"); !strings.Contains(got, "www-data") || !strings.Contains(got, "root") {
			t.Errorf("apache2 runs as %q, want a root parent and www-data children", got)
		}
		for _, f := range []string{"wp-includes/js/underscore.min.js", "wp-includes/ID3/getid3.php", "wp-includes/certificates/ca-bundle.crt"} {
			if got := run(t, wp, "find", "/var/www/html/"+f, "-type", "f"); strings.TrimSpace(got) == "" {
				t.Errorf("%s is not a regular file in the volume (a link Debian's package made?)", f)
			}
		}
	})

	configOf := run(t, wp, "cat", "/var/www/html/wp-config.php")
	t.Run("salts", func(t *testing.T) {
		first := salts(t, configOf)
		// A fresh volume, as on another machine.
		vol := dockertest.Unique(t, "wp-fresh")
		if err := e.EnsureVolume(ctx, vol, labels); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code, err := e.Run(ctx, docker.RunSpec{
			Name: dockertest.Unique(t, "wp-fresh"), Image: wpTag, Labels: labels, Network: "none",
			Cmd:    []string{"docker-ensure-installed.sh", "cat", "wp-config.php"},
			Env:    map[string]string{"WORDPRESS_DB_HOST": "db"},
			Mounts: []docker.Mount{{Volume: vol, Target: "/var/www/html"}},
			Stdout: &stdout, Stderr: &stderr,
		})
		if err != nil || code != 0 {
			t.Fatalf("docker-ensure-installed.sh on a fresh volume: exit code %d, %v\n%s", code, err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "copying now") {
			t.Errorf("docker-ensure-installed.sh said:\n%s\nwant that it copies WordPress", stderr.String())
		}
		second := salts(t, stdout.String())
		for i := range first {
			if slices.Contains(second, first[i]) {
				t.Errorf("both volumes have the salt %s", first[i])
			}
		}
		// The values are read by WordPress from the file.
		if got := php(t, `echo AUTH_KEY;`); got != first[0] {
			t.Errorf("WordPress's AUTH_KEY is %q, want wp-config.php's %q", got, first[0])
		}
	})

	t.Run("restart", func(t *testing.T) {
		// The site's own change to a file the image also has: a copy over
		// the volume would undo it.
		run(t, wp, "sh", "-c", "echo changed by the site > /var/www/html/readme.html")
		if err := e.RestartContainer(ctx, wp); err != nil {
			t.Fatal(err)
		}
		if err := e.WaitHealthy(ctx, wp); err != nil {
			t.Fatal(err)
		}
		if got := run(t, wp, "cat", "/var/www/html/readme.html"); got != "changed by the site\n" {
			t.Errorf("after a restart readme.html holds %.80q: WordPress was copied over the volume", got)
		}
		if got := run(t, wp, "cat", "/var/www/html/wp-config.php"); got != configOf {
			t.Errorf("a restart rewrote wp-config.php")
		}
		logs, err := e.Logs(ctx, wp, 0)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(logs, "WordPress not found in /var/www/html - copying now"); n != 1 {
			t.Errorf("the entrypoint copied WordPress %d times, want once; logs:\n%s", n, logs)
		}
		// The engine's SIGTERM reaches Apache as its graceful stop.
		if !strings.Contains(logs, "caught SIGWINCH, shutting down gracefully") {
			t.Errorf("Apache was not stopped gracefully (SIGWINCH); logs:\n%s", logs)
		}
		if status, _ := curl(t, "/wp-login.php"); status != "200" {
			t.Errorf("after a restart /wp-login.php answered %s", status)
		}
	})
}

// saltPattern matches a key or salt line of wp-config.php, capturing the
// value it takes when its variable is not set.
var saltPattern = regexp.MustCompile(`'((?:AUTH|SECURE_AUTH|LOGGED_IN|NONCE)_(?:KEY|SALT))'\s*=>\s*'([^']*)'`)

// salts returns the eight keys and salts' values of a wp-config.php, each
// a fresh random value, all different.
func salts(t *testing.T, config string) []string {
	t.Helper()
	var vals []string
	for _, m := range saltPattern.FindAllStringSubmatch(config, -1) {
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(m[2]) {
			t.Errorf("%s is %q, want 64 random hexadecimal digits", m[1], m[2])
		}
		if slices.Contains(vals, m[2]) {
			t.Errorf("%s has the value of another key", m[1])
		}
		vals = append(vals, m[2])
	}
	if len(vals) != 8 {
		t.Fatalf("wp-config.php has %d keys and salts, want 8:\n%s", len(vals), config)
	}
	return vals
}

// randomSecret is n characters from [A-Za-z0-9], as the toolbox's secrets.
func randomSecret(t *testing.T, n int) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// TestWordPressImageKey checks that the image's key covers the files the
// image takes from this repository: changing the entrypoint, the
// apache2-foreground or the wp-config template makes a new image.
func TestWordPressImageKey(t *testing.T) {
	rc := wordpressRecipe("wordpress:1.2")
	ins := rc.imageInputs()
	base := imageKey(rc, "folder", ins)
	for name, file := range map[string]string{
		"entrypoint": "wordpress/docker-entrypoint.sh",
		"foreground": "wordpress/apache2-foreground",
		"wp-config":  "wordpress/wp-config-docker.php",
	} {
		t.Run(name, func(t *testing.T) {
			i := slices.IndexFunc(ins, func(in input) bool { return in.name == name })
			if i < 0 {
				t.Fatalf("the image's inputs %v have no %s", ins, name)
			}
			if !bytes.Equal(ins[i].data, recipeFile(file)) {
				t.Errorf("input %s is not %s", name, file)
			}
			changed := slices.Clone(ins)
			changed[i] = input{name, append(slices.Clone(ins[i].data), "\n# changed\n"...)}
			if imageKey(rc, "folder", changed) == base {
				t.Errorf("changing %s leaves the image key %s", file, base)
			}
		})
	}
	if again := imageKey(rc, "folder", wordpressRecipe("wordpress:1.2").imageInputs()); again != base {
		t.Errorf("the image key is not stable: %s, then %s", base, again)
	}
}

// fakeRoot writes files and links under a temporary folder, as debootstrap
// would lay them out: a path ending in "/" is a folder, a value starting
// with "->" a link.
func fakeRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		v := files[rel]
		switch {
		case strings.HasSuffix(rel, "/"):
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(v, "->"):
			if err := os.Symlink(strings.TrimPrefix(v, "->"), p); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

func TestWordPressLayout(t *testing.T) {
	if _, _, err := wordpressImage(t.TempDir()); err == nil || !strings.Contains(err.Error(), "/usr/sbin/apache2") {
		t.Errorf("wordpressImage of an empty folder: %v, want an error naming /usr/sbin/apache2", err)
	}
	files := map[string]string{
		"usr/sbin/apache2": "x", "usr/bin/php8.2": "x", "usr/bin/curl": "x", "usr/bin/tar": "x",
		// Absolute links name the root file system's files, never this machine's.
		"usr/bin/php": "->/etc/alternatives/php", "etc/alternatives/php": "->/usr/bin/php8.2",
		"etc/apache2/envvars":                         "export APACHE_RUN_USER=www-data\n",
		"etc/apache2/apache2.conf":                    "LogFormat \"%v:%p %h %l %u %t\" vhost_combined\nLogFormat \"%h %l %u %t \\\"%r\\\" %>s %O\" common\nErrorLog x\n",
		"etc/apache2/mods-available/mpm_prefork.load": "x", "etc/apache2/mods-available/mpm_prefork.conf": "x",
		"etc/apache2/mods-available/mpm_event.load": "x", "etc/apache2/mods-available/rewrite.load": "x",
		"etc/apache2/mods-available/expires.load": "x", "etc/apache2/mods-available/remoteip.load": "x",
		"etc/apache2/mods-available/php8.2.load": "x", "etc/apache2/mods-available/php8.2.conf": "x",
		"etc/apache2/mods-enabled/mpm_event.load": "->../mods-available/mpm_event.load",
		"etc/php/8.2/apache2/php.ini":             "x", "etc/php/8.2/cli/php.ini": "x",
		"etc/php/8.2/mods-available/mysqli.ini":                     "x",
		"etc/ssl/certs/ca-certificates.crt":                         "roots",
		"etc/wordpress/htaccess":                                    "# Debian's comments",
		"usr/share/javascript/underscore/underscore.min.js":         "underscore",
		"usr/share/php/getid3/getid3.php":                           "getid3",
		"var/www/html/index.html":                                   "Debian's Apache page",
		"var/log/apache2/error.log":                                 "old",
		wpDebian + "/index.php":                                     "index",
		wpDebian + "/wp-load.php":                                   "load",
		wpDebian + "/wp-config.php":                                 "Debian's, reading /etc/wordpress",
		wpDebian + "/.htaccess":                                     "->/etc/wordpress/htaccess",
		wpDebian + "/wp-includes/version.php":                       "version",
		wpDebian + "/wp-includes/js/underscore.min.js":              "->../../../javascript/underscore/underscore.min.js",
		wpDebian + "/wp-includes/ID3/getid3.php":                    "->../../../php/getid3/getid3.php",
		wpDebian + "/wp-includes/certificates/ca-bundle.crt":        "->/etc/ssl/certs/ca-certificates.crt",
		wpDebian + "/wp-content/plugins/index.php":                  "silence",
		wpDebian + "/wp-content/themes/twentytwentythree/style.css": "theme",
		// The theme package's link back, outside the tree: not followed.
		"var/lib/wordpress/wp-content/themes/twentytwentythree": "->/usr/share/wordpress/wp-content/themes/twentytwentythree",
	}
	dir := fakeRoot(t, files)
	es, changes, err := wordpressImage(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		if seen[e.Name] {
			t.Errorf("two entries named %s", e.Name)
		}
		seen[e.Name] = true
	}
	for name, want := range map[string]string{
		wpSource + "/wp-includes/js/underscore.min.js":              "usr/share/javascript/underscore/underscore.min.js",
		wpSource + "/wp-includes/ID3/getid3.php":                    "usr/share/php/getid3/getid3.php",
		wpSource + "/wp-includes/certificates/ca-bundle.crt":        "etc/ssl/certs/ca-certificates.crt",
		wpSource + "/index.php":                                     wpDebian + "/index.php",
		wpSource + "/wp-content/themes/twentytwentythree/style.css": wpDebian + "/wp-content/themes/twentytwentythree/style.css",
	} {
		e := find(t, es, name)
		if e.Mode.Type() != 0 || e.SourcePath != filepath.Join(dir, want) || e.UID != wwwData || e.GID != wwwData {
			t.Errorf("%s = %+v, want a file of www-data copied from the root file system's /%s", name, e, want)
		}
	}
	for _, name := range []string{wpSource, wpSource + "/wp-includes", wpSource + "/wp-content/themes"} {
		if e := find(t, es, name); !e.Mode.IsDir() || e.UID != wwwData {
			t.Errorf("%s = %+v, want a folder of www-data", name, e)
		}
	}
	if seen[wpSource+"/wp-config.php"] {
		t.Errorf("the image's WordPress has Debian's wp-config.php, which would keep the entrypoint from writing one")
	}
	for name, want := range map[string]string{
		wpHtaccess:                         wpHtaccessText,
		wpConfigDocker:                     string(recipeFile("wordpress/wp-config-docker.php")),
		wpSource + "/wp-content/index.php": "<?php\n// Silence is golden.\n",
		wpEntrypoint:                       string(recipeFile("wordpress/docker-entrypoint.sh")),
		wpForeground:                       string(recipeFile("wordpress/apache2-foreground")),
		wpApacheConf:                       wpApacheConfText,
		"etc/php/8.2/apache2/conf.d/99-toolbox.ini": wpPHPIni,
		"etc/php/8.2/cli/conf.d/99-toolbox.ini":     wpPHPIni,
		wpApacheMain:                                "LogFormat \"%v:%p %a %l %u %t\" vhost_combined\nLogFormat \"%a %l %u %t \\\"%r\\\" %>s %O\" common\nErrorLog x\n",
	} {
		if e := find(t, es, name); string(e.Data) != want {
			t.Errorf("%s holds %q, want %q", name, e.Data, want)
		}
	}
	if e := find(t, es, wpHTML); e.Mode != fs.ModeDir|fs.ModeSticky|0o777 || e.UID != wwwData {
		t.Errorf("/var/www/html = %+v, want www-data's, mode 1777 as the official image's", e)
	}
	if slices.ContainsFunc(es, func(e docker.Entry) bool { return strings.HasPrefix(e.Name, wpHTML+"/") }) {
		t.Errorf("the image's /var/www/html is not empty: the entrypoint would not copy WordPress into a new volume")
	}
	for name, want := range map[string]string{
		"var/log/apache2/error.log":                 "/dev/stderr",
		"var/log/apache2/access.log":                "/dev/stdout",
		wpApacheConfEnabled:                         "../conf-available/docker-wordpress.conf",
		"etc/apache2/mods-enabled/mpm_prefork.load": "../mods-available/mpm_prefork.load",
		"etc/apache2/mods-enabled/mpm_prefork.conf": "../mods-available/mpm_prefork.conf",
		"etc/apache2/mods-enabled/php8.2.load":      "../mods-available/php8.2.load",
		"etc/apache2/mods-enabled/php8.2.conf":      "../mods-available/php8.2.conf",
		"etc/apache2/mods-enabled/rewrite.load":     "../mods-available/rewrite.load",
		"etc/apache2/mods-enabled/remoteip.load":    "../mods-available/remoteip.load",
		wpEnsureInstalled:                           "docker-entrypoint.sh",
	} {
		if e := find(t, es, name); e.Mode.Type() != fs.ModeSymlink || e.Link != want {
			t.Errorf("%s = %+v, want a link to %s", name, e, want)
		}
	}
	if seen["etc/apache2/mods-enabled/mpm_event.load"] {
		t.Errorf("the event MPM is still enabled: Apache refuses two MPMs, and mod_php needs prefork")
	}
	for _, want := range []string{`ENTRYPOINT ["docker-entrypoint.sh"]`, `CMD ["apache2-foreground"]`, "WORKDIR /var/www/html", "EXPOSE 80"} {
		if !slices.Contains(changes, want) {
			t.Errorf("changes %v lack %s", changes, want)
		}
	}

	t.Run("dangling link", func(t *testing.T) {
		broken := maps.Clone(files)
		delete(broken, "usr/share/php/getid3/getid3.php")
		if _, _, err := wordpressImage(fakeRoot(t, broken)); err == nil || !strings.Contains(err.Error(), "wp-includes/ID3/getid3.php") {
			t.Errorf("a link to a missing file: %v, want an error naming it", err)
		}
	})
}
