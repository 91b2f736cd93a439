package docker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// runner builds the test program testdata/runner (see its doc) as an image.
func runner(t *testing.T, e *docker.Engine) string {
	t.Helper()
	return dockertest.BuildGoImage(t, e, "./testdata/runner", "toolbox-test/runner:dev")
}

// assertGone fails the test if a container called name is left.
func assertGone(t *testing.T, e *docker.Engine, labels map[string]string, name string) {
	t.Helper()
	cs, err := e.Containers(context.Background(), labels)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Name == name {
			t.Errorf("container %s is left after Run (state %s)", name, c.State)
		}
	}
}

// TestRunStream sends 64 MiB of random data through a container's stdin
// and back on its stdout. It is not parallel, so that it can tell that the
// data was streamed rather than held in memory.
func TestRunStream(t *testing.T) {
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, 2*time.Minute)
	const size = 64 * mib

	inHash, outHash := sha256.New(), sha256.New()
	in := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), inHash)
	counted := &countWriter{w: outHash}
	var stderr bytes.Buffer
	name := dockertest.Unique(t, "tbt-run-stream")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	code, err := e.Run(ctx, docker.RunSpec{
		Name: name, Image: image, Cmd: []string{"cat"}, Labels: labels, Network: "none",
		Stdin: in, Stdout: counted, Stderr: &stderr,
	})
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if err != nil || code != 0 {
		t.Fatalf("Run(cat, 64 MiB) = %d, %v; want 0, nil", code, err)
	}
	if counted.n != size || !bytes.Equal(inHash.Sum(nil), outHash.Sum(nil)) {
		t.Errorf("stdout: %d bytes, sha256 %x; want %d bytes, sha256 %x", counted.n, outHash.Sum(nil), size, inHash.Sum(nil))
	}
	if got := stderr.String(); got != "eof" {
		t.Errorf("stderr = %q, want %q (the process saw its stdin end)", got, "eof")
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("64 MiB in and out in %s (%.0f MiB/s), %.1f MiB allocated", elapsed, float64(size)/mib/elapsed.Seconds(), float64(allocated)/mib)
	if allocated > size/4 {
		t.Errorf("Run allocated %d MiB for a 64 MiB stream: it is buffered, not streamed", allocated/mib)
	}
	assertGone(t, e, labels, name)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)
	tests := []struct {
		name                 string
		cmd                  []string
		stdin                io.Reader
		code                 int
		wantOut, wantErrText string
	}{
		{"zero", []string{"exit", "0"}, nil, 0, "out", "err"},
		{"non-zero", []string{"exit", "3"}, nil, 3, "out", "err"},
		{"no stdin is an empty one", []string{"cat"}, nil, 0, "", "eof"},
		{"an empty stdin", []string{"cat"}, strings.NewReader(""), 0, "", "eof"},
		{"exits without reading stdin", []string{"exit", "4"}, &slowReader{}, 4, "out", "err"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			name := dockertest.Unique(t, "tbt-run-exit")
			code, err := e.Run(ctx, docker.RunSpec{
				Name: name, Image: image, Cmd: tc.cmd, Labels: labels,
				Stdin: tc.stdin, Stdout: &stdout, Stderr: &stderr,
			})
			if err != nil || code != tc.code {
				t.Errorf("Run(%q) = %d, %v; want %d, nil", tc.cmd, code, err, tc.code)
			}
			if stdout.String() != tc.wantOut || stderr.String() != tc.wantErrText {
				t.Errorf("Run(%q) wrote %q, %q; want %q, %q", tc.cmd, stdout.String(), stderr.String(), tc.wantOut, tc.wantErrText)
			}
			assertGone(t, e, labels, name)
		})
	}

	t.Run("no such image", func(t *testing.T) {
		t.Parallel()
		name := dockertest.Unique(t, "tbt-run-noimage")
		_, err := e.Run(ctx, docker.RunSpec{Name: name, Image: "toolbox-test/no-such-image:dev", Labels: labels})
		if err == nil || !strings.Contains(err.Error(), "not on the engine") || !strings.Contains(err.Error(), name) {
			t.Errorf("Run(no such image) = %v, want an error naming %s and saying the image is not on the engine", err, name)
		}
	})
}

