// Package dockertest helps tests use the machine's real Docker engine: it
// connects (failing in CI, skipping elsewhere when there is none), builds
// FROM scratch images from Go packages, names objects uniquely and removes
// what a test labelled as its own. Only tests import it.
package dockertest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// Labels every test object carries.
const (
	LabelTest        = "toolbox.test"         // "1"
	LabelTestRun     = "toolbox.test.run"     // unique per Labels call
	LabelContentHash = "toolbox.content-hash" // sha256 of the binary in a BuildGoImage image
)

// StandinPackage is the stand-in app; StandinImage is the tag Standin builds.
const (
	StandinPackage = "github.com/toolbox-collective/toolbox/internal/standin"
	StandinImage   = "toolbox-test/standin:dev"
	// StandinBinary is where the stand-in sits in its image.
	StandinBinary = "/standin"
)

const cleanupTimeout = time.Minute

// Engine connects to the engine named by DOCKER_HOST (or the local socket)
// and closes the connection when the test ends. Without an engine the test
// fails under CI=true and is skipped otherwise.
func Engine(t testing.TB) *docker.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e, err := docker.Connect(ctx, docker.Config{})
	if err != nil {
		msg := fmt.Sprintf("this test needs a Docker engine: start dockerd (socket /var/run/docker.sock) or set DOCKER_HOST; %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// Unique returns prefix followed by a random suffix: a valid, unused name
// for a container, network or volume.
func Unique(t testing.TB, prefix string) string {
	t.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(prefix) + "-" + hex.EncodeToString(b[:])
}

// Labels returns labels unique to this call, including toolbox.test=1, and
// removes every container, network and volume carrying them when the test
// ends (containers first).
func Labels(t testing.TB, e *docker.Engine) map[string]string {
	t.Helper()
	labels := map[string]string{LabelTest: "1", LabelTestRun: Unique(t, "run")}
	t.Cleanup(func() { RemoveLabelled(t, e, labels) })
	return labels
}

// RemoveLabelled removes the containers, networks and volumes carrying all
// the labels, reporting failures as test errors.
func RemoveLabelled(t testing.TB, e *docker.Engine, labels map[string]string) {
	t.Helper()
	if labels[LabelTestRun] == "" && labels[LabelTest] == "" {
		t.Errorf("dockertest: refusing to remove objects by labels %v: they are not test labels", labels)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	cs, err := e.Containers(ctx, labels)
	if err != nil {
		t.Errorf("dockertest cleanup: %v", err)
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() {
			if err := e.RemoveContainer(ctx, c.Name); err != nil {
				t.Errorf("dockertest cleanup: %v", err)
			}
		})
	}
	wg.Wait()
	nets, err := e.Networks(ctx, labels)
	if err != nil {
		t.Errorf("dockertest cleanup: %v", err)
	}
	for _, n := range nets {
		if err := e.RemoveNetwork(ctx, n); err != nil {
			t.Errorf("dockertest cleanup: %v", err)
		}
	}
	vols, err := e.Volumes(ctx, labels)
	if err != nil {
		t.Errorf("dockertest cleanup: %v", err)
	}
	for _, v := range vols {
		if err := e.RemoveVolume(ctx, v); err != nil {
			t.Errorf("dockertest cleanup: %v", err)
		}
	}
}

type build struct {
	once sync.Once
	ref  string
	err  error
}

// builds caches BuildGoImage per tag for the life of the test binary: a test
// helper's process-wide cache, the one exception to "no globals".
var builds sync.Map // tag → *build

// BuildGoImage compiles the Go main package pkg (an import path or a
// directory) with CGO_ENABLED=0 for the engine's platform and builds tag
// FROM scratch with the binary at /<name> as entrypoint. An image of that
// tag holding the same binary (by content hash) is reused, so reruns are
// fast; within one process each tag is built once.
func BuildGoImage(t testing.TB, e *docker.Engine, pkg, tag string) string {
	t.Helper()
	v, _ := builds.LoadOrStore(tag, &build{})
	b := v.(*build)
	b.once.Do(func() { b.ref, b.err = buildGoImage(e, pkg, tag) })
	if b.err != nil {
		t.Fatalf("dockertest: build image %s from %s: %v", tag, pkg, b.err)
	}
	return b.ref
}

// Standin builds (or reuses) the stand-in app image and returns its tag.
func Standin(t testing.TB, e *docker.Engine) string {
	t.Helper()
	return BuildGoImage(t, e, StandinPackage, StandinImage)
}

func buildGoImage(e *docker.Engine, pkg, tag string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	info, err := e.Info(ctx)
	if err != nil {
		return "", err
	}
	name := path.Base(filepath.ToSlash(pkg))
	if name == "." || name == ".." || name == "/" {
		abs, err := filepath.Abs(pkg)
		if err != nil {
			return "", err
		}
		name = filepath.Base(abs)
	}
	dir, err := os.MkdirTemp("", "dockertest-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, name)

	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+info.GOARCH())
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	hash, err := fileHash(bin)
	if err != nil {
		return "", err
	}

	old, err := e.Image(ctx, tag)
	if err == nil && old.Labels[LabelContentHash] == hash {
		return tag, nil
	}
	labels := map[string]string{LabelTest: "1", LabelContentHash: hash}
	files := map[string]docker.FileSpec{name: {SourcePath: bin, Mode: 0o755}}
	if err := e.BuildScratchImage(ctx, tag, files, []string{"/" + name}, labels); err != nil {
		return "", err
	}
	if old.ID != "" && old.Labels[LabelTest] == "1" {
		// The previous build of this tag, now untagged; still in use by
		// someone's container it stays (the engine refuses), which is fine.
		if cur, err := e.Image(ctx, tag); err == nil && cur.ID != old.ID {
			_ = e.RemoveImage(ctx, old.ID)
		}
	}
	return tag, nil
}

func fileHash(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
