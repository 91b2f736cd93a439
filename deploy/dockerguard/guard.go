// Package dockerguard is a filtering reverse proxy in front of the Docker
// Engine's API, on a unix socket: the bot reaches the engine only through
// it, and it lets through only what the toolbox does. Containers, networks
// and volumes are created only with the toolbox's label and acted on only
// when they carry it (looked up through the engine, by name or id); a
// container gets no privileges, host namespaces, added capabilities, devices
// or binds, but for the engine's socket given to the launchers a Policy
// names exactly. Images are inspected, built, imported, tagged and pulled,
// never under the toolbox's own names. The few read-only endpoints the
// toolbox uses (_ping, version, info) pass; everything else (swarm, plugins,
// secrets, events, prune, commit, update, ...) gets a 403 with a JSON
// message that Docker clients show.
//
// Someone else's container, network or volume, inspected, shows only its
// name and id (so that the toolbox sees a name taken by an object not its
// own, and says so); lists of containers and volumes are filtered to the
// toolbox's label;
// networks are listed as the engine lists them (names and addresses only),
// so that the toolbox still sees a foreign network that takes a name it
// wants.
//
// It imports nothing of the project.
package dockerguard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// maxBody bounds the bodies the guard reads to check them (a container's
// creation, an archive for a launcher): the toolbox's are a few kilobytes.
const maxBody = 4 << 20

// Guard is the filtering proxy. Its zero value is not usable: see New.
type Guard struct {
	policy Policy
	log    *slog.Logger
	engine *http.Client // for the guard's own look-ups
	proxy  *httputil.ReverseProxy
	mux    *http.ServeMux
}

// New returns a guard forwarding to the engine's unix socket enginePath.
func New(enginePath string, policy Policy, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", enginePath)
	}
	transport := &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	g := &Guard{
		policy: policy,
		log:    log,
		engine: &http.Client{
			Transport: transport, Timeout: 30 * time.Second,
			// The engine's router (gorilla/mux) redirects a path it cleans,
			// "/containers/./json" for a name "." in a body: a look-up
			// checks the object named or none.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		proxy: &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.Out.URL.Scheme, r.Out.URL.Host, r.Out.Host = "http", "docker", "docker"
			},
			Transport:     transport,
			FlushInterval: -1, // logs, builds, pulls and waits stream
			ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	g.routes()
	return g
}

// Serve answers on ln until ctx ends, then stops taking requests and waits
// (up to grace) for those under way.
func (g *Guard) Serve(ctx context.Context, ln net.Listener, grace time.Duration) error {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: 10 * time.Second,
		// No read or write timeout: attach, logs, builds and waits last.
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	<-errc
	return nil
}

type versionKey struct{}

var versionPrefix = regexp.MustCompile(`^/v([0-9]+)\.([0-9]+)/`)

// The API versions let through: those of the client the toolbox uses.
// Older ones change what endpoints read (below 1.24 the engine applies a
// HostConfig sent to start, past every check of the creation). A request
// without a version gets the engine's newest.
var (
	minAPIVersion = mustAPIVersion(client.MinAPIVersion)
	maxAPIVersion = mustAPIVersion(client.MaxAPIVersion)
)

type apiVersion struct{ major, minor int }

func (v apiVersion) less(o apiVersion) bool {
	return v.major < o.major || v.major == o.major && v.minor < o.minor
}

func parseAPIVersion(major, minor string) (apiVersion, error) {
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err := errors.Join(err1, err2); err != nil {
		return apiVersion{}, err
	}
	return apiVersion{ma, mi}, nil
}

func mustAPIVersion(s string) apiVersion {
	major, minor, _ := strings.Cut(s, ".")
	v, err := parseAPIVersion(major, minor)
	if err != nil {
		panic(err)
	}
	return v
}

// bodyTypes are the media types a request may declare. Form encodings
// are never let through: the engine reads a form's values in place of the
// query's (a tag's repo, a build's options), which is what the guard checks.
var bodyTypes = map[string]bool{"": true, "application/json": true, "application/x-tar": true, "text/plain": true}

// mediaType is the request's declared body type, "" for none.
func mediaType(r *http.Request) (string, error) {
	values := r.Header.Values("Content-Type")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", deny("a request has one Content-Type, not %d", len(values))
	}
	mt, _, err := mime.ParseMediaType(values[0])
	if err != nil {
		return "", deny("the Content-Type %q cannot be read", values[0])
	}
	if !bodyTypes[mt] {
		return "", deny("requests come as JSON or a tar archive, not %s", mt)
	}
	return mt, nil
}

