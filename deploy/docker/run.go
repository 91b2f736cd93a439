package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// LabelRun ("1") marks the containers Run creates: a stopped one is a
// leftover of a crash, which the next Run of its name removes.
const LabelRun = "toolbox.run"

// ErrBusy is wrapped by Run when a container of the name is running (a run
// of that name is under way, here or in another process).
var ErrBusy = errors.New("a container of that name is running")

const (
	// runStopTimeout is how long a cancelled run's process has between
	// SIGTERM and SIGKILL: restic removes its lock on SIGTERM.
	runStopTimeout = 5 // seconds
	// runCleanupTimeout bounds stopping and removing a run's container,
	// which happens on a fresh context.
	runCleanupTimeout = 30 * time.Second
	// runKillTimeout bounds killing a run's process before its stdin's
	// connection closes, on a fresh context.
	runKillTimeout = 10 * time.Second
	// runStdinGrace is how long Run waits, once the process has gone, for
	// the copying of Stdin to end after closing it (as os/exec's WaitDelay).
	runStdinGrace = time.Second
)

// RunSpec is a container that runs once: created, attached, started, waited
// for and removed.
type RunSpec struct {
	Name       string   // container name (unique; the caller makes it)
	Image      string   // must be on the engine
	Cmd        []string // the command (the image's entrypoint is kept unless Entrypoint is set)
	Entrypoint []string
	Env        map[string]string // secrets go here, never in Cmd
	Labels     map[string]string // LabelRun is added
	Mounts     []Mount
	Network    string // "": the engine's default; "none" for none
	User       string
	GroupAdd   []string // supplementary groups, such as the engine socket's
	// MemoryLimit is in bytes; 0 means none.
	MemoryLimit int64
	// MemoryReservation is in bytes, 0 none: what the run is counted on to
	// use (the capacity guard counts it while the run lasts).
	MemoryReservation int64
	// CgroupParent is set by the engine from its Config.
	CgroupParent string
	// Stdin nil gives the process no stdin (an immediate EOF); else it is
	// streamed in and closed after the reader's EOF, so that the process sees
	// EOF. A read error kills the process instead, and so does ctx ending or
	// Run giving up otherwise: a truncated stream must not pass for a
	// complete one.
	//
	// When the process has gone (or ctx ended) before the reader's EOF, Run
	// closes Stdin if it is an io.Closer and waits at most 1 s more for the
	// copying, which ends at the reader's next return. Stdin must therefore
	// be closable, or its Read must return eventually (the source ends),
	// else the copying goroutine is left blocked.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output, kept apart; nil
	// discards. A write error stops the run.
	Stdout, Stderr io.Writer
}

func (s RunSpec) validate() error {
	var problems []string
	if s.Name == "" {
		problems = append(problems, "no name")
	}
	if s.Image == "" {
		problems = append(problems, "no image")
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			problems = append(problems, fmt.Sprintf("environment variable name %q", k))
		}
	}
	problems = append(problems, mountProblems(s.Mounts)...)
	if s.MemoryLimit < 0 {
		problems = append(problems, "negative memory limit")
	}
	if s.MemoryReservation < 0 || (s.MemoryLimit > 0 && s.MemoryReservation > s.MemoryLimit) {
		problems = append(problems, "memory reservation negative or over the limit")
	}
	if len(problems) > 0 {
		return fmt.Errorf("docker: run %q: invalid spec: %s", s.Name, strings.Join(problems, "; "))
	}
	return nil
}

// runConfig translates a validated RunSpec into the Engine API's creation
// types. It is pure.
func runConfig(s RunSpec) (*container.Config, *container.HostConfig) {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelRun] = "1"
	stdin := s.Stdin != nil
	cfg := &container.Config{
		Image:        s.Image,
		Cmd:          s.Cmd,
		Entrypoint:   s.Entrypoint,
		Env:          envList(s.Env),
		Labels:       labels,
		User:         s.User,
		AttachStdin:  stdin,
		AttachStdout: true,
		AttachStderr: true,
		OpenStdin:    stdin,
		// The engine closes the process's stdin when the attached client
		// ends its side; without StdinOnce it would close stdout instead.
		StdinOnce: stdin,
	}
	hc := &container.HostConfig{
		Mounts:        apiMounts(s.Mounts),
		NetworkMode:   container.NetworkMode(s.Network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		Resources:     container.Resources{Memory: s.MemoryLimit, MemoryReservation: s.MemoryReservation, CgroupParent: s.CgroupParent},
		GroupAdd:      s.GroupAdd,
	}
	return cfg, hc
}

