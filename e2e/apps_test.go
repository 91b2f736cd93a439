package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
	standincatalog "github.com/toolbox-collective/toolbox/internal/standin/catalog"
)

// appsEnv prepares a toolbox that deploys on the real engine: a state, a
// catalog folder holding the stand-in under a unique app name, and a unique
// shared network; everything it creates is removed when the test ends.
func appsEnv(t *testing.T, e *docker.Engine) (env []string, app string) {
	env, app, _ = appsEnvDir(t, e)
	return env, app
}

// appsEnvDir is appsEnv that also returns the catalog folder.
func appsEnvDir(t *testing.T, e *docker.Engine) (env []string, app, dir string) {
	t.Helper()
	dockertest.BuildGoImage(t, e, dockertest.StandinPackage, standincatalog.Image)
	app = dockertest.Unique(t, "st")
	dir = t.TempDir()
	entry, err := standincatalog.Files.ReadFile("standin.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, app+".yaml"), entry, 0o644); err != nil {
		t.Fatal(err)
	}
	huge := bytes.ReplaceAll(entry, []byte("mem_limit: 32m"), []byte("mem_limit: 4096g"))
	huge = bytes.Replace(huge, []byte("mem_reservation: 16m"), []byte("mem_reservation: 4096g"), 1)
	if err := os.WriteFile(filepath.Join(dir, app+"-huge.yaml"), huge, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, app+"-taken.yaml"), entry, 0o644); err != nil {
		t.Fatal(err)
	}
	network := dockertest.Unique(t, "tbnet")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s := &stack.Stack{Engine: e}
		for _, a := range []string{app, app + "-huge", app + "-taken"} {
			if err := s.Remove(ctx, a, true); err != nil {
				t.Errorf("cleanup of %s: %v", a, err)
			}
		}
		if err := e.RemoveNetwork(ctx, network); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	// upgrade backs up first: each test's toolbox has a repository of its own.
	buildImages(t, e, "restic")
	env, _ = withBackups(t, e, []string{
		"TOOLBOX_STATE=" + filepath.Join(t.TempDir(), "toolbox.db"),
		"TOOLBOX_CATALOG_DIR=" + dir,
		"TOOLBOX_NETWORK=" + network,
		"TOOLBOX_BASE_DOMAIN=localhost",
	})
	return env, app, dir
}