// ServeHTTP routes the request, the API version prefix set aside.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	version := ""
	if m := versionPrefix.FindStringSubmatch(r.URL.Path); m != nil {
		version = strings.TrimSuffix(m[0], "/")
		v, err := parseAPIVersion(m[1], m[2])
		if err == nil && (v.less(minAPIVersion) || maxAPIVersion.less(v)) {
			err = errors.New("out of range")
		}
		if err != nil {
			g.refuse(w, r, deny("the API version %s is not one the toolbox uses (%s to %s)", version[1:], client.MinAPIVersion, client.MaxAPIVersion))
			return
		}
	}
	if _, err := mediaType(r); err != nil {
		g.refuse(w, r, err)
		return
	}
	r2 := r.Clone(context.WithValue(r.Context(), versionKey{}, version))
	r2.URL.Path = strings.TrimPrefix(r.URL.Path, version)
	r2.URL.RawPath = ""
	g.mux.ServeHTTP(w, r2)
}

// bodiless refuses a request with a body: the endpoint takes none from the
// toolbox, and the engine may read one all the same.
func (g *Guard) bodiless(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			g.refuse(w, r, deny("%s %s takes no body", r.Method, r.URL.Path))
			return
		}
		h(w, r)
	}
}

// withBody lets a body through only as one of the media types listed.
func (g *Guard) withBody(h http.HandlerFunc, types ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if mt, _ := mediaType(r); r.ContentLength != 0 && !slices.Contains(types, mt) {
			g.refuse(w, r, deny("%s %s takes a body of type %s, not %q", r.Method, r.URL.Path, strings.Join(types, " or "), mt))
			return
		}
		h(w, r)
	}
}

// A route is an endpoint the guard lets through, to its handler's checks:
// the engine's routes it serves, as moby's routers declare them
// (testdata/moby-routes.txt, which TestGuardMobyRoutes replays), and why
// the toolbox uses them. Every other route of the engine is refused.
type route struct {
	pattern string // an http.ServeMux pattern, without the version prefix
	handler http.HandlerFunc
	moby    []string
	why     string
}