// Run runs spec's container once and returns the process's exit code (a
// non-zero one is not an error). Output is attached before the start, so
// none is lost, and streamed: nothing is held in memory.
//
// The container is always removed before Run returns, also when ctx ends:
// the process then gets SIGTERM, and SIGKILL 5 s later; with Stdin set it
// is killed (SIGKILL) at once instead, before its stdin's connection
// closes, so that it never sees a stream cut short as a whole one (restic
// then leaves its lock, a stale one). A stopped
// container of the name that Run made (LabelRun) is a leftover and removed
// first; a running one is refused with ErrBusy, one Run did not make with
// ErrNotOurs. An error in removing the container is returned along with
// the exit code.
//
// Run returns once the process has gone and its output has ended; it does
// not wait for a Read of Stdin that blocks (see RunSpec.Stdin).
func (e *Engine) Run(ctx context.Context, spec RunSpec) (exitCode int, err error) {
	spec.CgroupParent = e.cgroupParent
	if err := spec.validate(); err != nil {
		return -1, err
	}
	if _, busy := e.runs.LoadOrStore(spec.Name, struct{}{}); busy {
		return -1, fmt.Errorf("docker: run %q: %w", spec.Name, ErrBusy)
	}
	defer e.runs.Delete(spec.Name)

	id, err := e.createRun(ctx, spec)
	if err != nil {
		return -1, fmt.Errorf("docker: run %q: %w", spec.Name, err)
	}
	exited := false
	defer func() {
		if rerr := e.removeRun(ctx, id, !exited); rerr != nil {
			err = errors.Join(err, fmt.Errorf("docker: run %q: remove container: %w", spec.Name, rerr))
		}
	}()
	exitCode, exited, err = e.runAttached(ctx, id, spec)
	if err != nil {
		return exitCode, fmt.Errorf("docker: run %q: %w", spec.Name, err)
	}
	return exitCode, nil
}

// createRun removes a leftover of the name and creates the container.
func (e *Engine) createRun(ctx context.Context, spec RunSpec) (string, error) {
	unlock := e.lock(spec.Name)
	defer unlock()
	cur, found, err := e.lookup(ctx, spec.Name)
	if err != nil {
		return "", fmt.Errorf("inspect: %w", err)
	}
	if found {
		if cur.Config == nil || cur.Config.Labels[LabelRun] == "" {
			return "", ErrNotOurs
		}
		if st := cur.State; st != nil && (st.Running || st.Paused || st.Restarting) {
			// Not one of this process's runs (Run refuses those first): most
			// likely a process stopped in the middle of one left it, and it
			// ends by itself once it sees its input closed. Wait a while.
			if !e.waitStopped(ctx, spec.Name, leftoverWait) {
				return "", ErrBusy
			}
		}
		if _, err := e.cli.ContainerRemove(ctx, cur.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("remove the leftover container: %w", err)
		}
	}
	cfg, hc := runConfig(spec)
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: spec.Name, Config: cfg, HostConfig: hc})
	if err != nil && ctx.Err() != nil {
		// The engine may have created it all the same.
		e.removeCreated(ctx, spec.Name)
	}
	switch {
	case cerrdefs.IsConflict(err):
		// Made meanwhile, by another process.
		return "", fmt.Errorf("create: %w: %w", ErrBusy, err)
	case cerrdefs.IsNotFound(err):
		return "", fmt.Errorf("create: image %q is not on the engine (pull or build it first): %w", spec.Image, err)
	case err != nil:
		return "", fmt.Errorf("create: %w", err)
	}
	return res.ID, nil
}

// leftoverWait bounds how long a run waits for a running leftover of its
// name to end.
const leftoverWait = 2 * time.Minute

