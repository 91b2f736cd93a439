// Package mmtest starts a real Mattermost server, backed by its own database in a real
// PostgreSQL, for integration tests.
//
// It needs two environment variables, which `bash .ci/run` sets up:
//
//	TOOLBOX_MATTERMOST_DIR  a directory built by `toolbox images build --env mattermost`
//	                        (bin/mattermost, i18n/, templates/, fonts/)
//	TOOLBOX_TEST_PG_URL     a PostgreSQL URL of a role allowed to create databases,
//	                        e.g. postgres://toolbox:toolbox@127.0.0.1:5432/postgres?sslmode=disable
//
// and the psql command (Debian package postgresql-client). When they are missing a test
// fails if CI=true and is skipped otherwise.
package mmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"
)

const (
	// EnvDir names the directory holding a built Mattermost server.
	EnvDir = "TOOLBOX_MATTERMOST_DIR"
	// EnvPostgresURL names the URL of a PostgreSQL role that may create databases.
	EnvPostgresURL = "TOOLBOX_TEST_PG_URL"

	howTo = "run `bash .ci/run` (it builds Mattermost and starts PostgreSQL) or set " +
		EnvDir + " and " + EnvPostgresURL

	// DefaultAllowedUntrusted lets the server call a bot listening on the loopback interface.
	DefaultAllowedUntrusted = "127.0.0.1 localhost"

	readyTimeout = 3 * time.Minute
	stopTimeout  = 20 * time.Second
	psqlTimeout  = time.Minute
	logTailBytes = 64 << 10
	startTries   = 3
)

// Options changes how a server is started. The zero value is ready to use.
type Options struct {
	// AllowedUntrusted is ServiceSettings.AllowedUntrustedInternalConnections;
	// empty means DefaultAllowedUntrusted.
	AllowedUntrusted string
	// Env holds extra MM_* variables; they override the defaults set by Start
	// (for example MM_JOBSETTINGS_RUNJOBS=true to run background jobs, off by default).
	Env map[string]string
}

// Server is a running Mattermost server, stopped and deleted when its test ends.
type Server struct {
	// URL is the site URL, http://127.0.0.1:PORT, without a trailing slash.
	URL string
	// Dir is the server's own directory: its working directory and config.json;
	// uploaded files are under Dir/data.
	Dir string
	// DBName is the PostgreSQL database the server uses, dropped when the test ends.
	DBName string

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // the result of cmd.Wait, set before done is closed
	logs *tail

	mu    sync.Mutex
	admin *model.User // created by the first AdminClient call
	pass  string
}

// Start starts a Mattermost server with a fresh database and waits until it answers
// GET /api/v4/system/ping. The server is stopped and its database dropped in t.Cleanup;
// if the test failed, the tail of the server's output is logged.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	mmDir, pgURL := os.Getenv(EnvDir), os.Getenv(EnvPostgresURL)
	if mmDir == "" || pgURL == "" {
		missing(t, fmt.Sprintf("mmtest: %s or %s is not set: %s", EnvDir, EnvPostgresURL, howTo))
	}
	if _, err := exec.LookPath("psql"); err != nil {
		missing(t, "mmtest: psql is not installed (apt-get install postgresql-client): "+howTo)
	}
	bin := filepath.Join(mmDir, "bin", "mattermost")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("mmtest: %s=%s holds no server: %v; %s", EnvDir, mmDir, err, howTo)
	}

	s := &Server{Dir: t.TempDir(), DBName: "mm_" + randomHex(6)}
	dsn, err := dataSource(pgURL, s.DBName)
	if err != nil {
		t.Fatalf("mmtest: %s: %v", EnvPostgresURL, err)
	}
	if err := psql(pgURL, "CREATE DATABASE "+s.DBName); err != nil {
		t.Fatalf("mmtest: create database: %v; %s", err, howTo)
	}
	t.Cleanup(func() {
		if err := psql(pgURL, "DROP DATABASE IF EXISTS "+s.DBName+" WITH (FORCE)"); err != nil {
			t.Errorf("mmtest: drop database: %v", err)
		}
	})
	if err := prepareDir(s.Dir, mmDir); err != nil {
		t.Fatalf("mmtest: %v", err)
	}

	begin := time.Now()
	for try := 1; ; try++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("mmtest: %v", err)
		}
		s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		if err := s.start(t, bin, environ(s, dsn, port, opts)); err != nil {
			t.Fatalf("mmtest: %v", err)
		}
		err = s.waitReady(readyTimeout)
		if err == nil {
			break
		}
		// Another test may have taken the port between freePort and the server's listen.
		if try < startTries && strings.Contains(s.Logs(), "address already in use") {
			continue
		}
		t.Fatalf("mmtest: %v", err) // the cleanup logs the server's output
	}
	t.Logf("mmtest: Mattermost ready at %s in %s (database %s)", s.URL, time.Since(begin).Round(time.Millisecond), s.DBName)
	return s
}