// allowed is the guard's allowlist. Only the endpoints that take a body
// from the toolbox get one, of the type it sends; the rest take none.
func (g *Guard) allowed() []route {
	none := g.bodiless
	asJSON := func(h http.HandlerFunc) http.HandlerFunc { return g.withBody(h, "", "application/json") }
	asTar := func(h http.HandlerFunc) http.HandlerFunc { return g.withBody(h, "", "application/x-tar") }
	pass := none(g.forward)
	onContainer := func(op containerOp) http.HandlerFunc { return none(g.onContainer(op)) }
	return []route{
		{"GET /_ping", pass, []string{"GET /_ping"}, "the client's version negotiation and the guard's health check"},
		{"HEAD /_ping", pass, []string{"HEAD /_ping"}, "the client's version negotiation"},
		{"GET /version", pass, []string{"GET /version"}, "the engine's version, read-only (docker version; deploy/docker does not ask)"},
		{"GET /info", pass, []string{"GET /info"}, "the machine's memory and the engine's settings, read-only"},
		{"GET /images/json", pass, []string{"GET /images/json"}, "image lists, read-only (not asked by deploy/docker)"},

		{"GET /containers/json", none(g.listFiltered), []string{"GET /containers/json"}, "the toolbox's containers, filtered to its label"},
		{"GET /volumes", none(g.listFiltered), []string{"GET /volumes"}, "the toolbox's volumes, filtered to its label"},
		{"GET /networks", pass, []string{"GET /networks"}, "network names, to find one a name of the toolbox's is taken by"},
		{"POST /containers/create", asJSON(g.containerCreate), []string{"POST /containers/create"}, "containers of the toolbox, re-encoded from the checked configuration"},

		{"GET /containers/{id}/json", onContainer(readOnly), []string{"GET /containers/{name:.*}/json"}, "inspection; someone else's shows its name and id only"},
		{"GET /containers/{id}/logs", onContainer(readOnly), []string{"GET /containers/{name:.*}/logs"}, "an app's logs"},
		{"POST /containers/{id}/stop", onContainer(change), []string{"POST /containers/{name:.*}/stop"}, "the toolbox's containers run, stop and restart"},
		{"POST /containers/{id}/kill", onContainer(change), []string{"POST /containers/{name:.*}/kill"}, "the toolbox's containers run, stop and restart"},
		{"POST /containers/{id}/restart", onContainer(change), []string{"POST /containers/{name:.*}/restart"}, "the toolbox's containers run, stop and restart"},
		{"POST /containers/{id}/pause", onContainer(change), []string{"POST /containers/{name:.*}/pause"}, "the pair of unpause (deploy/docker itself only unpauses)"},
		{"POST /containers/{id}/unpause", onContainer(change), []string{"POST /containers/{name:.*}/unpause"}, "converge unpauses a container it finds paused"},
		{"POST /containers/{id}/wait", onContainer(change), []string{"POST /containers/{name:.*}/wait"}, "one-off runs"},
		{"POST /containers/{id}/resize", onContainer(change), []string{"POST /containers/{name:.*}/resize"}, "a terminal's size, harmless (not asked by deploy/docker)"},
		{"DELETE /containers/{id}", onContainer(change), []string{"DELETE /containers/{name:.*}"}, "the toolbox removes its containers"},
		{"GET /containers/{id}/archive", onContainer(change), []string{"GET /containers/{name:.*}/archive"}, "files read back from the toolbox's containers (tests; not asked by deploy/docker)"},
		{"HEAD /containers/{id}/archive", onContainer(change), []string{"HEAD /containers/{name:.*}/archive"}, "a file's stat, the pair of the GET"},
		{"POST /containers/{id}/start", onContainer(start), []string{"POST /containers/{name:.*}/start"}, "the toolbox's containers run, with no options"},
		{"POST /containers/{id}/attach", onContainer(attach), []string{"POST /containers/{name:.*}/attach"}, "one-off runs with stdin; never a socket holder"},
		{"PUT /containers/{id}/archive", asTar(g.onContainer(copyInto)), []string{"PUT /containers/{name:.*}/archive"}, "configuration files; a launcher's only its checked app.yml"},
		{"POST /containers/{id}/exec", asJSON(g.onContainer(execInto)), []string{"POST /containers/{name:.*}/exec"}, "backups and restores run in an app; never privileged, never in a socket holder"},
		{"POST /exec/{id}/start", asJSON(g.onExec), []string{"POST /exec/{name:.*}/start"}, "runs an exec created as above"},
		{"GET /exec/{id}/json", none(g.onExec), []string{"GET /exec/{id:.*}/json"}, "an exec's exit code"},
		{"POST /exec/{id}/resize", none(g.onExec), []string{"POST /exec/{name:.*}/resize"}, "a terminal's size, harmless (not asked by deploy/docker)"},

		{"POST /networks/create", asJSON(g.networkCreate), []string{"POST /networks/create"}, "the toolbox's bridges, with no driver or address settings"},
		{"GET /networks/{id}", none(g.onNetwork), []string{"GET /networks/{id:.+}"}, "inspection; someone else's shows its name and id only"},
		{"DELETE /networks/{id}", none(g.onNetwork), []string{"DELETE /networks/{id:.*}"}, "the toolbox removes its networks"},
		{"POST /networks/{id}/connect", asJSON(g.networkConnect), []string{"POST /networks/{id:.*}/connect"}, "the toolbox's containers join its networks, with aliases only"},
		{"POST /networks/{id}/disconnect", asJSON(g.networkConnect), []string{"POST /networks/{id:.*}/disconnect"}, "the pair of connect, checked the same (not asked by deploy/docker)"},

		{"POST /volumes/create", asJSON(g.volumeCreate), []string{"POST /volumes/create"}, "the toolbox's volumes, local, with no driver options"},
		{"GET /volumes/{name}", none(g.onVolume), []string{"GET /volumes/{name:.*}"}, "inspection; someone else's shows its name only"},
		{"DELETE /volumes/{name}", none(g.onVolume), []string{"DELETE /volumes/{name:.*}"}, "the toolbox removes its volumes"},

		{"POST /build", asTar(g.imageBuild), []string{"POST /build"}, "the toolbox's images, classic builder, default network, names not its own"},
		{"POST /images/create", asTar(g.imageCreate), []string{"POST /images/create"}, "pulls (pinned for the toolbox's own names) and imports of the tar sent"},
		// The rest of an image's path is its name, which may hold slashes:
		// the handlers take only the one route of each method named here.
		{"GET /images/{rest...}", none(g.imageRead), []string{"GET /images/{name:.*}/json"}, "image inspection"},
		{"POST /images/{rest...}", none(g.imageTag), []string{"POST /images/{name:.*}/tag"}, "tags, under names not the toolbox's own (not asked by deploy/docker)"},
		{"DELETE /images/{rest...}", none(g.imageRemove), []string{"DELETE /images/{name:.*}"}, "removal of the images the toolbox labelled"},
	}
}

