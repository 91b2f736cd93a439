package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// mariadbPort is the port MariaDB listens on, which the test entry exposes
// because the catalog requires its entry service to expose one.
const mariadbPort = 3306

// TestMariaDBWordPress backs up and restores WordPress's database through
// the toolbox, on the real engine with the real restic and a real MariaDB
// (the catalog's image, built from Debian's mariadb-server), with the
// catalog's own dump, restore and check hooks: a restore brings back
// exactly the tables of the backup, a drill passes and leaves the live data
// alone, a later backup restores by its ID, and no password shows in any
// process's arguments.
func TestMariaDBWordPress(t *testing.T) {
	e := dockertest.Engine(t)
	buildImages(t, e, "mariadb", "restic")
	env, app := wordpressDBEnv(t, e)
	ctx := context.Background()
	db := wpDB{e: e, container: stack.ContainerName(app, "db")}

	// do runs a toolbox command and logs how long it took.
	do := func(args ...string) string {
		t.Helper()
		start := time.Now()
		out := toolboxRun(t, env, append([]string{"do"}, args...)...)
		answer := out // after the job's lines
		if _, after, ok := strings.Cut(out, "succeeded**"); ok {
			_, answer, _ = strings.Cut(after, "\n")
		}
		t.Logf("%s (%s): %s", args[len(args)-1], time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(answer))
		return out
	}
	out := do("add " + app)
	if !strings.Contains(out, "**"+app+"** is running") {
		t.Fatalf("add answered:\n%s", out)
	}
	password := db.password(t)
	wp, err := catalog.Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range wp.Dumps {
		for _, arg := range slices.Concat(d.Command, d.Restore, d.Check) {
			if strings.Contains(arg, password) {
				t.Errorf("the catalog's hook of %s holds the database password: %q", d.File, arg)
			}
		}
	}
	// Every process of the machine, for the whole test, when the engine's
	// processes are this machine's.
	host := watchHostArgv(t, ctx, e, db.container)

	db.exec(t, wordpressSchema+wordpressRows)
	atBackup := db.state(t)
	options := db.count(t, "wp_options")

	// The first backup, with every process of the container watched.
	watch := watchContainerArgv(t, ctx, e, db.container)
	out = do("backup now " + app)
	seen := watch.stop(t)
	if !strings.Contains(out, "**"+app+"** ") || !strings.Contains(out, "2 snapshots") {
		t.Fatalf("backup now answered:\n%s", out)
	}
	checkArgv(t, "in the database's container during the dump", seen, password)
	t.Logf("the command lines in the container:\n%s", strings.Join(seen, "\n"))
	if !slices.ContainsFunc(seen, func(c string) bool { return strings.HasPrefix(c, "mariadb-dump ") }) {
		t.Errorf("the watch of the container's processes did not see the dump run; it saw:\n%s", strings.Join(seen, "\n"))
	}
	first := snapshotIDs(t, env, app)
	if len(first) != 1 {
		t.Fatalf("the first backup made the wordpress.sql snapshots %q, want one", first)
	}

	// Everything changes: rows added, changed and deleted, a table dropped,
	// another created.
	db.exec(t, `
INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('after_the_backup', 'should go', 'no');
UPDATE wp_posts SET post_title = 'Changé après la sauvegarde', post_content = '' WHERE ID = 2;
DELETE FROM wp_postmeta WHERE meta_id % 2 = 0;
DELETE FROM wp_posts WHERE ID = 3;
DROP TABLE wp_comments;
CREATE TABLE wp_after_the_backup (id int PRIMARY KEY);
INSERT INTO wp_after_the_backup VALUES (1);
`)
	if db.state(t) == atBackup {
		t.Fatal("the changes after the backup changed nothing")
	}

	out = do("--yes", "restore "+app)
	if !strings.Contains(out, "runs on its backup of") || !strings.Contains(out, fmt.Sprintf("wordpress.sql: %d options", options)) {
		t.Fatalf("restore answered:\n%s\nwant it to say wordpress.sql: %d options", out, options)
	}
	sameState(t, "after the restore", db.state(t), atBackup)
	// And the state's text is the one written, byte for byte, not the same
	// mangling twice.
	for name, want := range map[string]string{
		"blogdescription": "🌳 Un jardin partagé — 日本語も — Ελληνικά",
		"widget_text":     "Bienvenue !\nLigne deux avec l'apostrophe, des \"guillemets\",\n\tune tabulation, une barre \\ oblique inverse,\r\net la fin.",
	} {
		if got := db.option(t, name); got != want {
			t.Errorf("after the restore, the option %s is %q, want %q", name, got, want)
		}
	}
	if got := containersOf(t, e, stack.CopyName(app, "restore")); len(got) != 0 {
		t.Errorf("the restore's scratch copy is left: %v", got)
	}

	// A drill restores the latest backup beside the live app, and changes
	// nothing of it.
	out = do("drill now " + app)
	if !strings.Contains(out, "Restore drill passed") || !strings.Contains(out, fmt.Sprintf("wordpress.sql: %d options", options)) {
		t.Errorf("drill answered:\n%s", out)
	}
	sameState(t, "after the drill", db.state(t), atBackup)
	if got := containersOf(t, e, stack.CopyName(app, "drill")); len(got) != 0 {
		t.Errorf("the drill's copy is left: %v", got)
	}

	// A later backup, restored by the ID `backups` shows.
	db.exec(t, `
UPDATE wp_options SET option_value = 'Le site, après la restauration ✓' WHERE option_name = 'blogname';
INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('second_backup', 'kept\nby the second backup', 'yes');
INSERT INTO wp_posts (post_author, post_date, post_content, post_title, post_name) VALUES
  (1, '2026-03-01 09:00:00', 'Écrit après la première restauration.', 'Deuxième sauvegarde', 'deuxieme-sauvegarde');
`)
	atLater := db.state(t)
	laterOptions := db.count(t, "wp_options")
	do("backup now " + app)
	later := newIDs(snapshotIDs(t, env, app), first)
	if len(later) != 1 {
		t.Fatalf("the second backup added the wordpress.sql snapshots %q, want one", later)
	}
	db.exec(t, "DELETE FROM wp_posts; DELETE FROM wp_options WHERE option_name <> 'siteurl'; DROP TABLE wp_postmeta;")

	out = do("--yes", "restore "+app+" "+later[0])
	if !strings.Contains(out, "runs on its backup of") || !strings.Contains(out, fmt.Sprintf("wordpress.sql: %d options", laterOptions)) {
		t.Fatalf("restore of the later snapshot %s answered:\n%s\nwant it to say wordpress.sql: %d options", later[0], out, laterOptions)
	}
	sameState(t, "after the restore of the later backup", db.state(t), atLater)

	// And the first backup is still there, by its own ID: an ID picks its
	// run, not the latest.
	out = do("--yes", "restore "+app+" "+first[0])
	if !strings.Contains(out, fmt.Sprintf("wordpress.sql: %d options", options)) {
		t.Fatalf("restore of the first snapshot %s answered:\n%s", first[0], out)
	}
	sameState(t, "after the restore of the first backup by its ID", db.state(t), atBackup)

	if host != nil {
		seen := host.stop(t)
		checkArgv(t, "on this machine during the whole test", seen, password)
		// The dump, and the restores' loading (the checks may be too quick).
		for _, prog := range []string{"mariadb-dump ", "mariadb -u"} {
			if !slices.ContainsFunc(seen, func(c string) bool { return strings.HasPrefix(c, prog) }) {
				t.Errorf("the watch of this machine's processes never saw %q run", strings.TrimSpace(prog))
			}
		}
	}
}