// slowReader gives a byte every 10 ms, forever.
type slowReader struct{}

func (slowReader) Read(p []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = 'x'
	return 1, nil
}

func TestRunReadOnlyMount(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)
	vol := dockertest.Unique(t, "tbt-run-vol")
	if err := e.EnsureVolume(ctx, vol, labels); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		var stderr bytes.Buffer
		code, err := e.Run(ctx, docker.RunSpec{
			Name: dockertest.Unique(t, "tbt-run-write"), Image: image, Cmd: []string{"write", "/data/x"}, Labels: labels,
			Mounts: []docker.Mount{{Volume: vol, Target: "/data", ReadOnly: ro}},
			Stderr: &stderr,
		})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !ro && code != 0:
			t.Errorf("writing to a writable volume: exit %d, %q; want 0", code, stderr.String())
		case ro && (code != 1 || !strings.Contains(stderr.String(), "read-only file system")):
			t.Errorf("writing to a read-only volume: exit %d, %q; want 1 and a read-only file system", code, stderr.String())
		}
	}
}

func TestRunEnvNotInCommandLine(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)
	const secret = "s3cret-4a9e"
	var stdout, stderr bytes.Buffer
	code, err := e.Run(ctx, docker.RunSpec{
		Name: dockertest.Unique(t, "tbt-run-env"), Image: image, Cmd: []string{"env", "RESTIC_PASSWORD"}, Labels: labels,
		Env:    map[string]string{"RESTIC_PASSWORD": secret, "OTHER": "1"},
		Stdout: &stdout, Stderr: &stderr,
	})
	if err != nil || code != 0 {
		t.Fatalf("Run(env) = %d, %v (stderr %q)", code, err, stderr.String())
	}
	value, cmdline, _ := strings.Cut(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if value != secret {
		t.Errorf("the process's RESTIC_PASSWORD = %q, want %q", value, secret)
	}
	if want := "/runner env RESTIC_PASSWORD "; cmdline != want || strings.Contains(cmdline, secret) {
		t.Errorf("/proc/1/cmdline = %q, want %q", cmdline, want)
	}
}

func TestRunCancel(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx, cancel := context.WithCancel(timeout(t, time.Minute))
	defer cancel()
	name := dockertest.Unique(t, "tbt-run-cancel")

	// The process says "ready" once running; a second run of the name is
	// then refused, and the first is cancelled. Its stdin never ends: ctx
	// must not wait for it.
	pr, pw := io.Pipe()
	defer pw.Close()
	ready := make(chan struct{})
	var once sync.Once
	out := writerFunc(func(p []byte) (int, error) {
		once.Do(func() { close(ready) })
		return len(p), nil
	})
	done := make(chan error, 1)
	var start time.Time
	go func() {
		_, err := e.Run(ctx, docker.RunSpec{Name: name, Image: image, Cmd: []string{"sleep"}, Labels: labels, Stdin: pr, Stdout: out})
		done <- err
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run(sleep) ended before the process was ready: %v", err)
	}
	if _, err := e.Run(ctx, docker.RunSpec{Name: name, Image: image, Cmd: []string{"exit", "0"}, Labels: labels}); !errors.Is(err, docker.ErrBusy) {
		t.Errorf("a second Run of a running name = %v, want ErrBusy", err)
	}
	start = time.Now()
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), name) {
		t.Errorf("Run cancelled = %v, want context.Canceled naming %s", err, name)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Run took %s to return after cancel", d)
	}
	t.Logf("Run returned %s after cancel", time.Since(start))
	assertGone(t, e, labels, name)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRunStdinReadError(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)
	boom := errors.New("the dump broke")
	name := dockertest.Unique(t, "tbt-run-broken")
	var stdout, stderr bytes.Buffer
	_, err := e.Run(ctx, docker.RunSpec{
		Name: name, Image: image, Cmd: []string{"cat"}, Labels: labels,
		Stdin:  io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(boom)),
		Stdout: &stdout, Stderr: &stderr,
	})
	if !errors.Is(err, boom) {
		t.Errorf("Run with a failing stdin = %v, want %v", err, boom)
	}
	if strings.Contains(stderr.String(), "eof") {
		t.Errorf("the process saw its stdin end (stderr %q): a truncated stream passed for a whole one", stderr.String())
	}
	assertGone(t, e, labels, name)
}