func (g *Guard) routes() {
	m := http.NewServeMux()
	g.mux = m
	for _, r := range g.allowed() {
		m.HandleFunc(r.pattern, r.handler)
	}
	// Every other path: refused. Registered as "/" so that it also takes
	// the methods the patterns above do not.
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		g.refuse(w, r, deny("%s %s is not something the toolbox does", r.Method, r.URL.Path))
	})
}

// forward sends the request on to the engine, its version prefix back.
func (g *Guard) forward(w http.ResponseWriter, r *http.Request) {
	version, _ := r.Context().Value(versionKey{}).(string)
	r.URL.Path = version + r.URL.Path
	r.URL.RawPath = ""
	g.proxy.ServeHTTP(w, r)
}

// forwardBody forwards r with body in place of the one read.
func (g *Guard) forwardBody(w http.ResponseWriter, r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", fmt.Sprint(len(body)))
	r.Header.Del("Transfer-Encoding")
	r.TransferEncoding = nil
	g.forward(w, r)
}

// refuse answers 403 (or 500 for a failed look-up) with the engine's JSON
// error shape, which clients show as the daemon's message.
func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusForbidden
	var ee *engineError
	switch {
	case errors.As(err, &ee):
		status = ee.status
	case !errors.Is(err, errDenied):
		status = http.StatusInternalServerError
	}
	if status == http.StatusForbidden {
		g.log.Warn("docker guard refused", "method", r.Method, "path", r.URL.Path, "reason", err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": err.Error()})
}

// writeJSON answers 200 with v, for the redacted views of others' objects.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read the request: %w", err)
	}
	if len(b) > maxBody {
		return nil, deny("request bodies the guard checks are at most %d bytes", maxBody)
	}
	return b, nil
}

// engineError is the engine's own answer to a look-up (404, ...): passed on
// as the engine gave it.
type engineError struct {
	status  int
	message string
}

func (e *engineError) Error() string { return e.message }

