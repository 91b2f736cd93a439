package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/control"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
	standincatalog "github.com/toolbox-collective/toolbox/internal/standin/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// BenchmarkAddStandin measures `add` of the stand-in app, from the command to
// healthy, next to the same network, volume and container made directly
// through the Engine API in the same run; toolbox/direct is the overhead.
//
//	go test -run '^$' -bench AddStandin -benchtime 5x .
func BenchmarkAddStandin(b *testing.B) {
	e := dockertest.Engine(b)
	dockertest.BuildGoImage(b, e, dockertest.StandinPackage, standincatalog.Image)
	ctx := context.Background()
	app := dockertest.Unique(b, "bench")
	dir := b.TempDir()
	entry, _ := standincatalog.Files.ReadFile("standin.yaml")
	if err := os.WriteFile(filepath.Join(dir, app+".yaml"), entry, 0o644); err != nil {
		b.Fatal(err)
	}
	network := dockertest.Unique(b, "benchnet")
	cfg, err := loadConfig(func(k string) string {
		return map[string]string{"TOOLBOX_CATALOG_DIR": dir, "TOOLBOX_NETWORK": network}[k]
	})
	if err != nil {
		b.Fatal(err)
	}
	st, err := state.Open(filepath.Join(b.TempDir(), "toolbox.db"), state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	m := newEngine(cfg)
	defer m.Close()
	log := slog.New(slog.DiscardHandler)
	router, err := newRouter(ctx, cfg, log, st, m, &control.TerminalChat{W: io.Discard}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	s := &stack.Stack{Engine: e}
	b.Cleanup(func() {
		_ = s.Remove(ctx, app, true)
		_ = s.Remove(ctx, app+"-direct", true)
		_ = e.RemoveNetwork(ctx, network)
	})
	operator := commands.Caller{UserName: "operator", Terminal: true}

	var toolbox, direct time.Duration
	for b.Loop() {
		start := time.Now()
		reply := control.RunAndWait(ctx, router, st, commands.Request{Caller: operator, Text: "add " + app})
		toolbox += time.Since(start)
		if reply.Failed || !strings.Contains(reply.Text, "is running") {
			b.Fatalf("add: %+v", reply)
		}
		start = time.Now()
		directDeploy(b, e, app+"-direct", network)
		direct += time.Since(start)

		b.StopTimer()
		if r := control.RunAndWait(ctx, router, st, commands.Request{Caller: operator, Text: "remove " + app + " --purge", Confirmed: true}); r.Failed {
			b.Fatalf("remove: %+v", r)
		}
		if err := s.Remove(ctx, app+"-direct", true); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(toolbox.Seconds()*1000/n, "toolbox_ms/add")
	b.ReportMetric(direct.Seconds()*1000/n, "direct_ms/add")
	b.ReportMetric(float64(toolbox)/float64(direct), "toolbox/direct")
}

// directDeploy makes what `add` makes for the stand-in, with the Engine API alone.
func directDeploy(b *testing.B, e *docker.Engine, app, network string) {
	ctx := context.Background()
	labels := map[string]string{stack.LabelManaged: "1", stack.LabelApp: app}
	if err := e.EnsureNetwork(ctx, stack.NetworkName(app), labels); err != nil {
		b.Fatal(err)
	}
	if err := e.EnsureVolume(ctx, stack.VolumeName(app, "data"), labels); err != nil {
		b.Fatal(err)
	}
	name := stack.ContainerName(app, "app")
	_, err := e.EnsureContainer(ctx, docker.ContainerSpec{
		Name: name, Image: standincatalog.Image, Cmd: []string{"serve"}, Labels: labels,
		Env:     map[string]string{"APP_NAME": app, "PORT": "8080", "DATA_DIR": "/data", "SECRET_KEY": "k", "STANDIN_REQUIRE_ENV": "SECRET_KEY"},
		Network: stack.NetworkName(app), ExtraNetworks: []string{network},
		Mounts:      []docker.Mount{{Volume: stack.VolumeName(app, "data"), Target: "/data"}},
		MemoryLimit: 32 << 20,
		Health:      &docker.Health{Test: []string{"CMD", "/standin", "health", "http://127.0.0.1:8080/healthz"}, Interval: time.Second, Timeout: 2 * time.Second, Retries: 30},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.WaitHealthy(ctx, name); err != nil {
		b.Fatal(err)
	}
}
