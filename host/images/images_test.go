package images

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

func TestHashKeyFramesInputs(t *testing.T) {
	a := hashKey(text("a", "bc"))
	if b := hashKey(text("ab", "c")); a == b {
		t.Errorf("hashKey(a=bc) = hashKey(ab=c) = %s, want different keys", a)
	}
	if b := hashKey(text("a", "b"), text("c", "")); b == hashKey(text("a", "bc")) {
		t.Errorf("two inputs hash like one")
	}
	if a != hashKey(text("a", "bc")) {
		t.Errorf("hashKey is not stable")
	}
}

func TestFolderKey(t *testing.T) {
	base := recipe{Info: Info{Name: "caddy", Tag: "caddy:1"}, buildLayout: 1}
	amd64 := target{"linux", "amd64"}
	ins := []input{text("package", "x@v1")}
	want := folderKey(base, amd64, ins)
	if got := folderKey(base, amd64, []input{text("package", "x@v1")}); got != want {
		t.Errorf("same recipe, same inputs: key %s, want %s", got, want)
	}
	other := base
	other.Name = "mattermost"
	relaid := base
	relaid.buildLayout = 2
	retagged := base
	retagged.Tag = "caddy:2"
	for _, tc := range []struct {
		name string
		rc   recipe
		t    target
		ins  []input
	}{
		{"another recipe", other, amd64, ins},
		{"another layout", relaid, amd64, ins},
		{"another platform", base, target{"linux", "arm64"}, ins},
		{"another input", base, amd64, []input{text("package", "x@v2")}},
		{"one more input", base, amd64, append(slices.Clone(ins), text("CGO_ENABLED", "0"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := folderKey(tc.rc, tc.t, tc.ins); got == want {
				t.Errorf("folderKey = %s, the same as the base recipe's", got)
			}
		})
	}
	// The tag names the image, not the build: the build is shared.
	if got := folderKey(retagged, amd64, ins); got != want {
		t.Errorf("folderKey of a retagged recipe = %s, want %s", got, want)
	}
	if imageKey(base, want, nil) == imageKey(retagged, want, nil) {
		t.Errorf("imageKey ignores the tag")
	}
	reimaged := base
	reimaged.imageLayout = 2
	if imageKey(base, want, nil) == imageKey(reimaged, want, nil) {
		t.Errorf("imageKey ignores the image layout")
	}
	if imageKey(base, want, nil) == imageKey(base, want, []input{text("entrypoint", "#!/bin/sh")}) {
		t.Errorf("imageKey ignores the image's inputs")
	}
}

func TestTable(t *testing.T) {
	rs, err := recipes()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Names(), []string{"caddy", "mattermost", "postgres", "standin", "restic", "mariadb", "wordpress", "mediawiki"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	chat, err := catalog.New(nil).Get("mattermost")
	if err != nil {
		t.Fatal(err)
	}
	var defaults []string
	folders := map[string]bool{}
	for _, rc := range rs {
		t.Run(rc.Name, func(t *testing.T) {
			if rc.Tag == "" || rc.From == "" || rc.Takes == "" || rc.Needs == "" || rc.Lacks == "" {
				t.Errorf("%s: incomplete description %+v", rc.Name, rc.Info)
			}
			if rc.build == nil || rc.image == nil || rc.inputs == nil || rc.folder == "" || rc.buildLayout == 0 || rc.imageLayout == 0 {
				t.Errorf("%s: incomplete recipe", rc.Name)
			}
			if folders[rc.folder] {
				t.Errorf("%s: cache folder %q used twice", rc.Name, rc.folder)
			}
			folders[rc.folder] = true
			if (rc.Env == "") != (rc.envPath == "" && rc.Name != "mattermost") {
				t.Errorf("%s: Env %q with path %q", rc.Name, rc.Env, rc.envPath)
			}
		})
		if rc.Default {
			defaults = append(defaults, rc.Name)
		}
	}
	if want := []string{"caddy", "mattermost", "postgres"}; !slices.Equal(defaults, want) {
		t.Errorf("default images %v, want those up needs: %v", defaults, want)
	}
	for _, name := range []string{"mattermost", "postgres"} {
		rc := rs[slices.IndexFunc(rs, func(rc recipe) bool { return rc.Name == name })]
		if !slices.Contains(chat.Images(), rc.Tag) {
			t.Errorf("%s's tag %q is not one of the catalog's %v", name, rc.Tag, chat.Images())
		}
	}
	if rs[0].Tag != "caddy:2.11.9" {
		t.Errorf("caddy's tag = %q, want caddy:2.11.9 (up's default)", rs[0].Tag)
	}
	site, err := catalog.New(nil).Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mariadb", "wordpress"} {
		rc := rs[slices.IndexFunc(rs, func(rc recipe) bool { return rc.Name == name })]
		if !slices.Contains(site.Images(), rc.Tag) {
			t.Errorf("%s's tag %q is not one of the catalog's %v", name, rc.Tag, site.Images())
		}
	}
	wiki, err := catalog.New(nil).Get("mediawiki")
	if err != nil {
		t.Fatal(err)
	}
	mw := rs[slices.IndexFunc(rs, func(rc recipe) bool { return rc.Name == "mediawiki" })]
	if !slices.Contains(wiki.Images(), mw.Tag) || !strings.HasPrefix(mw.Tag, "mediawiki:") {
		t.Errorf("mediawiki's tag %q is not the catalog's MediaWiki image among %v", mw.Tag, wiki.Images())
	}
	if db := rs[slices.IndexFunc(rs, func(rc recipe) bool { return rc.Name == "mariadb" })]; !slices.Contains(wiki.Images(), db.Tag) {
		t.Errorf("mariadb's tag %q is not the one the catalog's mediawiki entry runs (%v)", db.Tag, wiki.Images())
	}
	restic := rs[slices.IndexFunc(rs, func(rc recipe) bool { return rc.Name == "restic" })]
	if want := "restic/restic:" + strings.TrimPrefix(resticVersion, "v"); restic.Tag != want || ResticImage != want {
		t.Errorf("restic's tag = %q and ResticImage = %q, want %q (the version it is built from)", restic.Tag, ResticImage, want)
	}
	if restic.Env != EnvResticBin {
		t.Errorf("restic's Env = %q, want %q", restic.Env, EnvResticBin)
	}
}

func TestMirrorOf(t *testing.T) {
	const debian = `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`
	const securityFirst = `Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security

Types: deb
URIs: http://mirror.example/debian
Suites: bookworm
`
	for _, tc := range []struct {
		name  string
		texts []string
		want  string
	}{
		{"debian 12", []string{debian}, "http://deb.debian.org/debian"},
		{"the stanza with the suite wins", []string{securityFirst}, "http://mirror.example/debian"},
		{"across files", []string{"URIs: http://other.example/x\nSuites: trixie\n", securityFirst}, "http://mirror.example/debian"},
		{"no suite: first URI", []string{"URIs: http://other.example/x\nSuites: trixie\n"}, "http://other.example/x"},
		{"nothing", []string{"# empty\n"}, ""},
		{"no files", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mirrorOf(tc.texts); got != tc.want {
				t.Errorf("mirrorOf() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDefaultCacheDir(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	got, err := DefaultCacheDir(env(EnvCache, "/srv/cache", "HOME", "/home/a"))
	if err != nil || got != "/srv/cache" {
		t.Errorf("DefaultCacheDir(TOOLBOX_CACHE=/srv/cache) = %q, %v", got, err)
	}
	want := "/var/cache/toolbox"
	if os.Geteuid() != 0 {
		want = "/xdg/toolbox"
	}
	if got, err := DefaultCacheDir(env("XDG_CACHE_HOME", "/xdg", "HOME", "/home/a")); err != nil || got != want {
		t.Errorf("DefaultCacheDir(XDG_CACHE_HOME=/xdg) = %q, %v; want %q", got, err, want)
	}
	if os.Geteuid() != 0 {
		if got, err := DefaultCacheDir(env("HOME", "/home/a")); err != nil || got != "/home/a/.cache/toolbox" {
			t.Errorf("DefaultCacheDir(HOME=/home/a) = %q, %v", got, err)
		}
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a/b`: "/a/b", `/a\040b`: "/a b", `/a\134b`: `/a\b`, `/end\04`: `/end\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// find returns the entry named name.
func find(t *testing.T, es []docker.Entry, name string) docker.Entry {
	t.Helper()
	i := slices.IndexFunc(es, func(e docker.Entry) bool { return e.Name == name })
	if i < 0 {
		t.Fatalf("no %s in the image", name)
	}
	return es[i]
}

func TestImageLayouts(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("caddy", func(t *testing.T) {
		write("caddy", "binary")
		es, changes, err := caddyImage(dir)
		if err != nil {
			t.Fatal(err)
		}
		if e := find(t, es, "usr/bin/caddy"); e.Mode != 0o755 || e.SourcePath != filepath.Join(dir, "caddy") {
			t.Errorf("usr/bin/caddy = %+v", e)
		}
		if find(t, es, "tmp").Mode&fs.ModeSticky == 0 {
			t.Errorf("/tmp is not sticky")
		}
		for _, c := range changes {
			if strings.HasPrefix(c, "ENTRYPOINT") {
				t.Errorf("caddy has an entrypoint (%s); the official image has none", c)
			}
		}
		if !slices.Contains(changes, `CMD ["/usr/bin/caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]`) {
			t.Errorf("caddy's command does not name /usr/bin/caddy: %v", changes)
		}
	})
	t.Run("mattermost", func(t *testing.T) {
		for _, f := range []string{"bin/mattermost", "bin/mmctl", "i18n/en.json", "templates/a.html", "fonts/f.ttf"} {
			write(f, "x")
		}
		es, changes, err := mattermostImage(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"mattermost/bin/mattermost", "mattermost/bin/mmctl", "mattermost/i18n/en.json", "mattermost/templates/a.html", "mattermost/fonts/f.ttf", "etc/passwd", "mattermost/client/plugins"} {
			if e := find(t, es, name); e.UID != 0 || e.GID != 0 {
				t.Errorf("%s is owned by %d:%d, want root", name, e.UID, e.GID)
			}
		}
		if !slices.Contains(changes, `ENTRYPOINT ["/mattermost/bin/mattermost"]`) || !slices.Contains(changes, "WORKDIR /mattermost") {
			t.Errorf("changes %v", changes)
		}
	})
	t.Run("postgres", func(t *testing.T) {
		write("usr/lib/postgresql/15/bin/postgres", "x")
		write("proc/1/status", "x")
		write("usr/local/bin/docker-entrypoint.sh", "old")
		es, changes, err := postgresImage(dir)
		if err != nil {
			t.Fatal(err)
		}
		find(t, es, "proc")
		if slices.ContainsFunc(es, func(e docker.Entry) bool { return strings.HasPrefix(e.Name, "proc/") }) {
			t.Errorf("the image holds files under /proc")
		}
		ep := find(t, es, pgEntrypoint)
		if string(ep.Data) != string(recipeFile("postgres/docker-entrypoint.sh")) || ep.Mode != 0o755 {
			t.Errorf("entrypoint %+v is not the recipe's", ep)
		}
		if n := len(slices.DeleteFunc(slices.Clone(es), func(e docker.Entry) bool { return e.Name != pgEntrypoint })); n != 1 {
			t.Errorf("%d entries named %s, want 1", n, pgEntrypoint)
		}
		if !slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, "ENV PATH=/usr/lib/postgresql/15/bin:") }) {
			t.Errorf("PATH does not start with PostgreSQL's programs: %v", changes)
		}
	})
	t.Run("restic", func(t *testing.T) {
		write("restic", "binary")
		es, changes, err := resticImage(dir)
		if err != nil {
			t.Fatal(err)
		}
		if e := find(t, es, "usr/bin/restic"); e.Mode != 0o755 || e.SourcePath != filepath.Join(dir, "restic") {
			t.Errorf("usr/bin/restic = %+v", e)
		}
		if find(t, es, "tmp").Mode&fs.ModeSticky == 0 {
			t.Errorf("/tmp is not sticky")
		}
		find(t, es, "root")
		if e := find(t, es, "etc/passwd"); !strings.HasPrefix(string(e.Data), "root:x:0:0:root:/root:") {
			t.Errorf("/etc/passwd = %q, want root at home in /root", e.Data)
		}
		if !slices.Equal(changes, []string{`ENTRYPOINT ["/usr/bin/restic"]`}) {
			t.Errorf("changes %v, want only the official image's entrypoint", changes)
		}
	})
	t.Run("mariadb", func(t *testing.T) {
		if _, _, err := mariadbImage(dir); err == nil || !strings.Contains(err.Error(), "/usr/sbin/mariadbd") {
			t.Errorf("mariadbImage of a folder without MariaDB: %v, want an error naming /usr/sbin/mariadbd", err)
		}
		for _, f := range []string{"usr/sbin/mariadbd", "usr/bin/mariadb-install-db", "usr/bin/mariadb-admin", "usr/bin/mariadb", "usr/bin/mariadb-dump", "usr/bin/setpriv", "var/lib/mysql/ibdata1", "var/lib/mysql/mysql/user.frm", mariadbConfig} {
			write(f, "x")
		}
		es, changes, err := mariadbImage(dir)
		if err != nil {
			t.Fatal(err)
		}
		find(t, es, "var/lib/mysql")
		if slices.ContainsFunc(es, func(e docker.Entry) bool { return strings.HasPrefix(e.Name, "var/lib/mysql/") }) {
			t.Errorf("the image's data folder is not empty: the entrypoint would not initialize it")
		}
		for name, want := range map[string]string{
			mariadbEntrypoint:  string(recipeFile("mariadb/docker-entrypoint.sh")),
			mariadbHealthcheck: string(recipeFile("mariadb/healthcheck.sh")),
			mariadbConfig:      mariadbConfigText,
		} {
			if e := find(t, es, name); string(e.Data) != want {
				t.Errorf("%s is not the recipe's", name)
			}
			if n := len(slices.DeleteFunc(slices.Clone(es), func(e docker.Entry) bool { return e.Name != name })); n != 1 {
				t.Errorf("%d entries named %s, want 1", n, name)
			}
		}
		if e := find(t, es, mariadbHealthcheck); e.Mode != 0o755 {
			t.Errorf("healthcheck.sh has mode %v, want 0755", e.Mode)
		}
		for _, want := range []string{`ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]`, `CMD ["mariadbd"]`, "EXPOSE 3306"} {
			if !slices.Contains(changes, want) {
				t.Errorf("changes %v lack %s", changes, want)
			}
		}
	})
}

func TestLockWaitsForTheHolder(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	r := &run{progress: func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }}
	path := filepath.Join(t.TempDir(), "x.lock")
	ctx := context.Background()
	unlock, err := r.lock(ctx, "x", path)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 2*lockPoll)
	defer cancel()
	if _, err := r.lock(short, "x", path); err == nil {
		t.Fatal("a second lock was granted while the first is held")
	}
	got := make(chan error, 1)
	go func() {
		u, err := r.lock(ctx, "x", path)
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(lockPoll)
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * lockPoll):
		t.Fatal("the waiting lock was not granted after the holder released it")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 || !strings.Contains(lines[0], "waiting for another build") {
		t.Errorf("progress %q, want a line saying it waits", lines)
	}
}

// TestBuildStandin builds the cheapest image end to end on the real engine,
// from an empty cache, under a tag of its own, then checks that a second
// build reuses the image by its key and that a new layout replaces it.
func TestBuildStandin(t *testing.T) {
	e := dockertest.Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var lines []string
	b := &Builder{Engine: e, CacheDir: t.TempDir(), Progress: func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }}
	r, rs, err := b.start([]string{"standin"})
	if err != nil {
		t.Fatal(err)
	}
	rc := rs[0]
	rc.Tag = dockertest.Unique(t, "toolbox-test/images-standin") + ":1"
	t.Cleanup(func() { _ = e.RemoveImage(context.Background(), rc.Tag) })
	info, err := e.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tg := target{"linux", info.GOARCH()}

	build := func() string {
		t.Helper()
		mu.Lock()
		lines = nil
		mu.Unlock()
		if err := r.image(ctx, rc, tg); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(lines, "\n")
	}
	out := build()
	if !strings.Contains(out, "standin: built in") || !strings.Contains(out, "ready in") {
		t.Errorf("first build said:\n%s\nwant a build and an import", out)
	}
	first, err := e.Image(ctx, rc.Tag)
	if err != nil {
		t.Fatal(err)
	}
	fk, err := r.key(ctx, rc, tg)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := first.Labels[LabelKey], imageKey(rc, fk, nil); got != want {
		t.Errorf("label %s = %q, want %q", LabelKey, got, want)
	}
	if !isDir(r.folderPath(rc, fk)) {
		t.Errorf("no cache folder %s", r.folderPath(rc, fk))
	}

	if out := build(); out != "standin: cached (image "+rc.Tag+")" {
		t.Errorf("second build said:\n%s\nwant only that the image is cached", out)
	}
	if again, _ := e.Image(ctx, rc.Tag); again.ID != first.ID {
		t.Errorf("second build replaced the image: %s, was %s", again.ID, first.ID)
	}

	rc.imageLayout++
	out = build()
	if !strings.Contains(out, "cached build in") || strings.Contains(out, "built in") {
		t.Errorf("a new image layout said:\n%s\nwant the cached build reused", out)
	}
	second, err := e.Image(ctx, rc.Tag)
	if err != nil {
		t.Fatal(err)
	}
	if second.ID == first.ID {
		t.Errorf("a new image layout kept the old image %s", first.ID)
	}
	if ok, err := e.ImagePresent(ctx, first.ID); err != nil || ok {
		t.Errorf("the replaced image %s is still there (%v)", first.ID, err)
	}
}

// TestScriptsParse checks the images' shell scripts with sh -n: they run
// under Debian's /bin/sh (dash), so they are POSIX sh.
func TestScriptsParse(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh on PATH")
	}
	for _, name := range []string{"postgres/docker-entrypoint.sh", "mariadb/docker-entrypoint.sh", "mariadb/healthcheck.sh",
		"wordpress/docker-entrypoint.sh", "wordpress/apache2-foreground",
		"mediawiki/docker-php-entrypoint", "mediawiki/apache2-foreground"} {
		t.Run(name, func(t *testing.T) {
			b := recipeFile(name)
			if !bytes.HasPrefix(b, []byte("#!/bin/sh\n")) {
				t.Errorf("%s does not start with #!/bin/sh", name)
			}
			cmd := exec.Command(sh, "-n")
			cmd.Stdin = bytes.NewReader(b)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("sh -n %s: %v\n%s", name, err, out)
			}
		})
	}
}
