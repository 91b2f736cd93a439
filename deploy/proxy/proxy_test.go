package proxy_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/proxy"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// The Caddy binary the tests put in their image; .ci/run builds it.
const (
	caddyVersion = "v2.11.9"
	caddyImage   = "toolbox-test/caddy:" + caddyVersion
	caddyHowTo   = "this test needs a static Caddy binary in TOOLBOX_CADDY_BIN: run .ci/run, or " +
		"eval $(go run . images build --env caddy | grep ^TOOLBOX_CADDY_BIN=) from the repository's root (about 3 min the first time)"
)

// caddyBinary finds the Caddy binary in TOOLBOX_CADDY_BIN. Missing, the test
// fails in CI and is skipped elsewhere.
func caddyBinary(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("TOOLBOX_CADDY_BIN")
	ci := os.Getenv("CI") == "true"
	if bin != "" {
		if st, err := os.Stat(bin); err == nil && st.Mode().IsRegular() {
			return bin
		}
	}
	msg := caddyHowTo
	if bin != "" {
		msg = fmt.Sprintf("%s is not there; %s", bin, caddyHowTo)
	}
	if ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

type imageBuild struct {
	once sync.Once
	err  error
}

// caddyBuild builds the Caddy image once per test binary (a test helper's
// process-wide cache, as in dockertest).
var caddyBuild imageBuild

// caddyImageFor builds (or reuses, by content hash) a FROM scratch image with
// the Caddy binary where the official image has it and the local-mode
// ContainerConfig at proxy.ConfigFile.
func caddyImageFor(t testing.TB, e *docker.Engine, bin string) string {
	t.Helper()
	caddyBuild.once.Do(func() { caddyBuild.err = buildCaddyImage(e, bin) })
	if caddyBuild.err != nil {
		t.Fatalf("build image %s from %s: %v", caddyImage, bin, caddyBuild.err)
	}
	return caddyImage
}

func buildCaddyImage(e *docker.Engine, bin string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := proxy.ContainerConfig(true, proxy.AdminTCP)
	f, err := os.Open(bin)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return err
	}
	h.Write(cfg)
	hash := hex.EncodeToString(h.Sum(nil))
	if old, err := e.Image(ctx, caddyImage); err == nil && old.Labels[dockertest.LabelContentHash] == hash {
		return nil
	}
	files := map[string]docker.FileSpec{
		"usr/bin/caddy": {SourcePath: bin, Mode: 0o755},
		strings.TrimPrefix(proxy.ConfigFile, "/"): {Data: cfg},
		"tmp/.keep": {Data: []byte{}}, // FROM scratch has no /tmp
	}
	labels := map[string]string{dockertest.LabelTest: "1", dockertest.LabelContentHash: hash}
	return e.BuildScratchImage(ctx, caddyImage, files, nil, labels)
}

// caddy is a Caddy container of a test, on its own network.
type caddy struct {
	e       *docker.Engine
	spec    docker.ContainerSpec
	network string
	labels  map[string]string
	admin   string // http://127.0.0.1:port
	https   string // 127.0.0.1:port
	http    string // 127.0.0.1:port
}

// startCaddy runs Caddy on a new network, with its state in a new volume,
// its admin API, 443 and 80 published on 127.0.0.1, and waits for the admin
// API.
func startCaddy(t *testing.T, ctx context.Context) *caddy {
	t.Helper()
	bin := caddyBinary(t)
	e := dockertest.Engine(t)
	image := caddyImageFor(t, e, bin)
	labels := dockertest.Labels(t, e)
	c := &caddy{e: e, network: dockertest.Unique(t, "tbt-proxy-net"), labels: labels}
	vol := dockertest.Unique(t, "tbt-caddy-data")
	if err := e.EnsureNetwork(ctx, c.network, labels); err != nil {
		t.Fatal(err)
	}
	if err := e.EnsureVolume(ctx, vol, labels); err != nil {
		t.Fatal(err)
	}
	c.spec = docker.ContainerSpec{
		Name:        dockertest.Unique(t, "tbt-caddy"),
		Image:       image,
		Cmd:         proxy.ContainerCommand(),
		Env:         proxy.ContainerEnv(),
		Labels:      labels,
		Network:     c.network,
		Aliases:     []string{proxy.ContainerName},
		Mounts:      []docker.Mount{{Volume: vol, Target: proxy.DataDir}},
		MemoryLimit: 256 << 20,
		PublishTCP: []docker.Publish{
			{HostIP: "127.0.0.1", ContainerPort: proxy.AdminPort},
			{HostIP: "127.0.0.1", ContainerPort: 443},
			{HostIP: "127.0.0.1", ContainerPort: 80},
		},
	}
	c.start(t, ctx)
	return c
}

