package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestMediaWiki adds the catalog's MediaWiki to a toolbox brought up with
// `toolbox up`, on the real engine with the locally built MediaWiki and
// MariaDB images: `add mediawiki` runs the catalog's post-install step (the
// real installer), the main page answers through Caddy, a page made with
// maintenance/edit.php shows there, and after `backup now mediawiki`, the
// page's deletion and `restore mediawiki`, the page is back.
func TestMediaWiki(t *testing.T) {
	e := dockertest.Engine(t)
	// One call, so that the builds that are missing run side by side.
	buildImages(t, e, "caddy", "mattermost", "postgres", "restic", "mariadb", "mediawiki")
	bin := staticToolbox(t)
	const app = "mediawiki"
	backups := dockertest.Unique(t, "tb-backups")
	env := append(os.Environ(),
		"TOOLBOX_BACKUP_VOLUME="+backups,
		"TOOLBOX_STATE="+filepath.Join(t.TempDir(), "toolbox.db"),
		"TOOLBOX_BASE_DOMAIN=localhost", "TOOLBOX_HTTP_PORT=0", "TOOLBOX_HTTPS_PORT=0",
		"TOOLBOX_CATALOG_DIR="+t.TempDir(),
	)
	run := toolboxCommand(t, bin, &env)
	ctx := context.Background()
	wiki := stack.ContainerName(app, "mediawiki")
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range []string{"toolbox", "toolbox-caddy", wiki, stack.ContainerName(app, "db")} {
				logs, _ := e.Logs(context.Background(), c, 40)
				t.Logf("--- %s:\n%s", c, logs)
			}
		}
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := (&stack.Stack{Engine: e}).Remove(cctx, app, true); err != nil {
			t.Errorf("cleanup of %s: %v", app, err)
		}
		cmd := exec.Command(bin, "down", "--yes", "--purge")
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("toolbox down: %v\n%s", err, out)
		}
		if err := e.RemoveVolume(cctx, backups); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	run("up")

	// bot runs a toolbox command in the bot's container, as TestUp does.
	bot := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		start := time.Now()
		code, err := e.Exec(ctx, "toolbox", append([]string{"/toolbox"}, args...), &out, &out)
		if err != nil || code != 0 {
			t.Fatalf("toolbox %s in the bot: exit %d, %v\n%s", strings.Join(args, " "), code, err, out.String())
		}
		t.Logf("toolbox %s took %s", strings.Join(args, " "), time.Since(start).Round(time.Second))
		return out.String()
	}
	out := bot("do", "--yes", "add "+app)
	if !strings.Contains(out, "**"+app+"** is running") {
		t.Fatalf("add answered:\n%s", out)
	}

	hc := viaCaddy(t, e)
	site := "https://" + app + ".localhost"
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get(site + path)
		if err != nil {
			t.Fatalf("%s through Caddy: %v", path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	// The main page, after MediaWiki's redirect to its canonical address
	// (which the installer's --server, https://mediawiki.localhost, makes).
	if code, body := get("/"); code != http.StatusOK || !strings.Contains(body, "Main Page") || !strings.Contains(body, "MediaWiki has been installed") {
		t.Fatalf("the main page through Caddy answered %d:\n%s", code, body)
	}

	// wikiRun runs a command in the MediaWiki container.
	wikiRun := func(stdin string, cmd ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code, err := e.ExecInput(ctx, wiki, cmd, strings.NewReader(stdin), &stdout, &stderr)
		if err != nil || code != 0 {
			t.Fatalf("%q in %s: exit %d, %v\n%s\n%s", cmd, wiki, code, err, stdout.String(), stderr.String())
		}
		return stdout.String()
	}
	const title, text, shown = "Backed up page", "Kept by the '''backup''' — ünïcode ✓", "Kept by the <b>backup</b> — ünïcode ✓"
	page := "/index.php?title=" + url.QueryEscape(strings.ReplaceAll(title, " ", "_"))
	wikiRun(text, "php", "maintenance/edit.php", "--user", "Admin", "--summary", "e2e", title)
	if code, body := get(page); code != http.StatusOK || !strings.Contains(body, shown) {
		t.Fatalf("the new page through Caddy answered %d without its text:\n%s", code, body)
	}

	out = bot("do", "backup now "+app)
	if !strings.Contains(out, "**"+app+"** ") || !strings.Contains(out, "snapshots") {
		t.Fatalf("backup now answered:\n%s", out)
	}
	pages := regexp.MustCompile(`mediawiki\.sql: (\d+) pages`)

	wikiRun(title+"\n", "php", "maintenance/deleteBatch.php", "-u", "Admin", "-r", "e2e")
	if code, body := get(page); code != http.StatusNotFound || strings.Contains(body, shown) {
		t.Fatalf("the deleted page through Caddy answered %d:\n%s", code, body)
	}

	out = bot("do", "--yes", "restore "+app)
	if !strings.Contains(out, "runs on its backup of") || pages.FindStringSubmatch(out) == nil {
		t.Fatalf("restore answered:\n%s\nwant it to say it runs on its backup, with mediawiki.sql's pages", out)
	}
	if code, body := get(page); code != http.StatusOK || !strings.Contains(body, shown) {
		t.Errorf("after the restore, the page through Caddy answered %d without its text:\n%s", code, body)
	}
	if code, body := get("/"); code != http.StatusOK || !strings.Contains(body, "Main Page") {
		t.Errorf("after the restore, the main page through Caddy answered %d:\n%s", code, body)
	}
}
