// Package proxy manages the reverse proxy in front of the apps: Caddy,
// driven through its admin API (the JSON config API). Each app has one route
// on its domain, with the @id RouteIDPrefix+app, in the HTTP server
// ServerName; Caddy gets and renews the certificates for the routes' names
// itself: through ACME in production, from its internal CA in local mode and
// in tests.
//
// Every change is one atomic request to Caddy, made conditional on the part
// of the config it was decided from (If-Match with the ETag Caddy gave), so
// that two toolbox processes cannot overwrite each other's routes; a Proxy
// also serialises its own calls.
//
// It imports nothing of the project but internal/names.
package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"
)

// ErrDomainTaken is wrapped by SetRoute's error when another route already
// has the domain.
var ErrDomainTaken = errors.New("domain already routed")

// ErrNotInitialized is what a change finds when Caddy's config has no
// toolbox server (a Caddy whose volume was lost comes back empty); SetRoute
// then calls Init itself, once.
var ErrNotInitialized = errors.New("the proxy has no toolbox server")

// Options configure a Proxy.
type Options struct {
	// HTTPClient talks to the admin API; nil means a client with a 30 s
	// timeout.
	HTTPClient *http.Client
	// Local selects Caddy's internal CA instead of ACME: for a machine that
	// the public internet cannot reach (local mode, tests).
	Local bool
	// Email is the ACME account's contact; with it, ZeroSSL backs up
	// Let's Encrypt. Unused when Local.
	Email string
}

// Route is an app's route.
type Route struct {
	Domain   string // the host name it matches
	Upstream string // host:port that it proxies to
}

// Proxy is a client of one Caddy admin API.
type Proxy struct {
	base string
	opts Options
	hc   *http.Client
	mu   sync.Mutex // one change at a time from this Proxy
}

// New returns a client of the admin API at adminURL, such as
// "http://caddy:2019" or "http://127.0.0.1:2019". Its requests carry the
// Origin AdminOrigin, which the admin listener must allow (ContainerConfig's
// does).
//
// adminURL is http://host:port, or unix:///path for the admin API's socket.
func New(adminURL string, opts Options) *Proxy {
	hc := opts.HTTPClient
	if path, ok := strings.CutPrefix(adminURL, "unix://"); ok {
		if hc == nil {
			hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", path)
				},
			}}
		}
		adminURL = "http://" + ContainerName
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Proxy{base: strings.TrimRight(adminURL, "/"), opts: opts, hc: hc}
}

// Paths in the admin API.
const (
	configRoot = "/config/"
	serverPath = "/config/apps/http/servers/" + ServerName
	routesAdd  = serverPath + "/routes/..." // POST an array: append its elements
	caPath     = "/pki/ca/local"
)

// retries bounds the attempts of a call that loses a race (HTTP 412) or its
// connection.
const retries = 10