// wordpressDBEnv prepares a toolbox that deploys on the real engine, with a
// catalog folder holding WordPress's database alone (wordpressDBEntry) under
// a unique app name, a backup volume and a unique shared network; everything
// it creates is removed when the test ends.
func wordpressDBEnv(t *testing.T, e *docker.Engine) (env []string, app string) {
	t.Helper()
	app = dockertest.Unique(t, "wpdb")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, app+".yaml"), wordpressDBEntry(t, app, dir), 0o644); err != nil {
		t.Fatal(err)
	}
	network := dockertest.Unique(t, "tbnet")
	volume := dockertest.Unique(t, "tb-backups")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s := &stack.Stack{Engine: e}
		if err := s.Remove(ctx, app, true); err != nil {
			t.Errorf("cleanup of %s: %v", app, err)
		}
		if err := e.RemoveNetwork(ctx, network); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := e.RemoveVolume(ctx, volume); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return []string{
		"TOOLBOX_STATE=" + filepath.Join(t.TempDir(), "toolbox.db"),
		"TOOLBOX_CATALOG_DIR=" + dir,
		"TOOLBOX_NETWORK=" + network,
		"TOOLBOX_BASE_DOMAIN=localhost",
		"TOOLBOX_BACKUP_VOLUME=" + volume,
		"TOOLBOX_RESTIC_IMAGE=" + resticImage,
	}, app
}

