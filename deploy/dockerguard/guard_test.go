package dockerguard

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEngine stands for the engine behind the guard: it knows the managed
// containers "app" and "launcher" (which binds the engine's socket), and
// records every other request that reaches it.
type fakeEngine struct {
	mu   sync.Mutex
	seen []string // "METHOD path?query body"
}

const (
	fakeAppID      = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	fakeNetworkID  = "cccccccccccc"
	fakeLauncherID = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	managed := map[string]string{"toolbox.managed": "1"}
	switch r.URL.Path {
	case "/containers/app/json", "/containers/" + fakeAppID + "/json":
		_ = json.NewEncoder(w).Encode(map[string]any{"Id": fakeAppID, "Name": "/app", "Config": map[string]any{"Image": "app:1", "Labels": managed}})
		return
	case "/containers/launcher/json", "/containers/" + fakeLauncherID + "/json":
		_ = json.NewEncoder(w).Encode(map[string]any{"Id": fakeLauncherID, "Name": "/launcher",
			"Config": map[string]any{"Image": "docker:27.5.1-cli", "Labels": managed},
			"Mounts": []map[string]string{{"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock"}}})
		return
	case "/networks/apps":
		_ = json.NewEncoder(w).Encode(map[string]any{"Id": fakeNetworkID, "Name": "apps", "Labels": managed})
		return
	case "/containers/moved/json": // as gorilla/mux answers a path it cleans ("/containers/./json")
		http.Redirect(w, r, "/containers/app/json", http.StatusMovedPermanently)
		return
	case "/networks/new":
		w.WriteHeader(http.StatusNotFound) // a name free for a network's creation
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.seen = append(f.seen, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeEngine) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// startFakeGuard runs a guard with testPolicy in front of a fake engine and
// returns a client of the guard's socket.
func startFakeGuard(t *testing.T) (*fakeEngine, func(method, path, contentType, body string) (int, string)) {
	t.Helper()
	dir := t.TempDir()
	engine := &fakeEngine{}
	eln, err := net.Listen("unix", filepath.Join(dir, "engine.sock"))
	if err != nil {
		t.Fatal(err)
	}
	esrv := &http.Server{Handler: engine}
	go func() { _ = esrv.Serve(eln) }()
	t.Cleanup(func() { _ = esrv.Close() })

	gln, err := net.Listen("unix", filepath.Join(dir, "guard.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(filepath.Join(dir, "engine.sock"), testPolicy(), nil).Serve(ctx, gln, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })

	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(dir, "guard.sock"))
	}}}
	do := func(method, path, contentType, body string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, "http://docker"+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	return engine, do
}

type guardCase struct{ method, path, contentType, body string }

func expectRefused(t *testing.T, engine *fakeEngine, do func(string, string, string, string) (int, string), cases []guardCase) {
	t.Helper()
	for _, c := range cases {
		before := len(engine.requests())
		status, body := do(c.method, c.path, c.contentType, c.body)
		if status != http.StatusForbidden || !strings.Contains(body, "refused by the toolbox's docker guard") {
			t.Errorf("%s %s (%s %q): %d %s, want a 403", c.method, c.path, c.contentType, c.body, status, body)
		}
		if after := engine.requests(); len(after) != before {
			t.Errorf("%s %s: the engine received %q", c.method, c.path, after[before:])
		}
	}
}

func expectForwarded(t *testing.T, engine *fakeEngine, do func(string, string, string, string) (int, string), c guardCase, want string) {
	t.Helper()
	before := len(engine.requests())
	if status, body := do(c.method, c.path, c.contentType, c.body); status != http.StatusNoContent {
		t.Errorf("%s %s: %d %s, want it forwarded", c.method, c.path, status, body)
		return
	}
	if after := engine.requests(); len(after) != before+1 || !strings.HasPrefix(after[before], want) {
		t.Errorf("%s %s: the engine received %q, want %q", c.method, c.path, after[before:], want)
	}
}

// TestGuardAPIVersionAndBodies: API versions older than the client's (below
// 1.24 the engine applies a HostConfig sent to start) are refused, and so
// is a body on an endpoint that takes none, or options on start.
func TestGuardAPIVersionAndBodies(t *testing.T) {
	engine, do := startFakeGuard(t)
	hostConfig := `{"Binds":["/:/host"],"Privileged":true,"PidMode":"host"}`
	cases := []guardCase{
		{"POST", "/v1.23/containers/app/start", "application/json", hostConfig},
		{"POST", "/v1.23/containers/app/start", "", ""},
		{"POST", "/v1.39/containers/app/stop", "", ""},
		{"GET", "/v1.12/version", "", ""},
		{"GET", "/v9.99/version", "", ""},
		{"GET", "/v1.99999999999999999999/version", "", ""},
		{"POST", "/v1.41/containers/app/start", "application/json", hostConfig},
		{"POST", "/containers/app/start", "application/json", hostConfig},
		{"POST", "/v1.41/containers/app/start?checkpoint=c&checkpoint-dir=/root", "", ""},
		{"GET", "/v1.41/_ping", "text/plain", "x"},
	}
	for _, op := range []string{"stop", "kill", "restart", "pause", "unpause", "wait", "resize", "attach"} {
		cases = append(cases, guardCase{"POST", "/v1.41/containers/app/" + op, "application/json", hostConfig})
	}
	cases = append(cases, guardCase{"DELETE", "/v1.41/containers/app", "application/json", hostConfig})
	expectRefused(t, engine, do, cases)

	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/containers/app/start", "", ""}, "POST /v1.41/containers/"+fakeAppID+"/start")
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.40/containers/app/stop?t=5", "text/plain", ""}, "POST /v1.40/containers/"+fakeAppID+"/stop?t=5")
	expectForwarded(t, engine, do, guardCase{"POST", "/containers/app/start", "", ""}, "POST /containers/"+fakeAppID+"/start")
}

// TestGuardFormBodies: the engine reads a form body's values in place of
// the query's, so no request comes as a form, and the image endpoints take
// only the bodies the toolbox sends (a tar to build and import, none to tag
// or pull).
func TestGuardFormBodies(t *testing.T) {
	engine, do := startFakeGuard(t)
	form := "application/x-www-form-urlencoded"
	multipart := "multipart/form-data; boundary=x"
	multipartBody := "--x\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\ntoolbox:latest\r\n--x--\r\n"
	expectRefused(t, engine, do, []guardCase{
		{"POST", "/v1.41/images/evil/tag?repo=ok", form, "repo=toolbox&tag=latest"},
		{"POST", "/v1.41/images/evil/tag?repo=ok", "Application/X-WWW-Form-Urlencoded; charset=utf-8", "repo=toolbox&tag=latest"},
		{"POST", "/v1.41/build?t=ok:1", form, "remote=http://x/&networkmode=host&t=toolbox:latest"},
		{"POST", "/v1.41/build?t=ok:1", multipart, multipartBody},
		{"POST", "/v1.41/images/create?fromImage=alpine&tag=3", form, "fromImage=&fromSrc=http://x/&repo=docker"},
		{"POST", "/v1.41/containers/app/stop", form, "t=1"},
		{"POST", "/v1.41/images/evil/tag?repo=ok", "application/json", `{"repo":"toolbox"}`},
		{"POST", "/v1.41/images/create?fromImage=alpine&tag=3", "application/x-tar", "tar"},
		{"POST", "/v1.41/build?t=ok:1", "application/json", "{}"},
		{"POST", "/v1.41/images/create?fromSrc=-&repo=ok", "application/json", "{}"},
		{"POST", "/v1.41/build?t=ok:1", "no/such type;;", ""},
	})
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/images/evil/tag?repo=ok&tag=1", "", ""}, "POST /v1.41/images/evil/tag?repo=ok&tag=1")
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/build?t=ok:1", "application/x-tar", scratchContext(t, scratchDockerfile)}, "POST /v1.41/build?t=ok:1 Dockerfile")
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/images/create?fromSrc=-&repo=ok", "", "tar"}, "POST /v1.41/images/create?fromSrc=-&repo=ok tar")
}

// TestGuardAttachToLauncher: nobody attaches to a container holding the
// engine's socket (nor execs in it); an app's container is attached to.
func TestGuardAttachToLauncher(t *testing.T) {
	engine, do := startFakeGuard(t)
	expectRefused(t, engine, do, []guardCase{
		{"POST", "/v1.41/containers/launcher/attach?stream=1&stdin=1", "text/plain", ""},
		{"POST", "/v1.41/containers/launcher/exec", "application/json", `{"Cmd":["sh"]}`},
	})
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/containers/app/attach?stream=1", "text/plain", ""}, "POST /v1.41/containers/"+fakeAppID+"/attach")
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/containers/launcher/wait", "", ""}, "POST /v1.41/containers/"+fakeLauncherID+"/wait")
}

// TestGuardNetworkConnect: a container joins a network with none of the
// endpoint settings the toolbox does not use, and the engine gets the
// container's full id.
func TestGuardNetworkConnect(t *testing.T) {
	engine, do := startFakeGuard(t)
	expectRefused(t, engine, do, []guardCase{
		{"POST", "/v1.41/networks/apps/connect", "application/json", `{"Container":"app","EndpointConfig":{"IPAMConfig":{"IPv4Address":"172.18.0.2"}}}`},
		{"POST", "/v1.41/networks/apps/connect", "application/json", `{"Container":"app","EndpointConfig":{"DriverOpts":{"x":"y"}}}`},
		{"POST", "/v1.41/networks/apps/connect", "application/json", `{"Container":"launcher"}`},
		{"POST", "/v1.41/networks/apps/connect", "application/json", `{"Container":"` + fakeLauncherID + `","EndpointConfig":{"Aliases":["a"]}}`},
	})
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/networks/apps/connect", "application/json", `{"Container":"app","EndpointConfig":{"Aliases":["a"]}}`},
		`POST /v1.41/networks/`+fakeNetworkID+`/connect {"Container":"`+fakeAppID+`","EndpointConfig":{"Aliases":["a"]`)
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/networks/apps/disconnect", "application/json", `{"Container":"app","Force":true}`},
		`POST /v1.41/networks/`+fakeNetworkID+`/disconnect {"Container":"`+fakeAppID+`","Force":true}`)
}

