package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/engine"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
	standin "github.com/toolbox-collective/toolbox/internal/standin/catalog"
)

// TestEngineAdapterStandin drives the stand-in app through the adapter on the
// real engine: deploy, services, exec, logs, restart, memory, remove.
func TestEngineAdapterStandin(t *testing.T) {
	d := dockertest.Engine(t)
	dockertest.BuildGoImage(t, d, dockertest.StandinPackage, standin.Image)
	labels := dockertest.Labels(t, d)
	shared := dockertest.Unique(t, "tb-shared")
	e := engine.New(engine.Config{Docker: docker.Config{}, SharedNetwork: shared, Labels: labels})
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	entry, err := catalog.New(standin.Files).Get("standin")
	if err != nil {
		t.Fatal(err)
	}
	app := dockertest.Unique(t, "eng")
	project, err := entry.Project(ctx, map[string]string{"TOOLBOX_APP": app, "TOOLBOX_DOMAIN": app + ".localhost", "SECRET_KEY": "k"})
	if err != nil {
		t.Fatal(err)
	}
	var progress []string
	upstream, err := e.Deploy(ctx, commands.Deployment{App: app, Project: project, Entry: entry.Entry}, func(s string) { progress = append(progress, s) })
	if err != nil {
		t.Fatalf("Deploy: %v\n%s", err, strings.Join(progress, "\n"))
	}
	if want := stack.ContainerName(app, "app") + ":8080"; upstream != want {
		t.Errorf("Deploy's upstream = %q, want %q", upstream, want)
	}
	svcs, err := e.Services(ctx, app)
	if err != nil || len(svcs) != 1 || svcs[0].Name != "app" || svcs[0].Health != "healthy" {
		t.Fatalf("Services = %+v, %v; want app, healthy", svcs, err)
	}
	if out, err := e.Exec(ctx, app, "app", []string{"/standin", "dump"}); err != nil {
		t.Errorf("Exec(dump) = %q, %v", out, err)
	}
	if _, err := e.Exec(ctx, app, "app", []string{"/standin", "no-such-command"}); err == nil || !strings.Contains(err.Error(), "exited with") {
		t.Errorf("Exec of a failing command = %v, want its exit code", err)
	}
	if logs, err := e.Logs(ctx, app, "app", 20); err != nil || logs == "" {
		t.Errorf("Logs = %q, %v", logs, err)
	}
	progress = nil
	if err := e.Restart(ctx, app, func(s string) { progress = append(progress, s) }); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got := strings.Join(progress, "; "); got != "restarting app; app: healthy" {
		t.Errorf("Restart's progress = %q", got)
	}
	// The app's container reserves what its entry says; the engine is on
	// this machine, so the swap is read from /proc/meminfo.
	if m, err := e.Memory(ctx); err != nil || m.Memory <= 0 || m.Running[app] <= 0 || m.SwapUnknown {
		t.Errorf("Memory = %+v, %v", m, err)
	}
	if detail, err := e.Check(ctx); err != nil || !strings.Contains(detail, "API") {
		t.Errorf("Check = %q, %v", detail, err)
	}
	if err := e.Remove(ctx, app, true); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if svcs, err := e.Services(ctx, app); err != nil || len(svcs) != 0 {
		t.Errorf("Services after Remove = %+v, %v; want none", svcs, err)
	}
}

func TestEngineAdapterUnreachable(t *testing.T) {
	e := engine.New(engine.Config{Docker: docker.Config{Host: "unix:///nonexistent/docker.sock"}})
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.Services(ctx, "wiki"); err == nil {
		t.Error("Services on an unreachable engine succeeded")
	}
	if _, err := e.Check(ctx); err == nil {
		t.Error("Check on an unreachable engine succeeded")
	}
}
