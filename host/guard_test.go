package host

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestGuardContainer runs the guard's container as up does, from the bot's
// image built from this program (static), and a second container as the
// bot mounts the guard's volume: the bot's user reaches the engine through
// the guard's socket (the volume takes /tmp's mode, so the guard, not root,
// can make its socket there).
func TestGuardContainer(t *testing.T) {
	e := dockertest.Engine(t)
	ctx := context.Background()
	labels := dockertest.Labels(t, e)

	bin := filepath.Join(t.TempDir(), "toolbox")
	build := exec.Command("go", "build", "-o", bin, "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	image := "toolbox-test/bot:" + labels[dockertest.LabelTestRun]
	if err := e.ImportEntries(ctx, image, botImageEntries(bin), botImageConfig()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Cleanups run last first: the containers must go before their image.
		dockertest.RemoveLabelled(t, e, labels)
		if err := e.RemoveImage(context.Background(), image); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	socket, err := engineSocket(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	volume := dockertest.Unique(t, "tb-guard-test")
	if err := e.EnsureVolume(ctx, volume, labels); err != nil {
		t.Fatal(err)
	}
	spec := guardSpec(socket, image, "")
	spec.Name = dockertest.Unique(t, "tb-guard-test")
	for k, v := range labels {
		spec.Labels[k] = v
	}
	spec.Mounts[0].Volume = volume
	if _, err := e.EnsureContainer(ctx, spec); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := e.WaitHealthy(wctx, spec.Name); err != nil {
		logs, _ := e.Logs(ctx, spec.Name, 20)
		t.Fatalf("the guard's container is not healthy: %v\n%s", err, logs)
	}

	// As the bot: its user, the volume at botGuardDir, DOCKER_HOST on the socket.
	botSocket := botGuardDir + "/" + path.Base(GuardListen)
	asBot := func(args ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		code, err := e.Run(ctx, docker.RunSpec{
			Name: dockertest.Unique(t, "tb-guard-bot"), Image: image, Cmd: args, Labels: labels, Network: "none",
			Env:    map[string]string{EnvGuardListen: botSocket, "DOCKER_HOST": "unix://" + botSocket},
			Mounts: []docker.Mount{{Volume: volume, Target: botGuardDir}},
			Stdout: &out, Stderr: &out,
		})
		if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}
	if code, out := asBot("docker-guard", "health"); code != 0 {
		t.Fatalf("the bot's user through the guard's socket: exit %d\n%s", code, out)
	}
	var probe bytes.Buffer
	code, err := e.Exec(ctx, spec.Name, []string{BotBinary, "docker-guard", "health"}, &probe, &probe)
	if err != nil || code != 0 {
		t.Errorf("health in the guard's own container: %d, %v: %s", code, err, probe.String())
	}
	logs, _ := e.Logs(ctx, spec.Name, 5)
	if !strings.Contains(logs, "docker guard listening") {
		t.Errorf("the guard's log: %q", logs)
	}
}
