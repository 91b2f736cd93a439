package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// A 2 GB VM without swap is how self-hosters meet the OOM killer: up gives a
// machine that has no swap a swap file, the way DigitalOcean's guide does it
// (https://www.digitalocean.com/community/tutorials/how-to-add-swap-space-on-ubuntu-22-04:
// a file at /swapfile, fallocate, chmod 600, mkswap, swapon, and a line in
// /etc/fstab so that it survives a reboot). Its size follows the same guide:
// as much as the memory ("equal to or double the amount of RAM"), rounded up
// to a whole GiB, and no more than 4 GiB ("anything over 4G of swap is
// probably unnecessary"). A 2 GB VM (1.9 GiB of MemTotal) gets 2 GiB.

// SwapFile is where up puts the swap file.
const SwapFile = "/swapfile"

// maxAutoSwap is the largest swap file up creates unless told a size.
const maxAutoSwap = 4 << 30

// minFreeAfterSwap is the disk a swap file must leave free: the apps'
// volumes, images and logs grow on the same disk, and a full disk stops
// PostgreSQL and MariaDB.
const minFreeAfterSwap = 2 << 30

// SwapSetting is TOOLBOX_SWAP: empty for a swap file of SwapSize when the
// machine has no swap, "off" for none, or a size ("1g", "512m").
type SwapSetting struct {
	Off  bool
	Size int64 // 0: SwapSize of the machine's memory
}

// ParseSwapSetting reads TOOLBOX_SWAP.
func ParseSwapSetting(s string) (SwapSetting, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "":
		return SwapSetting{}, nil
	case "off", "0", "no", "none":
		return SwapSetting{Off: true}, nil
	}
	num, mul := s, int64(1)
	if n := len(num); n > 0 {
		if i := strings.IndexByte("kmgt", num[n-1]); i >= 0 {
			mul, num = int64(1)<<(10*(i+1)), num[:n-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (64<<30)/mul || n*mul < 64<<20 {
		return SwapSetting{}, fmt.Errorf("%q is neither off nor a size from 64m to 64g, such as 2g or 1536m", s)
	}
	return SwapSetting{Size: n * mul}, nil
}

// SwapSize is the swap file for a machine with memory bytes of MemTotal:
// the memory rounded up to a whole GiB, 1 to 4 GiB.
func SwapSize(memory int64) int64 {
	const gib = 1 << 30
	size := (memory + gib - 1) / gib * gib
	return min(max(size, gib), maxAutoSwap)
}

// swapMachine is what the swap decision looks at.
type swapMachine struct {
	Swap     int64 // SwapTotal
	Memory   int64 // MemTotal
	Root     bool  // up runs as root
	Local    bool  // on the engine's machine
	FreeDisk int64 // free bytes where the file would go
	Exists   bool  // the file is already there (left by an earlier run)
}

// swapPlan is what up does about swap: nothing (Why says why), create a file
// of Size, or tell the operator what to run (Advice).
type swapPlan struct {
	Create bool
	Size   int64
	Why    string // when nothing is done
	Advice string // the commands to run, when up cannot
}

// decideSwap says what up does about swap on m.
func decideSwap(setting SwapSetting, m swapMachine) swapPlan {
	if setting.Off {
		return swapPlan{Why: "TOOLBOX_SWAP=off: no swap file"}
	}
	if m.Swap > 0 {
		return swapPlan{Why: fmt.Sprintf("the machine has %s of swap", gibs(m.Swap))}
	}
	size := setting.Size
	if size == 0 {
		size = SwapSize(m.Memory)
	}
	commands := swapCommands(size)
	switch {
	case !m.Local:
		return swapPlan{Size: size, Advice: "the machine has no swap, and the engine is not on this machine: on it, as root, run " + commands}
	case !m.Root:
		return swapPlan{Size: size, Advice: "the machine has no swap, and up is not root: run as root " + commands + ", or run up as root"}
	case !m.Exists && m.FreeDisk-size < minFreeAfterSwap:
		return swapPlan{Size: size, Why: fmt.Sprintf("the machine has no swap, and a %s swap file would leave %s of disk free, less than %s: "+
			"free some disk, or set TOOLBOX_SWAP to a smaller size, or to off", gibs(size), gibs(max(m.FreeDisk-size, 0)), gibs(minFreeAfterSwap))}
	}
	return swapPlan{Create: true, Size: size}
}

// swapCommands is the shell recipe for the operator, as DigitalOcean's guide.
func swapCommands(size int64) string {
	return fmt.Sprintf("`fallocate -l %dM %s && chmod 600 %s && mkswap %s && swapon %s && echo '%s' >> /etc/fstab`",
		size>>20, SwapFile, SwapFile, SwapFile, SwapFile, fstabLine(SwapFile))
}

func fstabLine(path string) string { return path + " none swap sw 0 0" }

func gibs(n int64) string {
	if n >= 1<<30 {
		return strings.TrimSuffix(strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64), ".0") + " GiB"
	}
	return strconv.FormatInt(n>>20, 10) + " MiB"
}

// swapSignature is what mkswap writes at the end of the first page
// (util-linux, include/swapheader.h: SWAPSPACE2 in the last 10 bytes of the
// page).
const swapSignature = "SWAPSPACE2"

// hasSwapSignature says whether path is a swap area mkswap prepared.
func hasSwapSignature(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	page := os.Getpagesize()
	buf := make([]byte, len(swapSignature))
	if _, err := f.ReadAt(buf, int64(page-len(swapSignature))); err != nil {
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		return false, err
	}
	return string(buf) == swapSignature, nil
}

// prepareSwapFile makes path a swap area of size bytes, mode 0600, owned by
// whoever runs up (root): allocated with fallocate, or written with zeros
// where the file system does not support it (as dd would), then mkswap. A
// file already there with mkswap's signature and the size is kept; a file of
// another kind is not touched.
func prepareSwapFile(ctx context.Context, path string, size int64) error {
	if st, err := os.Stat(path); err == nil {
		ok, err := hasSwapSignature(path)
		if err != nil {
			return err
		}
		if !ok || st.Size() != size {
			return fmt.Errorf("%s exists and is not a %s swap area: move it away, or set TOOLBOX_SWAP to off", path, gibs(size))
		}
		return os.Chmod(path, 0o600)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create the swap file: %w", err)
	}
	if err := allocate(f, size); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("allocate the swap file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	if err := os.Chmod(path, 0o600); err != nil { // whatever the umask did
		os.Remove(path)
		return err
	}
	out, err := exec.CommandContext(ctx, "mkswap", path).CombinedOutput()
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("mkswap %s: %w: %s", path, err, bytes.TrimSpace(out))
	}
	return nil
}

