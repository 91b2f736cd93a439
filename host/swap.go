package host

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

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
	FSType   int64 // statfs f_type where the file would go
	Path     string
	Exists   bool // the file is already there
	Sig      bool // with mkswap's signature
	Active   bool // in /proc/swaps
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
	path := cmp.Or(m.Path, SwapFile)
	switch {
	case !m.Local:
		return swapPlan{Size: size, Advice: "I cannot see the swap of the engine's machine (the engine is not on this machine). If it has none, on it, as root, run " +
			commands + "; then set TOOLBOX_MACHINE_SWAP to its swap size (or TOOLBOX_SWAP=off) to skip this step"}
	case m.Exists && m.Sig && !m.Active:
		return swapPlan{Size: size, Advice: fmt.Sprintf("%s is a swap file, but it is off (turned off on purpose?): I leave it off. "+
			"To turn it on, run as root `swapon %s`; or set TOOLBOX_SWAP=off to silence this", path, path)}
	case m.Exists && !m.Active:
		return swapPlan{Size: size, Advice: fmt.Sprintf("the machine has no swap, and %s exists but is not a swap file: I leave it alone. "+
			"Move it away and run up again, or set TOOLBOX_SWAP=off", path)}
	case m.Exists:
		return swapPlan{Why: fmt.Sprintf("%s is on", path)}
	case m.FSType == unix.OVERLAYFS_SUPER_MAGIC || m.FSType == unix.TMPFS_MAGIC || m.FSType == zfsSuperMagic:
		return swapPlan{Size: size, Advice: fmt.Sprintf("the machine has no swap, and %s is on %s, where the kernel takes no swap file: "+
			"make swap on another disk (a swap partition, or a zvol on ZFS), or set TOOLBOX_SWAP=off", filepath.Dir(path), fsName(m.FSType))}
	case !m.Root:
		return swapPlan{Size: size, Advice: "the machine has no swap, and up is not root: run as root " + commands + ", or run up as root"}
	case m.FreeDisk-size < minFreeAfterSwap:
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

func fsName(t int64) string {
	switch t {
	case unix.OVERLAYFS_SUPER_MAGIC:
		return "overlayfs"
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case zfsSuperMagic:
		return "ZFS"
	}
	return fmt.Sprintf("file system %#x", t)
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

// swapNewSuffix names the file a swap file is built at before it is renamed
// into place: a run killed half way leaves that name, never a half-made
// swap file at the real one.
const swapNewSuffix = ".toolbox-new"

// fsNoCOW is FS_NOCOW_FL (linux/fs.h), chattr +C: btrfs takes a swap file
// only without copy-on-write, set while the file is still empty
// (https://btrfs.readthedocs.io/en/latest/Swapfile.html).
const fsNoCOW = 0x00800000

// zfsSuperMagic is ZFS's statfs f_type (openzfs, include/sys/fs/zfs.h:
// ZFS_SUPER_MAGIC); golang.org/x/sys/unix does not have it.
const zfsSuperMagic = 0x2fc12fc1

// prepareSwapFile makes path a swap area of size bytes, mode 0600, owned by
// whoever runs up (root): built at path+swapNewSuffix (allocated with
// fallocate, or written with zeros where the file system does not support
// it, as dd would; on btrfs without copy-on-write first), mkswap'd, then
// renamed into place. A file already at path is not touched: the caller
// decides about it.
func prepareSwapFile(ctx context.Context, path string, size int64, fsType int64) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists already", path)
	}
	tmp := path + swapNewSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove %s, left by an earlier run: %w", tmp, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create the swap file: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if fsType == unix.BTRFS_SUPER_MAGIC {
		if err := setNoCOW(f); err != nil {
			return fail(fmt.Errorf("btrfs: set no-copy-on-write (chattr +C) on %s: %w", tmp, err))
		}
	}
	if err := allocate(ctx, f, size); err != nil {
		return fail(fmt.Errorf("allocate the swap file: %w", err))
	}
	if err := f.Chmod(0o600); err != nil { // whatever the umask did
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if out, err := exec.CommandContext(ctx, "mkswap", tmp).CombinedOutput(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mkswap %s: %w: %s", tmp, err, bytes.TrimSpace(out))
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

// setNoCOW sets FS_NOCOW_FL on the empty file f, as chattr +C does
// (e2fsprogs, lib/e2p/setflags.c: FS_IOC_GETFLAGS then FS_IOC_SETFLAGS, an int).
func setNoCOW(f *os.File) error {
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsNoCOW))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// allocate gives f size bytes on the disk: fallocate, or zeros written where
// the file system has no fallocate (the kernel refuses a swap file with
// holes, so a sparse file will not do).
func allocate(ctx context.Context, f *os.File, size int64) error {
	err := unix.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return writeZeros(ctx, f, size)
}

// writeZeros writes size zero bytes to f, a MiB at a time, and stops when
// ctx is done (Ctrl-C during gigabytes of writing).
func writeZeros(ctx context.Context, f *os.File, size int64) error {
	zeros := make([]byte, 1<<20)
	for written := int64(0); written < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(zeros)), size-written)
		if _, err := f.Write(zeros[:n]); err != nil {
			return err
		}
		written += n
	}
	return f.Sync()
}