// wordpressDBEntry derives, from the catalog's wordpress.yaml (the file the
// catalog embeds), an entry of its database alone: the service its dumps
// run in, as it is, made the entry (the catalog wants one that exposes a
// port: MariaDB's), with the volumes it mounts and the secrets it uses; and
// x-toolbox's dumps as they are. It checks, through the catalog package,
// that the entry's dumps and database service are WordPress's.
func wordpressDBEntry(t *testing.T, app, dir string) []byte {
	t.Helper()
	wp, err := catalog.Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	if len(wp.Dumps) != 1 {
		t.Fatalf("wordpress has %d dumps, this test knows one", len(wp.Dumps))
	}
	service := wp.Dumps[0].Service
	src, err := os.ReadFile(filepath.Join("..", "deploy", "catalog", "apps", "wordpress.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	services, _ := doc["services"].(map[string]any)
	svc, _ := services[service].(map[string]any)
	x, _ := doc["x-toolbox"].(map[string]any)
	image, _ := svc["image"].(string)
	_, tag, ok := strings.Cut(image, ":")
	if svc == nil || x == nil || !ok {
		t.Fatalf("wordpress.yaml has no service %s with a tagged image, or no x-toolbox", service)
	}
	if _, ok := svc["expose"]; ok {
		t.Fatalf("wordpress.yaml's %s exposes a port already: the test entry would change it", service)
	}
	svc["expose"] = []any{fmt.Sprint(mariadbPort)}

	volumes := map[string]any{}
	declared, _ := doc["volumes"].(map[string]any)
	mounts, _ := svc["volumes"].([]any)
	for _, m := range mounts {
		s, _ := m.(string)
		name, _, _ := strings.Cut(s, ":")
		volumes[name] = declared[name]
	}
	text, err := yaml.Marshal(svc)
	if err != nil {
		t.Fatal(err)
	}
	var secrets []any
	list, _ := x["secrets"].([]any)
	for _, s := range list {
		m, _ := s.(map[string]any)
		if name, _ := m["name"].(string); strings.Contains(string(text), "${"+name+"}") {
			secrets = append(secrets, s)
		}
	}
	// The service's own line of where its reservation comes from.
	memory, _ := x["memory"].(map[string]any)
	entry := map[string]any{
		"services": map[string]any{service: svc},
		"volumes":  volumes,
		"x-toolbox": map[string]any{
			"description": "WordPress's database alone, for tests",
			"upstream":    x["upstream"],
			"version":     tag, // the catalog wants the entry image's tag to hold the version
			"memory":      map[string]any{service: memory[service]},
			"disk":        x["disk"],
			"entry":       map[string]any{"service": service, "port": mariadbPort},
			"health_path": x["health_path"], // required by the catalog, read by nothing else
			"dumps":       x["dumps"],
			"secrets":     secrets,
		},
	}
	out, err := yaml.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	out = append([]byte("# WordPress's database alone, derived by e2e/mariadb_test.go from deploy/catalog/apps/wordpress.yaml.\n"), out...)

	// The entry, as the toolbox reads it, against the catalog's own.
	if err := os.WriteFile(filepath.Join(dir, app+".yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := catalog.New(os.DirFS(dir)).Get(app)
	if err != nil {
		t.Fatalf("the derived entry is not valid: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(got.Dumps, wp.Dumps) {
		t.Fatalf("the derived entry's dumps are\n%+v\nwant wordpress's\n%+v", got.Dumps, wp.Dumps)
	}
	vars := func(a catalog.App) map[string]string {
		v := map[string]string{catalog.VarDomain: app + ".localhost", catalog.VarApp: app}
		for _, s := range a.Secrets {
			v[s.Name] = strings.Repeat("s", s.Length)
		}
		for _, s := range a.Settings {
			v[s.Name] = "setting"
		}
		return v
	}
	gotP, err := got.Project(context.Background(), vars(got))
	if err != nil {
		t.Fatal(err)
	}
	wantP, err := wp.Project(context.Background(), vars(wp))
	if err != nil {
		t.Fatal(err)
	}
	gotS, wantS := gotP.Services[service], wantP.Services[service]
	gotS.Expose = nil
	if !reflect.DeepEqual(gotS, wantS) {
		t.Fatalf("the derived entry's %s service is\n%+v\nwant wordpress's\n%+v", service, gotS, wantS)
	}
	return out
}

// wpDB reaches the database of the app's db container with the mariadb
// client, its password read from the container's environment, never
// given as an argument.
type wpDB struct {
	e         *docker.Engine
	container string
}

const mariadbClient = `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb --batch -u"$MARIADB_USER" "$MARIADB_DATABASE"`

// exec runs SQL in the database and returns what it printed.
func (d wpDB) exec(t *testing.T, sql string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code, err := d.e.ExecInput(context.Background(), d.container, []string{"sh", "-c", mariadbClient}, strings.NewReader("SET NAMES utf8mb4;\n"+sql), &stdout, &stderr)
	if err != nil || code != 0 {
		t.Fatalf("mariadb in %s: code %d, %v: %s", d.container, code, err, stderr.String())
	}
	return stdout.String()
}

func (d wpDB) password(t *testing.T) string {
	t.Helper()
	var out bytes.Buffer
	code, err := d.e.Exec(context.Background(), d.container, []string{"sh", "-c", `printf %s "$MARIADB_PASSWORD"`}, &out, nil)
	if err != nil || code != 0 || out.Len() < 16 {
		t.Fatalf("read MARIADB_PASSWORD in %s: code %d, %v, %d bytes", d.container, code, err, out.Len())
	}
	return out.String()
}

func (d wpDB) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	out := d.exec(t, "SELECT COUNT(*) AS n FROM "+table)
	if _, err := fmt.Sscanf(strings.TrimPrefix(out, "n\n"), "%d", &n); err != nil {
		t.Fatalf("count of %s: %q: %v", table, out, err)
	}
	return n
}

// option reads an option's value, as bytes.
func (d wpDB) option(t *testing.T, name string) string {
	t.Helper()
	out := d.exec(t, "SELECT HEX(option_value) AS v FROM wp_options WHERE option_name = '"+name+"'")
	b, err := hex.DecodeString(strings.TrimSpace(strings.TrimPrefix(out, "v\n")))
	if err != nil {
		t.Fatalf("option %s: %q: %v", name, out, err)
	}
	return string(b)
}

// state is everything the database holds: each table's definition (with its
// character set and next AUTO_INCREMENT), checksum and rows in key order, as
// the client prints them in batch mode (tabs, new lines and backslashes
// escaped, so a row is one line).
func (d wpDB) state(t *testing.T) string {
	t.Helper()
	tables := strings.Fields(strings.TrimPrefix(d.exec(t, "SHOW TABLES"), "Tables_in_wordpress\n"))
	var b strings.Builder
	for _, table := range tables {
		fmt.Fprintf(&b, "== %s\n", table)
		b.WriteString(d.exec(t, fmt.Sprintf("SHOW CREATE TABLE `%s`; CHECKSUM TABLE `%s`; SELECT * FROM `%s` ORDER BY 1;", table, table, table)))
	}
	return b.String()
}

// sameState compares two states, showing the first difference.
func sameState(t *testing.T, when, got, want string) {
	t.Helper()
	if got == want {
		return
	}
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			t.Errorf("%s, the database differs from the backup's at line %d (of %d, want %d):\ngot  %.300q\nwant %.300q", when, i+1, len(g), len(w), gl, wl)
			return
		}
	}
}

// snapshotIDs are the IDs of the app's wordpress.sql snapshots, as
// `backups <app>` lists them.
func snapshotIDs(t *testing.T, env []string, app string) []string {
	t.Helper()
	out := toolboxRun(t, env, "do", "backups "+app)
	re := regexp.MustCompile(`(?m)^\| [^|]+ \| ` + regexp.QuoteMeta(app) + " \\| wordpress\\.sql \\| .* \\| `([0-9a-f]{8,64})` \\|$")
	var ids []string
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		ids = append(ids, m[1])
	}
	if len(ids) == 0 {
		t.Fatalf("backups lists no wordpress.sql snapshot:\n%s", out)
	}
	return ids
}

func newIDs(now, before []string) []string {
	var ids []string
	for _, id := range now {
		if !slices.Contains(before, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// checkArgv fails the test for each command line that holds the password.
func checkArgv(t *testing.T, where string, cmdlines []string, password string) {
	t.Helper()
	found := false
	for _, c := range cmdlines {
		if strings.Contains(c, password) {
			found = true
			t.Errorf("%s, a process had the database password in its arguments: %q", where, strings.ReplaceAll(c, password, "[the password]"))
		}
	}
	if !found {
		t.Logf("%s, %d distinct command lines seen, none with the password", where, len(cmdlines))
	}
}

// argvWatch collects the distinct command lines of processes seen running.
type argvWatch struct {
	mu   sync.Mutex
	seen map[string]bool
	halt func()
	done chan struct{}
}

func (w *argvWatch) add(cmdline string) {
	cmdline = strings.TrimSpace(strings.ReplaceAll(cmdline, "\x00", " "))
	if cmdline == "" {
		return
	}
	w.mu.Lock()
	w.seen[cmdline] = true
	w.mu.Unlock()
}

// stop ends the watch and returns what it saw, sorted.
func (w *argvWatch) stop(t *testing.T) []string {
	t.Helper()
	w.halt()
	select {
	case <-w.done:
	case <-time.After(time.Minute):
		t.Fatal("the watch of the processes did not stop")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Sorted(func(yield func(string) bool) {
		for c := range w.seen {
			if !yield(c) {
				return
			}
		}
	})
}

// argvStopFile, once it exists in the container, ends the watch there.
const argvStopFile = "/tmp/toolbox-test-argv.stop"

// watchContainerArgv reads, in a loop inside the container, the command
// line of every process there, until stop: a shell loop of one head per
// round, so that a dump that lasts a fraction of a second is seen. The
// loop's own arguments hold no password: it never reads one.
func watchContainerArgv(t *testing.T, ctx context.Context, e *docker.Engine, container string) *argvWatch {
	t.Helper()
	w := &argvWatch{seen: map[string]bool{}, done: make(chan struct{})}
	script := `rm -f ` + argvStopFile + `; echo started; i=0
while [ ! -e ` + argvStopFile + ` ] && [ "$i" -lt 500000 ]; do
	head -c 4096 /proc/[0-9]*/cmdline 2>/dev/null; echo; i=$((i + 1))
done`
	pr, pw := io.Pipe()
	started := make(chan struct{})
	var failed error
	var wg sync.WaitGroup
	wg.Go(func() {
		code, err := e.Exec(ctx, container, []string{"sh", "-c", script}, pw, nil)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit code %d", code)
		}
		failed = err
		pw.Close()
	})
	wg.Go(func() {
		defer io.Copy(io.Discard, pr) // a line too long for the scanner
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		first := true
		for sc.Scan() {
			line := sc.Text()
			if first && line == "started" {
				close(started)
				first = false
				continue
			}
			if !strings.HasPrefix(line, "==> /proc/") {
				w.add(line)
			}
		}
	})
	go func() {
		wg.Wait()
		close(w.done)
	}()
	select {
	case <-started:
	case <-w.done:
		t.Fatalf("the watch of %s's processes ended at once: %v", container, failed)
	case <-time.After(time.Minute):
		t.Fatalf("the watch of %s's processes did not start", container)
	}
	w.halt = func() {
		if code, err := e.Exec(context.Background(), container, []string{"touch", argvStopFile}, nil, nil); err != nil || code != 0 {
			t.Errorf("stop the watch in %s: code %d, %v", container, code, err)
		}
	}
	return w
}

// watchHostArgv reads the command line of every process of this machine in
// a loop, when the engine's containers run on it (the database's main
// process shows in this /proc), else it says so and returns nil.
func watchHostArgv(t *testing.T, ctx context.Context, e *docker.Engine, container string) *argvWatch {
	t.Helper()
	pid, err := e.PID(ctx, container)
	if err != nil {
		t.Fatal(err)
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err != nil || !bytes.HasPrefix(cmdline, []byte("mariadbd")) {
		t.Logf("the engine's processes are not this machine's (pid %d: %q, %v): only the container's are watched", pid, cmdline, err)
		return nil
	}
	w := &argvWatch{seen: map[string]bool{}, done: make(chan struct{})}
	quit := make(chan struct{})
	w.halt = sync.OnceFunc(func() { close(quit) })
	go func() {
		defer close(w.done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(5 * time.Millisecond):
			}
			dirs, _ := os.ReadDir("/proc")
			for _, d := range dirs {
				if n := d.Name(); n[0] >= '0' && n[0] <= '9' {
					if b, err := os.ReadFile("/proc/" + n + "/cmdline"); err == nil {
						w.add(string(b))
					}
				}
			}
		}
	}()
	t.Cleanup(w.halt)
	return w
}

// wordpressSchema is a part of the tables WordPress creates
// (wp-admin/includes/schema.php), with its character set.
const wordpressSchema = `
CREATE TABLE wp_options (
  option_id bigint(20) unsigned NOT NULL auto_increment,
  option_name varchar(191) NOT NULL default '',
  option_value longtext NOT NULL,
  autoload varchar(20) NOT NULL default 'yes',
  PRIMARY KEY (option_id),
  UNIQUE KEY option_name (option_name),
  KEY autoload (autoload)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci;
CREATE TABLE wp_posts (
  ID bigint(20) unsigned NOT NULL auto_increment,
  post_author bigint(20) unsigned NOT NULL default '0',
  post_date datetime NOT NULL default '0000-00-00 00:00:00',
  post_content longtext NOT NULL,
  post_title text NOT NULL,
  post_status varchar(20) NOT NULL default 'publish',
  post_name varchar(200) NOT NULL default '',
  post_type varchar(20) NOT NULL default 'post',
  PRIMARY KEY (ID),
  KEY post_name (post_name(191)),
  KEY type_status_date (post_type,post_status,post_date,ID)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci;
CREATE TABLE wp_postmeta (
  meta_id bigint(20) unsigned NOT NULL auto_increment,
  post_id bigint(20) unsigned NOT NULL default '0',
  meta_key varchar(255) default NULL,
  meta_value longtext,
  PRIMARY KEY (meta_id),
  KEY post_id (post_id),
  KEY meta_key (meta_key(191))
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci;
CREATE TABLE wp_comments (
  comment_ID bigint(20) unsigned NOT NULL auto_increment,
  comment_post_ID bigint(20) unsigned NOT NULL default '0',
  comment_author tinytext NOT NULL,
  comment_date datetime NOT NULL default '0000-00-00 00:00:00',
  comment_content text NOT NULL,
  PRIMARY KEY (comment_ID),
  KEY comment_post_ID (comment_post_ID)
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci;
`

// wordpressRows fill them: non-ASCII text (four-byte characters too),
// values over several lines with quotes, tabs, backslashes and a carriage
// return, a NULL, a serialized PHP array, a gap in the keys, and enough
// post meta (tens of thousands of rows) for the dump to last long enough
// for the watch of the processes to see it.
const wordpressRows = `
INSERT INTO wp_options (option_name, option_value, autoload) VALUES
  ('siteurl', 'https://wp.example.org', 'yes'),
  ('home', 'https://wp.example.org', 'yes'),
  ('blogname', 'Café coopératif « Les Tilleuls »', 'yes'),
  ('blogdescription', '🌳 Un jardin partagé — 日本語も — Ελληνικά', 'yes'),
  ('sidebars_widgets', 'a:2:{s:19:"wp_inactive_widgets";a:0:{}s:9:"sidebar-1";a:1:{i:0;s:8:"search-2";}}', 'yes'),
  ('gone', 'deleted before the backup', 'no'),
  ('widget_text', 'Bienvenue !\nLigne deux avec l''apostrophe, des "guillemets",\n\tune tabulation, une barre \\ oblique inverse,\r\net la fin.', 'no');
DELETE FROM wp_options WHERE option_name = 'gone';
INSERT INTO wp_posts (post_author, post_date, post_content, post_title, post_status, post_name, post_type) VALUES
  (1, '2026-01-10 08:30:00', '<!-- wp:paragraph -->\n<p>Bienvenue sur le site de l''association. Les réunions ont lieu le jeudi.</p>\n<!-- /wp:paragraph -->', 'Bonjour tout le monde !', 'publish', 'bonjour-tout-le-monde', 'post'),
  (1, '2026-01-11 18:00:00', 'Compte rendu :\n- point 1 : « budget »\n- point 2 : 🎉 fête de printemps\n\nSigné : Zoë', 'Réunion de janvier', 'publish', 'reunion-de-janvier', 'post'),
  (2, '2026-01-12 07:15:00', 'Brouillon \\ avec une barre et un \t tab', 'Brouillon', 'draft', '', 'post'),
  (1, '2026-01-01 00:00:00', 'Mentions légales\n\nHébergé par le collectif.', 'Mentions légales', 'publish', 'mentions-legales', 'page');
INSERT INTO wp_comments (comment_post_ID, comment_author, comment_date, comment_content) VALUES
  (1, 'Amélie', '2026-01-10 09:00:00', 'Merci ! 👍'),
  (2, 'Jean-Noël', '2026-01-12 10:00:00', 'Je viendrai.\nÀ jeudi.');
INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES (1, '_edit_lock', NULL);
SET SESSION max_recursive_iterations = 1000000;
INSERT INTO wp_postmeta (post_id, meta_key, meta_value)
  SELECT 1 + n % 4, CONCAT('_meta_', n), CONCAT(REPEAT('données ', 1 + n % 16), n)
  FROM (WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 40000) SELECT n FROM seq) AS s;
`
