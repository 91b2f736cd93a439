package docker_test

import (
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// The reproduction: reads of a container's logs had no byte bound,
// and a health wait's error carried its logs. A container that writes 16 MiB
// of logs (two 8 MiB lines) must not make the bot read them.
func TestLogsAreBounded(t *testing.T) {
	t.Parallel()
	e := dockertest.Engine(t)
	image := runner(t, e)
	labels := dockertest.Labels(t, e)
	ctx := timeout(t, 2*time.Minute)

	for _, tt := range []struct {
		name string
		cmd  []string
	}{
		{"long lines", []string{"loud", strconv.Itoa(8 * mib), "line"}},
		{"many lines", []string{"loud", strconv.Itoa(8 * mib)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			name := dockertest.Unique(t, "tbt-loud")
			if _, err := e.EnsureContainer(ctx, docker.ContainerSpec{Name: name, Image: image, Cmd: tt.cmd, Labels: labels, Restart: "no", Network: "none", MemoryLimit: 256 * mib}); err != nil {
				t.Fatal(err)
			}
			if code, err := e.WaitExit(ctx, name); err != nil || code != 1 {
				t.Fatalf("WaitExit = %d, %v; want 1 (the runner's loud exits 1)", code, err)
			}
			for _, tail := range []int{0, 10} {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				logs, err := e.Logs(ctx, name, tail)
				runtime.ReadMemStats(&after)
				if err != nil {
					t.Fatalf("Logs(%d): %v", tail, err)
				}
				if len(logs) > (1<<20)+len("\n[… more logs not read: the toolbox reads at most 1 MiB]") {
					t.Errorf("Logs(%d) = %d bytes, want at most %d", tail, len(logs), (1<<20)+len("\n[… more logs not read: the toolbox reads at most 1 MiB]"))
				}
				if tail == 0 && !strings.HasSuffix(logs, "\n[… more logs not read: the toolbox reads at most 1 MiB]") {
					t.Errorf("Logs(0) of 16 MiB does not say it was cut: ends %q", logs[max(0, len(logs)-80):])
				}
				t.Logf("Logs(%d) of 16 MiB: %d bytes returned, %.1f MiB allocated", tail, len(logs), float64(after.TotalAlloc-before.TotalAlloc)/mib)
				// What Logs allocates stays near its bound, not the logs' 16 MiB.
				if got := after.TotalAlloc - before.TotalAlloc; got > 8*mib {
					t.Errorf("Logs(%d) allocated %d MiB, want under 8", tail, got/mib)
				}
			}
			if logs, err := e.Logs(ctx, name, 1); err != nil || strings.TrimSpace(logs) != "last words" {
				t.Errorf("Logs(1) = %q, %v; want the last line, whole", logs, err)
			}
			err := e.WaitHealthy(ctx, name)
			if err == nil || !strings.Contains(err.Error(), "exited with code 1") || len(err.Error()) > 2500 {
				n := 0
				if err != nil {
					n = len(err.Error())
				}
				t.Errorf("WaitHealthy = %d bytes of error (%.200v), want an exit error of at most 2,500 bytes", n, err)
			}
		})
	}
}
