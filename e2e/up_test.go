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
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
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
	backups := dockertest.Unique(t, "tb-backups")
	env := append(os.Environ(),
		"TOOLBOX_BACKUP_VOLUME="+backups,
		"TOOLBOX_STATE="+filepath.Join(t.TempDir(), "toolbox.db"),
		"TOOLBOX_BASE_DOMAIN=localhost", "TOOLBOX_HTTP_PORT=0", "TOOLBOX_HTTPS_PORT=0",
		"TOOLBOX_CATALOG_DIR="+catalogDir,
		noSwap, // up would otherwise give the CI machine a swap file
	)
	run := toolboxCommand(t, bin, &env)
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
		if err := e.RemoveVolume(context.Background(), backups); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	out := run("up")
	if !strings.Contains(out, "the first time takes a few minutes") {
		t.Errorf("the first up did not say that it deploys Mattermost for the first time:\n%s", out)
	}
	password := regexp.MustCompile(`Password:\s+(\S+)`).FindStringSubmatch(out)
	chatURL := regexp.MustCompile(`Your chat: (https://chat\.localhost:\d+)`).FindStringSubmatch(out)
	if password == nil || chatURL == nil {
		t.Fatalf("up printed no password or chat URL:\n%s", out)
	}

	hc := viaCaddy(t, e)
	admin := model.NewAPIv4Client(chatURL[1])
	admin.HTTPClient = hc
	ctx := context.Background()
	team, channel := loginToToolbox(t, admin, password[1])

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

	restoreMattermost(t, admin, team, channel)

	// Recovery from nothing: a second stand-in with records, every app backed
	// up, the engine emptied (the backups' volume is all that stays), and
	// `toolbox recover` given only the repository's password.
	bot := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		code, err := e.Exec(ctx, "toolbox", append([]string{"/toolbox"}, args...), &out, &out)
		if err != nil || code != 0 {
			t.Fatalf("toolbox %s in the bot: exit %d, %v\n%s", strings.Join(args, " "), code, err, out.String())
		}
		return out.String()
	}
	second := app + "-2"
	if err := os.WriteFile(filepath.Join(catalogDir, second+".yaml"), entry, 0o644); err != nil {
		t.Fatal(err)
	}
	run("up") // the bot sees the new catalog entry
	bot("do", "--yes", "add "+second)
	records := "kept across machines\n"
	if code, err := execIn(ctx, e, stack.ContainerName(second, "app"), records, "/standin", "restore"); err != nil || code != 0 {
		t.Fatalf("write records: %d, %v", code, err)
	}
	bot("do", "backup now")
	key := regexp.MustCompile(`(?m)^    (\S+)$`).FindStringSubmatch(bot("do", "backup key"))
	if key == nil {
		t.Fatal("backup key printed no key")
	}
	run("down", "--yes", "--purge")
	if left := containersOf(t, e, "mattermost"); len(left) != 0 {
		t.Fatalf("down --purge left %v", left)
	}
	env = append(env, "TOOLBOX_BACKUP_PASSWORD="+key[1])
	start := time.Now()
	out = run("recover")
	t.Logf("recover from nothing took %s:\n%s", time.Since(start).Round(time.Second), out)
	if !strings.Contains(out, "recovered the toolbox's state") || !strings.Contains(out, "**"+second+"** 1.0: restored from its latest backup") ||
		!strings.Contains(out, "**mattermost** 11.11.1: restored from its latest backup") {
		t.Errorf("recover said:\n%s", out)
	}
	var got bytes.Buffer
	if code, err := e.Exec(ctx, stack.ContainerName(second, "app"), []string{"/standin", "dump"}, &got, nil); err != nil || code != 0 || got.String() != records {
		t.Errorf("the recovered stand-in's records = %q (exit %d, %v), want %q", got.String(), code, err, records)
	}
	admin = model.NewAPIv4Client(chatURL[1])
	admin.HTTPClient = viaCaddy(t, e)
	team, channel = loginToToolbox(t, admin, password[1])
	kept, _, err := admin.GetChannelByName(ctx, "kept", team.Id, "")
	if err != nil || !slices.Contains(messages(t, admin, kept.Id), "before the backup") {
		t.Errorf("after recovery, the channel kept = %+v, %v; want it with its messages", kept, err)
	}
	if resp, _, err := admin.ExecuteCommand(ctx, channel.Id, "/toolbox status"); err != nil || !strings.Contains(resp.Text, second) {
		t.Errorf("/toolbox status after recovery: %+v, %v", resp, err)
	}
	if out := run("recover"); !strings.Contains(out, "already runs, left alone") || !strings.Contains(out, "is here already") {
		t.Errorf("a second recover changed something:\n%s", out)
	}

	again := run("up")
	if strings.Contains(again, "Password") || !strings.Contains(again, "nothing changed") ||
		strings.Contains(again, "first time") || !strings.Contains(again, "Nothing changed: the proxy, the docker guard") {
		t.Errorf("a second up changed something:\n%s", again)
	}
}

