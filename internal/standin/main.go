// Command standin is a stand-in for a catalog app in tests: a static binary
// for a FROM scratch image that serves HTTP with a health path, keeps records
// in its data volume and dumps or restores them like a database would.
//
//	standin [serve]      HTTP on $PORT (8080): GET $HEALTH_PATH (/healthz), GET /,
//	                     POST and GET /records (kept in $DATA_DIR/records.txt, DATA_DIR=/data)
//	standin health [url] exit 0 when GET url (default: this app's health path) is 200
//	standin dump         write the records to stdout
//	standin restore      replace the records with stdin
//	standin count        print how many records there are (a restore's check)
//	standin sleep [d]    do nothing for d (default 1h): a long-running command
//
// STANDIN_REQUIRE_ENV=A,B makes serve refuse to start while A or B is empty;
// STANDIN_LOG_ENV=A,B makes it print them at start, as a leaky app would.
// APP_NAME names the app on its page.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const recordsFile = "records.txt"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	var ec exitCode
	switch {
	case errors.As(err, &ec): // already explained on stdout or stderr
		os.Exit(int(ec))
	case err != nil:
		fmt.Fprintln(os.Stderr, "standin:", err)
		os.Exit(1)
	}
}

// exitCode is an error carrying the process exit status.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type config struct {
	port       string
	healthPath string
	appName    string
	dataDir    string
}

func load(getenv func(string) string) config {
	c := config{
		port:       getenv("PORT"),
		healthPath: getenv("HEALTH_PATH"),
		appName:    getenv("APP_NAME"),
		dataDir:    getenv("DATA_DIR"),
	}
	if c.port == "" {
		c.port = "8080"
	}
	if c.healthPath == "" {
		c.healthPath = "/healthz"
	}
	if !strings.HasPrefix(c.healthPath, "/") {
		c.healthPath = "/" + c.healthPath
	}
	if c.appName == "" {
		c.appName = "standin"
	}
	if c.dataDir == "" {
		c.dataDir = "/data"
	}
	return c
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	cfg := load(getenv)
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		if err := requireEnv(getenv); err != nil {
			return err
		}
		// Like many real apps, print configuration at start, secrets included:
		// what the toolbox's log scrubbing must hide.
		for name := range strings.SplitSeq(getenv("STANDIN_LOG_ENV"), ",") {
			if name = strings.TrimSpace(name); name != "" {
				fmt.Fprintf(stderr, "config: %s=%s\n", name, getenv(name))
			}
		}
		ln, err := net.Listen("tcp", ":"+cfg.port)
		if err != nil {
			return err
		}
		return serve(ctx, ln, cfg, stdout)
	case "health":
		url := "http://127.0.0.1:" + cfg.port + cfg.healthPath
		if len(args) > 0 {
			url = args[0]
		}
		return health(ctx, url, stdout)
	case "dump":
		f, err := os.Open(filepath.Join(cfg.dataDir, recordsFile))
		if errors.Is(err, os.ErrNotExist) {
			return nil // nothing recorded yet: an empty dump
		}
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(stdout, f)
		return err
	case "restore":
		return restore(cfg.dataDir, stdin)
	case "count":
		b, err := os.ReadFile(filepath.Join(cfg.dataDir, recordsFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		_, err = fmt.Fprintln(stdout, bytes.Count(b, []byte("\n")))
		return err
	case "sleep": // a long-running command, like a slow dump
		d := time.Hour
		if len(args) > 0 {
			var err error
			if d, err = time.ParseDuration(args[0]); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
			return nil
		}
	default:
		fmt.Fprintln(stderr, "usage: standin [serve | health [url] | dump | restore | count | sleep [duration]]")
		return exitCode(2)
	}
}

func requireEnv(getenv func(string) string) error {
	var missing []string
	for name := range strings.SplitSeq(getenv("STANDIN_REQUIRE_ENV"), ",") {
		if name = strings.TrimSpace(name); name != "" && getenv(name) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("refusing to start: required environment variables are empty: %s", strings.Join(missing, ", "))
	}
	return nil
}

func serve(ctx context.Context, ln net.Listener, cfg config, log io.Writer) error {
	srv := &http.Server{
		Handler:           newApp(cfg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	fmt.Fprintf(log, "%s listening on %s, data in %s\n", cfg.appName, ln.Addr(), cfg.dataDir)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	fmt.Fprintf(log, "%s stopped\n", cfg.appName)
	return err
}

type app struct {
	cfg config
	mu  sync.Mutex // guards the records file
}

func newApp(cfg config) http.Handler {
	a := &app{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+cfg.healthPath, func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /records", a.list)
	mux.HandleFunc("POST /records", a.add)
	return mux
}

func (a *app) path() string { return filepath.Join(a.cfg.dataDir, recordsFile) }

func (a *app) read() ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, err := os.ReadFile(a.path())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func (a *app) home(w http.ResponseWriter, _ *http.Request) {
	b, err := a.read()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>%[1]s</title><h1>%[1]s</h1><p>%[2]d records</p>\n",
		html.EscapeString(a.cfg.appName), strings.Count(string(b), "\n"))
}

func (a *app) list(w http.ResponseWriter, _ *http.Request) {
	b, err := a.read()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(b)
}

func (a *app) add(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		body = append(body, '\n') // one record, one line
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := os.MkdirAll(a.cfg.dataDir, 0o755); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f, err := os.OpenFile(a.path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_, err = f.Write(body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func health(ctx context.Context, url string, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(out, "unhealthy:", err)
		return exitCode(1)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(out, "unhealthy: GET %s: %s\n", url, resp.Status)
		return exitCode(1)
	}
	fmt.Fprintln(out, "healthy")
	return nil
}

// restore replaces the records atomically with what r holds.
func restore(dir string, r io.Reader) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".restore-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, recordsFile))
}
