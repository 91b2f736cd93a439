package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
	standincatalog "github.com/toolbox-collective/toolbox/internal/standin/catalog"
)

// staticToolbox builds the toolbox without cgo: `toolbox up` puts this very
// binary in the bot's FROM scratch image.
func staticToolbox(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "toolbox")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Dir(filepath.Dir(file))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// viaCaddy is an HTTP client that reaches every name through Caddy's
// published HTTPS port and trusts only Caddy's local CA.
func viaCaddy(t *testing.T, e *docker.Engine) *http.Client {
	t.Helper()
	ctx := context.Background()
	https, err := e.PublishedAddr(ctx, "toolbox-caddy", 443)
	if err != nil {
		t.Fatal(err)
	}
	// The admin API is only on a socket the bot shares: ask the bot for the CA.
	var ca, stderr bytes.Buffer
	if code, err := e.Exec(ctx, "toolbox", []string{"/toolbox", "proxy", "ca"}, &ca, &stderr); err != nil || code != 0 {
		t.Fatalf("toolbox proxy ca: code %d, %v: %s", code, err, stderr.String())
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca.Bytes()) {
		t.Fatal("caddy's root CA is not PEM")
	}
	var d net.Dialer
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots},
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", https)
		},
	}}
}

// TestUp runs `toolbox up` on the real engine with the real Mattermost and
// PostgreSQL as containers, then adds the stand-in app from the chat.
func TestUp(t *testing.T) {
	e := dockertest.Engine(t)
	// One call, so that the builds that are missing run side by side.
	buildImages(t, e, "caddy", "mattermost", "postgres", "restic")
	dockertest.BuildGoImage(t, e, dockertest.StandinPackage, standincatalog.Image)
	bin := staticToolbox(t)

	catalogDir := t.TempDir()
	app := dockertest.Unique(t, "st")
	entry, _ := standincatalog.Files.ReadFile("standin.yaml")
	if err := os.WriteFile(filepath.Join(catalogDir, app+".yaml"), entry, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"TOOLBOX_STATE="+filepath.Join(t.TempDir(), "toolbox.db"),
		"TOOLBOX_BASE_DOMAIN=localhost", "TOOLBOX_HTTP_PORT=0", "TOOLBOX_HTTPS_PORT=0",
		"TOOLBOX_CATALOG_DIR="+catalogDir,
	)
	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = env
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("toolbox %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("toolbox %s took %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
		return string(out)
	}
	t.Cleanup(func() {
		if _, err := e.PublishedAddr(context.Background(), "toolbox-caddy", 2019); err == nil {
			t.Errorf("caddy's admin port is published")
		}
		if t.Failed() {
			for _, c := range []string{"toolbox", "toolbox-caddy", "tb-mattermost-mattermost", "tb-mattermost-db"} {
				logs, _ := e.Logs(context.Background(), c, 40)
				t.Logf("--- %s:\n%s", c, logs)
			}
		}
		cmd := exec.Command(bin, "down", "--yes", "--purge")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("toolbox down: %v\n%s", err, out)
		}
	})

	out := run("up")
	password := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	chatURL := regexp.MustCompile(`Your chat: (https://chat\.localhost:\d+)`).FindStringSubmatch(out)
	if password == nil || chatURL == nil {
		t.Fatalf("up printed no password or chat URL:\n%s", out)
	}

	hc := viaCaddy(t, e)
	admin := model.NewAPIv4Client(chatURL[1])
	admin.HTTPClient = hc
	ctx := context.Background()
	_, channel := loginToToolbox(t, admin, password[1])

	idle := botRSS(t, e)
	peak := idle
	sampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-sampling:
				return
			case <-time.After(100 * time.Millisecond):
				peak = max(peak, botRSS(t, e))
			}
		}
	}()
	resp, _, err := admin.ExecuteCommand(ctx, channel.Id, "/toolbox add "+app)
	if err != nil || !strings.Contains(resp.Text, "Started job") {
		t.Fatalf("/toolbox add %s: %+v, %v", app, resp, err)
	}
	want := "**" + app + "** is running at https://" + app + ".localhost"
	eventually(t, 3*time.Minute, "the bot's post that the app runs", func() bool {
		list, _, err := admin.GetPostsForChannel(ctx, channel.Id, 0, 30, "", false, false)
		if err != nil {
			return false
		}
		for _, p := range list.Posts {
			if strings.Contains(p.Message, want) {
				return true
			}
		}
		return false
	})
	close(sampling)
	<-sampled
	t.Logf("bot resident memory: %.1f MiB idle, %.1f MiB at most during the deploy", float64(idle)/(1<<20), float64(peak)/(1<<20))
	page, err := hc.Get("https://" + app + ".localhost/")
	if err != nil {
		t.Fatalf("the app through Caddy: %v", err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(body), app) {
		t.Errorf("the app through Caddy answered %d: %s", page.StatusCode, body)
	}

	// From an app's container, Caddy's admin API is out of reach.
	var probe bytes.Buffer
	code, err := e.Exec(ctx, "tb-"+app+"-app", []string{"/standin", "health", "http://caddy:2019/config/"}, &probe, &probe)
	if err != nil || code == 0 || !strings.Contains(probe.String(), "connection refused") {
		t.Errorf("an app's probe of Caddy's admin API: exit %d, %v: %s; want connection refused", code, err, probe.String())
	}

	// Nor can it reach the bot, which lives on a network of its own with Mattermost.
	probe.Reset()
	code, err = e.Exec(ctx, "tb-"+app+"-app", []string{"/standin", "health", "http://toolbox:8080/healthz"}, &probe, &probe)
	if err != nil || code == 0 || !strings.Contains(probe.String(), "no such host") {
		t.Errorf("an app's probe of the bot: exit %d, %v: %s; want no such host", code, err, probe.String())
	}

	// Removing the app from the chat, confirmed with its button, takes its route away.
	if resp, _, err := admin.ExecuteCommand(ctx, channel.Id, "/toolbox remove "+app); err != nil || !strings.Contains(resp.Text, "confirmation") {
		t.Fatalf("/toolbox remove %s: %+v, %v", app, resp, err)
	}
	var prompt *model.Post
	eventually(t, 30*time.Second, "the confirmation prompt", func() bool {
		list, _, err := admin.GetPostsForChannel(ctx, channel.Id, 0, 30, "", false, false)
		if err != nil {
			return false
		}
		for _, p := range list.Posts {
			if strings.Contains(p.Message, "asked for `/toolbox remove "+app+"`") {
				prompt = p
				return true
			}
		}
		return false
	})
	if _, err := admin.DoPostAction(ctx, prompt.Id, "confirm"); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	eventually(t, 2*time.Minute, "the app's removal", func() bool {
		list, _, err := admin.GetPostsForChannel(ctx, channel.Id, 0, 30, "", false, false)
		if err != nil {
			return false
		}
		for _, p := range list.Posts {
			if strings.Contains(p.Message, "**"+app+"** is removed") {
				return true
			}
		}
		return false
	})
	if resp, err := hc.Get("https://" + app + ".localhost/"); err == nil {
		resp.Body.Close()
		t.Errorf("the removed app's domain still answers %s", resp.Status)
	}

	again := run("up")
	if strings.Contains(again, "Password") || !strings.Contains(again, "nothing changed") {
		t.Errorf("a second up changed something:\n%s", again)
	}
}

// botRSS reads the bot's resident memory from /proc on the engine's machine.
func botRSS(t *testing.T, e *docker.Engine) int64 {
	pid, err := e.PID(context.Background(), "toolbox")
	if err != nil || pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