func TestRunOutputWriteError(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)
	full := errors.New("disk full")
	name := dockertest.Unique(t, "tbt-run-full")
	_, err := e.Run(ctx, docker.RunSpec{
		Name: name, Image: image, Cmd: []string{"sleep"}, Labels: labels,
		Stdout: writerFunc(func([]byte) (int, error) { return 0, full }),
	})
	if !errors.Is(err, full) {
		t.Errorf("Run with a failing stdout = %v, want %v", err, full)
	}
	assertGone(t, e, labels, name)
}

func TestRunLeftover(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)
	runLabels := map[string]string{docker.LabelRun: "1"}
	for k, v := range labels {
		runLabels[k] = v
	}
	raw := rawClient(t)

	// created: a crash between create and start.
	created := dockertest.Unique(t, "tbt-run-created")
	if _, err := raw.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: created, Config: &container.Config{Image: image, Cmd: []string{"exit", "0"}, Labels: runLabels},
	}); err != nil {
		t.Fatal(err)
	}
	// exited: a crash before the removal.
	exited := dockertest.Unique(t, "tbt-run-exited")
	if _, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: exited, Image: image, Cmd: []string{"exit", "0"}, Labels: runLabels, Restart: "no"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitExit(ctx, exited); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{created, exited} {
		var stdout bytes.Buffer
		code, err := e.Run(ctx, docker.RunSpec{Name: name, Image: image, Cmd: []string{"exit", "5"}, Labels: labels, Stdout: &stdout})
		if err != nil || code != 5 || stdout.String() != "out" {
			t.Errorf("Run over a leftover %s = %d, %v, %q; want 5, nil, \"out\"", name, code, err, stdout.String())
		}
		assertGone(t, e, labels, name)
	}

	// Running, made by Run in another process (one stopped mid-run): waited
	// for while it ends by itself, then replaced...
	ending := dockertest.Unique(t, "tbt-run-ending")
	if _, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: ending, Image: image, Cmd: []string{"sleep"}, Labels: runLabels, Restart: "no"}); err != nil {
		t.Fatal(err)
	}
	killer := rawClient(t)
	go func() { // it ends by itself, a little later
		time.Sleep(2 * time.Second)
		_, _ = killer.ContainerKill(context.Background(), ending, client.ContainerKillOptions{})
	}()
	if code, err := e.Run(ctx, docker.RunSpec{Name: ending, Image: image, Cmd: []string{"exit", "0"}, Labels: labels}); err != nil || code != 0 {
		t.Errorf("Run over a leftover that ends = %d, %v; want it waited for and replaced", code, err)
	}
	// ...and busy, left running, when it does not end within the caller's time.
	running := dockertest.Unique(t, "tbt-run-running")
	if _, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: running, Image: image, Cmd: []string{"sleep"}, Labels: runLabels, Restart: "no"}); err != nil {
		t.Fatal(err)
	}
	shortCtx, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	_, err := e.Run(shortCtx, docker.RunSpec{Name: running, Image: image, Cmd: []string{"exit", "0"}, Labels: labels})
	cancelShort()
	if !errors.Is(err, docker.ErrBusy) {
		t.Errorf("Run over a running container = %v, want ErrBusy", err)
	}
	// Not made by Run, stopped: refused, and left alone.
	theirs := dockertest.Unique(t, "tbt-run-theirs")
	if _, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: theirs, Image: image, Cmd: []string{"exit", "0"}, Labels: labels, Restart: "no"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.WaitExit(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Run(ctx, docker.RunSpec{Name: theirs, Image: image, Cmd: []string{"exit", "0"}, Labels: labels}); !errors.Is(err, docker.ErrNotOurs) {
		t.Errorf("Run over a container Run did not make = %v, want ErrNotOurs", err)
	}
	cs, err := e.Containers(ctx, labels)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, c := range cs {
		states[c.Name] = c.State
	}
	if states[running] != "running" || states[theirs] != "exited" {
		t.Errorf("after the refused runs: %s is %q, %s is %q; want running and exited", running, states[running], theirs, states[theirs])
	}
}

