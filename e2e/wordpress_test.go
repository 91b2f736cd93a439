package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/proxy"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/host/images"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestWordPress adds the catalog's own wordpress entry through the toolbox
// (the locally built WordPress and MariaDB images, its post-install step),
// behind a real Caddy that the toolbox routes, and reads the site through
// Caddy by its domain. A post made through WordPress's PHP is served at its
// permalink; it is backed up, deleted, and back after `restore`.
func TestWordPress(t *testing.T) {
	e := dockertest.Engine(t)
	buildImages(t, e, "caddy", "wordpress", "mariadb", "restic")
	ctx := context.Background()
	const app = "wordpress"
	const domain = app + ".localhost"
	wp := stack.ContainerName(app, "wordpress")

	network := dockertest.Unique(t, "tbnet")
	labels := dockertest.Labels(t, e)
	// The shared network as the toolbox makes it (its labels, which add
	// checks), made first because Caddy is on it before the add.
	netLabels := maps.Clone(labels)
	netLabels[stack.LabelManaged], netLabels[stack.LabelApp] = "1", ""
	if err := e.EnsureNetwork(ctx, network, netLabels); err != nil {
		t.Fatal(err)
	}
	caddy := startWordPressCaddy(t, e, network, labels)
	env, _ := withBackups(t, e, []string{
		"TOOLBOX_STATE=" + filepath.Join(t.TempDir(), "toolbox.db"),
		"TOOLBOX_NETWORK=" + network,
		"TOOLBOX_BASE_DOMAIN=localhost",
		"TOOLBOX_PROXY_ADMIN=" + caddy.admin,
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			for _, c := range []string{wp, stack.ContainerName(app, "db"), caddy.name} {
				logs, _ := e.Logs(ctx, c, 40)
				t.Logf("--- %s:\n%s", c, logs)
			}
		}
		if err := (&stack.Stack{Engine: e}).Remove(ctx, app, true); err != nil {
			t.Errorf("cleanup of %s: %v", app, err)
		}
	})

	do := func(args ...string) string {
		t.Helper()
		start := time.Now()
		out := toolboxRun(t, env, append([]string{"do"}, args...)...)
		t.Logf("%s took %s", args[len(args)-1], time.Since(start).Round(100*time.Millisecond))
		return out
	}
	do("set " + app + " ADMIN_EMAIL admin@example.org")
	if out := do("add " + app); !strings.Contains(out, "**"+app+"** is running") {
		t.Fatalf("add answered:\n%s", out)
	}

	hc := caddy.client(t, env)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get("https://" + domain + path)
		if err != nil {
			t.Fatalf("GET https://%s%s through Caddy: %v", domain, path, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	php := func(code string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		cmd := []string{"php", "-r", "require '/var/www/html/wp-load.php';\n" + code}
		if n, err := e.Exec(ctx, wp, cmd, &stdout, &stderr); err != nil || n != 0 {
			t.Fatalf("php in %s: exit code %d, %v\n%s", wp, n, err, stderr.String())
		}
		return strings.TrimSpace(stdout.String())
	}

	if status, body := get("/wp-login.php"); status != http.StatusOK || !strings.Contains(body, `name="log"`) {
		t.Fatalf("/wp-login.php through Caddy answered %d:\n%.500s", status, body)
	}

	const title, marker = "Backed up, deleted, restored", "toolbox-e2e-marker-41c9"
	id := php(fmt.Sprintf(`$id = wp_insert_post(array('post_title' => %q, 'post_content' => %q, 'post_status' => 'publish', 'post_author' => 1), true);
if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
echo $id;`, title, "<p>"+marker+"</p>"))
	if _, err := strconv.Atoi(id); err != nil {
		t.Fatalf("wp_insert_post returned %q", id)
	}
	link := php("echo get_permalink(" + id + ");")
	u, err := url.Parse(link)
	if err != nil || u.Host != domain {
		t.Fatalf("the post's permalink is %q, want one on %s", link, domain)
	}
	if status, body := get(u.RequestURI()); status != http.StatusOK || !strings.Contains(body, marker) {
		t.Fatalf("the post at %s answered %d:\n%.1000s", link, status, body)
	}

	if out := do("backup now " + app); !strings.Contains(out, "**"+app+"** ") {
		t.Fatalf("backup now answered:\n%s", out)
	}
	php("if (!wp_delete_post(" + id + ", true)) { fwrite(STDERR, \"not deleted\\n\"); exit(1); }")
	if status, body := get(u.RequestURI()); status != http.StatusNotFound || strings.Contains(body, marker) {
		t.Fatalf("the deleted post at %s answered %d:\n%.1000s", link, status, body)
	}

	out := do("--yes", "restore "+app)
	if !strings.Contains(out, "runs on its backup of") || !strings.Contains(out, "wordpress.sql: ") {
		t.Fatalf("restore answered:\n%s", out)
	}
	if status, body := get(u.RequestURI()); status != http.StatusOK || !strings.Contains(body, marker) || !strings.Contains(body, title) {
		t.Errorf("after the restore the post at %s answered %d:\n%.1000s", link, status, body)
	}
	if status, _ := get("/wp-login.php"); status != http.StatusOK {
		t.Errorf("after the restore /wp-login.php answered %d", status)
	}
}

// wordpressCaddy is the Caddy container of TestWordPress.
type wordpressCaddy struct {
	name  string
	admin string // http://127.0.0.1:port, for TOOLBOX_PROXY_ADMIN
	https string // 127.0.0.1:port
}

// startWordPressCaddy runs the builder's Caddy image on network, the
// toolbox's shared network, as `toolbox up` runs it but for its admin API:
// on TCP, published on 127.0.0.1 only (proxy.AdminTCP, for tests), so that
// the toolbox run by the test routes through it.
func startWordPressCaddy(t *testing.T, e *docker.Engine, network string, labels map[string]string) wordpressCaddy {
	t.Helper()
	ctx := context.Background()
	infos, err := images.Images()
	if err != nil {
		t.Fatal(err)
	}
	image := ""
	for _, in := range infos {
		if in.Name == "caddy" {
			image = in.Tag
		}
	}
	c := wordpressCaddy{name: dockertest.Unique(t, "tb-caddy")}
	vol := dockertest.Unique(t, "tb-caddy-data")
	if err := e.EnsureVolume(ctx, vol, labels); err != nil {
		t.Fatal(err)
	}
	_, err = e.EnsureContainer(ctx, docker.ContainerSpec{
		Name: c.name, Image: image, Cmd: proxy.ContainerCommand(), Env: proxy.ContainerEnv(),
		Labels: labels, Network: network, Aliases: []string{proxy.ContainerName},
		Mounts:      []docker.Mount{{Volume: vol, Target: proxy.DataDir}},
		Files:       map[string][]byte{proxy.ConfigFile: proxy.ContainerConfig(true, proxy.AdminTCP)},
		MemoryLimit: 256 << 20,
		PublishTCP: []docker.Publish{
			{HostIP: "127.0.0.1", ContainerPort: proxy.AdminPort},
			{HostIP: "127.0.0.1", ContainerPort: 443},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := e.PublishedAddr(ctx, c.name, proxy.AdminPort)
	if err != nil {
		t.Fatal(err)
	}
	if c.https, err = e.PublishedAddr(ctx, c.name, 443); err != nil {
		t.Fatal(err)
	}
	c.admin = "http://" + admin
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := proxy.New(c.admin, proxy.Options{Local: true}).Wait(wctx); err != nil {
		logs, _ := e.Logs(ctx, c.name, 30)
		t.Fatalf("%v\ncaddy's last log lines:\n%s", err, logs)
	}
	return c
}

// client is an HTTP client that reaches every name through this Caddy's
// published HTTPS port, trusting only Caddy's local CA, which `toolbox
// proxy ca` prints. It follows no redirect: a redirect is an answer.
func (c wordpressCaddy) client(t *testing.T, env []string) *http.Client {
	t.Helper()
	ca := toolboxRun(t, env, "proxy", "ca")
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(ca)) {
		t.Fatalf("toolbox proxy ca printed no PEM certificate:\n%s", ca)
	}
	var d net.Dialer
	return &http.Client{
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return d.DialContext(ctx, "tcp", c.https)
			},
		},
	}
}
