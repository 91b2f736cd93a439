package images

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestMariaDBImage starts the locally built MariaDB image as the catalog
// does (a volume at /var/lib/mysql, MARIADB_* variables, healthcheck.sh),
// makes a table through the mariadb client, dumps it with mariadb-dump and
// restores the dump, over the network, into a fresh container configured
// with the MYSQL_* aliases. Passwords reach the clients through MYSQL_PWD,
// never their arguments.
func TestMariaDBImage(t *testing.T) {
	e := dockertest.Engine(t)
	needDebootstrap(t)
	tag := builtImage(t, e, "mariadb")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	labels := dockertest.Labels(t, e)
	network := dockertest.Unique(t, "images-mariadb")
	if err := e.EnsureNetwork(ctx, network, labels); err != nil {
		t.Fatal(err)
	}
	start := func(env map[string]string) string {
		t.Helper()
		name := dockertest.Unique(t, "images-mariadb")
		if err := e.EnsureVolume(ctx, name, labels); err != nil {
			t.Fatal(err)
		}
		// The catalog's health check of its MariaDB services, run more often.
		health := docker.Health{
			Test:     []string{"CMD", "healthcheck.sh", "--connect", "--innodb_initialized"},
			Interval: time.Second, Timeout: 5 * time.Second, Retries: 60,
		}
		_, err := e.EnsureContainer(ctx, docker.ContainerSpec{
			Name: name, Image: tag, Env: env, Labels: labels, Network: network, Restart: "no",
			Mounts: []docker.Mount{{Volume: name, Target: "/var/lib/mysql"}},
			Health: &health, MemoryLimit: 512 << 20,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.WaitHealthy(ctx, name); err != nil {
			t.Fatal(err)
		}
		return name
	}
	// sh runs a shell command in the container, with stdin from in (nil:
	// none), and returns its standard output; it fails the test unless the
	// command exits 0.
	sh := func(name, script string, in []byte) string {
		t.Helper()
		var stdin *bytes.Reader
		var stdout, stderr bytes.Buffer
		cmd := []string{"sh", "-c", script}
		var code int
		var err error
		if in != nil {
			stdin = bytes.NewReader(in)
			code, err = e.ExecInput(ctx, name, cmd, stdin, &stdout, &stderr)
		} else {
			code, err = e.Exec(ctx, name, cmd, &stdout, &stderr)
		}
		if err != nil || code != 0 {
			t.Fatalf("%s: %s: exit code %d, %v\n%s", name, script, code, err, stderr.String())
		}
		return stdout.String()
	}
	const (
		user, password, database = "app", `pa'ss\word"$x`, "app_db"
		client                   = `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -u"$MARIADB_USER" "$MARIADB_DATABASE"`
		dump                     = `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb-dump --single-transaction --quick -u"$MARIADB_USER" "$MARIADB_DATABASE"`
		query                    = `SELECT id, body FROM notes ORDER BY id;`
		want                     = "1\tgrüße\n2\tit's a \\\\ test\n"
	)

	first := start(map[string]string{
		"MARIADB_DATABASE": database, "MARIADB_USER": user, "MARIADB_PASSWORD": password,
		"MARIADB_RANDOM_ROOT_PASSWORD": "1",
	})
	sh(first, client, []byte("CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(100)) DEFAULT CHARSET utf8mb4;\n"+
		"INSERT INTO notes VALUES (1, 'grüße'), (2, 'it''s a \\\\ test');\n"))
	if got := sh(first, client+" --batch --skip-column-names", []byte(query)); got != want {
		t.Errorf("the table holds %q, want %q", got, want)
	}

	t.Run("root", func(t *testing.T) {
		logs, err := e.Logs(ctx, first, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs, "GENERATED ROOT PASSWORD: ") {
			t.Errorf("MARIADB_RANDOM_ROOT_PASSWORD printed no password; logs:\n%s", logs)
		}
		if code, _ := e.Exec(ctx, first, []string{"mariadb", "-uroot", "-e", "SELECT 1"}, nil, nil); code == 0 {
			t.Errorf("root logs in without its password")
		}
	})
	t.Run("healthcheck", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			ok   bool
		}{
			{[]string{"--connect", "--innodb_initialized"}, true},
			{[]string{"--innodb_buffer_pool_loaded"}, true},
			{[]string{"--no-defaults", "--connect"}, true}, // denied, but up
			{[]string{"--no-defaults", "--innodb_initialized"}, false},
			{[]string{"--galera_online"}, false},
		} {
			code, err := e.Exec(ctx, first, append([]string{"healthcheck.sh"}, tc.args...), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if (code == 0) != tc.ok {
				t.Errorf("healthcheck.sh %s exited %d, want success %v", strings.Join(tc.args, " "), code, tc.ok)
			}
		}
	})

	out := sh(first, dump, nil)
	if !strings.Contains(out, "CREATE TABLE `notes`") {
		t.Fatalf("mariadb-dump wrote no table notes:\n%s", out)
	}

	fresh := start(map[string]string{
		"MYSQL_DATABASE": database, "MYSQL_USER": user, "MYSQL_PASSWORD": password,
		"MYSQL_ROOT_PASSWORD": "root secret",
	})
	// Restored from the first container, over the network: the fresh one
	// listens beyond its socket and lets the user in from elsewhere.
	sh(first, `MYSQL_PWD="$MARIADB_PASSWORD" exec mariadb -h `+fresh+` -u"$MARIADB_USER" "$MARIADB_DATABASE"`, []byte(out))
	if got := sh(fresh, `MYSQL_PWD="$MYSQL_PASSWORD" exec mariadb -u"$MYSQL_USER" --batch --skip-column-names "$MYSQL_DATABASE"`, []byte(query)); got != want {
		t.Errorf("the restored table holds %q, want %q", got, want)
	}
	if got := sh(fresh, `MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb -uroot --batch --skip-column-names -e 'SELECT COUNT(*) FROM app_db.notes'`, nil); got != "2\n" {
		t.Errorf("root counts %q rows, want 2", got)
	}

	t.Run("restart", func(t *testing.T) {
		if err := e.RestartContainer(ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := e.WaitHealthy(ctx, first); err != nil {
			t.Fatal(err)
		}
		if got := sh(first, client+" --batch --skip-column-names", []byte(query)); got != want {
			t.Errorf("after a restart the table holds %q, want %q", got, want)
		}
	})
}
