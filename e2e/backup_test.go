package e2e

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/host/images"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
	standincatalog "github.com/toolbox-collective/toolbox/internal/standin/catalog"
)

const resticImage = images.ResticImage

// withBackups gives the toolbox of env a local backup repository of its own,
// a volume removed at the end of the test, and the restic image.
func withBackups(t *testing.T, e *docker.Engine, env []string) ([]string, string) {
	t.Helper()
	volume := dockertest.Unique(t, "tb-backups")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.RemoveVolume(ctx, volume); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return append(env, "TOOLBOX_BACKUP_VOLUME="+volume, "TOOLBOX_RESTIC_IMAGE="+resticImage), volume
}

// TestBackupStandin backs up the stand-in app through the toolbox, on the
// real engine with the real restic: its dump streamed from its container and
// its volume, then the state; lists the snapshots; and reads the repository
// with plain restic and the key `toolbox backup key` shows.
func TestBackupStandin(t *testing.T) {
	e := dockertest.Engine(t)
	buildImages(t, e, "restic")
	env, app := appsEnv(t, e)
	env, volume := withBackups(t, e, env)
	ctx := context.Background()

	toolboxRun(t, env, "do", "add "+app)
	record := "a record of the collective\n"
	if code, err := execIn(ctx, e, stack.ContainerName(app, "app"), record, "/standin", "restore"); err != nil || code != 0 {
		t.Fatalf("write a record into the stand-in: code %d, %v", code, err)
	}

	out := toolboxRun(t, env, "do", "backup now "+app)
	if !strings.Contains(out, "**"+app+"** 1.0: 3 snapshots") || !strings.Contains(out, "do not survive losing it") {
		t.Fatalf("backup now answered:\n%s", out)
	}
	list := toolboxRun(t, env, "do", "backups "+app)
	for _, what := range []string{"records.txt", "volumes", "state"} {
		if !strings.Contains(list, "| "+app+" | "+what+" |") {
			t.Errorf("backups lacks the %s snapshot:\n%s", what, list)
		}
	}
	// Nothing changed: the second run adds (almost) nothing.
	out = toolboxRun(t, env, "do", "backup now "+app)
	if !strings.Contains(out, "3 snapshots") {
		t.Fatalf("second backup answered:\n%s", out)
	}
	// The default retention (daily 7 weekly 4 monthly 6) ran after each run.
	// With fewer days than it keeps, restic 0.18 also keeps each group's
	// oldest snapshot ("oldest daily snapshot"): both runs stay. What a policy
	// keeps over a year is deploy/backup's TestForgetYearOfDailyBackups.
	list = toolboxRun(t, env, "do", "backups "+app)
	if n := strings.Count(list, "| "+app+" |"); n != 6 {
		t.Errorf("after two runs on one day, backups lists %d snapshots, want 6:\n%s", n, list)
	}

	// The key is shown on the terminal, and opens the repository with plain restic.
	keyOut := toolboxRun(t, env, "backup", "key")
	m := regexp.MustCompile(`(?m)^    (\S+)$`).FindStringSubmatch(keyOut)
	if m == nil {
		t.Fatalf("backup key printed no key:\n%s", keyOut)
	}
	var dump bytes.Buffer
	code, err := e.Run(ctx, docker.RunSpec{
		Name: dockertest.Unique(t, "restic"), Image: resticImage, Network: "none", Labels: dockertest.Labels(t, e),
		Cmd:    []string{"dump", "--no-lock", "--tag", "app=" + app, "--path", "/records.txt", "latest", "/records.txt"},
		Env:    map[string]string{"RESTIC_REPOSITORY": "/repository", "RESTIC_PASSWORD": m[1]},
		Mounts: []docker.Mount{{Volume: volume, Target: "/repository", ReadOnly: true}},
		Stdout: &dump, Stderr: &dump,
	})
	if err != nil || code != 0 || dump.String() != record {
		t.Errorf("plain restic dump of the latest records.txt: code %d, %v, got %q, want %q", code, err, dump.String(), record)
	}

	// The README's restore of a volume by hand, into a volume of our own.
	scratch := dockertest.Unique(t, "tb-by-hand")
	if err := e.EnsureVolume(ctx, scratch, dockertest.Labels(t, e)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.RemoveVolume(context.Background(), scratch) })
	var restored bytes.Buffer
	code, err = e.Run(ctx, docker.RunSpec{
		Name: dockertest.Unique(t, "restic"), Image: resticImage, Network: "none", Labels: dockertest.Labels(t, e),
		Cmd: []string{"--no-lock", "restore", "--tag", "app=" + app + ",what=volumes", "--target", "/restore",
			"latest:/volumes/" + stack.VolumeName(app, "data")},
		Env:    map[string]string{"RESTIC_REPOSITORY": "/repository", "RESTIC_PASSWORD": m[1]},
		Mounts: []docker.Mount{{Volume: volume, Target: "/repository", ReadOnly: true}, {Volume: scratch, Target: "/restore"}},
		Stdout: &restored, Stderr: &restored,
	})
	if err != nil || code != 0 {
		t.Fatalf("plain restic restore of the volume: code %d, %v\n%s", code, err, restored.String())
	}
	restored.Reset()
	code, err = e.Run(ctx, docker.RunSpec{
		Name: dockertest.Unique(t, "read"), Image: standincatalog.Image, Network: "none", Labels: dockertest.Labels(t, e),
		Cmd: []string{"dump"}, Env: map[string]string{"DATA_DIR": "/restore"},
		Mounts: []docker.Mount{{Volume: scratch, Target: "/restore", ReadOnly: true}}, Stdout: &restored,
	})
	if err != nil || code != 0 || restored.String() != record {
		t.Errorf("the volume restored by hand holds %q (exit %d, %v), want %q", restored.String(), code, err, record)
	}
}