// missing reports an absent outside component: a failure in CI, a skip elsewhere.
func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// start launches the server process and registers its stop in t.Cleanup.
func (s *Server) start(t testing.TB, bin string, env []string) error {
	cmd := exec.Command(bin, "server", "--config", filepath.Join(s.Dir, "config.json"))
	cmd.Dir = s.Dir
	cmd.Env = env
	logs := &tail{max: logTailBytes}
	cmd.Stdout = logs
	cmd.Stderr = logs
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	s.cmd, s.done, s.logs = cmd, make(chan struct{}), logs
	siteURL := s.URL
	done := s.done
	go func() {
		s.err = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		stop(cmd, done)
		if t.Failed() {
			t.Logf("mmtest: output of the server at %s:\n%s", siteURL, logs)
		}
	})
	return nil
}

// stop sends SIGTERM, then SIGKILL after stopTimeout, and waits for the exit.
func stop(cmd *exec.Cmd, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

// waitReady polls the ping endpoint until it answers status OK, the process exits or
// the timeout passes.
func (s *Server) waitReady(timeout time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.After(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = ping(client, s.URL); last == nil {
			return nil
		}
		select {
		case <-s.done:
			return fmt.Errorf("mattermost exited before it was ready: %v", s.err)
		case <-deadline:
			return fmt.Errorf("mattermost not ready after %s: %w", timeout, last)
		case <-tick.C:
		}
	}
}

func ping(client *http.Client, base string) error {
	resp, err := client.Get(base + "/api/v4/system/ping")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("ping: %s: %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != model.StatusOk {
		return fmt.Errorf("ping: %s, status %q", resp.Status, body.Status)
	}
	return nil
}

// Logs returns the tail of the server's standard output and error.
func (s *Server) Logs() string {
	return s.logs.String()
}

// PID returns the process id of the server.
func (s *Server) PID() int {
	return s.cmd.Process.Pid
}

// AdminClient returns a client logged in as a system administrator. The first call
// creates that user, so it becomes the server's first user, who is made system admin;
// call it before creating other users.
func (s *Server) AdminClient(t testing.TB) *model.Client4 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.admin == nil {
		pass := "Adm1n-" + randomHex(12)
		u, _, err := model.NewAPIv4Client(s.URL).CreateUser(ctx, &model.User{
			Username: "admin",
			Email:    "admin@example.com",
			Password: pass,
		})
		if err != nil {
			t.Fatalf("mmtest: create admin: %v", err)
		}
		s.admin, s.pass = u, pass
	}
	c := model.NewAPIv4Client(s.URL)
	if _, _, err := c.Login(ctx, s.admin.Username, s.pass); err != nil {
		t.Fatalf("mmtest: log in as admin: %v", err)
	}
	return c
}