// start (re)creates the container and waits for the admin API.
func (c *caddy) start(t *testing.T, ctx context.Context) {
	t.Helper()
	began := time.Now()
	if _, err := c.e.EnsureContainer(ctx, c.spec); err != nil {
		t.Fatal(err)
	}
	admin, err := c.e.PublishedAddr(ctx, c.spec.Name, proxy.AdminPort)
	if err != nil {
		t.Fatal(err)
	}
	if c.https, err = c.e.PublishedAddr(ctx, c.spec.Name, 443); err != nil {
		t.Fatal(err)
	}
	if c.http, err = c.e.PublishedAddr(ctx, c.spec.Name, 80); err != nil {
		t.Fatal(err)
	}
	c.admin = "http://" + admin
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.proxy().Wait(wctx); err != nil {
		logs, _ := c.e.Logs(ctx, c.spec.Name, 30)
		t.Fatalf("%v\ncaddy's last log lines:\n%s", err, logs)
	}
	t.Logf("caddy %s: admin API answers %v after the container was asked for", c.spec.Name, time.Since(began).Round(time.Millisecond))
}

func (c *caddy) proxy() *proxy.Proxy { return proxy.New(c.admin, proxy.Options{Local: true}) }

// standin starts a stand-in app on the Caddy's network and returns its
// upstream address; waitStandin waits for it.
func (c *caddy) standin(t *testing.T, ctx context.Context, appName string) string {
	t.Helper()
	name := dockertest.Unique(t, "tbt-"+appName)
	spec := docker.ContainerSpec{
		Name:    name,
		Image:   dockertest.Standin(t, c.e),
		Env:     map[string]string{"APP_NAME": appName},
		Labels:  c.labels,
		Network: c.network,
		Health: &docker.Health{
			Test:     []string{dockertest.StandinBinary, "health"},
			Interval: 200 * time.Millisecond,
			Timeout:  2 * time.Second,
			Retries:  3,
		},
		MemoryLimit: 64 << 20,
	}
	if _, err := c.e.EnsureContainer(ctx, spec); err != nil {
		t.Fatal(err)
	}
	return name + ":8080"
}

func (c *caddy) waitStandin(t *testing.T, ctx context.Context, upstream string) {
	t.Helper()
	name, _, _ := strings.Cut(upstream, ":")
	if err := c.e.WaitHealthy(ctx, name); err != nil {
		t.Fatal(err)
	}
}

