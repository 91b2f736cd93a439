package engine

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// The reproduction: a verb's exec output was read without a bound.
// A command in an app's container (limited to 256 MiB) that prints 16 MiB
// is cut off at maxExecRead, and the error says so.
func TestExecOutputIsBounded(t *testing.T) {
	d := dockertest.Engine(t)
	image := dockertest.BuildGoImage(t, d, "../deploy/docker/testdata/runner", "toolbox-test/runner:dev")
	labels := dockertest.Labels(t, d)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	app := dockertest.Unique(t, "tbt-exec")
	if _, err := d.EnsureContainer(ctx, docker.ContainerSpec{Name: stack.ContainerName(app, "svc"), Image: image, Cmd: []string{"sleep"},
		Labels: labels, Network: "none", MemoryLimit: 256 << 20}); err != nil {
		t.Fatal(err)
	}
	e := New(Config{Labels: labels})
	t.Cleanup(func() { _ = e.Close() })

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := e.Exec(ctx, app, "svc", []string{"/runner", "loud", strconv.Itoa(16 << 20)})
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "printed more than 4 MiB, so the toolbox stopped reading it") {
		t.Errorf("Exec of 32 MiB of output = %.300v, want it stopped at 4 MiB", err)
	}
	t.Logf("Exec of 32 MiB of output: %.1f MiB allocated, %v", float64(after.TotalAlloc-before.TotalAlloc)/(1<<20), err != nil)
	if got := after.TotalAlloc - before.TotalAlloc; got > 12<<20 {
		t.Errorf("Exec allocated %d MiB reading it, want under 12", got>>20)
	}
	if err != nil && len(err.Error()) > 2000 {
		t.Errorf("the error is %d bytes long, want under 2000", len(err.Error()))
	}

	// Within the budget, a failure quotes the end of stderr, bounded.
	_, err = e.Exec(ctx, app, "svc", []string{"/runner", "loud", "100000", "line"})
	if err == nil || !strings.Contains(err.Error(), "exited with 1") || !strings.HasSuffix(err.Error(), "last words") || len(err.Error()) > 1200 {
		t.Errorf("Exec of a loud failure = %d bytes %.200q…, want the exit and the last words, under 1200 bytes", len(errText(err)), errText(err))
	}
	if out, err := e.Exec(ctx, app, "svc", []string{"/runner", "exit", "0"}); err != nil || out != "out" {
		t.Errorf("Exec(exit 0) = %q, %v; want %q", out, err, "out")
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestCapture(t *testing.T) {
	budget := newReadBudget(10)
	first, last := &capture{budget: budget, keep: 3}, &capture{budget: budget, keep: 3, last: true}
	for _, w := range []struct {
		c *capture
		s string
	}{{first, "abcd"}, {last, "12"}, {last, "345"}} {
		if _, err := w.c.Write([]byte(w.s)); err != nil {
			t.Fatalf("Write(%q) within budget: %v", w.s, err)
		}
	}
	if first.String() != "abc" || last.String() != "345" {
		t.Errorf("captured %q and %q, want %q and %q", first.String(), last.String(), "abc", "345")
	}
	if _, err := last.Write([]byte("xy")); err == nil || !strings.Contains(err.Error(), "more than 10 bytes") {
		t.Errorf("Write past the budget = %v, want an error", err)
	}
}
