package dockerguard

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// mobyRoutes reads testdata/moby-routes.txt: "METHOD path" as the engine's
// routers declare them (see the file's header for where it came from).
func mobyRoutes(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/moby-routes.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var routes []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if method, path, ok := strings.Cut(line, " "); !ok || method != strings.ToUpper(method) || !strings.HasPrefix(path, "/") {
			t.Fatalf("testdata/moby-routes.txt: %q is not METHOD /path", line)
		}
		routes = append(routes, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(routes) < 100 {
		t.Fatalf("testdata/moby-routes.txt: %d routes, the engine has more than 100", len(routes))
	}
	return routes
}

// routeVariable is a gorilla/mux path variable: {name}, {name:.*}.
var routeVariable = regexp.MustCompile(`\{[^}]*\}`)

// TestGuardMobyRoutes replays every route of the engine's API, bare and
// under the versions the guard lets through, against the guard: each is
// either on the guard's allowlist (allowed, which names it and says why) or
// refused with a 403 before anything reaches the engine. A route nobody
// thought of (a new one in moby's routers) fails here until it is either
// refused or listed with a reason.
func TestGuardMobyRoutes(t *testing.T) {
	routes := mobyRoutes(t)
	g := New("/nonexistent.sock", testPolicy(), nil)
	byPattern := map[string]route{}
	for _, r := range g.allowed() {
		if r.why == "" || len(r.moby) == 0 {
			t.Errorf("allowlist entry %q: no reason or no engine route named", r.pattern)
		}
		if _, dup := byPattern[r.pattern]; dup {
			t.Errorf("allowlist entry %q twice", r.pattern)
		}
		byPattern[r.pattern] = r
		for _, m := range r.moby {
			if !slices.Contains(routes, m) {
				t.Errorf("allowlist entry %q names %q, which is not a route of the engine", r.pattern, m)
			}
		}
	}

	engine, do := startFakeGuard(t)
	allowed := 0
	for _, rt := range routes {
		method, template, _ := strings.Cut(rt, " ")
		path := routeVariable.ReplaceAllString(template, "app")
		for _, prefix := range []string{"", "/v1.41", "/v" + maxAPIVersion.String()} {
			req := httptest.NewRequest(method, "http://docker"+path, nil)
			_, pattern := g.mux.Handler(req)
			if entry, ok := byPattern[pattern]; ok && slices.Contains(entry.moby, rt) {
				if prefix == "" {
					allowed++
				}
				continue
			}
			// Not on the allowlist: the guard refuses it itself.
			before := len(engine.requests())
			status, body := do(method, prefix+path, "", "")
			if status != http.StatusForbidden || !strings.Contains(body, "refused by the toolbox's docker guard") {
				t.Errorf("%s %s (engine route %s, guard pattern %q): %d %s, want a 403 from the guard", method, prefix+path, rt, pattern, status, body)
			}
			if after := engine.requests(); len(after) != before {
				t.Errorf("%s %s: the engine received %q", method, prefix+path, after[before:])
			}
		}
	}
	// Each allowlist entry serves exactly the engine routes it names.
	for _, r := range g.allowed() {
		for _, m := range r.moby {
			method, template, _ := strings.Cut(m, " ")
			req := httptest.NewRequest(method, "http://docker"+routeVariable.ReplaceAllString(template, "app"), nil)
			if _, pattern := g.mux.Handler(req); pattern != r.pattern {
				t.Errorf("allowlist entry %q names %q, which the guard routes to %q", r.pattern, m, pattern)
			}
		}
	}
	if allowed == 0 || allowed >= len(routes) {
		t.Errorf("%d of %d engine routes allowed", allowed, len(routes))
	}
	t.Logf("%d of the engine's %d routes are on the allowlist; the others are refused", allowed, len(routes))
}
