package images

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// catalogService returns a service of a catalog app, loaded with
// placeholder values.
func catalogService(t *testing.T, app, service string) types.ServiceConfig {
	t.Helper()
	a, err := catalog.Get(app)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{catalog.VarDomain: app + ".example.org", catalog.VarApp: "t-" + app}
	for _, s := range a.Secrets {
		vars[s.Name] = strings.Repeat("s", s.Length)
	}
	for _, s := range a.Settings {
		vars[s.Name] = "value"
	}
	p, err := a.Project(t.Context(), vars)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := p.Services[service]
	if !ok {
		t.Fatalf("%s has no service %s", app, service)
	}
	return s
}

// engineSh runs a shell script in a container and returns its standard
// output; it fails the test unless the script exits 0.
func engineSh(t *testing.T, ctx context.Context, e *docker.Engine, name, script string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code, err := e.Exec(ctx, name, []string{"sh", "-c", script}, &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("%s: %s: exit code %d, %v\n%s", name, script, code, err, stderr.String())
	}
	return stdout.String()
}

// TestCatalogDatabaseFlags starts the locally built database images with the
// catalog's commands, the way the deployer does (the command after the
// image's entrypoint), and asks each server what it runs with: the flags
// reach the server through the entrypoint, and the server takes them.
func TestCatalogDatabaseFlags(t *testing.T) {
	e := dockertest.Engine(t)
	needDebootstrap(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	labels := dockertest.Labels(t, e)

	start := func(t *testing.T, image, target string, s types.ServiceConfig, health []string) string {
		t.Helper()
		name := dockertest.Unique(t, "images-tuning")
		if err := e.EnsureVolume(ctx, name, labels); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			if v != nil {
				env[k] = *v
			}
		}
		_, err := e.EnsureContainer(ctx, docker.ContainerSpec{
			Name: name, Image: image, Cmd: s.Command, Env: env, Labels: labels, Restart: "no",
			Mounts: []docker.Mount{{Volume: name, Target: target}},
			Health: &docker.Health{Test: health, Interval: time.Second, Timeout: 5 * time.Second, Retries: 90},
			// The catalog's limit, so that sizes the limit cannot hold fail here.
			MemoryLimit: int64(s.MemLimit),
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.WaitHealthy(ctx, name); err != nil {
			logs, _ := e.Logs(ctx, name, 50)
			t.Fatalf("%v\n%s", err, logs)
		}
		return name
	}

	t.Run("mariadb", func(t *testing.T) {
		image := builtImage(t, e, "mariadb")
		for _, app := range []string{"wordpress", "mediawiki"} {
			t.Run(app, func(t *testing.T) {
				s := catalogService(t, app, "db")
				name := start(t, image, "/var/lib/mysql", s, []string{"CMD", "healthcheck.sh", "--connect", "--innodb_initialized"})
				got := engineSh(t, ctx, e, name, `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -N -B -u"$MARIADB_USER" -e `+
					`'SELECT @@innodb_buffer_pool_size, @@performance_schema, @@max_connections'`)
				want := map[string]string{}
				for _, arg := range s.Command {
					k, v, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
					want[k] = v
				}
				fields := strings.Fields(got)
				if len(fields) != 3 {
					t.Fatalf("the server answered %q", got)
				}
				if pool, ok := map[string]string{"128M": "134217728"}[want["innodb-buffer-pool-size"]]; !ok || fields[0] != pool {
					t.Errorf("innodb_buffer_pool_size = %s, want the catalog's %s", fields[0], want["innodb-buffer-pool-size"])
				}
				if want["performance-schema"] != "OFF" || fields[1] != "0" {
					t.Errorf("performance_schema = %s, want off (the catalog says %s)", fields[1], want["performance-schema"])
				}
				if fields[2] != want["max-connections"] {
					t.Errorf("max_connections = %s, want the catalog's %s", fields[2], want["max-connections"])
				}
			})
		}
	})

	t.Run("postgres", func(t *testing.T) {
		image := builtImage(t, e, "postgres")
		for _, c := range []struct{ app, user, data string }{
			{"mattermost", "mattermost", "/var/lib/postgresql/data"},
			{"loomio", "postgres", "/pgdata"},
		} {
			t.Run(c.app, func(t *testing.T) {
				s := catalogService(t, c.app, "db")
				// Over TCP: the first start's temporary server, which makes
				// the database and stops, listens on the socket only.
				name := start(t, image, c.data, s, []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", c.user})
				for i := 1; i+1 < len(s.Command); i += 2 {
					setting, want, _ := strings.Cut(s.Command[i+1], "=")
					got := strings.TrimSpace(engineSh(t, ctx, e, name, `exec psql -X -tA -U `+c.user+` -d postgres -c 'SHOW `+setting+`'`))
					if got != want {
						t.Errorf("%s = %q, want the catalog's %q", setting, got, want)
					}
				}
			})
		}
	})
}

// TestCatalogWebCommands runs the catalog's start commands of the WordPress
// and MediaWiki services, and MediaWiki's settings step, in a Debian
// userland (the MariaDB image's) laid out as the official images are. The
// official images' own entrypoint, apache2-foreground and php cannot run
// here: they are small scripts that record their arguments.
func TestCatalogWebCommands(t *testing.T) {
	e := dockertest.Engine(t)
	needDebootstrap(t)
	image := builtImage(t, e, "mariadb")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	labels := dockertest.Labels(t, e)

	container := func(t *testing.T, setup string) string {
		t.Helper()
		name := dockertest.Unique(t, "images-webcmd")
		_, err := e.EnsureContainer(ctx, docker.ContainerSpec{
			Name: name, Image: image, Entrypoint: []string{"sleep", "infinity"}, Labels: labels, Restart: "no",
		})
		if err != nil {
			t.Fatal(err)
		}
		engineSh(t, ctx, e, name, `set -e
mkdir -p /etc/apache2/conf-enabled /usr/local/bin
for c in docker-entrypoint.sh apache2-foreground php; do
	printf '#!/bin/sh\necho "%s $*" >> /tmp/ran\n' "$c" > /usr/local/bin/$c
	chmod +x /usr/local/bin/$c
done
`+setup)
		return name
	}
	run := func(t *testing.T, name string, cmd []string) (int, string) {
		t.Helper()
		var stderr bytes.Buffer
		code, err := e.Exec(ctx, name, cmd, nil, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		return code, stderr.String()
	}
	workers := func(t *testing.T, name string) {
		t.Helper()
		conf := engineSh(t, ctx, e, name, "cat /etc/apache2/conf-enabled/toolbox-workers.conf")
		if !strings.HasPrefix(conf, "<IfModule mpm_prefork_module>\n") || !strings.Contains(conf, "\nMaxRequestWorkers 10\n") ||
			!strings.HasSuffix(conf, "</IfModule>\n") {
			t.Errorf("toolbox-workers.conf =\n%s", conf)
		}
	}

	t.Run("wordpress", func(t *testing.T) {
		cmd := catalogService(t, "wordpress", "wordpress").Command
		// The image holds 7.1.2; the volume an older core, a plugin, an
		// upload, its own wp-config.php and .htaccess.
		name := container(t, `
mkdir -p /usr/src/wordpress/wp-includes /usr/src/wordpress/wp-content/plugins/akismet /var/www/html/wp-includes /var/www/html/wp-content/uploads
echo "<?php \$wp_version = '7.1.2';" > /usr/src/wordpress/wp-includes/version.php
echo new > /usr/src/wordpress/index.php
echo image > /usr/src/wordpress/.htaccess
echo image > /usr/src/wordpress/wp-content/plugins/akismet/akismet.php
echo "<?php \$wp_version = '7.0.0';" > /var/www/html/wp-includes/version.php
echo removed > /var/www/html/wp-includes/class-gone.php
echo old > /var/www/html/index.php
echo site > /var/www/html/.htaccess
echo "<?php // salts" > /var/www/html/wp-config.php
echo photo > /var/www/html/wp-content/uploads/photo.jpg
`)
		if code, stderr := run(t, name, cmd); code != 0 {
			t.Fatalf("the wordpress command exited %d\n%s", code, stderr)
		}
		workers(t, name)
		got := engineSh(t, ctx, e, name, `cd /var/www/html
cat index.php wp-includes/version.php .htaccess wp-config.php wp-content/uploads/photo.jpg
test ! -e wp-content/plugins/akismet && echo "no plugin copied"
test ! -e wp-includes/class-gone.php && echo "a file the release removed is gone"
stat -c %U index.php wp-includes/version.php
cat /tmp/ran`)
		want := "new\n<?php $wp_version = '7.1.2';\nsite\n<?php // salts\nphoto\nno plugin copied\na file the release removed is gone\nwww-data\nwww-data\ndocker-entrypoint.sh apache2-foreground\n"
		if got != want {
			t.Errorf("after the start with a newer image:\n%s\nwant\n%s", got, want)
		}

		// Same version: the volume's core is left as it is.
		engineSh(t, ctx, e, name, "echo edited > /var/www/html/index.php; : > /tmp/ran")
		if code, stderr := run(t, name, cmd); code != 0 {
			t.Fatalf("the second start exited %d\n%s", code, stderr)
		}
		if got := engineSh(t, ctx, e, name, "cat /var/www/html/index.php /tmp/ran"); got != "edited\ndocker-entrypoint.sh apache2-foreground\n" {
			t.Errorf("a start with the same version changed the core or skipped the entrypoint:\n%s", got)
		}

		// First start: an empty volume is left to the image's entrypoint.
		fresh := container(t, "mkdir -p /usr/src/wordpress/wp-includes /var/www/html; echo v > /usr/src/wordpress/wp-includes/version.php")
		if code, stderr := run(t, fresh, cmd); code != 0 {
			t.Fatalf("the first start exited %d\n%s", code, stderr)
		}
		if got := engineSh(t, ctx, e, fresh, "ls -A /var/www/html; cat /tmp/ran"); got != "docker-entrypoint.sh apache2-foreground\n" {
			t.Errorf("the first start copied into the empty volume itself:\n%s", got)
		}
	})

	t.Run("mediawiki", func(t *testing.T) {
		cmd := catalogService(t, "mediawiki", "mediawiki").Command
		name := container(t, "mkdir -p /usr/local/etc/php/conf.d")
		if code, stderr := run(t, name, cmd); code != 0 {
			t.Fatalf("the mediawiki command exited %d\n%s", code, stderr)
		}
		workers(t, name)
		got := engineSh(t, ctx, e, name, "cat /usr/local/etc/php/conf.d/toolbox.ini /tmp/ran")
		if want := "memory_limit = 128M\nupload_max_filesize = 20M\npost_max_size = 20M\napache2-foreground \n"; got != want {
			t.Errorf("php settings and command:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("mediawiki settings step", func(t *testing.T) {
		a, err := catalog.Get("mediawiki")
		if err != nil {
			t.Fatal(err)
		}
		step := a.PostInstall[len(a.PostInstall)-1].Command
		const settings = "/var/www/config/LocalSettings.php"
		name := container(t, "mkdir -p /var/www/html/images/a /var/www/config")
		exec := func() (int, string) {
			var stderr bytes.Buffer
			code, err := e.Exec(ctx, name, []string{"env", "MW_CONFIG_FILE=" + settings, step[0], step[1], step[2]}, nil, &stderr)
			if err != nil {
				t.Fatal(err)
			}
			return code, stderr.String()
		}
		if code, _ := exec(); code == 0 {
			t.Errorf("the step succeeded without LocalSettings.php")
		}
		engineSh(t, ctx, e, name, `printf '<?php\n# End of automatically generated settings.\n# Add more configuration options below.\n' > `+settings)
		for i := range 2 { // run again, it adds nothing
			if code, stderr := exec(); code != 0 {
				t.Fatalf("run %d: exit %d\n%s", i+1, code, stderr)
			}
		}
		got := engineSh(t, ctx, e, name, "cat "+settings+"; stat -c %U /var/www/html/images /var/www/html/images/a")
		want := "<?php\n# End of automatically generated settings.\n# Add more configuration options below.\n\n" +
			"# toolbox: proxy and uploads (appended by the toolbox's post-install step)\n" +
			"$wgCdnServersNoPurge = [ '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7' ];\n" +
			"$wgEnableUploads = true;\n" +
			"www-data\nwww-data\n"
		if got != want {
			t.Errorf("LocalSettings.php and the owners of images/:\n%s\nwant\n%s", got, want)
		}
		// The copy is linted before it replaces the file; run again, the
		// step stops before.
		if ran := engineSh(t, ctx, e, name, "cat /tmp/ran"); ran != "php -l "+settings+".toolbox-new\n" {
			t.Errorf("php ran as %q, want one lint of the copy of %s", ran, settings)
		}
	})

	t.Run("discourse", func(t *testing.T) {
		cmd := catalogService(t, "discourse", "app").Command
		name := container(t, `mkdir -p /etc/nginx/conf.d/outlets/server /sbin
printf '#!/bin/sh\necho "boot $*" >> /tmp/ran\n' > /sbin/boot; chmod +x /sbin/boot`)
		if code, stderr := run(t, name, cmd); code != 0 {
			t.Fatalf("the discourse command exited %d\n%s", code, stderr)
		}
		got := engineSh(t, ctx, e, name, "cat /etc/nginx/conf.d/outlets/server/10-toolbox-real-ip.conf /tmp/ran")
		want := "real_ip_header X-Forwarded-For;\nreal_ip_recursive on;\nset_real_ip_from 10.0.0.0/8;\n" +
			"set_real_ip_from 172.16.0.0/12;\nset_real_ip_from 192.168.0.0/16;\nset_real_ip_from fc00::/7;\nboot \n"
		if got != want {
			t.Errorf("nginx's real-ip file and boot:\n%s\nwant\n%s", got, want)
		}
	})
}
