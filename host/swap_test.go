package host

import (
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
		{"remote engine", SwapSetting{}, with(func(m *swapMachine) { m.Local = false }), false, 2 * gib, "the engine is not on this machine: on it, as root, run `fallocate"},
		{"a full disk", SwapSetting{}, with(func(m *swapMachine) { m.FreeDisk = 3 * gib }), false, 2 * gib, "a 2 GiB swap file would leave 1 GiB of disk free, less than 2 GiB"},
		{"the file left by a run that stopped", SwapSetting{}, with(func(m *swapMachine) { m.FreeDisk = gib; m.Exists = true }), true, 2 * gib, ""},
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
	if err := prepareSwapFile(t.Context(), path, size); err != nil {
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
	// Again: kept as it is.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareSwapFile(t.Context(), path, size); err != nil {
		t.Errorf("second prepare: %v", err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode after the second prepare = %v", st.Mode().Perm())
	}
	// Another size, or a file that is not swap: refused, left alone.
	if err := prepareSwapFile(t.Context(), path, 2*size); err == nil || !strings.Contains(err.Error(), "is not a 128 MiB swap area") {
		t.Errorf("prepare over a swap file of another size = %v", err)
	}
	other := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(other, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := prepareSwapFile(t.Context(), other, size); err == nil {
		t.Error("prepare over a file that is not swap: no error")
	}
	if data, _ := os.ReadFile(other); string(data) != "precious" {
		t.Errorf("the other file was changed: %q", data)
	}
	if ok, _ := hasSwapSignature(other); ok {
		t.Error("a short file has the swap signature")
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
	if err := prepareSwapFile(t.Context(), path, 64<<20); err != nil {
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
