package host

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// stepIn is up's swap step on a fake machine in dir: no swap, the memory of
// meminfo, swapon given.
func stepIn(t *testing.T, swapon func(context.Context, string) error) swapStep {
	t.Helper()
	dir := t.TempDir()
	meminfo := filepath.Join(dir, "meminfo")
	if err := os.WriteFile(meminfo, []byte("MemTotal: 1992292 kB\nSwapTotal: 0 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	swaps := filepath.Join(dir, "swaps")
	if err := os.WriteFile(swaps, []byte("Filename\tType\tSize\tUsed\tPriority\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	return swapStep{Path: filepath.Join(dir, "swapfile"), FstabRoot: dir, Meminfo: meminfo, Swaps: swaps, Root: true, Swapon: swapon}
}

const stepMemTotal = 1992292 << 10

// A refused swapon: up goes on, says so, and removes the file it made, so
// that the next run makes it again instead of trusting it.
func TestSwapStepSwaponFails(t *testing.T) {
	needMkswap(t)
	calls := 0
	s := stepIn(t, func(context.Context, string) error { calls++; return errors.New("swapon: Invalid argument") })
	var out strings.Builder
	said := false
	s.run(t.Context(), SwapSetting{Size: 64 << 20}, "", stepMemTotal, &out, func(string, ...any) { said = true })
	if calls != 1 || said {
		t.Errorf("swapon calls %d, said %t", calls, said)
	}
	for _, want := range []string{"swapon " + s.Path + " failed (swapon: Invalid argument), I removed it", "runs without swap", "mkswap /swapfile", "TOOLBOX_SWAP=off"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q, want %q", out.String(), want)
		}
	}
	if _, err := os.Stat(s.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the swap file is still there after a failed swapon: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(s.FstabRoot, "etc", "fstab")); len(data) != 0 {
		t.Errorf("fstab written after a failed swapon: %q", data)
	}
	// The next run tries again.
	s.run(t.Context(), SwapSetting{Size: 64 << 20}, "", stepMemTotal, io.Discard, func(string, ...any) {})
	if calls != 2 {
		t.Errorf("second run: swapon calls %d, want 2", calls)
	}
}

// swapon works: the file is there, swapon was given it, fstab has the line.
func TestSwapStepMakesSwap(t *testing.T) {
	needMkswap(t)
	var gotPath string
	s := stepIn(t, func(_ context.Context, p string) error { gotPath = p; return nil })
	var said string
	s.run(t.Context(), SwapSetting{Size: 64 << 20}, "", stepMemTotal, io.Discard, func(f string, a ...any) { said = fmt.Sprintf(f, a...) })
	if gotPath != s.Path || !strings.Contains(said, "64 MiB swap file, on now") {
		t.Errorf("swapon(%q), said %q", gotPath, said)
	}
	if data, _ := os.ReadFile(filepath.Join(s.FstabRoot, "etc", "fstab")); string(data) != s.Path+" none swap sw 0 0\n" {
		t.Errorf("fstab = %q", data)
	}
}

// A swap file the operator turned off stays off: said, not swapon'd.
func TestSwapStepLeavesSwapOff(t *testing.T) {
	needMkswap(t)
	s := stepIn(t, func(context.Context, string) error {
		t.Error("swapon called on a swap file that was turned off")
		return nil
	})
	if err := prepareSwapFile(t.Context(), s.Path, 64<<20, 0); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s.run(t.Context(), SwapSetting{}, "", stepMemTotal, &out, func(string, ...any) { t.Error("said a change") })
	if want := "is a swap file, but it is off (turned off on purpose?): I leave it off. To turn it on, run as root `swapon " + s.Path + "`; or set TOOLBOX_SWAP=off"; !strings.Contains(out.String(), want) {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	// Active (in /proc/swaps): nothing to say.
	if err := os.WriteFile(s.Swaps, []byte("Filename\tType\tSize\tUsed\tPriority\n"+s.Path+"\tfile\t65532\t0\t-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	s.run(t.Context(), SwapSetting{}, "", stepMemTotal, &out, func(string, ...any) { t.Error("said a change") })
	if strings.Contains(out.String(), "off") {
		t.Errorf("output for an active swap file: %q", out.String())
	}
}

// An engine elsewhere: up cannot see that machine's swap and says so.
func TestSwapStepRemoteEngine(t *testing.T) {
	s := stepIn(t, func(context.Context, string) error { t.Error("swapon for a remote engine"); return nil })
	var out strings.Builder
	s.run(t.Context(), SwapSetting{}, "ssh://admin@vm", stepMemTotal, &out, func(string, ...any) { t.Error("said a change") })
	if !strings.Contains(out.String(), "I cannot see the swap of the engine's machine") || strings.Contains(out.String(), "has no swap") {
		t.Errorf("output %q", out.String())
	}
	if _, err := os.Stat(s.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a swap file made for a remote engine: %v", err)
	}
}

// TOOLBOX_MACHINE_SWAP given: the step is skipped, nothing said or made.
func TestEnsureSwapMachineSwapGiven(t *testing.T) {
	var out strings.Builder
	ensureSwap(t.Context(), SwapSetting{}, true, "tcp://vm:2376", 1<<30, &out, func(string, ...any) { t.Error("said a change") })
	if out.Len() != 0 {
		t.Errorf("output %q", out.String())
	}
}

// The fstab edit keeps the file's mode and owner, edits a symlink's
// target, and leaves no temporary file.
func TestEnsureFstabSymlinkModeOwner(t *testing.T) {
	root := t.TempDir()
	etc := filepath.Join(root, "etc")
	realDir := filepath.Join(root, "realDir")
	for _, d := range []string{etc, realDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	target := filepath.Join(realDir, "fstab")
	if err := os.WriteFile(target, []byte("UUID=abcd / ext4 defaults 0 1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(target, 0o640); err != nil {
		t.Fatal(err)
	}
	owner := os.Getuid()
	if owner == 0 {
		owner = 4242
		if err := os.Chown(target, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(etc, "fstab")
	if err := os.Symlink("../realDir/fstab", link); err != nil {
		t.Fatal(err)
	}
	if added, err := ensureFstab(root, SwapFile); err != nil || !added {
		t.Fatalf("ensureFstab = %t, %v", added, err)
	}
	if l, err := os.Lstat(link); err != nil || l.Mode()&os.ModeSymlink == 0 {
		t.Errorf("/etc/fstab is no longer a symlink: %v, %v", l, err)
	}
	data, _ := os.ReadFile(target)
	if string(data) != "UUID=abcd / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n" {
		t.Errorf("target = %q", data)
	}
	var st unix.Stat_t
	if err := unix.Stat(target, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o640 || int(st.Uid) != owner || int(st.Gid) != owner {
		t.Errorf("target mode %o, owner %d:%d; want 640, %d:%d", st.Mode&0o777, st.Uid, st.Gid, owner, owner)
	}
	for _, d := range []string{etc, realDir} {
		if entries, _ := os.ReadDir(d); len(entries) != 1 {
			t.Errorf("%s holds %d files, want 1 (a temporary file left?)", d, len(entries))
		}
	}
}