// polyglotArchive is a tar that archive/tar reads as the launcher's app.yml
// alone, and that the engine, which detects gzip by the first bytes, reads
// as a gzip'd tar of usr/local/bin/docker: the plain tar's first entry is
// a PAX header (whose own name no reader uses) named with a gzip header
// whose FEXTRA field covers the rest of the plain tar; after it come the
// deflated evil tar and gzip's trailer.
func polyglotArchive(t *testing.T) []byte {
	t.Helper()
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	content := []byte("ok: yes\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "build/app.yml", Mode: 0o644, Size: int64(len(content)),
		Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": "x"}}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := plain.Bytes()
	if b[156] != tar.TypeXHeader {
		t.Fatalf("the first entry is of type %q, want a PAX header", b[156])
	}
	extra := len(b) - 12
	header := []byte{0x1f, 0x8b, 8, 4 /* FEXTRA */, 1, 1, 1, 1 /* mtime */, 2, 3, byte(extra), byte(extra >> 8)}
	copy(b[:12], header)
	// The PAX header's checksum, recomputed over its new name.
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))

	var evil bytes.Buffer
	etw := tar.NewWriter(&evil)
	payload := []byte("#!/bin/sh\nchroot /host sh\n")
	_ = etw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/local/bin/docker", Mode: 0o755, Size: int64(len(payload))})
	_, _ = etw.Write(payload)
	_ = etw.Close()
	fw, _ := flate.NewWriter(&plain, flate.BestCompression)
	_, _ = fw.Write(evil.Bytes())
	_ = fw.Close()
	plain.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(evil.Bytes())), uint32(evil.Len())))
	poly := plain.Bytes()

	// Both readings hold, or the test proves nothing.
	tr := tar.NewReader(bytes.NewReader(poly))
	h, err := tr.Next()
	if err != nil || h.Name != "build/app.yml" {
		t.Fatalf("archive/tar reads %v, %v; want build/app.yml", h, err)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Fatalf("archive/tar reads a second entry: %v", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(poly))
	if err != nil {
		t.Fatalf("gzip: %v", err)
	}
	h, err = tar.NewReader(zr).Next()
	if err != nil || h.Name != "usr/local/bin/docker" {
		t.Fatalf("through gzip, the archive holds %v, %v; want usr/local/bin/docker", h, err)
	}
	return poly
}