// postWith waits for a post in channel that contains every part, and returns it.
func postWith(t *testing.T, c *model.Client4, channel *model.Channel, within time.Duration, parts ...string) *model.Post {
	t.Helper()
	var found *model.Post
	eventually(t, within, fmt.Sprintf("a post with %q", parts), func() bool {
		list, _, err := c.GetPostsForChannel(context.Background(), channel.Id, 0, 30, "", false, false)
		if err != nil {
			return false
		}
		for _, p := range list.Posts {
			ok := true
			for _, part := range parts {
				ok = ok && strings.Contains(p.Message, part)
			}
			if ok {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// messages lists the messages of a channel, oldest first.
func messages(t *testing.T, c *model.Client4, channelID string) []string {
	t.Helper()
	list, _, err := c.GetPostsForChannel(context.Background(), channelID, 0, 200, "", false, false)
	if err != nil {
		t.Fatalf("posts of %s: %v", channelID, err)
	}
	var out []string
	for i := len(list.Order) - 1; i >= 0; i-- {
		if p := list.Posts[list.Order[i]]; p.Type == "" {
			out = append(out, p.Message)
		}
	}
	return out
}

// restoreMattermost backs up the real Mattermost from the chat, changes it
// (a post more, a channel deleted, one created), restores it with the
// button, and checks through its API that its channels and messages are
// those of the backup's moment.
func restoreMattermost(t *testing.T, admin *model.Client4, team *model.Team, toolbox *model.Channel) {
	ctx := context.Background()
	kept, _, err := admin.CreateChannel(ctx, &model.Channel{TeamId: team.Id, Name: "kept", DisplayName: "Kept", Type: model.ChannelTypeOpen})
	if err != nil {
		t.Fatalf("create a channel: %v", err)
	}
	for _, m := range []string{"before the backup", "déjà vu, in UTF-8 ✓"} {
		if _, _, err := admin.CreatePost(ctx, &model.Post{ChannelId: kept.Id, Message: m}); err != nil {
			t.Fatalf("post: %v", err)
		}
	}
	if resp, _, err := admin.ExecuteCommand(ctx, toolbox.Id, "/toolbox backup now mattermost"); err != nil || !strings.Contains(resp.Text, "Started job") {
		t.Fatalf("/toolbox backup now mattermost: %+v, %v", resp, err)
	}
	postWith(t, admin, toolbox, 5*time.Minute, "**mattermost** 11.11.1:", "snapshots")
	atBackup := messages(t, admin, kept.Id)

	if _, _, err := admin.CreatePost(ctx, &model.Post{ChannelId: kept.Id, Message: "after the backup"}); err != nil {
		t.Fatal(err)
	}
	later, _, err := admin.CreateChannel(ctx, &model.Channel{TeamId: team.Id, Name: "later", DisplayName: "Later", Type: model.ChannelTypeOpen})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteChannel(ctx, kept.Id); err != nil {
		t.Fatalf("delete the channel: %v", err)
	}

	if resp, _, err := admin.ExecuteCommand(ctx, toolbox.Id, "/toolbox restore mattermost"); err != nil || !strings.Contains(resp.Text, "confirmation") {
		t.Fatalf("/toolbox restore mattermost: %+v, %v", resp, err)
	}
	prompt := postWith(t, admin, toolbox, 30*time.Second, "asked for `/toolbox restore mattermost`")
	if _, err := admin.DoPostAction(ctx, prompt.Id, "confirm"); err != nil {
		t.Fatalf("confirm: %v", err)
	}
	clicked := time.Now()
	// Mattermost stops for a moment at the swap: the wait rides it out.
	done := postWith(t, admin, toolbox, 10*time.Minute, "**mattermost** runs on its backup of")
	t.Logf("restore of the real Mattermost: %s from the click to the result, healthy; it said: %s", time.Since(clicked).Round(time.Second), done.Message)
	if !strings.Contains(done.Message, "mattermost.sql:") || !strings.Contains(done.Message, "users") {
		t.Errorf("the restore did not report its check: %s", done.Message)
	}

	got, _, err := admin.GetChannel(ctx, kept.Id)
	if err != nil || got.DeleteAt != 0 {
		t.Fatalf("the channel deleted after the backup: %+v, %v; want it back", got, err)
	}
	if after := messages(t, admin, kept.Id); !slices.Equal(after, atBackup) {
		t.Errorf("messages after the restore = %q, want those of the backup's moment %q", after, atBackup)
	}
	if _, _, err := admin.GetChannel(ctx, later.Id); err == nil {
		t.Errorf("the channel created after the backup is still there")
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
