package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Exec runs cmd in the running container, copying its output to stdout and
// stderr (nil discards), and returns its exit code. A non-zero exit code is
// not an error.
func (e *Engine) Exec(ctx context.Context, name string, cmd []string, stdout, stderr io.Writer) (int, error) {
	return e.ExecInput(ctx, name, cmd, nil, stdout, stderr)
}

// ExecInput is Exec with stdin fed from in (nil: none), closed when in ends:
// how a dump is restored into a database container.
func (e *Engine) ExecInput(ctx context.Context, name string, cmd []string, in io.Reader, stdout, stderr io.Writer) (int, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	ex, err := e.cli.ExecCreate(ctx, name, client.ExecCreateOptions{AttachStdin: in != nil, AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return -1, fmt.Errorf("docker: exec in %q: %w", name, err)
	}
	att, err := e.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return -1, fmt.Errorf("docker: exec in %q: %w", name, err)
	}
	stop := context.AfterFunc(ctx, att.Close)
	if in != nil {
		go func() {
			// A failed copy shows as the command's own error or exit code.
			_, _ = io.Copy(att.Conn, in)
			_ = att.CloseWrite()
		}()
	}
	_, err = stdcopy.StdCopy(stdout, stderr, att.Reader)
	stop()
	att.Close()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("docker: exec in %q: %w", name, ctx.Err())
	}
	if err != nil {
		return -1, fmt.Errorf("docker: exec in %q: read output: %w", name, err)
	}
	// The stream ends as the process exits; the engine may take a moment to
	// record the exit code.
	for delay := 5 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		res, err := e.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return -1, fmt.Errorf("docker: exec in %q: %w", name, err)
		}
		if !res.Running {
			return res.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("docker: exec in %q: %w", name, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// MaxLogBytes bounds what Logs reads, whatever the number of lines asked: a
// line is as long as the container makes it, and a container limited to 256
// MiB of memory must not make the bot hold more than this.
const MaxLogBytes = 1 << 20

// LogsCut ends what Logs returns when it stopped reading at MaxLogBytes.
const LogsCut = "\n[… more logs not read: the toolbox reads at most 1 MiB]"

// errLogsCut stops the copy of the logs at MaxLogBytes.
var errLogsCut = errors.New("logs cut")

// cappedReader reads at most n bytes of r, then fails with errLogsCut.
type cappedReader struct {
	r io.Reader
	n int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errLogsCut
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	return k, err
}

// Logs returns the last tail lines (all when tail <= 0) of the container's
// stdout and stderr, merged, reading at most MaxLogBytes of them (the
// earliest of those lines, then LogsCut).
func (e *Engine) Logs(ctx context.Context, name string, tail int) (string, error) {
	cur, found, err := e.inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("docker: logs of %q: %w", name, cerrdefs.ErrNotFound.WithMessage("no such container"))
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "all"}
	if tail > 0 {
		opts.Tail = strconv.Itoa(tail)
	}
	r, err := e.cli.ContainerLogs(ctx, cur.ID, opts)
	if err != nil {
		return "", fmt.Errorf("docker: logs of %q: %w", name, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	// The frame headers count too: the bound is on what is read.
	in := &cappedReader{r: r, n: MaxLogBytes}
	if cur.Config != nil && cur.Config.Tty {
		_, err = io.Copy(&buf, in)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, in)
	}
	switch {
	case errors.Is(err, errLogsCut):
		return strings.ToValidUTF8(buf.String(), "") + LogsCut, nil
	case err != nil && !errors.Is(err, io.EOF):
		return buf.String(), fmt.Errorf("docker: logs of %q: %w", name, err)
	}
	return buf.String(), nil
}

// PID is the host process id of the container's main process (0 when it is
// not running): for measuring it from the engine's machine.
func (e *Engine) PID(ctx context.Context, name string) (int, error) {
	cur, found, err := e.inspect(ctx, name)
	if err != nil {
		return 0, err
	}
	if !found || cur.State == nil {
		return 0, fmt.Errorf("docker: container %q: %w", name, cerrdefs.ErrNotFound.WithMessage("no such container"))
	}
	return cur.State.Pid, nil
}
