package docker

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// WaitHealthy waits until the container is healthy (or, without a health
// check, running). It fails at once when the container turns unhealthy,
// exits or restarts, with the last health output or log lines.
func (e *Engine) WaitHealthy(ctx context.Context, name string) error {
	// Poll briskly at first (inspect is cheap, most containers are quick),
	// then back off for the slow starters.
	const brisk, slowest = 50 * time.Millisecond, time.Second
	start := time.Now()
	delay := brisk
	last := "unknown"
	restarts := -1
	for {
		cur, found, err := e.inspect(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("docker: container %q is not healthy yet (%s): %w", name, last, ctx.Err())
			}
			return err
		}
		if !found {
			return fmt.Errorf("docker: container %q does not exist", name)
		}
		st := cur.State
		if st == nil {
			st = &container.State{}
		}
		if restarts < 0 {
			restarts = cur.RestartCount
		}
		switch {
		case st.Status == container.StateExited || st.Status == container.StateDead:
			return fmt.Errorf("docker: container %q exited with code %d%s", name, st.ExitCode, e.logTail(ctx, name))
		case st.Restarting || cur.RestartCount > restarts:
			return fmt.Errorf("docker: container %q keeps restarting (last exit code %d)%s", name, st.ExitCode, e.logTail(ctx, name))
		case st.Status == container.StateCreated:
			return fmt.Errorf("docker: container %q was created but not started", name)
		case st.Paused:
			return fmt.Errorf("docker: container %q is paused", name)
		case st.Running && (st.Health == nil || st.Health.Status == container.NoHealthcheck || st.Health.Status == container.Healthy):
			return nil
		case st.Health != nil && st.Health.Status == container.Unhealthy:
			return fmt.Errorf("docker: container %q is unhealthy: %s", name, lastHealthOutput(st.Health))
		}
		last = string(st.Status)
		if st.Health != nil {
			last = "health " + string(st.Health.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker: container %q is not healthy yet (%s): %w", name, last, ctx.Err())
		case <-time.After(delay):
		}
		if time.Since(start) > 5*time.Second {
			delay = min(delay*3/2, slowest)
		}
	}
}

func lastHealthOutput(h *container.Health) string {
	if len(h.Log) == 0 || h.Log[len(h.Log)-1] == nil {
		return "no health check output"
	}
	r := h.Log[len(h.Log)-1]
	out := strings.TrimSpace(r.Output)
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = strings.TrimSpace(out[i+1:])
	}
	if out == "" {
		out = "no output"
	}
	return fmt.Sprintf("check exited with code %d: %s", r.ExitCode, abbreviate(out, 300))
}

// maxTailBytes is how much of a container's last logs an error carries:
// enough to see why it stopped, little enough for a chat post and a log line.
const maxTailBytes = 2000

// logTail gives "; last logs: ..." for error messages, or "". The logs may
// hold the app's secrets: the errors' readers, who know them, scrub them.
func (e *Engine) logTail(ctx context.Context, name string) string {
	logs, err := e.Logs(ctx, name, 10)
	logs = LogTail(logs)
	if err != nil || logs == "" {
		return ""
	}
	return "; last logs:\n" + logs
}

// LogTail is the end of logs, trimmed and cut to maxTailBytes on a rune
// boundary, for an error message.
func LogTail(logs string) string {
	logs = strings.TrimSpace(logs)
	if len(logs) > maxTailBytes {
		logs = logs[len(logs)-maxTailBytes:]
		for len(logs) > 0 && !utf8.RuneStart(logs[0]) {
			logs = logs[1:]
		}
		logs = "…" + logs
	}
	return logs
}

// WaitExit waits until the container called name stops and returns its exit
// code: for one-shot containers, such as an image build.
func (e *Engine) WaitExit(ctx context.Context, name string) (int, error) {
	res := e.cli.ContainerWait(ctx, name, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			return -1, fmt.Errorf("docker: wait for %q: %s", name, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-res.Error:
		return -1, fmt.Errorf("docker: wait for %q: %w", name, err)
	}
}