// TestRunCancelStdinNeverEnds cancels runs whose stdin never ends, one
// giving bytes forever and one silent: the process must never see its
// stdin end, else a truncated stream would pass for a whole one (restic
// would save it as a snapshot). The process creates a file in a volume at
// EOF; none must be there after the cancel.
func TestRunCancelStdinNeverEnds(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	stdins := []struct {
		name string
		new  func(t *testing.T) io.Reader
	}{
		{"endless", func(*testing.T) io.Reader { return slowReader{} }},
		{"silent", func(t *testing.T) io.Reader {
			pr, pw := io.Pipe()
			t.Cleanup(func() { pw.Close() })
			return pr
		}},
	}
	for _, in := range stdins {
		for round := range 3 {
			t.Run(fmt.Sprintf("%s-%d", in.name, round), func(t *testing.T) {
				t.Parallel()
				ctx := timeout(t, time.Minute)
				vol := dockertest.Unique(t, "tbt-run-noeof")
				if err := e.EnsureVolume(ctx, vol, labels); err != nil {
					t.Fatal(err)
				}
				mounts := []docker.Mount{{Volume: vol, Target: "/data"}}
				name := dockertest.Unique(t, "tbt-run-noeof")
				runCtx, cancel := context.WithCancel(ctx)
				defer cancel()
				ready := make(chan struct{})
				var once sync.Once
				out := writerFunc(func(p []byte) (int, error) {
					once.Do(func() { close(ready) })
					return len(p), nil
				})
				done := make(chan error, 1)
				go func() {
					_, err := e.Run(runCtx, docker.RunSpec{
						Name: name, Image: image, Cmd: []string{"drain", "/data/eof"}, Labels: labels, Mounts: mounts,
						Stdin: in.new(t), Stdout: out,
					})
					done <- err
				}()
				select {
				case <-ready:
				case err := <-done:
					t.Fatalf("Run(drain) ended before the process was ready: %v", err)
				}
				time.Sleep(100 * time.Millisecond) // the process is reading
				start := time.Now()
				cancel()
				err := <-done
				elapsed := time.Since(start)
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run cancelled = %v, want context.Canceled", err)
				}
				if elapsed > 4*time.Second {
					t.Errorf("Run took %s to return after cancel", elapsed)
				}
				t.Logf("Run returned %s after cancel", elapsed)
				assertGone(t, e, labels, name)

				var stderr bytes.Buffer
				code, err := e.Run(ctx, docker.RunSpec{
					Name: dockertest.Unique(t, "tbt-run-exists"), Image: image, Cmd: []string{"exists", "/data/eof"}, Labels: labels, Mounts: mounts,
					Stderr: &stderr,
				})
				if err != nil || code != 3 {
					t.Errorf("after the cancel, exists /data/eof = %d, %v (stderr %q); want 3 (the process never saw EOF)", code, err, stderr.String())
				}

				// The marker does tell: a stdin that ends makes it.
				if round == 0 && in.name == "endless" {
					code, err := e.Run(ctx, docker.RunSpec{
						Name: dockertest.Unique(t, "tbt-run-drain"), Image: image, Cmd: []string{"drain", "/data/eof"}, Labels: labels, Mounts: mounts,
						Stdin: strings.NewReader("whole"),
					})
					if err != nil || code != 0 {
						t.Fatalf("Run(drain) of a whole stdin = %d, %v; want 0, nil", code, err)
					}
					code, err = e.Run(ctx, docker.RunSpec{
						Name: dockertest.Unique(t, "tbt-run-exists"), Image: image, Cmd: []string{"exists", "/data/eof"}, Labels: labels, Mounts: mounts,
					})
					if err != nil || code != 0 {
						t.Errorf("after a whole stdin, exists /data/eof = %d, %v; want 0", code, err)
					}
				}
			})
		}
	}
}

