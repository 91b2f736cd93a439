package docker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// cgroupDir is where the engine's cgroupfs driver puts a container of the
// given parent, for cgroup v1 (memory controller) or v2; "" when neither is
// there (the systemd driver names its scopes otherwise).
func cgroupDir(parent, id string) string {
	for _, root := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
		dir := filepath.Join(root, parent, id)
		if _, err := os.Stat(dir); err == nil {
			return dir
		}
	}
	return ""
}

// An engine with a cgroup parent puts every container it makes under it,
// long-running and one-shot alike, and a container made under another
// parent is made again.
func TestCgroupParent(t *testing.T) {
	plain := dockertest.Engine(t)
	image := dockertest.Standin(t, plain)
	labels := dockertest.Labels(t, plain)
	parent := "/" + dockertest.Unique(t, "tbt-cgroup")
	t.Cleanup(func() { // after the containers are gone (cleanups run last first)
		for _, root := range []string{"/sys/fs/cgroup/memory", "/sys/fs/cgroup"} {
			_ = os.Remove(filepath.Join(root, parent))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e, err := docker.Connect(ctx, docker.Config{CgroupParent: parent})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	spec := standinSpec(dockertest.Unique(t, "tbt-cgroup"), image, labels)
	res, err := plain.EnsureContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if dir := cgroupDir(parent, res.ID); dir != "" {
		t.Fatalf("a container of the plain engine is under %s", dir)
	}
	res, err = e.EnsureContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != docker.ActionRecreated {
		t.Errorf("the same spec under a cgroup parent: %s, want it recreated", res.Action)
	}
	if cgroupDir(parent, res.ID) == "" {
		t.Fatalf("container %s is not under the cgroup parent %s", res.ID, parent)
	}

	// A one-shot run is there too while it runs, beside the container.
	parentDir := filepath.Dir(cgroupDir(parent, res.ID))
	runErr := make(chan error, 1)
	go func() {
		code, err := e.Run(ctx, docker.RunSpec{
			Name: dockertest.Unique(t, "tbt-cgroup-run"), Image: image, Labels: labels,
			Cmd: []string{"sleep", "3s"}, Network: "none",
		})
		if err == nil && code != 0 {
			err = fmt.Errorf("exit %d", code)
		}
		runErr <- err
	}()
	most := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && most < 2; time.Sleep(50 * time.Millisecond) {
		entries, _ := os.ReadDir(parentDir)
		n := 0
		for _, en := range entries {
			if en.IsDir() {
				n++
			}
		}
		most = max(most, n)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("run: %v", err)
	}
	if most < 2 {
		t.Errorf("while a run ran, %s held %d containers' cgroups, want 2", parentDir, most)
	}
}

func TestCgroupParentChecked(t *testing.T) {
	for _, bad := range []string{"../x", "/a//b", "a b", "/a/../b", "/" + strings.Repeat("x", 65), "a;b"} {
		if _, err := docker.Connect(context.Background(), docker.Config{CgroupParent: bad}); err == nil || !strings.Contains(err.Error(), "cgroup parent") {
			t.Errorf("cgroup parent %q: %v, want refused", bad, err)
		}
	}
}