// lookUp GETs path from the engine into out; a 404 is found=false.
func (g *Guard) lookUp(ctx context.Context, path string, out any) (found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker"+path, nil)
	if err != nil {
		return false, err
	}
	res, err := g.engine.Do(req)
	if err != nil {
		return false, fmt.Errorf("docker guard: look up %s: %w", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return false, fmt.Errorf("docker guard: look up %s: %w", path, err)
	}
	switch {
	case res.StatusCode == http.StatusNotFound:
		return false, nil
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return false, deny("the engine does not find %s under that name, but redirects it", path)
	case res.StatusCode != http.StatusOK:
		var m struct{ Message string }
		_ = json.Unmarshal(body, &m)
		return false, &engineError{status: res.StatusCode, message: m.Message}
	}
	return true, json.Unmarshal(body, out)
}

// notFound passes on the engine's "no such ..." for an object that is not there.
func notFound(kind, name string) error {
	return &engineError{status: http.StatusNotFound, message: fmt.Sprintf("No such %s: %s", kind, name)}
}

type containerInfo struct {
	ID     string `json:"Id"`
	Name   string
	Config struct {
		Image  string
		Labels map[string]string
	}
	Mounts []struct {
		Type, Source, Destination string
	}
}

// holdsBind tells whether the container binds a file of the machine: the
// guard lets only the engine's socket be bound, so such a container holds
// it (or was made without the guard), and is treated as holding it.
func (c containerInfo) holdsBind() bool {
	for _, m := range c.Mounts {
		if m.Type == "bind" {
			return true
		}
	}
	return false
}

func (g *Guard) container(ctx context.Context, id string) (containerInfo, error) {
	var c containerInfo
	found, err := g.lookUp(ctx, "/containers/"+url.PathEscape(id)+"/json", &c)
	if err != nil {
		return c, err
	}
	if !found {
		return c, notFound("container", id)
	}
	return c, nil
}

type containerOp int

const (
	readOnly containerOp = iota
	change
	start  // with no options: a checkpoint would restore from a path of the machine
	attach // not to a container holding the engine's socket
	copyInto
	execInto
)

// onContainer checks that the container is the toolbox's (and not the
// guard's, for anything but reading) and forwards the request with the
// container's full id, so that the engine acts on the object checked.
func (g *Guard) onContainer(op containerOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		c, err := g.container(r.Context(), id)
		if err != nil {
			g.refuse(w, r, err)
			return
		}
		p := g.policy
		name := strings.TrimPrefix(c.Name, "/")
		switch {
		case !p.managed(c.Config.Labels) && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/json"):
			// Someone else's: its name and id only, so that the toolbox
			// sees that the name is taken by something not its own.
			writeJSON(w, map[string]any{"Id": c.ID, "Name": c.Name, "Config": map[string]any{"Labels": map[string]string{}}})
			return
		case !p.managed(c.Config.Labels):
			g.refuse(w, r, deny("the container %q is not the toolbox's", name))
			return
		case op != readOnly && p.protected(c.Config.Labels):
			g.refuse(w, r, deny("the container %q is the guard's own: it can only be inspected", name))
			return
		}
		socket := c.holdsBind()
		var body []byte
		switch op {
		case start:
			if r.URL.RawQuery != "" {
				g.refuse(w, r, deny("containers are started with no options (%s)", r.URL.RawQuery))
				return
			}
		case attach:
			if socket {
				g.refuse(w, r, deny("no attaching to %q: it holds the engine's socket", name))
				return
			}
		case execInto:
			if socket {
				g.refuse(w, r, deny("no exec in %q: it holds the engine's socket", name))
				return
			}
			if body, err = readBody(r); err != nil {
				g.refuse(w, r, err)
				return
			}
			if body, err = checkExecCreate(body); err != nil {
				g.refuse(w, r, err)
				return
			}
		case copyInto:
			if socket {
				grant, ok := p.grantOf(c.Config.Image)
				if !ok {
					g.refuse(w, r, deny("nothing is copied into %q: it holds the engine's socket", name))
					return
				}
				if body, err = readBody(r); err != nil {
					g.refuse(w, r, err)
					return
				}
				// The engine gets the guard's own archive of the file checked.
				if body, err = checkGrantArchive(grant, name, r.URL.Query().Get("path"), body); err != nil {
					g.refuse(w, r, err)
					return
				}
			}
		}
		r.URL.Path = strings.Replace(r.URL.Path, "/containers/"+id, "/containers/"+c.ID, 1)
		if body != nil {
			g.forwardBody(w, r, body)
			return
		}
		g.forward(w, r)
	}
}

// onExec checks the container an exec instance runs in.
func (g *Guard) onExec(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var ex struct {
		ID          string `json:"ID"`
		ContainerID string `json:"ContainerID"`
	}
	found, err := g.lookUp(r.Context(), "/exec/"+url.PathEscape(id)+"/json", &ex)
	if err == nil && !found {
		err = notFound("exec instance", id)
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	c, err := g.container(r.Context(), ex.ContainerID)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	if !g.policy.managed(c.Config.Labels) || g.policy.protected(c.Config.Labels) ||
		c.holdsBind() {
		g.refuse(w, r, deny("the exec instance runs in a container the toolbox may not exec in"))
		return
	}
	g.forward(w, r)
}

// containerCreate checks the creation's body and forwards it re-encoded
// from what was checked, so that no field the guard does not know reaches
// the engine.
func (g *Guard) containerCreate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	var req createRequest
	if err := json.Unmarshal(body, &req); err != nil {
		g.refuse(w, r, deny("the container's configuration cannot be read: %v", err))
		return
	}
	ctx := r.Context()
	look := lookups{
		volume: func(name string) (map[string]string, bool, error) {
			var v struct{ Labels map[string]string }
			found, err := g.lookUp(ctx, "/volumes/"+url.PathEscape(name), &v)
			return v.Labels, found, err
		},
		network: func(ref string) (string, map[string]string, bool, error) {
			var n labelled
			found, err := g.lookUp(ctx, "/networks/"+url.PathEscape(ref), &n)
			return n.Name, n.Labels, found, err
		},
	}
	if err := g.policy.checkCreate(req, look); err != nil {
		g.refuse(w, r, err)
		return
	}
	clean, err := json.Marshal(req)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	g.forwardBody(w, r, clean)
}