// allocate gives f size bytes on the disk: fallocate, or zeros written where
// the file system has no fallocate (the kernel refuses a swap file with
// holes, so a sparse file will not do).
func allocate(f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	zeros := make([]byte, 1<<20)
	for written := int64(0); written < size; {
		n := min(int64(len(zeros)), size-written)
		if _, err := f.Write(zeros[:n]); err != nil {
			return err
		}
		written += n
	}
	return f.Sync()
}

// ensureFstab adds the swap file's line to root/etc/fstab unless a line for
// path is there already.
func ensureFstab(root, path string) (added bool, err error) {
	name := filepath.Join(root, "etc", "fstab")
	data, err := os.ReadFile(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") && f[0] == path {
			return false, nil
		}
	}
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	text += fstabLine(path) + "\n"
	mode := os.FileMode(0o644)
	if st, err := os.Stat(name); err == nil {
		mode = st.Mode().Perm()
	}
	// Written beside and renamed: a crash leaves the old fstab or the new.
	tmp := name + ".toolbox"
	if err := os.WriteFile(tmp, []byte(text), mode); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return false, err
	}
	return true, nil
}

// readMeminfo reads /proc/meminfo's "Name: 123 kB" lines, in bytes.
func readMeminfo(path string) (map[string]int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(data)) {
		name, rest, _ := strings.Cut(line, ":")
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n <<= 10
		}
		out[name] = n
	}
	return out, nil
}

// ensureSwap is up's swap step: it gives the engine's machine a swap file
// when it has none, or says what to run. engineMemTotal and engineHost
// tell whether this process runs on the engine's machine.
func ensureSwap(ctx context.Context, setting SwapSetting, engineHost string, engineMemTotal int64, stdout io.Writer, say func(string, ...any)) error {
	if setting.Off {
		return nil
	}
	mem, err := readMeminfo("/proc/meminfo")
	local := err == nil && (engineHost == "" || strings.HasPrefix(engineHost, "unix://")) && mem["MemTotal"] == engineMemTotal
	m := swapMachine{Memory: engineMemTotal, Root: os.Geteuid() == 0, Local: local}
	if local {
		m.Swap = mem["SwapTotal"]
	}
	if _, err := os.Stat(SwapFile); err == nil {
		m.Exists = true
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(SwapFile), &st); err == nil {
		m.FreeDisk = int64(st.Bavail) * st.Bsize
	}
	plan := decideSwap(setting, m)
	switch {
	case plan.Advice != "":
		fmt.Fprintf(stdout, "- swap: %s\n", plan.Advice)
		return nil
	case !plan.Create:
		if m.Swap == 0 { // a refusal worth reading; having swap is not news
			fmt.Fprintf(stdout, "- swap: %s\n", plan.Why)
		}
		return nil
	}
	if err := prepareSwapFile(ctx, SwapFile, plan.Size); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "swapon", SwapFile).CombinedOutput(); err != nil {
		return fmt.Errorf("swapon %s: %w: %s", SwapFile, err, bytes.TrimSpace(out))
	}
	if _, err := ensureFstab("/", SwapFile); err != nil {
		return fmt.Errorf("add the swap file to /etc/fstab: %w", err)
	}
	say("swap: the machine had none; %s is a %s swap file, on now and at every boot (/etc/fstab)", SwapFile, gibs(plan.Size))
	return nil
}