// client does HTTPS to any name through the published 443, trusting roots
// only; SNI and Host are the URL's host.
func (c *caddy) client(roots *x509.CertPool) *http.Client {
	addr := c.https
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			},
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func get(ctx context.Context, hc *http.Client, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

func page(appName string) string { return "<h1>" + appName + "</h1>" }

// waitPage GETs https://domain/ until it is the app's page (the certificate
// is issued in the background after SetRoute) and returns how long it took.
func waitPage(t *testing.T, ctx context.Context, hc *http.Client, domain, appName string) time.Duration {
	t.Helper()
	began := time.Now()
	var last string
	for {
		code, body, err := get(ctx, hc, "https://"+domain+"/")
		switch {
		case err != nil:
			last = err.Error()
		case code == http.StatusOK && strings.Contains(body, page(appName)):
			return time.Since(began)
		default:
			last = fmt.Sprintf("%d %q", code, body)
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("https://%s/ does not give %s's page after 30 s; last: %s", domain, appName, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func rootPool(t *testing.T, ctx context.Context, p *proxy.Proxy) *x509.CertPool {
	t.Helper()
	pemCA, err := p.RootCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCA) {
		t.Fatalf("RootCA() = %q: not a PEM certificate", pemCA)
	}
	return roots
}

func routes(t *testing.T, ctx context.Context, p *proxy.Proxy) map[string]proxy.Route {
	t.Helper()
	got, err := p.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRoutesThroughCaddy(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	c := startCaddy(t, ctx)
	p := c.proxy()

	// The stand-ins start while Caddy is being set up.
	wikiUp := c.standin(t, ctx, "wiki")
	blogUp := c.standin(t, ctx, "blog")
	for range 2 {
		if err := p.Init(ctx); err != nil {
			t.Fatalf("Init: %v", err)
		}
	}
	roots := rootPool(t, ctx, p)
	hc := c.client(roots)
	c.waitStandin(t, ctx, wikiUp)
	c.waitStandin(t, ctx, blogUp)

	wiki := dockertest.Unique(t, "wiki") + ".localhost"
	blog := dockertest.Unique(t, "blog") + ".localhost"
	if err := p.SetRoute(ctx, "wiki", wiki, wikiUp); err != nil {
		t.Fatalf("SetRoute(wiki): %v", err)
	}
	t.Logf("first TLS handshake and page through caddy: %v after SetRoute", waitPage(t, ctx, hc, wiki, "wiki").Round(time.Millisecond))

	// Plain HTTP is redirected to HTTPS.
	plain := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.http+"/x?y=1", nil)
	req.Host = wiki
	if res, err := plain.Do(req); err != nil {
		t.Errorf("GET http://%s/ on port 80: %v", wiki, err)
	} else {
		res.Body.Close()
		if loc := res.Header.Get("Location"); res.StatusCode/100 != 3 || loc != "https://"+wiki+"/x?y=1" {
			t.Errorf("GET http://%s/x?y=1 = %d Location %q, want a redirect to https://%s/x?y=1", wiki, res.StatusCode, loc, wiki)
		}
	}

	// A second app; the first keeps working.
	if err := p.SetRoute(ctx, "blog", blog, blogUp); err != nil {
		t.Fatalf("SetRoute(blog): %v", err)
	}
	waitPage(t, ctx, hc, blog, "blog")
	waitPage(t, ctx, hc, wiki, "wiki")
	want := map[string]proxy.Route{
		"wiki": {Domain: wiki, Upstream: wikiUp},
		"blog": {Domain: blog, Upstream: blogUp},
	}
	if got := routes(t, ctx, p); !maps.Equal(got, want) {
		t.Errorf("Routes() = %v, want %v", got, want)
	}

	// Setting the same route again changes nothing; Init keeps the routes.
	if err := p.SetRoute(ctx, "wiki", wiki, wikiUp); err != nil {
		t.Errorf("SetRoute(wiki) again: %v", err)
	}
	if err := p.Init(ctx); err != nil {
		t.Fatalf("Init again: %v", err)
	}
	if got := routes(t, ctx, p); !maps.Equal(got, want) {
		t.Errorf("after Init, Routes() = %v, want %v", got, want)
	}

	// A domain goes to one app only.
	if err := p.SetRoute(ctx, "blog", wiki, blogUp); !errors.Is(err, proxy.ErrDomainTaken) {
		t.Errorf("SetRoute(blog, %s) = %v, want ErrDomainTaken", wiki, err)
	} else {
		t.Logf("SetRoute(blog, wiki's domain): %v", err)
	}

	// Another upstream for the same app: the route is replaced.
	if err := p.SetRoute(ctx, "blog", blog, wikiUp); err != nil {
		t.Fatalf("SetRoute(blog, %s, %s): %v", blog, wikiUp, err)
	}
	waitPage(t, ctx, hc, blog, "wiki")
	if err := p.SetRoute(ctx, "blog", blog, blogUp); err != nil {
		t.Fatalf("SetRoute(blog, %s, %s): %v", blog, blogUp, err)
	}
	waitPage(t, ctx, hc, blog, "blog")
	if got := routes(t, ctx, p); !maps.Equal(got, want) {
		t.Errorf("after replacing blog's route twice, Routes() = %v, want %v", got, want)
	}

	// The admin API refuses requests without the toolbox's Origin: a web
	// browser's.
	for _, origin := range []string{"", "http://evil.example"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.admin+"/config/", nil)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		res, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("GET /config/ with Origin %q = %d, want 403", origin, res.StatusCode)
		}
	}

	// The route goes when the app goes.
	for range 2 {
		if err := p.RemoveRoute(ctx, "wiki"); err != nil {
			t.Fatalf("RemoveRoute(wiki): %v", err)
		}
	}
	code, body, err := get(ctx, hc, "https://"+wiki+"/")
	if err == nil && strings.Contains(body, page("wiki")) {
		t.Errorf("after RemoveRoute(wiki), https://%s/ = %d %q, still the app", wiki, code, body)
	}
	t.Logf("after RemoveRoute, https://%s/ gives: status %d, body %q, error %v", wiki, code, body, err)
	waitPage(t, ctx, hc, blog, "blog")
	delete(want, "wiki")
	if got := routes(t, ctx, p); !maps.Equal(got, want) {
		t.Errorf("after RemoveRoute, Routes() = %v, want %v", got, want)
	}

	// A new container on the same volume resumes with the routes and the
	// certificates, before anyone calls Init or SetRoute.
	if err := c.e.RemoveContainer(ctx, c.spec.Name); err != nil {
		t.Fatal(err)
	}
	c.start(t, ctx)
	p = c.proxy()
	if got := routes(t, ctx, p); !maps.Equal(got, want) {
		t.Errorf("after a new container, Routes() = %v, want %v", got, want)
	}
	if pemCA, err := p.RootCA(ctx); err != nil || !roots.AppendCertsFromPEM(pemCA) {
		t.Errorf("after a new container, RootCA() = %v", err)
	}
	waitPage(t, ctx, c.client(roots), blog, "blog")
}

func TestConcurrentChanges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c := startCaddy(t, ctx)
	// Two Proxies: two toolbox processes, as far as Caddy can tell.
	ps := []*proxy.Proxy{c.proxy(), c.proxy()}

	// Without the toolbox server, reads find nothing, and SetRoute sets the
	// server up itself (a Caddy whose volume was lost comes back empty).
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, c.admin+"/config/apps/http/servers/"+proxy.ServerName, nil)
	req.Header.Set("Origin", proxy.AdminOrigin)
	if res, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else if res.Body.Close(); res.StatusCode != http.StatusOK {
		t.Fatalf("DELETE the toolbox server: %s", res.Status)
	}
	if got := routes(t, ctx, ps[0]); len(got) != 0 {
		t.Errorf("Routes() without the server = %v, want none", got)
	}
	if err := ps[0].RemoveRoute(ctx, "wiki"); err != nil {
		t.Errorf("RemoveRoute without the server = %v, want nil", err)
	}
	if err := ps[0].SetRoute(ctx, "wiki", "wiki.example.org", "wiki:80"); err != nil {
		t.Errorf("SetRoute without the server = %v, want it to set the server up", err)
	}
	if got := routes(t, ctx, ps[1]); got["wiki"].Domain != "wiki.example.org" {
		t.Errorf("Routes() after SetRoute on an empty Caddy = %v, want wiki", got)
	}
	if err := ps[0].RemoveRoute(ctx, "wiki"); err != nil {
		t.Fatal(err)
	}
	if err := ps[0].Init(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]proxy.Route{}
	for i := range 6 {
		app := fmt.Sprintf("app%d", i)
		want[app] = proxy.Route{Domain: dockertest.Unique(t, app) + ".localhost", Upstream: app + ":80"}
	}
	var wg sync.WaitGroup
	i := 0
	for app, r := range want {
		p := ps[i%2]
		i++
		wg.Go(func() {
			if err := p.SetRoute(ctx, app, r.Domain, r.Upstream); err != nil {
				t.Errorf("SetRoute(%s): %v", app, err)
			}
		})
	}
	wg.Go(func() {
		if err := ps[1].Init(ctx); err != nil {
			t.Errorf("Init: %v", err)
		}
	})
	wg.Wait()
	if got := routes(t, ctx, ps[0]); !maps.Equal(got, want) {
		t.Errorf("Routes() = %v, want %v", got, want)
	}
	i = 0
	for app := range want {
		p := ps[i%2]
		i++
		wg.Go(func() {
			if err := p.RemoveRoute(ctx, app); err != nil {
				t.Errorf("RemoveRoute(%s): %v", app, err)
			}
		})
	}
	wg.Wait()
	if got := routes(t, ctx, ps[1]); len(got) != 0 {
		t.Errorf("after removing all, Routes() = %v, want none", got)
	}
}