// TestGuardLauncherArchive: what reaches the engine for a launcher is the
// guard's own plain tar of the checked app.yml, never the client's bytes;
// compressed archives, and a plain tar that is also a gzip one, are refused.
func TestGuardLauncherArchive(t *testing.T) {
	engine, do := startFakeGuard(t)
	put := "/v1.41/containers/launcher/archive?path=%2F"
	content := "ok: yes\n"
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./build//app.yml", Mode: 0o4755, Uid: 1000,
		Size: int64(len(content)), Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": "x"}})
	_, _ = tw.Write([]byte(content))
	_ = tw.Close()
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(plain.Bytes())
	_ = zw.Close()
	expectRefused(t, engine, do, []guardCase{
		{"PUT", put, "application/x-tar", string(polyglotArchive(t))},
		{"PUT", put, "application/x-tar", zipped.String()},
		{"PUT", put, "application/x-tar", "BZh91AY&SY" + plain.String()},
	})

	// A tar with data after its end marker: the engine gets neither that nor
	// the client's headers (PAX records, set-uid mode, owner).
	body := plain.String() + zipped.String()
	wantPrefix := "PUT /v1.41/containers/" + fakeLauncherID + "/archive?path=%2F "
	before := len(engine.requests())
	if status, answer := do("PUT", put, "application/x-tar", body); status != http.StatusNoContent {
		t.Fatalf("the app.yml archive: %d %s, want it forwarded", status, answer)
	}
	seen := engine.requests()[before:]
	if len(seen) != 1 || !strings.HasPrefix(seen[0], wantPrefix) {
		t.Fatalf("the engine received %q", seen)
	}
	got := []byte(strings.TrimPrefix(seen[0], wantPrefix))
	tr := tar.NewReader(bytes.NewReader(got))
	var entries []string
	used := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the engine's archive: %v", err)
		}
		data, _ := io.ReadAll(tr)
		if h.Format != tar.FormatUSTAR || len(h.PAXRecords) > 0 || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: format %v, PAX %v, owner %d:%d; want plain USTAR, root's", h.Name, h.Format, h.PAXRecords, h.Uid, h.Gid)
		}
		entries = append(entries, fmt.Sprintf("%c %s %o %q", h.Typeflag, h.Name, h.Mode, data))
		used += 512 + (len(data)+511)/512*512
	}
	want := []string{"5 build/ 755 \"\"", "0 build/app.yml 644 \"ok: yes\\n\""}
	if !slices.Equal(entries, want) {
		t.Errorf("the engine's archive holds %q, want %q", entries, want)
	}
	if rest := got[min(used, len(got)):]; len(rest) == 0 || bytes.ContainsFunc(rest, func(r rune) bool { return r != 0 }) {
		t.Errorf("the engine's archive ends with %d bytes that are not only its zero end marker", len(rest))
	}
}

