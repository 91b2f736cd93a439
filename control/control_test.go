package control

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// serveControl runs a control server over a real router and state in a
// temporary folder, and returns a client of it and the socket's path.
func serveControl(t *testing.T, bootstrap func(context.Context) (bot.BootstrapResult, error)) (*Client, string, *state.Store) {
	t.Helper()
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "toolbox.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	router, err := commands.NewRouter(ctx, commands.Deps{
		Store: st, Chat: &TerminalChat{W: &bytes.Buffer{}}, ConfirmKey: bytes.Repeat([]byte("k"), 32), Version: "test",
		Checks: []commands.Check{{Name: "nothing", Run: func(context.Context) (string, error) { return "fine", nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := SocketPath(st.Path())
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: (&Server{Router: router, Store: st, Bootstrap: bootstrap, ChannelID: func() string { return "" }, Log: discardLog()}).Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		router.Jobs().Wait()
	})
	return NewClient(path), path, st
}

func TestSocketIsPrivate(t *testing.T) {
	_, path, _ := serveControl(t, nil)
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("socket folder mode = %o, want 700", got)
	}
	if !Running(path) {
		t.Fatal("Running = false for a serving socket")
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another toolbox") {
		t.Errorf("second Listen = %v, want a refusal naming another toolbox", err)
	}
}

func TestListenTightensAnOpenFolderAndReplacesAStaleSocket(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db.control")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "socket")
	if err := os.WriteFile(path, nil, 0o600); err != nil { // what a crash leaves
		t.Fatal(err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(dir)
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("folder mode after Listen = %o, want 700", got)
	}
	ln.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}
}

func TestListenRefusesALink(t *testing.T) {
	base := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(base, "db.control")); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(base, "db.control", "socket")); err == nil {
		t.Error("Listen in a linked folder succeeded, want a refusal")
	}
}

func TestDo(t *testing.T) {
	c, _, _ := serveControl(t, nil)
	ctx := context.Background()
	reply, err := c.Do(ctx, "version", false)
	if err != nil || reply.Failed || !strings.Contains(reply.Text, "test") {
		t.Errorf("Do(version) = %+v, %v; want the version", reply, err)
	}
	// selftest is a job: the terminal gets its result, not the promise.
	reply, err = c.Do(ctx, "selftest", false)
	if err != nil || reply.Failed || !strings.Contains(reply.Text, "fine") {
		t.Errorf("Do(selftest) = %+v, %v; want the job's result", reply, err)
	}
	reply, err = c.Do(ctx, "no-such-verb", false)
	if err != nil || !reply.Failed {
		t.Errorf("Do(no-such-verb) = %+v, %v; want a failed reply", reply, err)
	}
}

func TestMalformedRequest(t *testing.T) {
	c, _, _ := serveControl(t, nil)
	req, _ := http.NewRequest(http.MethodPost, "http://toolbox/do", strings.NewReader("{not json"))
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status = %d, want 400", resp.StatusCode)
	}
}

func TestBootstrap(t *testing.T) {
	ok := func(context.Context) (bot.BootstrapResult, error) {
		return bot.BootstrapResult{Changes: []string{"created the team"}, AdminUsername: "admin", AdminPassword: "s3cret"}, nil
	}
	c, _, _ := serveControl(t, ok)
	res, err := c.Bootstrap(context.Background())
	if err != nil || res.AdminPassword.Reveal() != "s3cret" || len(res.Changes) != 1 {
		t.Errorf("Bootstrap = %+v, %v", res, err)
	}
	failing := func(context.Context) (bot.BootstrapResult, error) {
		return bot.BootstrapResult{}, errors.New("mattermost is down")
	}
	c, _, _ = serveControl(t, failing)
	if _, err := c.Bootstrap(context.Background()); err == nil || !strings.Contains(err.Error(), "mattermost is down") {
		t.Errorf("Bootstrap with a failing server = %v, want its error", err)
	}
}

func TestBackupState(t *testing.T) {
	c, _, st := serveControl(t, nil)
	if err := st.SetSetting("k", "v"); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "copy.db")
	n, err := c.BackupState(context.Background(), out)
	if err != nil || n == 0 {
		t.Fatalf("BackupState = %d, %v", n, err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("backup mode = %o, want 600", got)
	}
	copyStore, err := state.Open(out, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer copyStore.Close()
	if v, err := copyStore.Setting("k"); err != nil || v != "v" {
		t.Errorf("the copy's setting = %q, %v; want v", v, err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*.tmp"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestRunHere(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "toolbox.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out lockedBuffer
	router, err := commands.NewRouter(context.Background(), commands.Deps{
		Store: st, Chat: &TerminalChat{W: &out}, ConfirmKey: bytes.Repeat([]byte("k"), 32), Version: "test",
		Checks: []commands.Check{{Name: "nothing", Run: func(context.Context) (string, error) { return "fine", nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := RunHere(context.Background(), router, st, "selftest", false, strings.NewReader(""), &out); err != nil {
		t.Fatalf("RunHere(selftest) = %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "fine") {
		t.Errorf("the terminal shows %q, want the job's result", out.String())
	}
	if err := RunHere(context.Background(), router, st, "no-such-verb", false, strings.NewReader(""), &out); !errors.Is(err, ErrFailed) {
		t.Errorf("RunHere(no-such-verb) = %v, want ErrFailed", err)
	}
}
