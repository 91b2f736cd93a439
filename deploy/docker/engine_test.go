package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

const (
	healthInterval = 200 * time.Millisecond
	mib            = 1 << 20
)

// standinSpec is a stand-in app container with a quick health check.
func standinSpec(name, image string, labels map[string]string) docker.ContainerSpec {
	return docker.ContainerSpec{
		Name:   name,
		Image:  image,
		Env:    map[string]string{"APP_NAME": "wiki"},
		Labels: labels,
		Health: &docker.Health{
			Test:     []string{dockertest.StandinBinary, "health"},
			Interval: healthInterval,
			Timeout:  2 * time.Second,
			Retries:  3,
		},
		MemoryLimit: 64 * mib,
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func exec(t *testing.T, e *docker.Engine, ctx context.Context, name string, cmd ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code, err := e.Exec(ctx, name, cmd, &out, &errb)
	if err != nil {
		t.Fatalf("Exec(%s, %q): %v", name, cmd, err)
	}
	return code, out.String(), errb.String()
}

func TestContainerLifecycle(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := dockertest.Standin(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, 2*time.Minute)

	netName, volName, name := dockertest.Unique(t, "tbt-net"), dockertest.Unique(t, "tbt-vol"), dockertest.Unique(t, "tbt-app")
	for range 2 {
		if err := e.EnsureNetwork(ctx, netName, labels); err != nil {
			t.Fatal(err)
		}
		if err := e.EnsureVolume(ctx, volName, labels); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := e.Networks(ctx, labels); err != nil || !slices.Equal(got, []string{netName}) {
		t.Fatalf("Networks(labels) = %v, %v; want [%s]", got, err, netName)
	}
	if got, err := e.Volumes(ctx, labels); err != nil || !slices.Equal(got, []string{volName}) {
		t.Fatalf("Volumes(labels) = %v, %v; want [%s]", got, err, volName)
	}

	spec := standinSpec(name, image, labels)
	spec.Network, spec.Aliases = netName, []string{"wiki"}
	spec.Mounts = []docker.Mount{{Volume: volName, Target: "/data"}}
	spec.MemoryReservation = 32 * mib
	spec.PublishTCP = []docker.Publish{{HostIP: "127.0.0.1", ContainerPort: 8080}}

	created, err := e.EnsureContainer(ctx, spec)
	if err != nil || created.Action != docker.ActionCreated {
		t.Fatalf("EnsureContainer (new) = %+v, %v; want action %q", created, err, docker.ActionCreated)
	}
	if err := e.WaitHealthy(ctx, name); err != nil {
		t.Fatal(err)
	}
	again, err := e.EnsureContainer(ctx, spec)
	if err != nil || again != (docker.Result{ID: created.ID, Action: docker.ActionUnchanged}) {
		t.Fatalf("EnsureContainer (same spec) = %+v, %v; want %s unchanged", again, err, created.ID)
	}

	// Data written through the app's HTTP API lands in the volume.
	addr, err := e.PublishedAddr(ctx, name, 8080)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+addr+"/records", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /records = %s, want 201", resp.Status)
	}

	// Exec keeps stdout and stderr apart.
	if code, out, errOut := exec(t, e, ctx, name, dockertest.StandinBinary, "dump"); code != 0 || out != "hello\n" || errOut != "" {
		t.Errorf("exec dump = %d, %q, %q; want 0, %q, \"\"", code, out, errOut, "hello\n")
	}
	if code, out, errOut := exec(t, e, ctx, name, dockertest.StandinBinary, "bogus"); code != 2 || out != "" || !strings.Contains(errOut, "usage:") {
		t.Errorf("exec bogus = %d, %q, %q; want 2, \"\", usage on stderr", code, out, errOut)
	}

	// A changed spec replaces the container; the volume keeps the data.
	spec.Env = map[string]string{"APP_NAME": "wiki2"}
	recreated, err := e.EnsureContainer(ctx, spec)
	if err != nil || recreated.Action != docker.ActionRecreated || recreated.ID == created.ID {
		t.Fatalf("EnsureContainer (changed env) = %+v, %v; want a new ID, recreated", recreated, err)
	}
	if err := e.WaitHealthy(ctx, name); err != nil {
		t.Fatal(err)
	}
	cs, err := e.Containers(ctx, labels)
	if err != nil || len(cs) != 1 || cs[0].ID != recreated.ID || cs[0].Name != name || cs[0].State != "running" || cs[0].Health != "healthy" {
		t.Fatalf("Containers(labels) = %+v, %v; want only %s, running and healthy", cs, err, name)
	}
	if cs[0].Labels[docker.LabelSpecHash] != spec.Hash() {
		t.Errorf("label %s = %q, want %q", docker.LabelSpecHash, cs[0].Labels[docker.LabelSpecHash], spec.Hash())
	}
	if _, out, _ := exec(t, e, ctx, name, dockertest.StandinBinary, "dump"); out != "hello\n" {
		t.Errorf("dump after recreate = %q, want %q (kept by the volume)", out, "hello\n")
	}
	addr, err = e.PublishedAddr(ctx, name, 8080)
	if err != nil {
		t.Fatal(err)
	}
	if page := httpGet(t, "http://"+addr+"/"); !strings.Contains(page, "wiki2") || !strings.Contains(page, "1 records") {
		t.Errorf("GET / = %q, want wiki2 with 1 records", page)
	}

	// A stopped container of the same spec is started again, not replaced.
	raw := rawClient(t)
	if _, err := raw.ContainerStop(ctx, name, client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	started, err := e.EnsureContainer(ctx, spec)
	if err != nil || started != (docker.Result{ID: recreated.ID, Action: docker.ActionStarted}) {
		t.Fatalf("EnsureContainer (stopped) = %+v, %v; want %s started", started, err, recreated.ID)
	}

	logs, err := e.Logs(ctx, name, 0)
	if err != nil || !strings.Contains(logs, "wiki2 listening on") || !strings.Contains(logs, "wiki2 stopped") {
		t.Errorf("Logs = %q, %v; want the start and stop lines", logs, err)
	}
	if last, err := e.Logs(ctx, name, 1); err != nil || strings.Count(last, "\n") != 1 {
		t.Errorf("Logs(tail 1) = %q, %v; want one line", last, err)
	}
	if sum, err := e.Reservations(ctx); err != nil || sum < 32*mib {
		t.Errorf("Reservations = %d, %v; want at least this container's 32 MiB", sum, err)
	}

	// Removal is idempotent, in dependency order.
	for range 2 {
		if err := e.RemoveContainer(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := e.RemoveNetwork(ctx, netName); err != nil {
			t.Fatal(err)
		}
		if err := e.RemoveVolume(ctx, volName); err != nil {
			t.Fatal(err)
		}
	}
	if cs, err := e.Containers(ctx, labels); err != nil || len(cs) != 0 {
		t.Errorf("Containers after removal = %+v, %v; want none", cs, err)
	}
	if _, err := e.Logs(ctx, name, 1); !cerrdefs.IsNotFound(err) {
		t.Errorf("Logs of a removed container: %v, want a not-found error", err)
	}
}

func TestWaitHealthy(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := dockertest.Standin(t, e)
	labels := dockertest.Labels(t, e)

	tests := []struct {
		name    string
		change  func(*docker.ContainerSpec)
		wantErr []string // all in the error; none: healthy
		orErr   []string // alternative (timing-dependent) wording
	}{
		{name: "healthy"},
		{name: "no health check", change: func(s *docker.ContainerSpec) { s.Health = nil }},
		{
			name: "secret handed over",
			change: func(s *docker.ContainerSpec) {
				s.Env["STANDIN_REQUIRE_ENV"] = "DB_PASSWORD"
				s.Env["DB_PASSWORD"] = "s3cret"
			},
		},
		{
			name: "unhealthy",
			change: func(s *docker.ContainerSpec) {
				s.Health.Test = []string{dockertest.StandinBinary, "health", "http://127.0.0.1:8080/nope"}
			},
			wantErr: []string{"is unhealthy", "404 Not Found"},
		},
		{
			name: "exits",
			change: func(s *docker.ContainerSpec) {
				s.Restart = "no"
				s.Env["STANDIN_REQUIRE_ENV"] = "DB_PASSWORD"
			},
			wantErr: []string{"exited with code 1", "DB_PASSWORD"},
		},
		{
			name:    "restarts",
			change:  func(s *docker.ContainerSpec) { s.Env["STANDIN_REQUIRE_ENV"] = "DB_PASSWORD" },
			wantErr: []string{"keeps restarting", "DB_PASSWORD"},
			orErr:   []string{"exited with code 1", "DB_PASSWORD"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := timeout(t, time.Minute)
			spec := standinSpec(dockertest.Unique(t, "tbt-wait"), image, labels)
			if tt.change != nil {
				tt.change(&spec)
			}
			if _, err := e.EnsureContainer(ctx, spec); err != nil {
				t.Fatal(err)
			}
			err := e.WaitHealthy(ctx, spec.Name)
			t.Logf("WaitHealthy: %v", err)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("WaitHealthy = %v, want nil", err)
			case tt.wantErr != nil && !(containsAll(err, tt.wantErr) || (tt.orErr != nil && containsAll(err, tt.orErr))):
				t.Errorf("WaitHealthy = %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

func containsAll(err error, parts []string) bool {
	if err == nil {
		return false
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			return false
		}
	}
	return true
}

// Two engines (so no shared lock) converge the same container and the same
// network at once: one of each exists afterwards.
func TestEnsureConcurrently(t *testing.T) {
	t.Parallel()
	e1, e2 := dockertest.Engine(t), dockertest.Engine(t)
	image := dockertest.Standin(t, e1)
	labels := dockertest.Labels(t, e1)
	ctx := timeout(t, time.Minute)

	netName := dockertest.Unique(t, "tbt-net")
	spec := standinSpec(dockertest.Unique(t, "tbt-twice"), image, labels)
	var wg sync.WaitGroup
	results := make([]docker.Result, 2)
	errs := make([]error, 4)
	for i, e := range []*docker.Engine{e1, e2} {
		wg.Go(func() { results[i], errs[i] = e.EnsureContainer(ctx, spec) })
		wg.Go(func() { errs[2+i] = e.EnsureNetwork(ctx, netName, labels) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	actions := []string{results[0].Action, results[1].Action}
	slices.Sort(actions)
	// The second sees the container running, or created but not yet started
	// by the first (then it starts it): either way one container.
	if results[0].ID != results[1].ID ||
		(!slices.Equal(actions, []string{docker.ActionCreated, docker.ActionUnchanged}) &&
			!slices.Equal(actions, []string{docker.ActionCreated, docker.ActionStarted})) {
		t.Errorf("concurrent EnsureContainer = %+v, want one created and one unchanged or started, same ID", results)
	}
	if cs, err := e1.Containers(ctx, labels); err != nil || len(cs) != 1 {
		t.Errorf("Containers = %+v, %v; want exactly one", cs, err)
	}
	if ns, err := e1.Networks(ctx, labels); err != nil || len(ns) != 1 {
		t.Errorf("Networks = %v, %v; want exactly one", ns, err)
	}
}

func TestConnectUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct{ host, want string }{
		{"tcp://127.0.0.1:1", "connection refused"},
		{"unix:///nonexistent/docker.sock", "no such file or directory"},
	}
	for _, tt := range tests {
		start := time.Now()
		e, err := docker.Connect(timeout(t, 30*time.Second), docker.Config{Host: tt.host})
		if err == nil {
			e.Close()
			t.Fatalf("Connect(%s) succeeded", tt.host)
		}
		want := "docker engine at " + tt.host + " is not reachable: "
		if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Connect(%s) = %q, want %q…%s", tt.host, err, want, tt.want)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Connect(%s) took %s, want a few seconds at most", tt.host, d)
		}
	}
}

func TestImages(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := dockertest.Standin(t, e)
	ctx := timeout(t, time.Minute)

	const missing = "toolbox-test/does-not-exist:1"
	if ok, err := e.ImagePresent(ctx, image); !ok || err != nil {
		t.Errorf("ImagePresent(%s) = %v, %v; want true", image, ok, err)
	}
	if ok, err := e.ImagePresent(ctx, missing); ok || err != nil {
		t.Errorf("ImagePresent(%s) = %v, %v; want false, nil", missing, ok, err)
	}
	var lines []string
	if err := e.PullImage(ctx, image, func(l string) { lines = append(lines, l) }); err != nil || len(lines) != 0 {
		t.Errorf("PullImage(present) = %v with progress %q; want nil, no pull", err, lines)
	}
	// No registry is reachable here: the error must still say what failed.
	err := e.PullImage(ctx, missing, func(l string) { lines = append(lines, l) })
	if err == nil || !strings.Contains(err.Error(), `cannot pull image "`+missing+`"`) {
		t.Errorf("PullImage(%s) = %v, want a clear error naming it", missing, err)
	}
	t.Logf("pull error: %v", err)

	// Import: a root filesystem tar with Dockerfile changes.
	tag := "toolbox-test/imported:" + dockertest.Unique(t, "t")
	t.Cleanup(func() { _ = e.RemoveImage(context.Background(), tag) })
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	_ = tw.WriteHeader(&tar.Header{Name: "etc/motd", Mode: 0o644, Size: 3})
	_, _ = tw.Write([]byte("hi\n"))
	_ = tw.Close()
	if err := e.ImportImage(ctx, tag, &rootfs, []string{`ENTRYPOINT ["/nothing"]`, "LABEL toolbox.test=1"}); err != nil {
		t.Fatal(err)
	}
	img, err := e.Image(ctx, tag)
	if err != nil || img.Labels["toolbox.test"] != "1" || !slices.Contains(img.Tags, tag) {
		t.Errorf("Image(%s) = %+v, %v; want it tagged and labelled", tag, img, err)
	}

	// Build: files from data, nested paths, labels.
	built := "toolbox-test/built:" + dockertest.Unique(t, "t")
	t.Cleanup(func() { _ = e.RemoveImage(context.Background(), built) })
	files := map[string]docker.FileSpec{
		"etc/app/config.json": {Data: []byte(`{}`), Mode: 0o600},
		"/motd":               {Data: []byte("hi\n")},
	}
	if err := e.BuildScratchImage(ctx, built, files, []string{"/nothing"}, map[string]string{"toolbox.test": "1"}); err != nil {
		t.Fatal(err)
	}
	if img, err := e.Image(ctx, built); err != nil || img.Labels["toolbox.test"] != "1" {
		t.Errorf("Image(%s) = %+v, %v; want it labelled", built, img, err)
	}
	if err := e.RemoveImage(ctx, built); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveImage(ctx, built); err != nil {
		t.Errorf("RemoveImage of an absent image = %v, want nil", err)
	}
	if _, err := e.Image(ctx, built); !cerrdefs.IsNotFound(err) {
		t.Errorf("Image of a removed image: %v, want not found", err)
	}
}

func TestInfoPing(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	ctx := timeout(t, 30*time.Second)
	info, err := e.Info(ctx)
	if err != nil || info.APIVersion == "" || info.ServerVersion == "" || info.MemTotal <= 0 || info.NCPU <= 0 {
		t.Fatalf("Info = %+v, %v; want versions, memory and CPUs", info, err)
	}
	if d, err := e.Ping(ctx); err != nil || d <= 0 {
		t.Errorf("Ping = %s, %v", d, err)
	}
	t.Logf("engine %s, API %s, %d CPUs, %d MiB", info.ServerVersion, info.APIVersion, info.NCPU, info.MemTotal/mib)
}

func TestContextCancel(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := dockertest.Standin(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)

	spec := standinSpec(dockertest.Unique(t, "tbt-cancel"), image, labels)
	spec.Health.Test = []string{dockertest.StandinBinary, "health", "http://127.0.0.1:8080/nope"}
	spec.Health.Retries = 1000 // stays "starting" for a long time
	if _, err := e.EnsureContainer(ctx, spec); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := e.WaitHealthy(short, spec.Name); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "starting") {
		t.Errorf("WaitHealthy with a short deadline = %v, want deadline exceeded while starting", err)
	}
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.Exec(short, spec.Name, []string{dockertest.StandinBinary, "sleep", "1m"}, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("Exec with a short deadline = %v after %s, want deadline exceeded promptly", err, time.Since(start))
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func rawClient(tb testing.TB) *client.Client {
	tb.Helper()
	c, err := client.New(client.FromEnv)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkDeployStandin measures create → healthy for the stand-in app
// through Engine (EnsureContainer + WaitHealthy) and through the raw client
// calls (create, start, poll inspect), alternating in the same run, and
// reports both and their ratio. Run with e.g. -benchtime=10x.
func BenchmarkDeployStandin(b *testing.B) {
	e := dockertest.Engine(b)
	image := dockertest.Standin(b, e)
	labels := dockertest.Labels(b, e)
	raw := rawClient(b)
	ctx := b.Context()

	var viaEngine, viaRaw time.Duration
	n := 0
	for b.Loop() {
		engineName, rawName := dockertest.Unique(b, "tbb-engine"), dockertest.Unique(b, "tbb-raw")
		deployEngine := func() {
			start := time.Now()
			if _, err := e.EnsureContainer(ctx, standinSpec(engineName, image, labels)); err != nil {
				b.Fatal(err)
			}
			if err := e.WaitHealthy(ctx, engineName); err != nil {
				b.Fatal(err)
			}
			viaEngine += time.Since(start)
		}
		deployRaw := func() {
			start := time.Now()
			if err := rawDeploy(ctx, raw, rawName, image, labels); err != nil {
				b.Fatal(err)
			}
			viaRaw += time.Since(start)
		}
		if n%2 == 0 {
			deployEngine()
			deployRaw()
		} else {
			deployRaw()
			deployEngine()
		}
		n++
		b.StopTimer()
		for _, name := range []string{engineName, rawName} {
			if err := e.RemoveContainer(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	engineMS := float64(viaEngine.Milliseconds()) / float64(n)
	rawMS := float64(viaRaw.Milliseconds()) / float64(n)
	b.ReportMetric(engineMS, "engine-ms/deploy")
	b.ReportMetric(rawMS, "raw-ms/deploy")
	b.ReportMetric(engineMS/rawMS, "engine/raw")
}

// rawDeploy is what EnsureContainer + WaitHealthy do for a new container,
// written directly against the moby client.
func rawDeploy(ctx context.Context, c *client.Client, name, image string, labels map[string]string) error {
	res, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:  image,
			Env:    []string{"APP_NAME=wiki"},
			Labels: labels,
			Healthcheck: &container.HealthConfig{
				Test:     []string{"CMD", dockertest.StandinBinary, "health"},
				Interval: healthInterval,
				Timeout:  2 * time.Second,
				Retries:  3,
			},
		},
		HostConfig: &container.HostConfig{
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			Resources:     container.Resources{Memory: 64 * mib},
		},
	})
	if err != nil {
		return err
	}
	if _, err := c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		return err
	}
	for {
		in, err := c.ContainerInspect(ctx, res.ID, client.ContainerInspectOptions{})
		if err != nil {
			return err
		}
		if h := in.Container.State.Health; h != nil && h.Status == container.Healthy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestContainerFiles(t *testing.T) {
	e := dockertest.Engine(t)
	ctx := context.Background()
	labels := dockertest.Labels(t, e)
	spec := docker.ContainerSpec{
		Name: dockertest.Unique(t, "tbt-files"), Image: dockertest.Standin(t, e), Labels: labels,
		Cmd:   []string{"sleep", "1h"},
		Files: map[string][]byte{"/etc/app/config.json": []byte(`{"ok":true}`), "data/records.txt": []byte("first\n")},
	}
	if _, err := e.EnsureContainer(ctx, spec); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code, err := e.Exec(ctx, spec.Name, []string{"/standin", "dump"}, &out, nil); err != nil || code != 0 || out.String() != "first\n" {
		t.Fatalf("the file written before start reads %q (code %d, %v)", out.String(), code, err)
	}
	spec.Files["data/records.txt"] = []byte("second\n")
	res, err := e.EnsureContainer(ctx, spec)
	if err != nil || res.Action != docker.ActionRecreated {
		t.Fatalf("a changed file: %+v, %v; want recreated", res, err)
	}
}

// TestNotOurs: objects of the same name that the toolbox did not make are
// neither reused nor replaced.
func TestNotOurs(t *testing.T) {
	e := dockertest.Engine(t)
	ctx := context.Background()
	theirs := dockertest.Labels(t, e) // carries no toolbox.managed
	ours := map[string]string{"toolbox.managed": "1"}
	for k, v := range theirs {
		ours[k] = v
	}
	vol, netName := dockertest.Unique(t, "tbt-theirs"), dockertest.Unique(t, "tbt-theirs")
	if err := e.EnsureVolume(ctx, vol, theirs); err != nil {
		t.Fatal(err)
	}
	if err := e.EnsureVolume(ctx, vol, ours); !errors.Is(err, docker.ErrNotOurs) {
		t.Errorf("EnsureVolume over someone else's volume: %v, want ErrNotOurs", err)
	}
	if err := e.EnsureNetwork(ctx, netName, theirs); err != nil {
		t.Fatal(err)
	}
	if err := e.EnsureNetwork(ctx, netName, ours); !errors.Is(err, docker.ErrNotOurs) {
		t.Errorf("EnsureNetwork over someone else's network: %v, want ErrNotOurs", err)
	}
	name := dockertest.Unique(t, "tbt-theirs")
	if err := rawDeploy(ctx, rawClient(t), name, dockertest.Standin(t, e), theirs); err != nil {
		t.Fatal(err)
	}
	before, _ := e.Containers(ctx, map[string]string{dockertest.LabelTestRun: theirs[dockertest.LabelTestRun]})
	_, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: name, Image: dockertest.Standin(t, e), Labels: ours})
	if !errors.Is(err, docker.ErrNotOurs) {
		t.Errorf("EnsureContainer over someone else's container: %v, want ErrNotOurs", err)
	}
	after, _ := e.Containers(ctx, map[string]string{dockertest.LabelTestRun: theirs[dockertest.LabelTestRun]})
	if len(before) != 1 || len(after) != 1 || before[0].ID != after[0].ID {
		t.Errorf("someone else's container was touched: before %+v, after %+v", before, after)
	}
}

func TestWaitExit(t *testing.T) {
	e := dockertest.Engine(t)
	ctx := context.Background()
	labels := dockertest.Labels(t, e)
	for _, tc := range []struct {
		cmd  []string
		want int
	}{{[]string{"sleep", "200ms"}, 0}, {[]string{"no-such-command"}, 2}} {
		name := dockertest.Unique(t, "tbt-once")
		if _, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: name, Image: dockertest.Standin(t, e), Cmd: tc.cmd, Labels: labels, Restart: "no"}); err != nil {
			t.Fatal(err)
		}
		if code, err := e.WaitExit(ctx, name); err != nil || code != tc.want {
			t.Errorf("WaitExit after %v = %d, %v; want %d", tc.cmd, code, err, tc.want)
		}
	}
}