// TestContainerConfigValidates has Caddy itself validate both configs.
func TestContainerConfigValidates(t *testing.T) {
	t.Parallel()
	bin := caddyBinary(t)
	for _, c := range []struct {
		local bool
		admin string
	}{{true, proxy.AdminTCP}, {false, proxy.AdminTCP}, {true, proxy.AdminUnix}} {
		local := c.local
		name := filepath.Join(t.TempDir(), "caddy.json")
		if err := os.WriteFile(name, proxy.ContainerConfig(local, c.admin), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), bin, "validate", "--config", name)
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("caddy validate ContainerConfig(%v): %v\n%s", local, err, out)
		}
	}
}

func TestContainerConfig(t *testing.T) {
	for _, local := range []bool{true, false} {
		var cfg struct {
			Admin struct {
				Listen        string   `json:"listen"`
				EnforceOrigin bool     `json:"enforce_origin"`
				Origins       []string `json:"origins"`
			} `json:"admin"`
			Storage struct {
				Module, Root string
			} `json:"storage"`
			Apps struct {
				HTTP struct {
					Servers map[string]struct {
						Listen []string `json:"listen"`
					} `json:"servers"`
				} `json:"http"`
				TLS struct {
					Automation struct {
						Policies []struct {
							Issuers []struct {
								Module string `json:"module"`
							} `json:"issuers"`
						} `json:"policies"`
					} `json:"automation"`
				} `json:"tls"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(proxy.ContainerConfig(local, proxy.AdminTCP), &cfg); err != nil {
			t.Fatalf("ContainerConfig(%v) is not JSON: %v", local, err)
		}
		if got, want := cfg.Admin.Listen, "0.0.0.0:2019"; got != want {
			t.Errorf("admin listen = %q, want %q", got, want)
		}
		if !cfg.Admin.EnforceOrigin || len(cfg.Admin.Origins) == 0 || cfg.Admin.Origins[0] != "caddy:2019" {
			t.Errorf("admin enforce_origin, origins = %v, %q; want true, caddy:2019 first", cfg.Admin.EnforceOrigin, cfg.Admin.Origins)
		}
		if got, want := cfg.Storage.Root, "/data/caddy"; got != want {
			t.Errorf("storage root = %q, want %q", got, want)
		}
		if got := cfg.Apps.HTTP.Servers[proxy.ServerName].Listen; len(got) != 1 || got[0] != ":443" {
			t.Errorf("server %s listens on %q, want [:443]", proxy.ServerName, got)
		}
		wantIssuer := "acme"
		if local {
			wantIssuer = "internal"
		}
		if ps := cfg.Apps.TLS.Automation.Policies; len(ps) != 1 || len(ps[0].Issuers) == 0 || ps[0].Issuers[0].Module != wantIssuer {
			t.Errorf("ContainerConfig(%v) TLS policies = %+v, want one with issuer %s", local, ps, wantIssuer)
		}
	}
}

func TestRefusesInvalid(t *testing.T) {
	// Nothing listens there: validation comes before any request.
	p := proxy.New("http://127.0.0.1:1", proxy.Options{Local: true})
	tests := []struct {
		name, app, domain, upstream string
	}{
		{"app uppercase", "Wiki", "wiki.example.org", "wiki:80"},
		{"app empty", "", "wiki.example.org", "wiki:80"},
		{"app starts with a digit", "1wiki", "wiki.example.org", "wiki:80"},
		{"app with a slash", "wiki/x", "wiki.example.org", "wiki:80"},
		{"app too long", strings.Repeat("a", 32), "wiki.example.org", "wiki:80"},
		{"domain empty", "wiki", "", "wiki:80"},
		{"domain uppercase", "wiki", "Wiki.example.org", "wiki:80"},
		{"domain wildcard", "wiki", "*.example.org", "wiki:80"},
		{"domain with port", "wiki", "wiki.example.org:443", "wiki:80"},
		{"domain with scheme", "wiki", "https://wiki.example.org", "wiki:80"},
		{"domain with path", "wiki", "wiki.example.org/x", "wiki:80"},
		{"domain one label", "wiki", "wiki", "wiki:80"},
		{"domain trailing dot", "wiki", "wiki.example.org.", "wiki:80"},
		{"domain empty label", "wiki", "wiki..org", "wiki:80"},
		{"domain label dash", "wiki", "-wiki.example.org", "wiki:80"},
		{"domain underscore", "wiki", "my_wiki.example.org", "wiki:80"},
		{"domain ipv4", "wiki", "203.0.113.7", "wiki:80"},
		{"domain ipv6", "wiki", "::1", "wiki:80"},
		{"domain space", "wiki", "wiki example.org", "wiki:80"},
		{"domain placeholder", "wiki", "{http.request.host}", "wiki:80"},
		{"domain label too long", "wiki", strings.Repeat("a", 64) + ".org", "wiki:80"},
		{"upstream no port", "wiki", "wiki.example.org", "wiki"},
		{"upstream bad port", "wiki", "wiki.example.org", "wiki:99999"},
		{"upstream url", "wiki", "wiki.example.org", "http://wiki:80"},
		{"upstream placeholder", "wiki", "wiki.example.org", "{env.X}:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.SetRoute(t.Context(), tt.app, tt.domain, tt.upstream)
			if !errors.Is(err, proxy.ErrInvalid) {
				t.Fatalf("SetRoute(%q, %q, %q) = %v, want ErrInvalid", tt.app, tt.domain, tt.upstream, err)
			}
			t.Log(err)
		})
	}
	if err := p.RemoveRoute(t.Context(), "Not An App"); !errors.Is(err, proxy.ErrInvalid) {
		t.Errorf("RemoveRoute(%q) = %v, want ErrInvalid", "Not An App", err)
	}
}

func TestValidateDomain(t *testing.T) {
	for _, d := range []string{
		"wiki.example.org",
		"a.localhost",
		"wiki.203.0.113.7.sslip.io",
		"xn--bcher-kva.example",
		"a-b.c-d.example.org",
		strings.Repeat("a", 63) + ".org",
	} {
		if err := proxy.ValidateDomain(d); err != nil {
			t.Errorf("ValidateDomain(%q) = %v, want nil", d, err)
		}
	}
	for _, d := range []string{"1.2.3.4", "example.123", "ex ample.org", "example.org.", "*.example.org"} {
		if err := proxy.ValidateDomain(d); !errors.Is(err, proxy.ErrInvalid) {
			t.Errorf("ValidateDomain(%q) = %v, want ErrInvalid", d, err)
		}
	}
}

// TestUnixAdmin: the client reaches an admin API on a unix socket.
func TestUnixAdmin(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var gotOrigin string
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotOrigin = r.Header.Get("Origin")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := proxy.New("unix://"+sock, proxy.Options{}).Wait(ctx); err != nil {
		t.Fatalf("Wait over the socket: %v", err)
	}
	if gotOrigin != proxy.AdminOrigin {
		t.Errorf("Origin = %q, want %q", gotOrigin, proxy.AdminOrigin)
	}
}