// TestGuardNetworkIPAM: a network is created with the engine's default
// addresses: any IPAM setting is refused, and none reaches the engine.
func TestGuardNetworkIPAM(t *testing.T) {
	engine, do := startFakeGuard(t)
	create := "/v1.41/networks/create"
	base := `{"Name":"new","Driver":"bridge","Labels":{"toolbox.managed":"1"}`
	var cases []guardCase
	for _, ipam := range []string{
		`{"Config":[{"Subnet":"10.0.0.0/8"}]}`,
		`{"Config":[{"Gateway":"192.168.1.1"}]}`,
		`{"Config":[{"AuxiliaryAddresses":{"host":"172.17.0.1"}}]}`,
		`{"Config":[{"IPRange":"172.17.0.0/24"}]}`,
		`{"Driver":"evil"}`,
		`{"Options":{"x":"y"}}`,
		`{"Unknown":1}`,
		`[1]`,
	} {
		cases = append(cases, guardCase{"POST", create, "application/json", base + `,"IPAM":` + ipam + `}`})
	}
	expectRefused(t, engine, do, cases)
	for _, ipam := range []string{``, `,"IPAM":null`, `,"IPAM":{"Driver":"default","Config":[],"Options":{}}`} {
		before := len(engine.requests())
		if status, body := do("POST", create, "application/json", base+ipam+`}`); status != http.StatusNoContent {
			t.Errorf("IPAM %q: %d %s, want it forwarded", ipam, status, body)
			continue
		}
		if seen := engine.requests()[before:]; len(seen) != 1 || strings.Contains(seen[0], "IPAM") {
			t.Errorf("IPAM %q: the engine received %q, want no IPAM", ipam, seen)
		}
	}
}

