package dockerguard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

const engineSocket = "/var/run/docker.sock"

// guarded is a guard on a socket of its own in front of the machine's
// engine, letting through only the objects labelled for this test: its
// managed label is dockertest's per-test label.
type guarded struct {
	direct    *docker.Engine // the engine itself, for setting up and checking
	via       *docker.Engine // the project's driver, through the guard
	raw       *client.Client // a plain client through the guard, for what the toolbox never asks
	rawDirect *client.Client
	socket    string
	labels    map[string]string // this test's: the guard's managed label
	standin   string
}

func startGuard(t testing.TB, mod func(*Policy)) *guarded {
	t.Helper()
	direct := dockertest.Engine(t)
	labels := dockertest.Labels(t, direct)
	standin := dockertest.Standin(t, direct)
	p := Policy{
		ManagedLabel: dockertest.LabelTestRun, ManagedValue: labels[dockertest.LabelTestRun],
		ProtectedLabel: "toolbox.guard", ProtectedValue: "1",
		ProtectedRepositories: []string{"toolbox"},
		EngineSocket:          engineSocket,
	}
	if mod != nil {
		mod(&p)
	}
	socket := filepath.Join(t.TempDir(), "guard.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(engineSocket, p, nil).Serve(ctx, ln, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("guard: %v", err)
		}
	})
	via, err := docker.Connect(context.Background(), docker.Config{Host: "unix://" + socket})
	if err != nil {
		t.Fatalf("connect through the guard: %v", err)
	}
	t.Cleanup(func() { _ = via.Close() })
	raw, err := client.New(client.WithHost("unix://"+socket), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	rawDirect, err := client.New(client.WithHost("unix://"+engineSocket), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rawDirect.Close() })
	return &guarded{direct: direct, via: via, raw: raw, rawDirect: rawDirect, socket: socket, labels: labels, standin: standin}
}

func with(labels map[string]string, more map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for k, v := range more {
		out[k] = v
	}
	return out
}