// listFiltered adds the toolbox's label to a list's filters: the engine
// then lists only the toolbox's objects.
func (g *Guard) listFiltered(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filters, err := parseFilters(q.Get("filters"))
	if err != nil {
		g.refuse(w, r, deny("filters: %v", err))
		return
	}
	if filters["label"] == nil {
		filters["label"] = map[string]bool{}
	}
	filters["label"][g.policy.ManagedLabel+"="+g.policy.ManagedValue] = true
	b, _ := json.Marshal(filters)
	q.Set("filters", string(b))
	r.URL.RawQuery = q.Encode()
	g.forward(w, r)
}

// parseFilters reads the API's filters in either of its forms:
// {"label":{"a=b":true}} or the older {"label":["a=b"]}.
func parseFilters(s string) (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	if s == "" {
		return out, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, err
	}
	for k, v := range raw {
		var set map[string]bool
		if err := json.Unmarshal(v, &set); err != nil {
			var list []string
			if err := json.Unmarshal(v, &list); err != nil {
				return nil, fmt.Errorf("filter %q: %w", k, err)
			}
			set = map[string]bool{}
			for _, x := range list {
				set[x] = true
			}
		}
		out[k] = set
	}
	return out, nil
}

func (g *Guard) networkCreate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	var req struct {
		Name       string
		Driver     string
		Scope      string
		Internal   bool
		Attachable bool
		Ingress    bool
		ConfigOnly bool
		ConfigFrom *struct{ Network string }
		EnableIPv4 *bool `json:",omitempty"`
		EnableIPv6 *bool `json:",omitempty"`
		Labels     map[string]string
		Options    map[string]string `json:",omitempty"`
		IPAM       json.RawMessage   `json:",omitempty"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		g.refuse(w, r, deny("the network's configuration cannot be read: %v", err))
		return
	}
	err = g.policy.checkNewLabels("network", req.Labels)
	switch {
	case err != nil:
	case req.Driver != "" && req.Driver != "bridge":
		err = deny("networks are bridges, not %q", req.Driver)
	case req.Ingress || req.ConfigOnly || req.ConfigFrom != nil || (req.Scope != "" && req.Scope != "local"):
		err = deny("networks are local bridges (no ingress, swarm scope or configuration networks)")
	case len(req.Options) > 0:
		err = deny("networks get no driver options")
	case !networkName(req.Name):
		err = deny("a network's name is not only hexadecimal digits (%q): the engine would take it for a prefix of other networks' IDs", req.Name)
	default:
		err = checkNetworkIPAM(req.IPAM)
	}
	if err == nil {
		err = g.nameFree(r.Context(), req.Name)
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	req.IPAM = nil // the engine's default, as the toolbox asks
	clean, _ := json.Marshal(req)
	g.forwardBody(w, r, clean)
}

// nameFree refuses a network's name that a network already has: engines
// before API 1.44 create a second network of that name, and a container
// given the name then starts on whichever one is left of the two.
func (g *Guard) nameFree(ctx context.Context, name string) error {
	var n labelled
	found, err := g.lookUp(ctx, "/networks/"+url.PathEscape(name), &n)
	switch {
	case err != nil:
		return err
	case found:
		// 409, as newer engines answer: deploy/docker takes it as created meanwhile.
		return &engineError{status: http.StatusConflict, message: fmt.Sprintf("network with name %s already exists", name)}
	}
	return nil
}

// checkNetworkIPAM refuses any address setting of a network's creation:
// the toolbox sets none (deploy/docker's EnsureNetwork), and a subnet or
// gateway of the engine's choosing is one no other network of the machine
// already routes.
func checkNetworkIPAM(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var ipam network.IPAM
	if err := json.Unmarshal(raw, &ipam); err != nil {
		return deny("the network's addresses cannot be read: %v", err)
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(raw, &fields)
	for k, v := range fields {
		if k == "Driver" && (ipam.Driver == "" || ipam.Driver == "default") {
			continue
		}
		if string(v) == "null" || string(v) == "[]" || string(v) == "{}" {
			continue
		}
		return deny("networks get the engine's default addresses, with no IPAM setting (%s)", k)
	}
	return nil
}

type labelled struct {
	ID     string `json:"Id"`
	Name   string
	Labels map[string]string
}

func (g *Guard) network(ctx context.Context, id string) (labelled, error) {
	var n labelled
	found, err := g.lookUp(ctx, "/networks/"+url.PathEscape(id), &n)
	if err == nil && !found {
		err = notFound("network", id)
	}
	if err == nil && !g.policy.managed(n.Labels) {
		err = deny("the network %q is not the toolbox's", n.Name)
	}
	return n, err
}

func (g *Guard) onNetwork(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := g.network(r.Context(), id)
	if errors.Is(err, errDenied) && r.Method == http.MethodGet {
		writeJSON(w, map[string]any{"Id": n.ID, "Name": n.Name, "Labels": map[string]string{}}) // someone else's: see onContainer
		return
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	r.URL.Path = "/networks/" + n.ID
	g.forward(w, r)
}

// networkConnect checks both the network and the container.
func (g *Guard) networkConnect(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	n, err := g.network(r.Context(), id)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	var req struct {
		Container      string
		Force          bool                      `json:",omitempty"` // a disconnection's
		EndpointConfig *network.EndpointSettings `json:",omitempty"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		g.refuse(w, r, deny("the network connection cannot be read: %v", err))
		return
	}
	if extra := unlisted(req.EndpointConfig, createEndpointFields); len(extra) > 0 {
		g.refuse(w, r, deny("containers join networks with none of the settings the toolbox does not use: %s", strings.Join(extra, ", ")))
		return
	}
	if !networkName(n.Name) {
		// The engine keeps the connection under the network's name.
		g.refuse(w, r, deny("the network %q has a name that could be another network's ID", n.Name))
		return
	}
	c, err := g.container(r.Context(), req.Container)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	// A container holding the engine's socket stays on the network it was
	// created with: on the toolbox's, the apps could reach it.
	if !g.policy.managed(c.Config.Labels) || g.policy.protected(c.Config.Labels) || c.holdsBind() {
		g.refuse(w, r, deny("the container %q is not one the toolbox may connect", strings.TrimPrefix(c.Name, "/")))
		return
	}
	r.URL.Path = strings.Replace(r.URL.Path, "/networks/"+id, "/networks/"+n.ID, 1)
	type endpoint struct {
		Aliases []string `json:",omitempty"`
	}
	out := struct {
		Container      string
		Force          bool      `json:",omitempty"`
		EndpointConfig *endpoint `json:",omitempty"`
	}{Container: c.ID, Force: req.Force}
	if req.EndpointConfig != nil {
		out.EndpointConfig = &endpoint{Aliases: req.EndpointConfig.Aliases}
	}
	clean, _ := json.Marshal(out)
	g.forwardBody(w, r, clean)
}