// TestGuardNetworkCreateNames: a network's name is neither one a network
// already has (409, as newer engines answer) nor only hexadecimal digits,
// which the engine also reads as an ID prefix (TestGuardNetworkNameTakesNoOtherNetwork).
func TestGuardNetworkCreateNames(t *testing.T) {
	engine, do := startFakeGuard(t)
	labels := `,"Driver":"bridge","Labels":{"toolbox.managed":"1"}}`
	expectRefused(t, engine, do, []guardCase{
		{"POST", "/v1.41/networks/create", "application/json", `{"Name":"cccccc"` + labels},
		{"POST", "/v1.41/networks/create", "application/json", `{"Name":"0123456789abcdef"` + labels},
	})
	before := len(engine.requests())
	if status, body := do("POST", "/v1.41/networks/create", "application/json", `{"Name":"apps"`+labels); status != http.StatusConflict {
		t.Errorf("a network named as one that exists: %d %s, want 409", status, body)
	}
	if after := engine.requests(); len(after) != before {
		t.Errorf("the engine received %q", after[before:])
	}
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/networks/create", "application/json", `{"Name":"new"` + labels}, `POST /v1.41/networks/create {"Name":"new"`)
}

// TestGuardExecCreate: an exec's settings reach the engine re-encoded from
// what the guard checked (no field it does not know, no second spelling
// of one), never privileged.
func TestGuardExecCreate(t *testing.T) {
	engine, do := startFakeGuard(t)
	exec := "/v1.41/containers/app/exec"
	expectRefused(t, engine, do, []guardCase{
		{"POST", exec, "application/json", `{"Cmd":["id"],"Privileged":true}`},
		{"POST", exec, "application/json", `{"Cmd":["id"],"privileged":true}`},
		{"POST", exec, "application/json", `{"Cmd":["id"],"Privileged":false,"privileged":true}`},
		{"POST", exec, "application/json", `{"Cmd":["id"]}{"Privileged":true}`},
		{"POST", exec, "application/json", `{"Cmd":[]}`},
		{"POST", "/v1.41/containers/launcher/exec", "application/json", `{"Cmd":["id"]}`},
	})
	before := len(engine.requests())
	body := `{"Cmd":["sh","-c","cat"],"AttachStdin":true,"AttachStdout":true,"Detach":true,"Unknown":1,"privileged":true,"Privileged":false}`
	if status, answer := do("POST", exec, "application/json", body); status != http.StatusNoContent {
		t.Fatalf("exec: %d %s, want it forwarded", status, answer)
	}
	seen := engine.requests()[before:]
	if len(seen) != 1 {
		t.Fatalf("the engine received %q", seen)
	}
	prefix := "POST /v1.41/containers/" + fakeAppID + "/exec "
	if !strings.HasPrefix(seen[0], prefix) {
		t.Fatalf("the engine received %q, want %q...", seen[0], prefix)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(seen[0], prefix)), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Detach", "Unknown", "privileged"} {
		if _, ok := got[k]; ok {
			t.Errorf("the engine received %s: %q", k, seen[0])
		}
	}
	if got["Privileged"] != false || got["AttachStdin"] != true || fmt.Sprint(got["Cmd"]) != "[sh -c cat]" {
		t.Errorf("the engine received %q", seen[0])
	}
}