// Wait waits until the admin API answers or ctx ends.
func (p *Proxy) Wait(ctx context.Context) error {
	delay := 50 * time.Millisecond
	for {
		_, _, err := p.do(ctx, http.MethodGet, configRoot, nil, "")
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy: caddy's admin API does not answer: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// Init makes sure Caddy's config has the toolbox server (added without
// routes when missing; kept with its routes when present) and the TLS
// automation that Options ask for (internal CA or ACME, replacing
// apps.tls.automation.policies when different). Everything else, the
// admin listener first, is kept as it is. Calling it again changes nothing.
func (p *Proxy) Init(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.initLocked(ctx)
}

func (p *Proxy) initLocked(ctx context.Context) error {
	return p.retry(ctx, "init", func() error {
		raw, etag, err := p.do(ctx, http.MethodGet, configRoot, nil, "")
		if err != nil {
			return err
		}
		// json.Number keeps numbers as Caddy wrote them (a float64 could
		// come back as 1e+06, which an integer field refuses).
		var cfg map[string]any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&cfg); err != nil {
			return fmt.Errorf("decode config: %w", err)
		}
		if cfg == nil {
			cfg = map[string]any{} // Caddy runs without a config
		}
		if !p.converge(cfg) {
			return nil
		}
		_, _, err = p.do(ctx, http.MethodPost, configRoot, cfg, etag)
		return err
	})
}

// converge changes cfg into what Init wants and reports whether it changed.
func (p *Proxy) converge(cfg map[string]any) bool {
	want := baseConfig(p.opts.Local, p.opts.Email)["apps"].(map[string]any)
	changed := false
	apps := child(cfg, "apps")
	servers := child(child(apps, "http"), "servers")
	if _, ok := servers[ServerName].(map[string]any); !ok {
		servers[ServerName] = baseServer()
		changed = true
	}
	automation := child(child(apps, "tls"), "automation")
	policies := want["tls"].(map[string]any)["automation"].(map[string]any)["policies"]
	if !sameJSON(automation["policies"], policies) {
		automation["policies"] = policies
		changed = true
	}
	if p.opts.Local {
		local := child(child(child(apps, "pki"), "certificate_authorities"), "local")
		if local["install_trust"] != false {
			local["install_trust"] = false
			changed = true
		}
	}
	return changed
}

// child returns m[key] as an object, adding an empty one when missing.
func child(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

// sameJSON compares two values by their JSON encoding (object keys sorted).
func sameJSON(a, b any) bool {
	ja, err := json.Marshal(a)
	if err != nil {
		return false
	}
	jb, err := json.Marshal(b)
	return err == nil && bytes.Equal(ja, jb)
}

// Caddy's route, as far as the toolbox writes and reads it.
type route struct {
	ID       string    `json:"@id,omitempty"`
	Match    []match   `json:"match,omitempty"`
	Handle   []handler `json:"handle,omitempty"`
	Terminal bool      `json:"terminal,omitempty"`
}

type match struct {
	Host []string `json:"host,omitempty"`
}

type handler struct {
	Handler   string     `json:"handler"`
	Upstreams []upstream `json:"upstreams,omitempty"`
}

type upstream struct {
	Dial string `json:"dial"`
}

func routeID(app string) string { return RouteIDPrefix + app }

// hosts lists the names r matches.
func (r route) hosts() []string {
	var hs []string
	for _, m := range r.Match {
		hs = append(hs, m.Host...)
	}
	return hs
}

// server is the toolbox server's part of the config the Proxy reads.
type server struct {
	Routes []route `json:"routes"`
}

// server reads the toolbox server and its ETag; found is false when it is
// not in the config.
func (p *Proxy) server(ctx context.Context) (s server, etag string, found bool, err error) {
	raw, etag, err := p.do(ctx, http.MethodGet, serverPath, nil, "")
	if err != nil {
		return server{}, "", false, err
	}
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return server{}, etag, false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return server{}, "", false, fmt.Errorf("decode server %s: %w", ServerName, err)
	}
	return s, etag, true, nil
}

// SetRoute routes domain to upstream (host:port on the Docker network, such
// as "wordpress-app:80") for app, replacing the app's route if it has one.
// It refuses a domain that another route has, and invalid values. It sets
// the toolbox server up first when Caddy's config lacks it.
func (p *Proxy) SetRoute(ctx context.Context, app, domain, upstreamAddr string) error {
	if err := validateApp(app); err != nil {
		return err
	}
	if err := ValidateDomain(domain); err != nil {
		return err
	}
	if err := validateUpstream(upstreamAddr); err != nil {
		return err
	}
	id := routeID(app)
	r := route{
		ID:       id,
		Match:    []match{{Host: []string{domain}}},
		Handle:   []handler{{Handler: "reverse_proxy", Upstreams: []upstream{{Dial: upstreamAddr}}}},
		Terminal: true,
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	what := fmt.Sprintf("set route of %s to %s", app, domain)
	set := func() error {
		s, etag, found, err := p.server(ctx)
		if err != nil {
			return err
		}
		if !found {
			return ErrNotInitialized
		}
		exists := false
		for _, cur := range s.Routes {
			if cur.ID == id {
				if reflect.DeepEqual(cur, r) {
					return nil
				}
				exists = true
				continue
			}
			for _, h := range cur.hosts() {
				if strings.EqualFold(h, domain) {
					owner := "another route"
					if a, ok := strings.CutPrefix(cur.ID, RouteIDPrefix); ok {
						owner = "app " + a
					}
					return fmt.Errorf("%w: %s already goes to %s", ErrDomainTaken, domain, owner)
				}
			}
		}
		if exists {
			_, _, err = p.do(ctx, http.MethodPatch, "/id/"+id, r, etag)
		} else {
			_, _, err = p.do(ctx, http.MethodPost, routesAdd, []route{r}, etag)
		}
		return err
	}
	err := p.retry(ctx, what, set)
	if errors.Is(err, ErrNotInitialized) {
		if err = p.initLocked(ctx); err == nil {
			err = p.retry(ctx, what, set)
		}
	}
	return err
}

// RemoveRoute removes app's route; without one, it does nothing.
func (p *Proxy) RemoveRoute(ctx context.Context, app string) error {
	if err := validateApp(app); err != nil {
		return err
	}
	id := routeID(app)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.retry(ctx, "remove route of "+app, func() error {
		s, etag, found, err := p.server(ctx)
		if err != nil || !found {
			return err
		}
		if !hasRoute(s, id) {
			return nil
		}
		// Caddy resolves /id/ to an index in the routes before it takes
		// its config lock; the If-Match on the whole server, checked under
		// that lock, makes sure the index is still the route's.
		_, _, err = p.do(ctx, http.MethodDelete, "/id/"+id, nil, etag)
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusNotFound {
			return nil // removed by someone else meanwhile
		}
		return err
	})
}

func hasRoute(s server, id string) bool {
	for _, r := range s.Routes {
		if r.ID == id {
			return true
		}
	}
	return false
}

// Routes returns the apps' routes by app name. Routes that the toolbox did
// not write are left out.
func (p *Proxy) Routes(ctx context.Context) (map[string]Route, error) {
	var s server
	var found bool
	err := p.retry(ctx, "routes", func() (err error) {
		s, _, found, err = p.server(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	routes := map[string]Route{}
	if !found {
		return routes, nil
	}
	for _, r := range s.Routes {
		app, ok := strings.CutPrefix(r.ID, RouteIDPrefix)
		if !ok {
			continue
		}
		var rt Route
		if hs := r.hosts(); len(hs) > 0 {
			rt.Domain = hs[0]
		}
		for _, h := range r.Handle {
			if h.Handler == "reverse_proxy" && len(h.Upstreams) > 0 {
				rt.Upstream = h.Upstreams[0].Dial
				break
			}
		}
		routes[app] = rt
	}
	return routes, nil
}

// RootCA returns the PEM certificate of Caddy's local CA, the root of the
// certificates Caddy issues itself (Options.Local): clients that trust it
// can reach the apps over HTTPS.
func (p *Proxy) RootCA(ctx context.Context) ([]byte, error) {
	var raw []byte
	err := p.retry(ctx, "local CA", func() (err error) {
		raw, _, err = p.do(ctx, http.MethodGet, caPath, nil, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	var info struct {
		Root string `json:"root_certificate"`
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		return nil, fmt.Errorf("proxy: local CA: decode: %w", err)
	}
	block, _ := pem.Decode([]byte(info.Root))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("proxy: local CA: no PEM certificate in caddy's answer")
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("proxy: local CA: %w", err)
	}
	return []byte(info.Root), nil
}

// retry runs change until it does not lose a race with another writer
// (HTTP 412 to its If-Match) nor a connection, at most retries times.
//
// A connection can be lost after Caddy applied a change: Caddy replaces its
// admin server at each change, and a connection that the old one accepted
// meanwhile is dropped (both listen on the port with SO_REUSEPORT). Trying
// again is safe because every change is conditional on the ETag it was
// decided from: a change made already fails with 412, and the next attempt
// reads the new config and finds nothing left to do.
func (p *Proxy) retry(ctx context.Context, what string, change func() error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = change()
		if !retryable(ctx, err) || attempt == retries {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("proxy: %s: %w", what, ctx.Err())
		case <-time.After(time.Duration(attempt) * 20 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("proxy: %s: %w", what, err)
	}
	return nil
}

func retryable(ctx context.Context, err error) bool {
	var ae *apiError
	var ce *connError
	switch {
	case errors.As(err, &ae):
		return ae.status == http.StatusPreconditionFailed
	case errors.As(err, &ce):
		return ctx.Err() == nil
	}
	return false
}

// connError is a request that got no answer.
type connError struct{ err error }

func (e *connError) Error() string { return "caddy admin API: " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// apiError is an answer of the admin API other than 2xx.
type apiError struct {
	status  int
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("caddy answered %d: %s", e.status, e.message)
}

// do sends one request to the admin API, body encoded as JSON unless nil,
// conditional on ifMatch (an ETag from a GET) unless empty. It returns the
// answer's body and ETag.
func (p *Proxy) do(ctx context.Context, method, path string, body any, ifMatch string) ([]byte, string, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, "", fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, rd)
	if err != nil {
		return nil, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	req.Header.Set("Origin", AdminOrigin)
	// Caddy replaces its admin server at each config change and closes the
	// old one's connections: a kept-alive connection could die under the
	// next request, which is not safe to resend. One connection a request.
	req.Close = true
	res, err := p.hc.Do(req)
	if err != nil {
		return nil, "", &connError{err}
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return nil, "", fmt.Errorf("caddy admin API: %s %s: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		return nil, "", fmt.Errorf("%s %s: %w", method, path, &apiError{status: res.StatusCode, message: msg})
	}
	return data, res.Header.Get("Etag"), nil
}
