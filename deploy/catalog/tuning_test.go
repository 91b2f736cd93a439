package catalog

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

// pgSize reads a PostgreSQL memory setting (kB, MB, GB, no unit: kB) in bytes.
func pgSize(s string) (int64, error) {
	units := []struct {
		suffix string
		factor int64
	}{{"kB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.factor, err
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v << 10, err
}

// postgresSettings reads the -c name=value pairs of a postgres command.
func postgresSettings(cmd []string) (map[string]string, error) {
	if len(cmd) == 0 || cmd[0] != "postgres" {
		return nil, fmt.Errorf("command %q does not start with postgres (the image runs the server only then)", cmd)
	}
	settings := map[string]string{}
	for i := 1; i < len(cmd); i += 2 {
		if cmd[i] != "-c" || i+1 == len(cmd) {
			return nil, fmt.Errorf("command %q: want -c name=value pairs after postgres", cmd)
		}
		name, value, ok := strings.Cut(cmd[i+1], "=")
		if !ok {
			return nil, fmt.Errorf("command %q: %q is not name=value", cmd, cmd[i+1])
		}
		settings[name] = value
	}
	return settings, nil
}

// mariadbSettings reads the --name=value options of a mariadb command, with
// names in mariadbd's variable spelling (dashes as underscores).
func mariadbSettings(cmd []string) (map[string]string, error) {
	settings := map[string]string{}
	for _, arg := range cmd {
		opt, ok := strings.CutPrefix(arg, "--")
		if !ok {
			return nil, fmt.Errorf("argument %q is not a --option: the image's entrypoint passes only those to mariadbd", arg)
		}
		name, value, ok := strings.Cut(opt, "=")
		if !ok {
			return nil, fmt.Errorf("option %q has no value", arg)
		}
		settings[strings.ReplaceAll(name, "-", "_")] = value
	}
	return settings, nil
}

// maxRequestWorkers is the MaxRequestWorkers a service's command gives
// Apache, 0 when it gives none.
func maxRequestWorkers(t *testing.T, s types.ServiceConfig) int {
	m := regexp.MustCompile(`'MaxRequestWorkers ([0-9]+)'`).FindStringSubmatch(strings.Join(s.Command, " "))
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// connectionReserve is what a database needs beyond the app's own pool: the
// backup's dump, a restore or check client, the health check and an
// operator's shell.
const connectionReserve = 4

// TestDatabaseTuning: every database of the catalog is told its sizes, the
// way its image takes them, and they fit: the memory PostgreSQL may take for
// shared buffers plus a sort per connection stays under the container's
// limit, MariaDB's buffer pool is at most half of it, and each database
// accepts more connections than its app opens.
func TestDatabaseTuning(t *testing.T) {
	t.Parallel()
	apps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	tuned := 0
	for _, a := range apps {
		p, err := a.Project(t.Context(), vars(a))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for n := range p.Services {
				if !yield(n) {
					return
				}
			}
		}) {
			s := p.Services[name]
			where := a.Name + "/" + name
			switch {
			case strings.HasPrefix(s.Image, "postgres:"):
				tuned++
				set, err := postgresSettings(s.Command)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				buffers, err1 := pgSize(set["shared_buffers"])
				work, err2 := pgSize(set["work_mem"])
				conns, err3 := strconv.Atoi(set["max_connections"])
				if err1 != nil || err2 != nil || err3 != nil || buffers <= 0 || work <= 0 || conns <= 0 {
					t.Errorf("%s: shared_buffers %q, work_mem %q, max_connections %q: want all three, positive", where,
						set["shared_buffers"], set["work_mem"], set["max_connections"])
					continue
				}
				limit := int64(s.MemLimit)
				if buffers > limit/4 {
					t.Errorf("%s: shared_buffers %s is more than a quarter of mem_limit %s", where, set["shared_buffers"], formatSize(limit))
				}
				if worst := buffers + int64(conns)*work; worst > limit {
					t.Errorf("%s: shared_buffers + max_connections × work_mem = %s, more than mem_limit %s", where, formatSize(worst), formatSize(limit))
				}
				if pool := appPool(t, a, p); pool+connectionReserve > conns {
					t.Errorf("%s: max_connections %d leaves no room above the app's pool of %d", where, conns, pool)
				}
			case strings.HasPrefix(s.Image, "mariadb:"):
				tuned++
				set, err := mariadbSettings(s.Command)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				pool, err := parseSize(strings.ToLower(set["innodb_buffer_pool_size"]))
				if err != nil || pool > int64(s.MemLimit)/2 {
					t.Errorf("%s: innodb_buffer_pool_size %q: want a size of at most half of mem_limit %s (%v)", where,
						set["innodb_buffer_pool_size"], formatSize(int64(s.MemLimit)), err)
				}
				if set["performance_schema"] != "OFF" {
					t.Errorf("%s: performance_schema = %q, want OFF", where, set["performance_schema"])
				}
				conns, err := strconv.Atoi(set["max_connections"])
				workers := maxRequestWorkers(t, p.Services[a.Entry.Service])
				switch {
				case err != nil:
					t.Errorf("%s: max_connections %q: %v", where, set["max_connections"], err)
				case workers == 0:
					t.Errorf("%s: the entry service %s sets no Apache MaxRequestWorkers, which bounds the connections", where, a.Entry.Service)
				case workers+connectionReserve > conns:
					t.Errorf("%s: max_connections %d leaves no room above Apache's %d workers", where, conns, workers)
				}
			}
		}
	}
	if tuned < 4 {
		t.Errorf("%d databases checked, want at least 4 (loomio, mattermost, mediawiki, wordpress)", tuned)
	}
}

// appPool is how many database connections an app of the catalog opens at
// most, from its settings.
func appPool(t *testing.T, a App, p *types.Project) int {
	t.Helper()
	env := func(service, key string) int {
		v := p.Services[service].Environment[key]
		if v == nil {
			t.Fatalf("%s/%s: %s is not set", a.Name, service, key)
		}
		n, err := strconv.Atoi(*v)
		if err != nil {
			t.Fatalf("%s/%s: %s = %q: %v", a.Name, service, key, *v, err)
		}
		return n
	}
	switch a.Name {
	case "mattermost":
		open, idle := env("mattermost", "MM_SQLSETTINGS_MAXOPENCONNS"), env("mattermost", "MM_SQLSETTINGS_MAXIDLECONNS")
		if idle > open || open <= 0 {
			t.Errorf("mattermost: MaxIdleConns %d, MaxOpenConns %d: want 0 < idle <= open", idle, open)
		}
		return open
	case "loomio":
		// Rails opens a pool of RAILS_MAX_THREADS (MAX_THREADS in upstream's
		// env) per puma worker; the Solid Queue worker runs its own pools
		// (dispatcher, scheduler, workers: a handful each).
		return env("app", "WEB_CONCURRENCY")*env("app", "MAX_THREADS") + 3*5
	}
	t.Fatalf("%s: no rule for its database pool", a.Name)
	return 0
}

// TestShellScriptsParse: every sh -c script of the catalog (services'
// commands, dumps, restores, checks, post-install steps) is valid shell, as
// dash reads it (Debian's sh, and the images' /bin/sh).
func TestShellScriptsParse(t *testing.T) {
	t.Parallel()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	apps, err := All()
	if err != nil {
		t.Fatal(err)
	}
	scripts := 0
	check := func(where string, cmd []string) {
		if len(cmd) < 3 || cmd[0] != "sh" || cmd[1] != "-c" {
			return
		}
		scripts++
		out, err := exec.Command(sh, "-n", "-c", cmd[2]).CombinedOutput()
		if err != nil {
			t.Errorf("%s: sh -n: %v\n%s\nscript:\n%s", where, err, out, cmd[2])
		}
	}
	for _, a := range apps {
		p, err := a.Project(t.Context(), vars(a))
		if err != nil {
			t.Fatal(err)
		}
		for name, s := range p.Services {
			check(a.Name+"/"+name+" command", s.Command)
			check(a.Name+"/"+name+" entrypoint", s.Entrypoint)
		}
		for _, d := range a.Dumps {
			check(a.Name+" dump "+d.File, d.Command)
			check(a.Name+" restore "+d.File, d.Restore)
			check(a.Name+" check "+d.File, d.Check)
		}
		for i, st := range a.PostInstall {
			check(fmt.Sprintf("%s post_install[%d]", a.Name, i), st.Command)
		}
	}
	if scripts < 15 {
		t.Errorf("%d scripts checked, fewer than the catalog has", scripts)
	}
}

// TestCatalogFixes pins what issue 9 found wrong in entries that cannot run
// here, so that it does not come back unnoticed.
func TestCatalogFixes(t *testing.T) {
	t.Parallel()
	get := func(name string) (App, *types.Project) {
		a, err := Get(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.Project(t.Context(), vars(a))
		if err != nil {
			t.Fatal(err)
		}
		return a, p
	}

	t.Run("loomio admin needs no prior sign-up", func(t *testing.T) {
		a, _ := get("loomio")
		if len(a.PostInstall) != 1 {
			t.Fatalf("loomio has %d post-install steps, want 1", len(a.PostInstall))
		}
		code := strings.Join(a.PostInstall[0].Command, " ")
		// find_by! raises when nobody has signed up yet: the install failed.
		if strings.Contains(code, "find_by!") || !strings.Contains(code, "User.new(") || !strings.Contains(code, "is_admin = true") {
			t.Errorf("the admin step must make the account when it does not exist: %s", code)
		}
	})

	t.Run("discourse", func(t *testing.T) {
		a, p := get("discourse")
		restore := strings.Join(a.Dumps[0].Restore, " ")
		if !strings.Contains(restore, "discourse restore --no-disable-emails ") {
			t.Errorf("restore = %s: want e-mail left on (--no-disable-emails)", restore)
		}
		cmd := p.Services["app"].Command
		script := strings.Join(cmd, " ")
		for _, want := range []string{"real_ip_header X-Forwarded-For;", "set_real_ip_from 172.16.0.0/12;",
			"/etc/nginx/conf.d/outlets/server/", "exec /sbin/boot"} {
			if !strings.Contains(script, want) {
				t.Errorf("app command %q lacks %q", cmd, want)
			}
		}
	})

	t.Run("gitlab restore reconfigures", func(t *testing.T) {
		a, _ := get("gitlab")
		if !slices.Contains(a.DataVolumes, "config") {
			t.Errorf("data volumes %v: /etc/gitlab (gitlab-secrets.json, gitlab.rb) must be backed up", a.DataVolumes)
		}
		restore := strings.Join(a.Dumps[0].Restore, " ")
		r, c := strings.Index(restore, "gitlab-backup restore"), strings.Index(restore, "gitlab-ctl reconfigure")
		if r < 0 || c < r || !strings.Contains(restore[c:], "gitlab-ctl restart") {
			t.Errorf("restore = %s: want gitlab-backup restore, then gitlab-ctl reconfigure, then a restart", restore)
		}
		if !strings.Contains(a.Notes, "4 GB") {
			t.Errorf("notes do not say that GitLab needs a 4 GB machine")
		}
	})

	t.Run("wordpress does not update itself", func(t *testing.T) {
		_, p := get("wordpress")
		extra := p.Services["wordpress"].Environment["WORDPRESS_CONFIG_EXTRA"]
		if extra == nil || !strings.Contains(*extra, "define('AUTOMATIC_UPDATER_DISABLED', true);") ||
			!strings.Contains(*extra, "define('WP_AUTO_UPDATE_CORE', false);") {
			t.Errorf("WORDPRESS_CONFIG_EXTRA = %v: want the automatic updater off", extra)
		}
	})

	t.Run("mediawiki proxy and uploads", func(t *testing.T) {
		a, _ := get("mediawiki")
		if len(a.PostInstall) < 2 {
			t.Fatalf("mediawiki has %d post-install steps, want the installer then the settings", len(a.PostInstall))
		}
		last := strings.Join(a.PostInstall[len(a.PostInstall)-1].Command, " ")
		if strings.Contains(last, "$wgUseCdn") {
			t.Errorf("the settings step sets $wgUseCdn: shared caches would keep pages 5 h, never purged")
		}
		for _, want := range []string{"$wgCdnServersNoPurge = [", "$wgEnableUploads = true;", "chown -R www-data:www-data /var/www/html/images"} {
			if !strings.Contains(last, want) {
				t.Errorf("the settings step lacks %q", want)
			}
		}
	})
}