// TestToolboxThroughGuard drives the real engine through the guard the way
// the toolbox does: networks, volumes, a container converged, healthy,
// exec with stdin, logs, a one-off run attached with stdin, lists, images
// built and inspected, removal. None of it may be refused.
func TestToolboxThroughGuard(t *testing.T) {
	g := startGuard(t, nil)
	ctx := context.Background()
	e := g.via
	if _, err := e.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := e.Info(ctx); err != nil || info.MemTotal == 0 {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	net := dockertest.Unique(t, "tb-guard-net")
	vol := dockertest.Unique(t, "tb-guard-vol")
	name := dockertest.Unique(t, "tb-guard-app")
	if err := e.EnsureNetwork(ctx, net, g.labels); err != nil {
		t.Fatalf("EnsureNetwork: %v", err)
	}
	if err := e.EnsureVolume(ctx, vol, g.labels); err != nil {
		t.Fatalf("EnsureVolume: %v", err)
	}
	spec := docker.ContainerSpec{
		Name: name, Image: g.standin, Cmd: []string{"serve"}, Labels: g.labels,
		Env: map[string]string{"DATA_DIR": "/data"}, Network: net, Aliases: []string{"app"},
		Mounts:      []docker.Mount{{Volume: vol, Target: "/data"}},
		Files:       map[string][]byte{"/etc/app.conf": []byte("x=1\n")},
		MemoryLimit: 64 << 20, MemoryReservation: 16 << 20,
		Health: &docker.Health{Test: []string{"/standin", "health"}, Interval: 200 * time.Millisecond, Retries: 50},
	}
	if res, err := e.EnsureContainer(ctx, spec); err != nil || res.Action != docker.ActionCreated {
		t.Fatalf("EnsureContainer = %+v, %v", res, err)
	}
	if res, err := e.EnsureContainer(ctx, spec); err != nil || res.Action != docker.ActionUnchanged {
		t.Fatalf("EnsureContainer again = %+v, %v", res, err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := e.WaitHealthy(wctx, name); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	var out, errs bytes.Buffer
	if code, err := e.ExecInput(ctx, name, []string{"/standin", "restore"}, strings.NewReader("one\ntwo\nthree\n"), &out, &errs); err != nil || code != 0 {
		t.Fatalf("exec restore with stdin: %d, %v: %s", code, err, errs.String())
	}
	out.Reset()
	if code, err := e.Exec(ctx, name, []string{"/standin", "count"}, &out, &errs); err != nil || code != 0 || !strings.Contains(out.String(), "3") {
		t.Fatalf("exec count = %d, %v: %q (the stdin sent through the guard must all arrive)", code, err, out.String())
	}
	if logs, err := e.Logs(ctx, name, 5); err != nil {
		t.Fatalf("Logs: %v", err)
	} else {
		t.Logf("logs through the guard: %q", logs)
	}
	cs, err := e.Containers(ctx, g.labels)
	if err != nil || len(cs) != 1 || cs[0].Name != name {
		t.Fatalf("Containers = %+v, %v", cs, err)
	}
	if reserved, err := e.Reservations(ctx); err != nil || reserved < 16<<20 {
		t.Fatalf("Reservations = %d, %v", reserved, err)
	}
	if err := e.RestartContainer(ctx, name); err != nil {
		t.Fatalf("RestartContainer: %v", err)
	}

	// A one-off run, attached, its stdin streamed in and its stdout out.
	var runOut bytes.Buffer
	code, err := e.Run(ctx, docker.RunSpec{
		Name: dockertest.Unique(t, "tb-guard-run"), Image: g.standin, Cmd: []string{"restore"},
		Env: map[string]string{"DATA_DIR": "/data"}, Labels: g.labels, Network: "none",
		Mounts: []docker.Mount{{Volume: vol, Target: "/data"}},
		Stdin:  strings.NewReader(strings.Repeat("record\n", 1000)), Stdout: &runOut,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run with stdin: %d, %v", code, err)
	}

	// An image built through the guard, inspected and present.
	tag := "toolbox-test/guard-" + g.labels[dockertest.LabelTestRun] + ":1"
	if err := e.BuildScratchImage(ctx, tag, map[string]docker.FileSpec{"hello": {Data: []byte("hi")}}, nil, g.labels); err != nil {
		t.Fatalf("BuildScratchImage: %v", err)
	}
	t.Cleanup(func() { _ = g.direct.RemoveImage(context.Background(), tag) })
	if ok, err := e.ImagePresent(ctx, tag); err != nil || !ok {
		t.Fatalf("ImagePresent(%s) = %v, %v", tag, ok, err)
	}
	if ok, err := e.ImagePresent(ctx, "toolbox-test/absent:0"); err != nil || ok {
		t.Fatalf("ImagePresent(absent) = %v, %v", ok, err)
	}
	if err := e.RemoveImage(ctx, tag); err != nil {
		t.Fatalf("RemoveImage of a labelled image: %v", err)
	}

	if err := e.RemoveContainer(ctx, name); err != nil {
		t.Fatalf("RemoveContainer: %v", err)
	}
	if err := e.RemoveNetwork(ctx, net); err != nil {
		t.Fatalf("RemoveNetwork: %v", err)
	}
	if err := e.RemoveVolume(ctx, vol); err != nil {
		t.Fatalf("RemoveVolume: %v", err)
	}
	if left, err := g.direct.Containers(ctx, g.labels); err != nil || len(left) != 0 {
		t.Fatalf("containers left: %+v, %v", left, err)
	}
}

func refusedWith(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: allowed, want refused", what)
		return
	}
	if !cerrdefs.IsPermissionDenied(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %v, want a 403 saying %q", what, err, want)
	}
}

// TestGuardRefuses sends through the guard, to the real engine, what the
// toolbox never does: each must come back as a 403 whose message the
// client shows, and change nothing.
func TestGuardRefuses(t *testing.T) {
	g := startGuard(t, nil)
	ctx := context.Background()
	c := g.raw

	// Someone else's container, network and volume, on the same engine
	// (labelled as test objects for the cleanup, but not with the guard's label).
	otherLabels := dockertest.Labels(t, g.direct)
	other := dockertest.Unique(t, "tb-guard-other")
	if _, err := g.direct.EnsureContainer(ctx, docker.ContainerSpec{Name: other, Image: g.standin, Cmd: []string{"sleep"}, Labels: otherLabels, Network: "none"}); err != nil {
		t.Fatal(err)
	}
	otherVol := dockertest.Unique(t, "tb-guard-othervol")
	if err := g.direct.EnsureVolume(ctx, otherVol, otherLabels); err != nil {
		t.Fatal(err)
	}
	otherNet := dockertest.Unique(t, "tb-guard-othernet")
	if err := g.direct.EnsureNetwork(ctx, otherNet, otherLabels); err != nil {
		t.Fatal(err)
	}

	create := func(mod func(*container.Config, *container.HostConfig)) error {
		cfg := &container.Config{Image: g.standin, Cmd: []string{"sleep"}, Labels: with(g.labels, nil)}
		hc := &container.HostConfig{NetworkMode: "none"}
		mod(cfg, hc)
		_, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Name: dockertest.Unique(t, "tb-guard-bad"), Config: cfg, HostConfig: hc})
		return err // one made by mistake carries the test's labels: the cleanup removes it
	}
	for name, c := range map[string]struct {
		mod  func(*container.Config, *container.HostConfig)
		want string
	}{
		"privileged":   {func(_ *container.Config, h *container.HostConfig) { h.Privileged = true }, "privileged"},
		"cap add":      {func(_ *container.Config, h *container.HostConfig) { h.CapAdd = []string{"SYS_ADMIN"} }, "capabilities"},
		"host network": {func(_ *container.Config, h *container.HostConfig) { h.NetworkMode = "host" }, "host's network"},
		"host pid":     {func(_ *container.Config, h *container.HostConfig) { h.PidMode = "host" }, "PID namespace"},
		"bind /":       {func(_ *container.Config, h *container.HostConfig) { h.Binds = []string{"/:/host"} }, "binds"},
		"mount /etc": {func(_ *container.Config, h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/etc", Target: "/host-etc"}}
		}, "bind mounts"},
		"engine socket": {func(_ *container.Config, h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: engineSocket, Target: engineSocket}}
		}, "engine's socket"},
		"unconfined": {func(_ *container.Config, h *container.HostConfig) { h.SecurityOpt = []string{"seccomp=unconfined"} }, "security options"},
		"devices": {func(_ *container.Config, h *container.HostConfig) {
			h.Devices = []container.DeviceMapping{{PathOnHost: "/dev/mem", PathInContainer: "/dev/mem"}}
		}, "devices"},
		"unlabelled": {func(cfg *container.Config, _ *container.HostConfig) { cfg.Labels = otherLabels }, "must carry the label"},
		"foreign volume": {func(_ *container.Config, h *container.HostConfig) {
			h.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: otherVol, Target: "/x"}}
		}, "not the toolbox's"},
		"foreign net":  {func(_ *container.Config, h *container.HostConfig) { h.NetworkMode = container.NetworkMode(otherNet) }, "not the toolbox's"},
		"volumes from": {func(_ *container.Config, h *container.HostConfig) { h.VolumesFrom = []string{other} }, "volumes from"},
	} {
		refusedWith(t, "create "+name, create(c.mod), c.want)
	}

	// Acting on someone else's container, by name and by id.
	in, err := g.rawDirect.ContainerInspect(ctx, other, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := in.Container.ID
	for _, ref := range []string{other, id, id[:12]} {
		// Inspected, it shows its name and id, nothing of its configuration.
		res, err := c.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
		if err != nil || res.Container.ID != id || res.Container.Config == nil || len(res.Container.Config.Labels) != 0 ||
			len(res.Container.Config.Env) != 0 || res.Container.Config.Image != "" || len(res.Container.Mounts) != 0 {
			t.Errorf("inspect %s = %+v, %v; want its id and name only", ref, res.Container, err)
		}
		_, err = c.ContainerStop(ctx, ref, client.ContainerStopOptions{})
		refusedWith(t, "stop "+ref, err, "not the toolbox's")
		_, err = c.ContainerRemove(ctx, ref, client.ContainerRemoveOptions{Force: true})
		refusedWith(t, "remove "+ref, err, "not the toolbox's")
		_, err = c.ExecCreate(ctx, ref, client.ExecCreateOptions{Cmd: []string{"/standin", "health"}})
		refusedWith(t, "exec in "+ref, err, "not the toolbox's")
		_, err = c.ContainerLogs(ctx, ref, client.ContainerLogsOptions{ShowStdout: true})
		refusedWith(t, "logs of "+ref, err, "not the toolbox's")
	}
	if cs, err := g.direct.Containers(ctx, otherLabels); err != nil || len(cs) != 1 || cs[0].State != "running" {
		t.Errorf("the other container after the refusals: %+v, %v; want it running", cs, err)
	}
	// An absent container is the engine's 404, not a refusal.
	if _, err := c.ContainerInspect(ctx, "tb-guard-absent-0", client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("inspect of an absent container: %v, want not found", err)
	}

	// Lists show only the toolbox's.
	list, err := c.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range list.Items {
		if it.Labels[dockertest.LabelTestRun] != g.labels[dockertest.LabelTestRun] {
			t.Errorf("the unfiltered list shows %v, which is not the toolbox's", it.Names)
		}
	}
	vols, err := c.VolumeList(ctx, client.VolumeListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols.Items {
		if v.Name == otherVol {
			t.Errorf("the unfiltered volume list shows %s", otherVol)
		}
	}

	if v, err := c.VolumeInspect(ctx, otherVol, client.VolumeInspectOptions{}); err != nil || v.Volume.Name != otherVol || len(v.Volume.Labels) != 0 || v.Volume.Mountpoint != "" {
		t.Errorf("inspect a foreign volume = %+v, %v; want its name only", v.Volume, err)
	}
	if n, err := c.NetworkInspect(ctx, otherNet, client.NetworkInspectOptions{}); err != nil || n.Network.Name != otherNet || len(n.Network.Labels) != 0 || len(n.Network.IPAM.Config) != 0 {
		t.Errorf("inspect a foreign network = %+v, %v; want its name and id only", n.Network, err)
	}
	// So the toolbox's own driver sees that the names are taken.
	if err := g.via.EnsureVolume(ctx, otherVol, g.labels); !errors.Is(err, docker.ErrNotOurs) {
		t.Errorf("EnsureVolume over someone else's volume: %v, want ErrNotOurs", err)
	}
	if err := g.via.EnsureNetwork(ctx, otherNet, g.labels); !errors.Is(err, docker.ErrNotOurs) {
		t.Errorf("EnsureNetwork over someone else's network: %v, want ErrNotOurs", err)
	}
	if _, err := g.via.EnsureContainer(ctx, docker.ContainerSpec{Name: other, Image: g.standin, Labels: g.labels}); !errors.Is(err, docker.ErrNotOurs) {
		t.Errorf("EnsureContainer over someone else's container: %v, want ErrNotOurs", err)
	}
	_, err = c.VolumeRemove(ctx, otherVol, client.VolumeRemoveOptions{})
	refusedWith(t, "remove a foreign volume", err, "not the toolbox's")
	_, err = c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: dockertest.Unique(t, "tb-guard-bindvol"), Labels: g.labels,
		DriverOpts: map[string]string{"type": "none", "o": "bind", "device": "/etc"}})
	refusedWith(t, "a volume binding /etc", err, "driver options")
	_, err = c.VolumeCreate(ctx, client.VolumeCreateOptions{Name: dockertest.Unique(t, "tb-guard-nolabel"), Labels: otherLabels})
	refusedWith(t, "an unlabelled volume", err, "must carry the label")
	_, err = c.NetworkRemove(ctx, otherNet, client.NetworkRemoveOptions{})
	refusedWith(t, "remove a foreign network", err, "not the toolbox's")
	_, err = c.NetworkCreate(ctx, dockertest.Unique(t, "tb-guard-nolabel"), client.NetworkCreateOptions{Labels: otherLabels})
	refusedWith(t, "an unlabelled network", err, "must carry the label")
	_, err = c.NetworkCreate(ctx, dockertest.Unique(t, "tb-guard-macvlan"), client.NetworkCreateOptions{Driver: "macvlan", Labels: g.labels})
	refusedWith(t, "a macvlan network", err, "bridges")

	// Images under the toolbox's own name.
	_, err = c.ImageTag(ctx, client.ImageTagOptions{Source: g.standin, Target: "toolbox:evil"})
	refusedWith(t, "tag as the bot's image", err, "the toolbox's own")
	_, err = c.ImagePull(ctx, "toolbox:evil", client.ImagePullOptions{})
	refusedWith(t, "pull as the bot's image", err, "the toolbox's own")
	_, err = c.ImageBuild(ctx, strings.NewReader(""), client.ImageBuildOptions{Tags: []string{"toolbox:evil"}})
	refusedWith(t, "build as the bot's image", err, "the toolbox's own")
	_, err = c.ImageBuild(ctx, strings.NewReader(""), client.ImageBuildOptions{Tags: []string{"toolbox-test/x:1"}, NetworkMode: "host"})
	refusedWith(t, "a build on the host's network", err, "network")
	_, err = c.ImageRemove(ctx, g.standin+"-not-labelled", client.ImageRemoveOptions{})
	if err == nil {
		t.Errorf("removing an absent image succeeded")
	}

	// The rest of the API.
	for _, req := range []struct{ method, path string }{
		{"GET", "/events"}, {"GET", "/system/df"}, {"POST", "/swarm/init"}, {"GET", "/secrets"}, {"GET", "/plugins"},
		{"POST", "/containers/prune"}, {"POST", "/volumes/prune"}, {"POST", "/images/prune"}, {"POST", "/commit?container=" + other},
		{"POST", "/containers/" + other + "/update"}, {"GET", "/containers/" + other + "/export"}, {"POST", "/session"},
		{"GET", "/v1.41/nodes"}, {"POST", "/v1.41/auth"}, {"PUT", "/_ping"},
	} {
		status, body := rawRequest(t, g.socket, req.method, req.path)
		if status != http.StatusForbidden || !strings.Contains(body, `"message"`) {
			t.Errorf("%s %s: %d %s, want 403 with a JSON message", req.method, req.path, status, body)
		}
	}
}

