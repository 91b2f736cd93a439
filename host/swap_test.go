package host

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

func TestParseSwapSetting(t *testing.T) {
	for in, want := range map[string]SwapSetting{
		"": {}, "off": {Off: true}, "OFF": {Off: true}, "0": {Off: true},
		"2g": {Size: 2 * gib}, "1536m": {Size: 1536 * mib}, " 1G ": {Size: gib},
	} {
		if got, err := ParseSwapSetting(in); err != nil || got != want {
			t.Errorf("ParseSwapSetting(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"lots", "-1g", "1.5g", "32m", "65g", "2x", "g"} {
		if _, err := ParseSwapSetting(bad); err == nil || !strings.Contains(err.Error(), "neither off nor a size") {
			t.Errorf("ParseSwapSetting(%q) = %v, want a clear error", bad, err)
		}
	}
}

func TestSwapSize(t *testing.T) {
	for memory, want := range map[int64]int64{
		19 * gib / 10: 2 * gib, // a 2 GB VM
		512 * mib:     gib,
		gib:           gib,
		3 * gib:       3 * gib,
		8 * gib:       4 * gib,
	} {
		if got := SwapSize(memory); got != want {
			t.Errorf("SwapSize(%d MiB) = %d MiB, want %d", memory>>20, got>>20, want>>20)
		}
	}
}

func TestDecideSwap(t *testing.T) {
	twoGB := swapMachine{Memory: 19 * gib / 10, Root: true, Local: true, FreeDisk: 20 * gib}
	with := func(f func(*swapMachine)) swapMachine { m := twoGB; f(&m); return m }
	tests := []struct {
		name    string
		setting SwapSetting
		m       swapMachine
		create  bool
		size    int64
		says    string
	}{
		{"a 2 GB VM without swap", SwapSetting{}, twoGB, true, 2 * gib, ""},
		{"a size given", SwapSetting{Size: gib}, twoGB, true, gib, ""},
		{"off", SwapSetting{Off: true}, twoGB, false, 0, "TOOLBOX_SWAP=off"},
		{"swap already", SwapSetting{}, with(func(m *swapMachine) { m.Swap = gib }), false, 0, "has 1 GiB of swap"},
		{"not root", SwapSetting{}, with(func(m *swapMachine) { m.Root = false }), false, 2 * gib, "run as root `fallocate -l 2048M /swapfile && chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile && echo '/swapfile none swap sw 0 0' >> /etc/fstab`"},
		{"remote engine", SwapSetting{}, with(func(m *swapMachine) { m.Local = false }), false, 2 * gib, "If it has none, on it, as root, run `fallocate"},
		{"a full disk", SwapSetting{}, with(func(m *swapMachine) { m.FreeDisk = 3 * gib }), false, 2 * gib, "a 2 GiB swap file would leave 1 GiB of disk free, less than 2 GiB"},
		{"remote engine says it cannot see", SwapSetting{}, with(func(m *swapMachine) { m.Local = false }), false, 2 * gib, "I cannot see the swap of the engine's machine"},
		{"a swap file turned off on purpose", SwapSetting{}, with(func(m *swapMachine) { m.Exists, m.Sig = true, true }), false, 2 * gib, "it is off (turned off on purpose?): I leave it off. To turn it on, run as root `swapon /swapfile`; or set TOOLBOX_SWAP=off"},
		{"another file there", SwapSetting{}, with(func(m *swapMachine) { m.Exists = true }), false, 2 * gib, "exists but is not a swap file"},
		{"tmpfs", SwapSetting{}, with(func(m *swapMachine) { m.FSType = unix.TMPFS_MAGIC }), false, 2 * gib, "is on tmpfs"},
		{"overlayfs", SwapSetting{}, with(func(m *swapMachine) { m.FSType = unix.OVERLAYFS_SUPER_MAGIC }), false, 2 * gib, "is on overlayfs"},
		{"zfs", SwapSetting{}, with(func(m *swapMachine) { m.FSType = zfsSuperMagic }), false, 2 * gib, "is on ZFS"},
		{"btrfs: made, with nocow", SwapSetting{}, with(func(m *swapMachine) { m.FSType = unix.BTRFS_SUPER_MAGIC }), true, 2 * gib, ""},
	}
	for _, tt := range tests {
		p := decideSwap(tt.setting, tt.m)
		if p.Create != tt.create || p.Size != tt.size || !strings.Contains(p.Why+p.Advice, tt.says) {
			t.Errorf("%s: decideSwap = %+v, want create %t, size %d MiB, saying %q", tt.name, p, tt.create, tt.size>>20, tt.says)
		}
	}
}

func needMkswap(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("mkswap"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mkswap (util-linux) is needed")
		}
		t.Skip("no mkswap (util-linux)")
	}
}

// The file preparation on a real file system, with the real mkswap.
func TestPrepareSwapFile(t *testing.T) {
	needMkswap(t)
	path := filepath.Join(t.TempDir(), "swapfile")
	const size = 64 << 20
	if err := prepareSwapFile(t.Context(), path, size, 0); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != size || st.Mode().Perm() != 0o600 {
		t.Errorf("swap file: %d bytes, mode %v; want %d, 0600", st.Size(), st.Mode().Perm(), size)
	}
	if ok, err := hasSwapSignature(path); err != nil || !ok {
		t.Errorf("hasSwapSignature = %t, %v: mkswap's signature missing", ok, err)
	}
	// Not sparse: the kernel refuses a swap file with holes.
	if blocks := statBlocks(t, path); blocks*512 < size {
		t.Errorf("swap file has %d bytes allocated, want %d", blocks*512, size)
	}
	// A file there already is never touched.
	other := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(other, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareSwapFile(t.Context(), other, size, 0); err == nil {
		t.Error("prepare over a file: no error")
	}
	if data, _ := os.ReadFile(other); string(data) != "precious" {
		t.Errorf("the other file was changed: %q", data)
	}
	if ok, _ := hasSwapSignature(other); ok {
		t.Error("a short file has the swap signature")
	}
}

// A run killed half way left the temporary file: the next run removes it
// and builds the swap file; a cancelled run leaves nothing at the real name.
func TestPrepareSwapFileAfterAKill(t *testing.T) {
	needMkswap(t)
	path := filepath.Join(t.TempDir(), "swapfile")
	if err := os.WriteFile(path+swapNewSuffix, []byte("half made"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepareSwapFile(t.Context(), path, 64<<20, 0); err != nil {
		t.Fatalf("prepare with a half-made file left: %v", err)
	}
	if ok, err := hasSwapSignature(path); err != nil || !ok {
		t.Errorf("hasSwapSignature = %t, %v", ok, err)
	}
	if _, err := os.Stat(path + swapNewSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is still there: %v", err)
	}
	cancelled := filepath.Join(t.TempDir(), "swapfile")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := prepareSwapFile(ctx, cancelled, 64<<20, 0); err == nil {
		t.Error("prepare with a cancelled context: no error")
	}
	for _, p := range []string{cancelled, cancelled + swapNewSuffix} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after a cancelled prepare: %v", p, err)
		}
	}
}

// The zero-writing fallback stops at Ctrl-C.
func TestWriteZerosHonoursContext(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "zeros"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := writeZeros(ctx, f, 1<<30); !errors.Is(err, context.Canceled) {
		t.Errorf("writeZeros with a cancelled context = %v", err)
	}
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("wrote %d bytes after the cancel", st.Size())
	}
	if err := writeZeros(t.Context(), f, 3<<20); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st.Size() != 3<<20 {
		t.Errorf("wrote %d bytes, want 3 MiB", st.Size())
	}
}

// The fstab edit, in a fake root: added once, whatever runs after.
func TestEnsureFstab(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	fstab := filepath.Join(root, "etc", "fstab")
	before := "# /swapfile none swap sw 0 0 (commented: not a line for it)\nUUID=abcd / ext4 errors=remount-ro 0 1"
	if err := os.WriteFile(fstab, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		added, err := ensureFstab(root, SwapFile)
		if err != nil || added != (i == 0) {
			t.Errorf("run %d: added %t, %v", i, added, err)
		}
	}
	data, err := os.ReadFile(fstab)
	if err != nil {
		t.Fatal(err)
	}
	if want := before + "\n/swapfile none swap sw 0 0\n"; string(data) != want {
		t.Errorf("fstab =\n%s\nwant\n%s", data, want)
	}
	// No fstab at all: one is written.
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if added, err := ensureFstab(empty, SwapFile); err != nil || !added {
		t.Errorf("ensureFstab without an fstab = %t, %v", added, err)
	}
}

// swapon on the test machine only when asked: it changes the machine.
func TestSwapOn(t *testing.T) {
	if os.Getenv("TOOLBOX_TEST_SWAPON") != "1" {
		t.Skip("set TOOLBOX_TEST_SWAPON=1 to turn a swap file on and off on this machine")
	}
	needMkswap(t)
	path := filepath.Join(t.TempDir(), "swapfile")
	if err := prepareSwapFile(t.Context(), path, 64<<20, 0); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("swapon", path).CombinedOutput(); err != nil {
		t.Fatalf("swapon: %v: %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("swapoff", path).CombinedOutput(); err != nil {
			t.Errorf("swapoff: %v: %s", err, out)
		}
	}()
	data, err := os.ReadFile("/proc/swaps")
	if err != nil || !strings.Contains(string(data), path) {
		t.Errorf("/proc/swaps = %q, %v; want %s", data, err, path)
	}
}

func TestReadMeminfo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(path, []byte("MemTotal:        1992292 kB\nSwapTotal:             0 kB\nHugePages_Total:       0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := readMeminfo(path)
	if err != nil || m["MemTotal"] != 1992292<<10 || m["SwapTotal"] != 0 || len(m) != 3 {
		t.Errorf("readMeminfo = %v, %v", m, err)
	}
}

func statBlocks(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}