// TestGuardLookUpsFollowNoRedirect: the engine's router answers a path it
// cleans (a name "." or ".." in a body) with a redirect; the guard's
// look-ups do not follow it to check some other object than the one named.
func TestGuardLookUpsFollowNoRedirect(t *testing.T) {
	engine, do := startFakeGuard(t)
	before := len(engine.requests())
	status, body := do("POST", "/v1.41/networks/apps/connect", "application/json", `{"Container":"moved"}`)
	if status != http.StatusForbidden || !strings.Contains(body, "redirects") {
		t.Errorf("connect a container whose look-up is redirected: %d %s, want a 403", status, body)
	}
	if after := engine.requests(); len(after) != before {
		t.Errorf("the engine received %q", after[before:])
	}
}

// TestGuardBuildOptions: a build (and a pull or an import) gets only the options the guard knows
// to change nothing of where it runs; any other (ulimits, cache sources,
// BuildKit's outputs, one the engine may add later) is refused.
func TestGuardBuildOptions(t *testing.T) {
	engine, do := startFakeGuard(t)
	var cases []guardCase
	for _, q := range []string{
		"ulimits=" + `[{"Name":"nofile","Hard":1048576,"Soft":1048576}]`,
		"cachefrom=" + `["toolbox:latest"]`,
		"outputs=" + `[{"Type":"local"}]`,
		"securityopt=seccomp=unconfined",
		"remote=https://example.org/x.tar",
		"session=abc", "version=2", "version=3", "extrahosts=host:1.2.3.4", "cgroupparent=/", "isolation=hyperv",
		"networkmode=host", "networkmode=container:x", "squash=1", "buildid=x", "memory=1", "shmsize=1", "future=1",
		"t=toolbox:latest", "t=ok&t=toolbox",
	} {
		cases = append(cases, guardCase{"POST", "/v1.41/build?t=ok:1&" + q, "application/x-tar", scratchContext(t, scratchDockerfile)})
	}
	cases = append(cases, guardCase{"POST", "/v1.41/images/create?fromSrc=-&repo=ok&future=1", "application/x-tar", "tar"},
		guardCase{"POST", "/v1.41/images/create?fromImage=alpine&tag=3&future=1", "", ""})
	expectRefused(t, engine, do, cases)
	expectForwarded(t, engine, do, guardCase{"POST", "/v1.41/images/create?changes=CMD+%5B%22x%22%5D&fromSrc=-&message=m&repo=ok&tag=1", "application/x-tar", "tar"},
		"POST /v1.41/images/create?changes=CMD+%5B%22x%22%5D&fromSrc=-&message=m&repo=ok&tag=1 tar")
	// What deploy/docker's BuildImage sends.
	ok := "/v1.41/build?dockerfile=Dockerfile&forcerm=1&labels=%7B%22toolbox.app%22%3A%22x%22%7D&t=ok%3A1&version=1"
	expectForwarded(t, engine, do, guardCase{"POST", ok, "application/x-tar", scratchContext(t, scratchDockerfile)}, "POST "+ok+" Dockerfile")
}

// scratchDockerfile is what deploy/docker's BuildScratchImage writes.
const scratchDockerfile = "FROM scratch\nCOPY rootfs/ /\nENTRYPOINT [\"/standin\"]\n"