// TestRunExitWhileStdinSilent runs a process that exits at once, without
// reading its stdin, whose source never writes (a restic that fails on a
// wrong password before pg_dump has written): Run returns the exit code
// without waiting for the source, closes it when it can, and its copying
// ends when the source's Read returns.
func TestRunExitWhileStdinSilent(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	for _, closable := range []bool{true, false} {
		t.Run(fmt.Sprintf("closable=%t", closable), func(t *testing.T) {
			t.Parallel()
			ctx := timeout(t, time.Minute)
			pr, pw := io.Pipe()
			defer pw.Close()
			counted := &readCounter{r: pr}
			var stdin io.Reader = counted
			if closable {
				stdin = struct {
					io.Reader
					io.Closer
				}{counted, pr}
			}
			name := dockertest.Unique(t, "tbt-run-silent")
			runCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			var stdout bytes.Buffer
			start := time.Now()
			code, err := e.Run(runCtx, docker.RunSpec{
				Name: name, Image: image, Cmd: []string{"exit", "12"}, Labels: labels,
				Stdin: stdin, Stdout: &stdout,
			})
			elapsed := time.Since(start)
			t.Logf("Run returned %d, %v in %s", code, err, elapsed)
			if err != nil || code != 12 || stdout.String() != "out" {
				t.Fatalf("Run(exit 12) with a silent stdin = %d, %v, %q; want 12, nil, \"out\"", code, err, stdout.String())
			}
			if elapsed > 5*time.Second {
				t.Errorf("Run took %s", elapsed)
			}
			assertGone(t, e, labels, name)

			if closable {
				// Run closed the reader: the writer learns at once, and the
				// Read under way has returned.
				if _, err := pw.Write([]byte("late")); !errors.Is(err, io.ErrClosedPipe) {
					t.Errorf("writing to the stdin pipe after Run = %v, want io.ErrClosedPipe (Run closes Stdin)", err)
				}
			} else {
				pw.Close() // the source ends at last
			}
			deadline := time.Now().Add(2 * time.Second)
			for counted.reading.Load() != 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := counted.reading.Load(); n != 0 {
				t.Errorf("%d Read of Stdin still under way after the source ended: the copying goroutine is left", n)
			}
		})
	}
}

// readCounter counts the Reads under way.
type readCounter struct {
	r       io.Reader
	reading atomic.Int32
}

func (c *readCounter) Read(p []byte) (int, error) {
	c.reading.Add(1)
	defer c.reading.Add(-1)
	return c.r.Read(p)
}

// A run's memory reservation reaches the engine while it runs (the capacity
// guard counts it there); one over the limit is refused before any call.
func TestRunReservation(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, time.Minute)
	name := dockertest.Unique(t, "tbt-run-res")
	// cat runs until its stdin closes: once the reservation is seen.
	stdin, feed := io.Pipe()
	var seen int64
	go func() {
		defer feed.Close()
		for ctx.Err() == nil {
			if rs, err := e.RunningReservations(ctx); err == nil {
				for _, r := range rs {
					if r.Container == name {
						seen = r.Bytes
						return
					}
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	if code, err := e.Run(ctx, docker.RunSpec{
		Name: name, Image: image, Cmd: []string{"cat"}, Stdin: stdin, Stdout: io.Discard, Labels: labels, MemoryReservation: 48 << 20,
	}); err != nil || code != 0 {
		t.Fatalf("Run = %d, %v", code, err)
	}
	if seen != 48<<20 {
		t.Errorf("reservation seen while it ran = %d, want 48 MiB", seen)
	}
	_, err := e.Run(ctx, docker.RunSpec{Name: name + "-bad", Image: image, Cmd: []string{"exit", "0"}, Labels: labels,
		MemoryLimit: 32 << 20, MemoryReservation: 64 << 20})
	if err == nil || !strings.Contains(err.Error(), "memory reservation negative or over the limit") {
		t.Errorf("Run with a reservation over the limit = %v", err)
	}
}