// ensureFstab adds the swap file's line to root/etc/fstab unless a line for
// path is there already. The new fstab is written to a temporary file in the
// same folder, synced and renamed over the old (a crash leaves the old or
// the new), with the old one's mode and owner; a symlinked fstab has its
// target edited.
func ensureFstab(root, path string) (added bool, err error) {
	name := filepath.Join(root, "etc", "fstab")
	if target, err := filepath.EvalSymlinks(name); err == nil {
		name = target
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
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
	mode, uid, gid := os.FileMode(0o644), -1, -1
	if st, err := os.Stat(name); err == nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	}
	dir := filepath.Dir(name)
	tmp, err := os.CreateTemp(dir, ".fstab.toolbox-*")
	if err != nil {
		return false, err
	}
	fail := func(err error) (bool, error) {
		tmp.Close()
		os.Remove(tmp.Name())
		return false, err
	}
	if _, err := tmp.WriteString(text); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fail(err)
	}
	if uid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return fail(err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return false, err
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		os.Remove(tmp.Name())
		return false, err
	}
	return true, syncDir(dir)
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

// swapActive says whether path is in swaps (/proc/swaps: a header line,
// then the file name first on each line).
func swapActive(swaps, path string) bool {
	data, err := os.ReadFile(swaps)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == path {
			return true
		}
	}
	return false
}

// swapStep is up's swap step, with the machine's files named so that tests
// can point it at their own.
type swapStep struct {
	Path      string // the swap file: SwapFile
	FstabRoot string // where etc/fstab is: "/"
	Meminfo   string // /proc/meminfo
	Swaps     string // /proc/swaps
	Root      bool   // up runs as root
	Swapon    func(ctx context.Context, path string) error
}

func machineSwapStep() swapStep {
	return swapStep{Path: SwapFile, FstabRoot: "/", Meminfo: "/proc/meminfo", Swaps: "/proc/swaps", Root: os.Geteuid() == 0,
		Swapon: func(ctx context.Context, path string) error {
			if out, err := exec.CommandContext(ctx, "swapon", path).CombinedOutput(); err != nil {
				return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
			}
			return nil
		}}
}

// ensureSwap is up's swap step: it gives the engine's machine a swap file
// when it has none, or says what to run. engineMemTotal and engineHost
// tell whether this process runs on the engine's machine; machineSwapGiven
// (TOOLBOX_MACHINE_SWAP) skips the step. Swap trouble is a line of advice,
// never a failed up: the toolbox runs without swap.
func ensureSwap(ctx context.Context, setting SwapSetting, machineSwapGiven bool, engineHost string, engineMemTotal int64, stdout io.Writer, say func(string, ...any)) {
	if machineSwapGiven {
		return
	}
	machineSwapStep().run(ctx, setting, engineHost, engineMemTotal, stdout, say)
}

func (s swapStep) run(ctx context.Context, setting SwapSetting, engineHost string, engineMemTotal int64, stdout io.Writer, say func(string, ...any)) {
	if setting.Off {
		return
	}
	advise := func(format string, args ...any) { fmt.Fprintf(stdout, "- swap: "+format+"\n", args...) }
	mem, err := readMeminfo(s.Meminfo)
	local := err == nil && (engineHost == "" || strings.HasPrefix(engineHost, "unix://")) && mem["MemTotal"] == engineMemTotal
	m := swapMachine{Memory: engineMemTotal, Root: s.Root, Local: local, Path: s.Path}
	if local {
		m.Swap = mem["SwapTotal"]
	}
	if _, err := os.Lstat(s.Path); err == nil {
		m.Exists = true
		m.Sig, _ = hasSwapSignature(s.Path)
		m.Active = swapActive(s.Swaps, s.Path)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(s.Path), &st); err == nil {
		m.FreeDisk = int64(st.Bavail) * st.Bsize
		m.FSType = int64(st.Type)
	}
	plan := decideSwap(setting, m)
	switch {
	case plan.Advice != "":
		advise("%s", plan.Advice)
		return
	case !plan.Create:
		if m.Swap == 0 { // a refusal worth reading; having swap is not news
			advise("%s", plan.Why)
		}
		return
	}
	commands := swapCommands(plan.Size)
	if err := prepareSwapFile(ctx, s.Path, plan.Size, m.FSType); err != nil {
		advise("could not make the swap file (%v); the toolbox runs without swap. To have swap, run as root %s; or set TOOLBOX_SWAP=off", err, commands)
		return
	}
	if err := s.Swapon(ctx, s.Path); err != nil {
		// Removed: made by this run and refused, the next run would trust it.
		rmErr := os.Remove(s.Path)
		removed := "I removed it"
		if rmErr != nil {
			removed = fmt.Sprintf("removing it failed too (%v)", rmErr)
		}
		advise("swapon %s failed (%v), %s; the toolbox runs without swap. To have swap, run as root %s; or set TOOLBOX_SWAP=off", s.Path, err, removed, commands)
		return
	}
	if _, err := ensureFstab(s.FstabRoot, s.Path); err != nil {
		advise("%s is on, but adding it to /etc/fstab failed (%v): add the line `%s` to /etc/fstab so that it is on after a reboot", s.Path, err, fstabLine(s.Path))
		return
	}
	say("swap: the machine had none; %s is a %s swap file, on now and at every boot (/etc/fstab)", s.Path, gibs(plan.Size))
}