func containersOf(t *testing.T, e *docker.Engine, app string) []docker.Container {
	t.Helper()
	cs, err := e.Containers(context.Background(), map[string]string{stack.LabelApp: app})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestAddRemoveStandin(t *testing.T) {
	e := dockertest.Engine(t)
	env, app, dir := appsEnvDir(t, e)
	ctx := context.Background()

	out := toolboxRun(t, env, "do", "add "+app)
	if !strings.Contains(out, app+"** is running at http://"+app+".localhost") {
		t.Fatalf("add answered:\n%s", out)
	}
	if cs := containersOf(t, e, app); len(cs) != 1 || cs[0].Health != "healthy" {
		t.Fatalf("after add, containers = %+v, want one healthy", cs)
	}
	// Data written into the app's volume.
	name := stack.ContainerName(app, "app")
	if code, err := e.Exec(ctx, name, []string{"/bin/standin-missing"}, nil, nil); err == nil && code == 0 {
		t.Fatal("exec of a missing binary succeeded")
	}
	record := "a record of the collective\n"
	if code, err := execIn(ctx, e, name, record, "/standin", "restore"); err != nil || code != 0 {
		t.Fatalf("restore into the stand-in: code %d, %v", code, err)
	}

	t.Run("add twice converges", func(t *testing.T) {
		before := containersOf(t, e, app)
		out := toolboxRun(t, env, "do", "add "+app)
		if !strings.Contains(out, "is running") {
			t.Fatalf("second add answered:\n%s", out)
		}
		after := containersOf(t, e, app)
		if len(after) != 1 || after[0].ID != before[0].ID {
			t.Errorf("second add changed the containers: before %+v, after %+v", before, after)
		}
		if got := toolboxRun(t, env, "do", "status"); !strings.Contains(got, "1/1 healthy") {
			t.Errorf("status = %q", got)
		}
	})

	t.Run("restart and upgrade", func(t *testing.T) {
		before := containersOf(t, e, app)
		if out := toolboxRun(t, env, "do", "restart "+app); !strings.Contains(out, "restarted and is healthy") {
			t.Fatalf("restart answered:\n%s", out)
		}
		// A new version in the catalog: upgrade recreates the container on it.
		path := filepath.Join(dir, app+".yaml")
		entry, _ := os.ReadFile(path)
		dockertest.BuildGoImage(t, e, dockertest.StandinPackage, "toolbox-test/standin:1.0.1")
		entry = bytes.Replace(entry, []byte(`version: "1.0"`), []byte(`version: "1.0.1"`), 1)
		entry = bytes.Replace(entry, []byte("toolbox-test/standin:1.0\n"), []byte("toolbox-test/standin:1.0.1\n"), 1)
		entry = bytes.Replace(entry, []byte("DATA_DIR: /data"), []byte("DATA_DIR: /data\n      UPGRADED: \"yes\""), 1)
		if err := os.WriteFile(path, entry, 0o644); err != nil {
			t.Fatal(err)
		}
		if out := toolboxRun(t, env, "do", "--yes", "upgrade "+app); !strings.Contains(out, "runs version 1.0.1 (was 1.0) and is healthy") {
			t.Fatalf("upgrade answered:\n%s", out)
		}
		after := containersOf(t, e, app)
		if len(after) != 1 || after[0].ID == before[0].ID || after[0].Health != "healthy" {
			t.Errorf("after upgrade: %+v (before %+v), want one new healthy container", after, before)
		}
		var dump bytes.Buffer
		if code, err := e.Exec(ctx, name, []string{"/standin", "dump"}, &dump, nil); err != nil || code != 0 || dump.String() != record {
			t.Errorf("after upgrade the data is %q (code %d, %v)", dump.String(), code, err)
		}
	})

	t.Run("logs hide secrets", func(t *testing.T) {
		raw, err := e.Logs(ctx, name, 20)
		if err != nil || !strings.Contains(raw, "config: SECRET_KEY=") {
			t.Fatalf("the stand-in did not print its secret (%v):\n%s", err, raw)
		}
		out := toolboxRun(t, env, "do", "logs "+app+" app 20")
		if !strings.Contains(out, "config: SECRET_KEY=[redacted]") || !strings.Contains(out, "config: APP_NAME="+app) {
			t.Errorf("logs answered:\n%s", out)
		}
		secret := strings.TrimSpace(strings.SplitN(strings.SplitN(raw, "config: SECRET_KEY=", 2)[1], "\n", 2)[0])
		if strings.Contains(out, secret) {
			t.Errorf("logs showed the secret %q", secret)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, tc := range []struct{ text, want string }{
			{"add nosuchapp", "There is no app `nosuchapp` in the catalog"},
			{"add " + app + " not_a_domain", "is not a domain name"},
			{"add " + app + " -rf.example.org", "is not a domain name"},
			{"add Bad/Name", "is not an app name"},
			{"add " + app + "-huge", "needs 4096.0 GiB of memory"},
			{"remove nosuchapp", "is not installed"},
			{"add " + app + "-huge " + app + ".localhost", "already serves " + app + ".localhost"},
		} {
			got, err := toolboxTry(t, env, "do", "--yes", tc.text)
			if err == nil || !strings.Contains(got, tc.want) {
				t.Errorf("%q answered %q (exit %v), want a failure saying %q", tc.text, got, err, tc.want)
			}
		}
		if cs := containersOf(t, e, app+"-huge"); len(cs) != 0 {
			t.Errorf("a refused add left containers: %+v", cs)
		}
		// A volume of the name the app needs, made by someone else: not reused.
		theirs := dockertest.Labels(t, e)
		if err := e.EnsureVolume(ctx, stack.VolumeName(app+"-taken", "data"), theirs); err != nil {
			t.Fatal(err)
		}
		out, err := toolboxTry(t, env, "do", "add "+app+"-taken")
		if err == nil || !strings.Contains(out, "was not made by the toolbox") {
			t.Errorf("add over someone else's volume answered:\n%s", out)
		}
		if cs := containersOf(t, e, app+"-taken"); len(cs) != 0 {
			t.Errorf("an add over someone else's volume left containers: %+v", cs)
		}
	})

	t.Run("engine unreachable", func(t *testing.T) {
		bad := append(env[:len(env):len(env)], "DOCKER_HOST=tcp://127.0.0.1:1")
		got, err := toolboxTry(t, bad, "do", "add "+app+"-huge")
		if err == nil || !strings.Contains(got, "could not ask the Docker engine") {
			t.Errorf("add with the engine unreachable answered %q", got)
		}
	})

	t.Run("remove keeps data, purge deletes it", func(t *testing.T) {
		out := toolboxRun(t, env, "do", "--yes", "remove "+app)
		if !strings.Contains(out, "Its data is kept") {
			t.Fatalf("remove answered:\n%s", out)
		}
		if cs := containersOf(t, e, app); len(cs) != 0 {
			t.Fatalf("containers left after remove: %+v", cs)
		}
		toolboxRun(t, env, "do", "add "+app)
		var dump bytes.Buffer
		if code, err := e.Exec(ctx, name, []string{"/standin", "dump"}, &dump, nil); err != nil || code != 0 || dump.String() != record {
			t.Fatalf("after remove and add, the data is %q (code %d, %v), want %q", dump.String(), code, err, record)
		}
		out = toolboxRun(t, env, "do", "--yes", "remove "+app+" --purge")
		if !strings.Contains(out, "data deleted") {
			t.Fatalf("remove --purge answered:\n%s", out)
		}
		vols, err := e.Volumes(ctx, map[string]string{stack.LabelApp: app})
		if err != nil || len(vols) != 0 {
			t.Fatalf("volumes after purge: %v, %v", vols, err)
		}
	})
}

// execIn runs cmd in a container with stdin.
func execIn(ctx context.Context, e *docker.Engine, container, stdin string, cmd ...string) (int, error) {
	return e.ExecInput(ctx, container, cmd, strings.NewReader(stdin), nil, nil)
}

// TestAddAfterCrash kills the toolbox in the middle of an add, then adds again.
func TestAddAfterCrash(t *testing.T) {
	e := dockertest.Engine(t)
	env, app := appsEnv(t, e)
	p := startToolbox(t, env, "do", "add "+app)
	// Kill it as soon as the app's container exists, before it is healthy and routed.
	eventually(t, 2*time.Minute, "the app's container", func() bool { return len(containersOf(t, e, app)) > 0 })
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil

	out := toolboxRun(t, env, "do", "add "+app)
	if !strings.Contains(out, "was interrupted") || !strings.Contains(out, "is running at") {
		t.Fatalf("add after a crash answered:\n%s", out)
	}
	if cs := containersOf(t, e, app); len(cs) != 1 || cs[0].Health != "healthy" {
		t.Fatalf("after the crash and a second add, containers = %+v, want one healthy", cs)
	}
	nets, err := e.Networks(context.Background(), map[string]string{stack.LabelApp: app})
	if err != nil || len(nets) != 1 {
		t.Errorf("networks of %s: %v, %v; want exactly one", app, nets, err)
	}
	if got := toolboxRun(t, env, "do", "jobs"); !strings.Contains(got, "interrupted") || !strings.Contains(got, "succeeded") {
		t.Errorf("jobs after the crash:\n%s", got)
	}
}