func rawRequest(t *testing.T, socket, method, path string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest(method, "http://docker"+path, nil)
	res, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestGuardSocketGrant: the one container that may mount the engine's
// socket is the grant's, exactly; nobody execs in it, and it receives only
// the file the grant checks. The guard's own container is only inspected.
func TestGuardSocketGrant(t *testing.T) {
	var standin string
	g := startGuard(t, func(p *Policy) {
		// The grant's image is the stand-in, which startGuard built already.
		standin = dockertest.StandinImage
		p.SocketGrants = []SocketGrant{{
			Image: standin, Cmd: []string{"sleep"}, Env: map[string]string{"REF": "pinned"},
			Target: engineSocket, ConfigPath: "/build/app.yml",
			CheckConfig: func(_ string, b []byte) error {
				if !bytes.Contains(b, []byte("templates")) {
					return errors.New("no templates")
				}
				return nil
			},
		}}
	})
	ctx := context.Background()
	name := dockertest.Unique(t, "tb-guard-launcher")
	spec := docker.ContainerSpec{
		Name: name, Image: standin, Cmd: []string{"sleep"}, Env: map[string]string{"REF": "pinned"}, Labels: g.labels,
		Restart: "no", Network: "none",
		Files:  map[string][]byte{"/build/app.yml": []byte("templates: []\n")},
		Mounts: []docker.Mount{{HostPath: engineSocket, Target: engineSocket}},
	}
	if _, err := g.via.EnsureContainer(ctx, spec); err != nil {
		t.Fatalf("the granted launcher: %v", err)
	}
	bad := spec
	bad.Name = dockertest.Unique(t, "tb-guard-launcher")
	bad.Env = map[string]string{"REF": "main"}
	_, err := g.via.EnsureContainer(ctx, bad)
	refusedWith(t, "a launcher at another ref", err, "engine's socket is mounted only")
	bad.Env = spec.Env
	bad.Files = map[string][]byte{"/build/app.yml": []byte("docker_args: --privileged\n")}
	_, err = g.via.EnsureContainer(ctx, bad)
	refusedWith(t, "a launcher given another app.yml", err, "no templates")
	bad.Files = map[string][]byte{"/usr/local/bin/docker": []byte("#!/bin/sh\n")}
	_, err = g.via.EnsureContainer(ctx, bad)
	refusedWith(t, "a launcher given another file", err, "receives only /build/app.yml")

	var out bytes.Buffer
	_, err = g.via.Exec(ctx, name, []string{"/standin", "health"}, &out, &out)
	refusedWith(t, "exec in the launcher", err, "holds the engine's socket")

	// The guard's own container (here a stand-in labelled as it).
	guard := dockertest.Unique(t, "tb-guard-itself")
	if _, err := g.direct.EnsureContainer(ctx, docker.ContainerSpec{
		Name: guard, Image: standin, Cmd: []string{"sleep"}, Network: "none",
		Labels: with(g.labels, map[string]string{"toolbox.guard": "1"}),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.via.PID(ctx, guard); err != nil {
		t.Errorf("inspect the guard's container: %v; want allowed", err)
	}
	refusedWith(t, "remove the guard's container", g.via.RemoveContainer(ctx, guard), "the guard's own")
	_, err = g.via.Exec(ctx, guard, []string{"/standin", "health"}, &out, &out)
	refusedWith(t, "exec in the guard's container", err, "the guard's own")
}

// BenchmarkGuardOverhead is the guard's cost on a representative deploy
// step, in one run: create, start, inspect and remove a labelled container,
// directly on the engine's socket and through the guard, alternately;
// reported as ns per step each way and their ratio.
func BenchmarkGuardOverhead(b *testing.B) {
	if _, err := os.Stat(engineSocket); err != nil {
		b.Skip("no engine socket")
	}
	g := startGuard(b, nil)
	ctx := context.Background()
	step := func(e *docker.Engine) time.Duration {
		name := dockertest.Unique(b, "tb-guard-bench")
		start := time.Now()
		if _, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: name, Image: g.standin, Cmd: []string{"sleep"}, Labels: g.labels, Network: "none", Restart: "no"}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.PID(ctx, name); err != nil {
			b.Fatal(err)
		}
		if err := e.RemoveContainer(ctx, name); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	step(g.direct) // warm both paths
	step(g.via)
	var direct, via time.Duration
	b.ResetTimer()
	for b.Loop() {
		direct += step(g.direct)
		via += step(g.via)
	}
	n := float64(b.N)
	b.ReportMetric(float64(direct.Nanoseconds())/n, "direct-ns/step")
	b.ReportMetric(float64(via.Nanoseconds())/n, "guard-ns/step")
	b.ReportMetric(float64(via)/float64(direct), "guard/direct")
}

// TestGuardRefusesSmuggledSettings: on the real engine, a container the
// test made is not started with a HostConfig sent to start under an old
// API version, and no image is tagged from a form body's values.
func TestGuardRefusesSmuggledSettings(t *testing.T) {
	g := startGuard(t, nil)
	ctx := context.Background()
	name := dockertest.Unique(t, "tb-guard-smuggle")
	if _, err := g.via.EnsureContainer(ctx, docker.ContainerSpec{Name: name, Image: g.standin, Cmd: []string{"sleep"}, Labels: g.labels, Network: "none", Restart: "no"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.rawDirect.ContainerStop(ctx, name, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	tag := "toolbox-test/guard-smuggled-" + g.labels[dockertest.LabelTestRun]
	for _, req := range []struct{ method, path, contentType, body string }{
		{"POST", "/v1.23/containers/" + name + "/start", "application/json", `{"Privileged":true,"PidMode":"host"}`},
		{"POST", "/v1.23/containers/" + name + "/start", "", ""},
		{"POST", "/v1.41/images/" + g.standin + "/tag?repo=" + tag + "&tag=ok", "application/x-www-form-urlencoded", "repo=toolbox&tag=smuggled"},
	} {
		status, body := rawRequestBody(t, g.socket, req.method, req.path, req.contentType, req.body)
		if status != http.StatusForbidden || !strings.Contains(body, "docker guard") {
			t.Errorf("%s %s: %d %s, want a 403", req.method, req.path, status, body)
		}
	}
	in, err := g.rawDirect.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.Container.State.Running || in.Container.HostConfig.Privileged || in.Container.HostConfig.PidMode != "" {
		t.Errorf("the container after the refusals: running %v, privileged %v, pid %q", in.Container.State.Running, in.Container.HostConfig.Privileged, in.Container.HostConfig.PidMode)
	}
	for _, ref := range []string{"toolbox:smuggled", tag + ":ok"} {
		if ok, err := g.direct.ImagePresent(ctx, ref); err != nil || ok {
			_ = g.direct.RemoveImage(ctx, ref)
			t.Errorf("image %s after the refusals: present %v, %v", ref, ok, err)
		}
	}
}

func rawRequestBody(t *testing.T, socket, method, path, contentType, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, "http://docker"+path, rd)
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
