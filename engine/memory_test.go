package engine

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// A 2 GB VM's /proc/meminfo, shortened.
const twoGBMeminfo = `MemTotal:        1992292 kB
MemFree:          912345 kB
MemAvailable:    1500000 kB
SwapCached:            0 kB
SwapTotal:       2097148 kB
SwapFree:        2097148 kB
HugePages_Total:       0
`

func TestParseMeminfo(t *testing.T) {
	got := parseMeminfo(twoGBMeminfo + "garbage line\nNoValue:\nBad: x kB\n")
	want := map[string]int64{
		"MemTotal": 1992292 << 10, "MemFree": 912345 << 10, "MemAvailable": 1500000 << 10,
		"SwapCached": 0, "SwapTotal": 2097148 << 10, "SwapFree": 2097148 << 10, "HugePages_Total": 0,
	}
	if !maps.Equal(got, want) {
		t.Errorf("parseMeminfo = %v, want %v", got, want)
	}
}

// The swap is read from the file only when it is the engine's machine's: a
// local socket, and the file's MemTotal the engine's.
func TestLocalSwap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(path, []byte(twoGBMeminfo), 0o644); err != nil {
		t.Fatal(err)
	}
	e := New(Config{Meminfo: path})
	const memTotal = 1992292 << 10
	tests := []struct {
		host     string
		memTotal int64
		want     int64
		ok       bool
	}{
		{"unix:///var/run/docker.sock", memTotal, 2097148 << 10, true},
		{"", memTotal, 2097148 << 10, true},
		{"ssh://toolbox@203.0.113.7", memTotal, 0, false},
		{"tcp://127.0.0.1:2375", memTotal, 0, false},
		{"unix:///var/run/docker.sock", memTotal + 4096, 0, false}, // another kernel's engine (a VM)
	}
	for _, tt := range tests {
		if got, ok := e.localSwap(tt.host, tt.memTotal); got != tt.want || ok != tt.ok {
			t.Errorf("localSwap(%q, %d) = %d, %t; want %d, %t", tt.host, tt.memTotal, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := New(Config{Meminfo: filepath.Join(t.TempDir(), "none")}).localSwap("", memTotal); ok {
		t.Error("localSwap without the file = ok")
	}
}

// Memory on the real engine: a running container counts by its
// reservation under its app, a restic run is seen, and the settings
// override the machine's memory and swap.
func TestMemoryOnTheEngine(t *testing.T) {
	d := dockertest.Engine(t)
	image := dockertest.BuildGoImage(t, d, "../deploy/docker/testdata/runner", "toolbox-test/runner:dev")
	labels := dockertest.Labels(t, d)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	app := dockertest.Unique(t, "tbt-mem")
	appLabels := maps.Clone(labels)
	appLabels[stack.LabelManaged], appLabels[stack.LabelApp] = "1", app
	for i, spec := range []docker.ContainerSpec{
		{Name: stack.ContainerName(app, "web"), MemoryReservation: 48 << 20, MemoryLimit: 64 << 20},
		{Name: stack.ContainerName(app, "db"), MemoryLimit: 32 << 20}, // no reservation: its limit counts
	} {
		spec.Image, spec.Cmd, spec.Labels, spec.Network = image, []string{"sleep"}, appLabels, "none"
		if _, err := d.EnsureContainer(ctx, spec); err != nil {
			t.Fatalf("container %d: %v", i, err)
		}
	}
	e := New(Config{Labels: labels, MachineMemory: 2 << 30, MachineSwap: 1 << 30, MachineSwapSet: true})
	defer e.Close()
	m, err := e.Memory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Memory != 2<<30 || m.Swap != 1<<30 || m.SwapUnknown {
		t.Errorf("Memory = %+v, want the settings' 2 GiB and 1 GiB", m)
	}
	if got := m.Running[app]; got != 80<<20 {
		t.Errorf("Running[%s] = %d MiB, want 48 + 32", app, got>>20)
	}

	// A restic run under way, as runner.Run names it.
	restic := backupContainerPrefix + dockertest.Unique(t, "t")
	if _, err := d.EnsureContainer(ctx, docker.ContainerSpec{Name: restic, Image: image, Cmd: []string{"sleep"},
		Labels: labels, Network: "none", MemoryReservation: 96 << 20}); err != nil {
		t.Fatal(err)
	}
	if m, err = e.Memory(ctx); err != nil || !m.BackupRunning || m.Running["other containers"] < 96<<20 {
		t.Errorf("with a restic run: %+v, %v", m, err)
	}

	// Without settings: the engine's MemTotal, and the swap of this machine.
	local := New(Config{Labels: labels})
	defer local.Close()
	info, err := d.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m, err = local.Memory(ctx); err != nil || m.Memory != info.MemTotal {
		t.Errorf("Memory = %+v, %v; want MemTotal %d", m, err, info.MemTotal)
	}
	if fields := readMeminfo(t); fields["MemTotal"] == info.MemTotal && (m.SwapUnknown || m.Swap != fields["SwapTotal"]) {
		t.Errorf("the engine is this machine's, yet Memory = %+v (SwapTotal %s)", m, strconv.FormatInt(fields["SwapTotal"], 10))
	}
}

func readMeminfo(t *testing.T) map[string]int64 {
	t.Helper()
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	return parseMeminfo(string(data))
}
