package images

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestResticImage runs the locally built restic image as the backups will:
// one-shot containers on a repository volume, a dump streamed in on stdin
// and read back, snapshot times in the container's TZ. It also runs the
// binary Paths gives as TOOLBOX_RESTIC_BIN.
func TestResticImage(t *testing.T) {
	e := dockertest.Engine(t)
	tag := builtImage(t, e, "restic")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	labels := dockertest.Labels(t, e)
	repo := dockertest.Unique(t, "images-restic")
	if err := e.EnsureVolume(ctx, repo, labels); err != nil {
		t.Fatal(err)
	}
	restic := func(stdin []byte, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		spec := docker.RunSpec{
			Name: dockertest.Unique(t, "images-restic"), Image: tag, Cmd: args, Labels: labels,
			Env:    map[string]string{"RESTIC_REPOSITORY": "/repo", "RESTIC_PASSWORD": "secret", "TZ": "Asia/Kolkata"},
			Mounts: []docker.Mount{{Volume: repo, Target: "/repo"}}, Network: "none",
			Stdout: &stdout, Stderr: &stderr,
		}
		if stdin != nil {
			spec.Stdin = bytes.NewReader(stdin)
		}
		code, err := e.Run(ctx, spec)
		if err != nil || code != 0 {
			t.Fatalf("restic %s: exit code %d, %v\n%s", strings.Join(args, " "), code, err, stderr.String())
		}
		return stdout.String()
	}

	if out := restic(nil, "version"); !strings.HasPrefix(out, "restic 0.18.1 ") {
		t.Errorf("restic version = %q, want restic 0.18.1", out)
	}
	if out := restic(nil, "cache"); !strings.Contains(out, "/root/.cache/restic") {
		t.Errorf("restic cache = %q, want its cache in /root/.cache/restic, as the official image has it", out)
	}
	restic(nil, "init")
	data := []byte("-- a dump\nINSERT INTO t VALUES (1);\n")
	restic(data, "backup", "--host", "test", "--stdin", "--stdin-filename", "app.sql")
	if got := restic(nil, "dump", "latest", "/app.sql"); got != string(data) {
		t.Errorf("restic dump = %q, want %q", got, data)
	}
	var snaps []struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(restic(nil, "snapshots", "--json")), &snaps); err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 1 {
		t.Fatalf("%d snapshots, want 1", len(snaps))
	}
	// India is 5:30 ahead all year: TZ was read, from the embedded zones.
	if _, off := snaps[0].Time.Zone(); off != 5*3600+30*60 {
		t.Errorf("the snapshot's time %s is not in TZ=Asia/Kolkata: the image has no time zones", snaps[0].Time)
	}

	t.Run("Paths", func(t *testing.T) {
		b := &Builder{Progress: func(line string) { t.Log(line) }}
		env, err := b.Paths(ctx, "restic")
		if err != nil {
			t.Fatal(err)
		}
		bin := env[EnvResticBin]
		if bin == "" {
			t.Fatalf("Paths gave %v, no %s", env, EnvResticBin)
		}
		out, err := exec.CommandContext(ctx, bin, "version").Output()
		if err != nil || !strings.HasPrefix(string(out), "restic 0.18.1 ") {
			t.Errorf("%s version = %q, %v", bin, out, err)
		}
	})
}
