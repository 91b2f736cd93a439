package images

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// The images built from Debian's packages (PostgreSQL, MariaDB) are root
// file systems that debootstrap makes: Debian 12's minbase variant with the
// recipe's packages.
const (
	debianSuite   = "bookworm"
	debianMirror  = "http://deb.debian.org/debian"
	aptSourcesDir = "/etc/apt/sources.list.d"
)

// debianInputs are what a debootstrap build of packages depends on: the
// suite, variant and packages, and the month of the build (monthOf). The
// mirror's packages change under the same suite name (point releases, every
// two months or so, which fold in the security archive's fixes: debootstrap
// installs from the suite alone, not from bookworm-security), and nothing
// else in the key would ever change, so without the month a build made once
// would be reused forever and `toolbox up --build-images` would never pick up
// an update. A month bounds how stale the root file system gets while a
// cached build (and the image made from it) still serves every run of that
// month: CI, whose cache persists, debootstraps each recipe once a month, not
// on every run. The month is taken once per Build or Paths call (run.month),
// so the folder and image keys of one call agree even at the month's turn.
func debianInputs(packages []string) func(context.Context, *run, target) ([]input, error) {
	return func(_ context.Context, r *run, _ target) ([]input, error) {
		return []input{
			text("suite", debianSuite), text("variant", "minbase"), text("include", strings.Join(packages, ",")),
			text("month", r.month),
		}, nil
	}
}

// monthOf is the month bucket of the debootstrap builds' keys at now:
// YYYY-MM in UTC, so that every machine and time zone agrees.
func monthOf(now time.Time) string { return now.UTC().Format("2006-01") }

// debianBuild is the build of a root file system with packages: debootstrap,
// then check, which says what the recipe's image needs and did not get.
func debianBuild(name string, packages []string, check func(rootfs string) error) func(context.Context, *run, target, string) error {
	return func(ctx context.Context, r *run, t target, dir string) error {
		return debootstrap(ctx, r, name, t, dir, packages, check)
	}
}

// debootstrapFrom says what a recipe built by debootstrap is made from.
func debootstrapFrom(packages []string) string {
	return "Debian 12's packages: debootstrap --variant=minbase --include=" + strings.Join(packages, ",") + " " + debianSuite
}

// debootstrapNeeds says what such a build needs on this machine.
const debootstrapNeeds = "root, debootstrap (installed with apt-get when missing) and the Debian mirror of this host's apt sources"

// debootstrap makes a Debian root file system with packages in dir, for the
// recipe called name.
func debootstrap(ctx context.Context, r *run, name string, t target, dir string, packages []string, check func(rootfs string) error) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("debootstrap needs root: run `toolbox images build %s` as root", name)
	}
	if t.GOARCH != runtime.GOARCH {
		return fmt.Errorf("the engine runs %s and this machine %s: debootstrap here makes a root file system for this machine only", t.GOARCH, runtime.GOARCH)
	}
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		if bin, err = installDebootstrap(ctx, r, name); err != nil {
			return err
		}
	}
	mirror := debianMirror
	if files, _ := filepath.Glob(filepath.Join(aptSourcesDir, "*.sources")); len(files) > 0 {
		var texts []string
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil {
				texts = append(texts, string(b))
			}
		}
		if m := mirrorOf(texts); m != "" {
			mirror = m
		}
	}
	r.say(name, "debootstrap %s with %s from %s", debianSuite, strings.Join(packages, ","), mirror)
	cmd := exec.CommandContext(ctx, bin, "--variant=minbase", "--include="+strings.Join(packages, ","), debianSuite, dir, mirror)
	// Stopped, debootstrap and the dpkg and chroot it runs stop together.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		msg := lastLines(out.String(), 15)
		if log, lerr := os.ReadFile(filepath.Join(dir, "debootstrap", "debootstrap.log")); lerr == nil {
			msg += "\ndebootstrap.log:\n" + lastLines(string(log), 15)
		}
		return fmt.Errorf("debootstrap: %w\n%s", err, msg)
	}
	return check(dir)
}

// installDebootstrap installs Debian's debootstrap package, saying so.
func installDebootstrap(ctx context.Context, r *run, name string) (string, error) {
	const how = "install debootstrap (apt-get install debootstrap)"
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", errors.New("debootstrap is missing and there is no apt-get to install it: " + how)
	}
	r.say(name, "debootstrap is missing: installing it with apt-get install debootstrap")
	install := func() error {
		cmd := exec.CommandContext(ctx, apt, "-o", "DPkg::Lock::Timeout=300", "install", "-y", "--no-install-recommends", "debootstrap")
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install debootstrap: %w\n%s", err, lastLines(string(out), 10))
		}
		return nil
	}
	if err := install(); err != nil {
		// Stale package lists are the usual reason: refresh them once.
		r.say(name, "apt-get install failed; running apt-get update and trying again")
		cmd := exec.CommandContext(ctx, apt, "-o", "DPkg::Lock::Timeout=300", "update")
		if out, uerr := cmd.CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("%w; apt-get update: %v\n%s", err, uerr, lastLines(string(out), 10))
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		return "", errors.New("apt-get installed debootstrap but it is not on PATH (it lives in /usr/sbin)")
	}
	return bin, nil
}

// mirrorOf returns the first URI of a deb822 apt source (the texts of
// /etc/apt/sources.list.d/*.sources) that carries the suite, else the first
// URI of any source, else "".
func mirrorOf(texts []string) string {
	first := ""
	for _, text := range texts {
		var uris, suites []string
		flush := func() string {
			defer func() { uris, suites = nil, nil }()
			if len(uris) == 0 {
				return ""
			}
			if first == "" {
				first = uris[0]
			}
			if slices.Contains(suites, debianSuite) {
				return uris[0]
			}
			return ""
		}
		sc := bufio.NewScanner(strings.NewReader(text))
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				if m := flush(); m != "" {
					return m
				}
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, "#") {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "uris":
				uris = strings.Fields(v)
			case "suites":
				suites = strings.Fields(v)
			}
		}
		if m := flush(); m != "" {
			return m
		}
	}
	return first
}

// rootfsEntries is the root file system as debootstrap made it (owners,
// links and modes kept), without devices, anything under /proc and /sys,
// the downloaded packages and apt's lists (official images drop them), and
// without the paths in drop: a path ending in "/" keeps the folder and drops
// what it holds, any other is dropped (a file the image replaces).
func rootfsEntries(dir string, drop ...string) ([]docker.Entry, error) {
	drop = append([]string{"dev/", "proc/", "sys/", "var/cache/apt/archives/", "var/lib/apt/lists/"}, drop...)
	return docker.TreeEntries(dir, "", func(rel string) bool {
		for _, p := range drop {
			if strings.HasPrefix(rel, p) || rel == p {
				return true
			}
		}
		return false
	})
}