// waitStopped polls the container called name until it no longer runs (or
// is gone), for at most d; it says whether it stopped.
func (e *Engine) waitStopped(ctx context.Context, name string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		cur, found, err := e.lookup(ctx, name)
		if err == nil && (!found || cur.State == nil || !(cur.State.Running || cur.State.Paused || cur.State.Restarting)) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// removeCreated removes, on a fresh context, the container called name if
// Run made it and it was never started. Failing, it leaves a leftover that
// the next Run of the name removes.
func (e *Engine) removeCreated(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runCleanupTimeout)
	defer cancel()
	cur, found, err := e.lookup(ctx, name)
	if err != nil || !found || cur.Config == nil || cur.Config.Labels[LabelRun] == "" || cur.State == nil || cur.State.Status != container.StateCreated {
		return
	}
	_, _ = e.cli.ContainerRemove(ctx, cur.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
}

// runAttached attaches to the created container, starts it and streams
// until it exits. exited says the process is known to have ended.
func (e *Engine) runAttached(ctx context.Context, id string, spec RunSpec) (code int, exited bool, err error) {
	att, err := e.cli.ContainerAttach(ctx, id, client.ContainerAttachOptions{
		Stream: true, Stdin: spec.Stdin != nil, Stdout: true, Stderr: true,
	})
	if err != nil {
		return -1, false, fmt.Errorf("attach: %w", err)
	}
	defer att.Close()
	if _, ok := att.Conn.(client.CloseWriter); spec.Stdin != nil && !ok {
		// The process would never see the end of its input.
		return -1, false, errors.New("attach: the connection to the engine cannot end stdin alone (no CloseWrite)")
	}

	// abort ends the attachment of a process that may still run. With
	// stdin, closing the connection ends the process's stdin as if the
	// stream were whole (StdinOnce), so the process is killed first.
	var killErr error
	abort := sync.OnceFunc(func() {
		if spec.Stdin != nil {
			killErr = e.kill(ctx, id)
		}
		att.Close()
	})
	stopAborting := context.AfterFunc(ctx, abort)
	defer stopAborting()
	// aborted is abort's error, once it has run.
	aborted := func(err error) error {
		abort()
		if killErr != nil {
			return fmt.Errorf("%w (and killing the process: %v)", err, killErr)
		}
		return err
	}

	// Waiting for the next exit before the start cannot miss it.
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	wait := e.cli.ContainerWait(wctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})

	if _, err := e.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		// The engine may have started it all the same.
		return -1, false, aborted(fmt.Errorf("start: %w", err))
	}

	var f *feeder
	if spec.Stdin != nil {
		f = &feeder{e: e, ctx: ctx, id: id, att: &att.HijackedResponse, in: spec.Stdin, done: make(chan error, 1)}
		go func() { f.done <- f.run() }()
	}
	_, outErr := stdcopy.StdCopy(orDiscard(spec.Stdout), orDiscard(spec.Stderr), att.Reader)
	var res container.WaitResponse
	var waitErr error
	if outErr != nil {
		// The run cannot go on; removeRun stops the process.
		abort()
	} else {
		// The output has ended: the process has gone, or is going.
		select {
		case res = <-wait.Result:
			exited = true
			att.Close() // a feed blocked in writing returns
		case waitErr = <-wait.Error:
			abort()
		}
	}
	var inErr error
	if f != nil {
		inErr = f.stop()
	}
	switch {
	case ctx.Err() != nil:
		return -1, false, aborted(ctx.Err())
	case inErr != nil:
		return -1, exited, inErr
	case outErr != nil:
		return -1, exited, aborted(fmt.Errorf("copy output: %w", outErr))
	case waitErr != nil:
		return -1, false, aborted(fmt.Errorf("wait: %w", waitErr))
	case res.Error != nil && res.Error.Message != "":
		return -1, true, fmt.Errorf("wait: %s", res.Error.Message)
	}
	return int(res.StatusCode), true, nil
}

// kill sends the run's process SIGKILL on a fresh context. A process that
// has gone already is no error.
func (e *Engine) kill(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runKillTimeout)
	defer cancel()
	_, err := e.cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "KILL"})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return err
	}
	return nil
}

// feeder copies Stdin to the process's stdin.
type feeder struct {
	e    *Engine
	ctx  context.Context
	id   string
	att  *client.HijackedResponse
	in   io.Reader
	done chan error // run's result

	mu sync.Mutex
	// readErr is the error of a Read of in while Run waited for the
	// feeder; abandoned says Run no longer does (the process has gone, or
	// ctx ended): in's errors are then of Run's closing it.
	readErr   error
	abandoned bool
}

// run copies in to the process's stdin and ends it after in's EOF. When
// reading in fails, the process is killed before the connection closes, so
// that it never sees an EOF. Writing fails when the process has gone: not
// an error here, its exit code tells.
func (f *feeder) run() error {
	_, err := io.Copy(f.att.Conn, readerFunc(f.read))
	f.mu.Lock()
	readErr, abandoned := f.readErr, f.abandoned
	f.mu.Unlock()
	switch {
	case readErr != nil:
		kerr := f.e.kill(f.ctx, f.id)
		f.att.Close()
		if kerr != nil {
			return fmt.Errorf("read stdin: %w (and killing the process: %v)", readErr, kerr)
		}
		return fmt.Errorf("read stdin: %w", readErr)
	case err != nil || abandoned:
		return nil
	}
	if err := f.att.CloseWrite(); err != nil {
		f.att.Close()
		return fmt.Errorf("end stdin: %w", err)
	}
	return nil
}

func (f *feeder) read(p []byte) (int, error) {
	n, err := f.in.Read(p)
	if err != nil && err != io.EOF {
		f.mu.Lock()
		if !f.abandoned {
			f.readErr = err
		}
		f.mu.Unlock()
	}
	return n, err
}

// stop ends Run's waiting for the feeder, once the process has gone or ctx
// has ended, and returns the feeder's error. A feeder killing the process
// after a read error is waited for; any other is given runStdinGrace after
// in is closed (if it is an io.Closer), then left to end at its Read's
// return.
func (f *feeder) stop() error {
	select {
	case err := <-f.done:
		return err
	default:
	}
	f.mu.Lock()
	failed := f.readErr != nil
	f.abandoned = !failed
	f.mu.Unlock()
	if failed {
		return <-f.done
	}
	if c, ok := f.in.(io.Closer); ok {
		_ = c.Close()
	}
	t := time.NewTimer(runStdinGrace)
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
	}
	return nil
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// removeRun removes the run's container on a fresh context, stopping it
// first (runStopTimeout) when it may still run.
func (e *Engine) removeRun(ctx context.Context, id string, stop bool) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), runCleanupTimeout)
	defer cancel()
	var errs []error
	if stop {
		t := runStopTimeout
		if _, err := e.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &t}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("stop: %w", err))
		}
	}
	if _, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