// scratchContext is a build context as BuildScratchImage writes it: the
// Dockerfile first, then the files under rootfs/, and more entries.
func scratchContext(t *testing.T, dockerfile string, more ...tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	entries := append([]tar.Header{{Name: "Dockerfile", Size: int64(len(dockerfile))}, {Name: "rootfs/standin", Size: 2}}, more...)
	for i, h := range entries {
		h.Mode, h.Typeflag = 0o644, cmp.Or(h.Typeflag, tar.TypeReg)
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		data := strings.Repeat("x", int(h.Size))
		if i == 0 {
			data = dockerfile
		}
		if _, err := io.WriteString(tw, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// TestGuardBuildContext: a build is FROM scratch with COPY and ENTRYPOINT
// only, of a plain tar whose first entry is that Dockerfile: the classic
// builder fetches an ADD's URL from the engine's process, on the machine's
// network, and runs a base image's ONBUILD triggers
// (TestGuardBuildFetchesNothing shows it on the engine).
func TestGuardBuildContext(t *testing.T) {
	engine, do := startFakeGuard(t)
	build := "/v1.41/build?t=ok:1"
	var cases []guardCase
	for _, df := range []string{
		"FROM alpine\nCOPY rootfs/ /\n",
		"FROM scratch\nADD http://127.0.0.1:2375/containers/json /x\n",
		"FROM scratch\nRUN id\n",
		"FROM scratch\nONBUILD ADD http://169.254.169.254/ /x\n",
		"# escape=`\nFROM scratch\nCOPY rootfs/ /\n",
		"FROM scratch\nCOPY --from=toolbox / /\n",
		"FROM scratch\nCOPY rootfs/ \\\n /\n",
		"FROM scratch\nCOPY $X /\n",
		"FROM scratch\nFROM alpine\n",
		"FROM scratch\nENTRYPOINT /bin/sh\n",
		"",
	} {
		cases = append(cases, guardCase{"POST", build, "application/x-tar", scratchContext(t, df)})
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = io.WriteString(zw, scratchContext(t, scratchDockerfile))
	_ = zw.Close()
	cases = append(cases,
		guardCase{"POST", build, "application/x-tar", gz.String()},
		guardCase{"POST", build + "&dockerfile=rootfs/standin", "application/x-tar", scratchContext(t, scratchDockerfile)},
		guardCase{"POST", build, "application/x-tar", "not a tar"},
	)
	expectRefused(t, engine, do, cases)

	// A second Dockerfile later in the archive (the one extracted last is
	// built) stops the stream there: the engine never gets that entry, nor
	// the end of the archive.
	for _, name := range []string{"Dockerfile", "./Dockerfile", "rootfs/../Dockerfile", "dockerfile", ".dockerignore"} {
		before := len(engine.requests())
		body := scratchContext(t, scratchDockerfile, tar.Header{Name: name, Size: 30})
		status, _ := do("POST", build, "application/x-tar", body)
		if status == http.StatusNoContent {
			t.Errorf("a second entry %q: forwarded whole", name)
		}
		// The engine records a cut request when it has read what it got,
		// maybe after the guard answered: each is cut before that entry.
		for _, seen := range engine.requests()[before:] {
			if len(seen) >= len("POST "+build+" ")+len(body)-1024 {
				t.Errorf("a second entry %q: the engine received %d bytes of %d", name, len(seen), len(body))
			}
		}
	}
}

// TestGuardBuildContextZstdSkippableFrame: the engine also reads as zstd
// an archive that opens with a skippable frame (moby/go-archive
// compression_detect.go: 0x184D2A5?, little-endian), whose payload skips
// past the checked Dockerfile to a frame of the client's choosing; a tar's
// first block can open so when it is a PAX header, whose own name the tar
// reader ignores. Such a context is refused.
func TestGuardBuildContextZstdSkippableFrame(t *testing.T) {
	engine, do := startFakeGuard(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	h := &tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(scratchDockerfile)), Format: tar.FormatPAX, PAXRecords: map[string]string{"path": "Dockerfile"}}
	if err := tw.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(tw, scratchDockerfile)
	_ = tw.Close()
	b := buf.Bytes()
	if b[156] != tar.TypeXHeader {
		t.Fatalf("the first block is of type %q, want a PAX header", b[156])
	}
	copy(b, []byte{0x5a, 0x2a, 0x4d, 0x18, 0x00, 0x04, 0x00, 0x00}) // a skippable frame of 1024 bytes
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	if h, err := tar.NewReader(bytes.NewReader(b)).Next(); err != nil || h.Name != "Dockerfile" {
		t.Fatalf("archive/tar reads %v, %v; want the Dockerfile", h, err)
	}
	expectRefused(t, engine, do, []guardCase{{"POST", "/v1.41/build?t=ok:1", "application/x-tar", string(b)}})
}