func (g *Guard) volumeCreate(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(r)
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	var req struct {
		Name       string
		Driver     string            `json:",omitempty"`
		DriverOpts map[string]string `json:",omitempty"`
		Labels     map[string]string
	}
	if err := json.Unmarshal(body, &req); err != nil {
		g.refuse(w, r, deny("the volume's configuration cannot be read: %v", err))
		return
	}
	err = g.policy.checkNewLabels("volume", req.Labels)
	switch {
	case err != nil:
	case req.Driver != "" && req.Driver != "local":
		err = deny("volumes are local, not %q", req.Driver)
	case len(req.DriverOpts) > 0:
		err = deny("volumes get no driver options (they could bind the machine's files)")
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	clean, _ := json.Marshal(req)
	g.forwardBody(w, r, clean)
}

func (g *Guard) onVolume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var v labelled
	found, err := g.lookUp(r.Context(), "/volumes/"+url.PathEscape(name), &v)
	switch {
	case err != nil:
	case !found:
		err = notFound("volume", name)
	case !g.policy.managed(v.Labels) && r.Method == http.MethodGet:
		writeJSON(w, map[string]any{"Name": v.Name, "Labels": map[string]string{}}) // someone else's: see onContainer
		return
	case !g.policy.managed(v.Labels):
		err = deny("the volume %q is not the toolbox's", name)
	case r.Method != http.MethodGet && g.policy.protected(v.Labels):
		err = deny("the volume %q is the guard's own", name)
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	g.forward(w, r)
}

// buildParams are the options of a build the guard lets through: those
// deploy/docker's BuildImage sends and a few that change nothing of where
// the build runs (moby daemon/server/router/build/build_routes.go reads
// the rest: a remote context, BuildKit's session and outputs, cgroup
// parent, isolation, extra hosts, ulimits, cache sources, resources).
var buildParams = fieldSet("t", "dockerfile", "labels", "rm", "forcerm", "q", "nocache", "version", "networkmode", "buildargs", "target", "platform")

// imageBuild lets the classic builder through, under names that are not
// the toolbox's own, for a context buildContext checks.
func (g *Guard) imageBuild(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var err error
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !buildParams[k] && err == nil {
			err = deny("builds get none of the options the toolbox does not use (%s)", k)
		}
	}
	switch v := q.Get("version"); v {
	case "", "1":
	default:
		err = deny("builds use the classic builder, not %q", v)
	}
	switch m := q.Get("networkmode"); m {
	case "", "default", "bridge", "none":
	default:
		err = deny("builds do not use the network %q", m)
	}
	if f := q.Get("dockerfile"); f != "" && f != "Dockerfile" {
		err = deny("builds read the context's Dockerfile, not %q", f)
	}
	for _, t := range q["t"] {
		if err == nil {
			err = g.policy.checkImageWrite(t)
		}
	}
	var context *buildContext
	if err == nil {
		context, err = newBuildContext(r.Body)
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	// The checked stream ends with the archive: its length is its own.
	r.Body = struct {
		io.Reader
		io.Closer
	}{context, r.Body}
	r.ContentLength = -1
	r.Header.Del("Content-Length")
	g.forward(w, r)
}

// imageCreateParams are the options of a pull or an import (moby
// daemon/server/router/image/image_routes.go postImagesCreate).
var imageCreateParams = fieldSet("fromImage", "fromSrc", "repo", "tag", "message", "changes", "platform")

// imageCreate is a pull (fromImage) or an import of the tar sent (fromSrc=-).
func (g *Guard) imageCreate(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var err error
	for _, k := range slices.Sorted(maps.Keys(q)) {
		if !imageCreateParams[k] && err == nil {
			err = deny("pulls and imports get none of the options the toolbox does not use (%s)", k)
		}
	}
	switch {
	case err != nil:
	case q.Get("fromImage") != "" && r.ContentLength != 0:
		err = deny("a pull takes no body")
	case q.Get("fromImage") != "":
		ref := q.Get("fromImage")
		if tag := q.Get("tag"); tag != "" {
			sep := ":"
			if strings.Contains(tag, ":") { // a digest
				sep = "@"
			}
			ref += sep + tag
		}
		err = g.policy.checkPull(ref)
	case q.Get("fromSrc") == "-":
		if ref := repoTag(q); ref != "" {
			err = g.policy.checkImageWrite(ref)
		}
	default:
		err = deny("images are pulled or imported from the archive sent, not from %q", q.Get("fromSrc"))
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	g.forward(w, r)
}

// repoTag is the name an import or a tag gives an image: repo[:tag].
func repoTag(q url.Values) string {
	if tag := q.Get("tag"); tag != "" {
		return q.Get("repo") + ":" + tag
	}
	return q.Get("repo")
}

// imageRead is an image's inspection (GET /images/{name}/json).
func (g *Guard) imageRead(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.PathValue("rest"), "/json") {
		g.refuse(w, r, deny("%s %s is not something the toolbox does", r.Method, r.URL.Path))
		return
	}
	g.forward(w, r)
}

// imageTag is POST /images/{name}/tag?repo=&tag=, under a name that is not
// the toolbox's own.
func (g *Guard) imageTag(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.PathValue("rest"), "/tag") {
		g.refuse(w, r, deny("%s %s is not something the toolbox does", r.Method, r.URL.Path))
		return
	}
	q := r.URL.Query()
	if err := g.policy.checkImageWrite(repoTag(q)); err != nil {
		g.refuse(w, r, err)
		return
	}
	g.forward(w, r)
}

// imageRemove removes only images the toolbox labelled (those it builds).
func (g *Guard) imageRemove(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("rest")
	var img struct {
		Config *container.Config
	}
	segments := strings.Split(name, "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	found, err := g.lookUp(r.Context(), "/images/"+strings.Join(segments, "/")+"/json", &img)
	switch {
	case err != nil:
	case !found:
		err = notFound("image", name)
	case img.Config == nil || !hasToolboxLabel(img.Config.Labels):
		err = deny("the image %q was not built by the toolbox: it is not removed through the guard", name)
	}
	if err != nil {
		g.refuse(w, r, err)
		return
	}
	g.forward(w, r)
}

func hasToolboxLabel(labels map[string]string) bool {
	for k := range labels {
		if strings.HasPrefix(k, "toolbox.") {
			return true
		}
	}
	return false
}

func (v apiVersion) String() string { return strconv.Itoa(v.major) + "." + strconv.Itoa(v.minor) }
