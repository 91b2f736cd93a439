package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/internal/mmtest"
)

// builds holds the toolbox binaries built for this test binary run, by flavour.
var builds sync.Map // bool (race) → *build

type build struct {
	once sync.Once
	path string
	err  error
}

// toolboxBinary builds the toolbox once per test binary run, with the race
// detector, as the rest of the tests run.
func toolboxBinary(t *testing.T) string { return buildToolbox(t, true) }

// plainToolboxBinary is the toolbox as it ships, without the race detector,
// whose overhead (several times the CPU and memory) would hide what a load
// test measures.
func plainToolboxBinary(t *testing.T) string { return buildToolbox(t, false) }

func buildToolbox(t *testing.T, race bool) string {
	t.Helper()
	v, _ := builds.LoadOrStore(race, &build{})
	b := v.(*build)
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "toolbox-e2e-bin")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "toolbox")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		args := []string{"build", "-o", b.path, "."}
		env := append(os.Environ(), "CGO_ENABLED=0")
		if race {
			args = []string{"build", "-race", "-o", b.path, "."}
			env = append(os.Environ(), "CGO_ENABLED=1")
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// toolboxRun runs one toolbox command to completion; it must succeed.
func toolboxRun(t *testing.T, env []string, args ...string) string {
	t.Helper()
	out, err := toolboxTry(t, env, args...)
	if err != nil {
		t.Fatalf("toolbox %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// toolboxCommand returns a function that runs bin (the static toolbox of
// `up`'s tests) with *env as it is then, and noSwap whatever it says, to its
// end; it fails the test unless the command succeeds, and logs how long it
// took.
func toolboxCommand(t *testing.T, bin string, env *[]string) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(append([]string(nil), *env...), noSwap)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("toolbox %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("toolbox %s took %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
		return string(out)
	}
}

// noSwap keeps up from giving the CI machine a swap file (host/swap.go:
// as root on the engine's machine, up would create /swapfile, turn it on
// and add it to /etc/fstab). A test's own env comes after and may override it.
const noSwap = "TOOLBOX_SWAP=off"

// toolboxTry runs one toolbox command to completion and returns its output
// and exit error.
func toolboxTry(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolboxBinary(t), args...)
	cmd.Env = append(append(os.Environ(), noSwap), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// process is a toolbox running in the background.
type process struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startToolbox(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	return startBinary(t, toolboxBinary(t), env, args...)
}

// startBinary is startToolbox with a given toolbox binary.
func startBinary(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), noSwap), env...)
	p := &process{cmd: cmd, out: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("toolbox output:\n%s", p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *process) stop(t *testing.T, within time.Duration) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("toolbox exited with %v\n%s", err, p.out.String())
		}
	case <-time.After(within):
		t.Fatalf("toolbox did not stop within %s after SIGTERM", within)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitHTTP(t *testing.T, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer within %s", url, within)
}

// eventually polls cond until it holds or the time is up.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// chatBot is a bot's configuration against a test Mattermost, bootstrapped:
// what TestChatFoundation and TestChatLoad share.
type chatBot struct {
	env       []string // the bot's TOOLBOX_* settings
	addr      string   // where it listens
	statePath string
	bootstrap string // what `toolbox mattermost bootstrap` printed
	password  string // the first admin's, from that output
}

// bootstrapChat configures a bot for mm, with extra settings, and runs
// `toolbox mattermost bootstrap` once.
func bootstrapChat(t *testing.T, mm *mmtest.Server, extra ...string) chatBot {
	t.Helper()
	b := chatBot{addr: freeAddr(t), statePath: t.TempDir() + "/toolbox.db"}
	b.env = append([]string{
		"TOOLBOX_STATE=" + b.statePath,
		"TOOLBOX_LISTEN=" + b.addr,
		"TOOLBOX_MATTERMOST_URL=" + mm.URL,
		"TOOLBOX_BOT_URL=http://" + b.addr,
	}, extra...)
	b.bootstrap = toolboxRun(t, b.env, "mattermost", "bootstrap")
	password := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(b.bootstrap)
	if password == nil {
		t.Fatalf("bootstrap printed no password:\n%s", b.bootstrap)
	}
	b.password = password[1]
	return b
}

// memberPassword is every test member's password.
const memberPassword = "Member-password-1"

// addMember creates a plain member of the team and channel, and returns a
// client logged in as them.
func addMember(t *testing.T, admin *model.Client4, team *model.Team, channel *model.Channel, name string) (*model.User, *model.Client4) {
	t.Helper()
	ctx := context.Background()
	u, _, err := admin.CreateUser(ctx, &model.User{Username: name, Email: name + "@example.invalid", Password: memberPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.AddTeamMember(ctx, team.Id, u.Id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.AddChannelMember(ctx, channel.Id, u.Id); err != nil {
		t.Fatal(err)
	}
	c := model.NewAPIv4Client(admin.URL)
	if _, _, err := c.Login(ctx, name, memberPassword); err != nil {
		t.Fatal(err)
	}
	return u, c
}

// loginToToolbox logs in as the bootstrap's admin and finds the team and the
// toolbox channel.
func loginToToolbox(t *testing.T, c *model.Client4, password string) (*model.Team, *model.Channel) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := c.Login(ctx, "admin", password); err != nil {
		t.Fatalf("login as the bootstrap admin: %v", err)
	}
	team, _, err := c.GetTeamByName(ctx, "collective", "")
	if err != nil {
		t.Fatal(err)
	}
	channel, _, err := c.GetChannelByName(ctx, "toolbox", team.Id, "")
	if err != nil {
		t.Fatal(err)
	}
	return team, channel
}