// environ is the server's environment: this process's, without MM_* variables, plus the
// test configuration and opts.Env.
func environ(s *Server, dsn string, port int, opts Options) []string {
	untrusted := opts.AllowedUntrusted
	if untrusted == "" {
		untrusted = DefaultAllowedUntrusted
	}
	mm := map[string]string{
		"MM_SQLSETTINGS_DRIVERNAME":   "postgres",
		"MM_SQLSETTINGS_DATASOURCE":   dsn,
		"MM_SQLSETTINGS_MAXOPENCONNS": "20", // several servers share one PostgreSQL
		"MM_SQLSETTINGS_MAXIDLECONNS": "5",

		"MM_SERVICESETTINGS_SITEURL":                             s.URL,
		"MM_SERVICESETTINGS_LISTENADDRESS":                       fmt.Sprintf("127.0.0.1:%d", port),
		"MM_SERVICESETTINGS_WEBSERVERMODE":                       "disabled",
		"MM_SERVICESETTINGS_ENABLECOMMANDS":                      "true",
		"MM_SERVICESETTINGS_ENABLEBOTACCOUNTCREATION":            "true",
		"MM_SERVICESETTINGS_ENABLEUSERACCESSTOKENS":              "true",
		"MM_SERVICESETTINGS_ALLOWEDUNTRUSTEDINTERNALCONNECTIONS": untrusted,
		"MM_SERVICESETTINGS_ENABLELOCALMODE":                     "false",
		"MM_SERVICESETTINGS_ENABLESECURITYFIXALERT":              "false",

		// No background jobs: nothing toolbox uses needs them, and stopping the job
		// workers makes a graceful shutdown take about 7 s instead of 0.1 s.
		"MM_JOBSETTINGS_RUNJOBS":      "false",
		"MM_JOBSETTINGS_RUNSCHEDULER": "false",

		"MM_PLUGINSETTINGS_ENABLE":          "false",
		"MM_PLUGINSETTINGS_DIRECTORY":       filepath.Join(s.Dir, "plugins"),
		"MM_PLUGINSETTINGS_CLIENTDIRECTORY": filepath.Join(s.Dir, "client", "plugins"),
		"MM_FILESETTINGS_DIRECTORY":         filepath.Join(s.Dir, "data") + "/",

		"MM_LOGSETTINGS_CONSOLELEVEL":             "ERROR",
		"MM_LOGSETTINGS_ENABLEDIAGNOSTICS":        "false",
		"MM_LOGSETTINGS_ENABLEFILE":               "false",
		"MM_LOGSETTINGS_FILELOCATION":             filepath.Join(s.Dir, "logs"),
		"MM_NOTIFYLOGSETTINGS_ENABLEFILE":         "false",
		"MM_NOTIFYLOGSETTINGS_FILELOCATION":       filepath.Join(s.Dir, "logs"),
		"MM_NOTIFYLOGSETTINGS_CONSOLELEVEL":       "ERROR",
		"MM_EMAILSETTINGS_SENDEMAILNOTIFICATIONS": "false",
	}
	for k, v := range opts.Env {
		mm[k] = v
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MM_") {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(mm))
	for k := range mm {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+mm[k])
	}
	return env
}

// prepareDir fills the server's own directory: links to the read-only assets of the
// build, an empty config file, and the folders the server writes to.
func prepareDir(dir, mmDir string) error {
	for _, d := range []string{"i18n", "templates", "fonts"} {
		if err := os.Symlink(filepath.Join(mmDir, d), filepath.Join(dir, d)); err != nil {
			return fmt.Errorf("link %s: %w", d, err)
		}
	}
	for _, d := range []string{"data", "logs", "plugins", "client/plugins"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}\n"), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// dataSource turns the admin URL into the server's URL for database name.
func dataSource(pgURL, name string) (string, error) {
	u, err := url.Parse(pgURL)
	if err != nil {
		return "", err
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("scheme %q, want postgres", u.Scheme)
	}
	u.Path = "/" + name
	q := u.Query()
	if q.Get("connect_timeout") == "" {
		q.Set("connect_timeout", "10")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// psql runs one SQL statement through the psql command.
func psql(pgURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), psqlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pgURL, "-c", sql)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("psql -c %q: %w: %s", sql, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
		w.cut = true
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut {
		return "[…]" + string(w.buf)
	}
	return string(w.buf)
}
