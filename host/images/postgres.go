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

const (
	debianSuite   = "bookworm"
	debianMirror  = "http://deb.debian.org/debian"
	pgEntrypoint  = "usr/local/bin/docker-entrypoint.sh"
	aptSourcesDir = "/etc/apt/sources.list.d"
)

func postgresRecipe(tag string) recipe {
	return recipe{
		Info: Info{
			Name:  "postgres",
			Tag:   tag,
			From:  "Debian 12's packages: debootstrap --variant=minbase --include=postgresql " + debianSuite,
			Takes: "about 1-2 minutes the first time",
			Needs: "root, debootstrap (installed with apt-get when missing) and the Debian mirror of this host's apt sources",
			Lacks: "the official image's PostgreSQL version: this is Debian 12's PostgreSQL 15 under the catalog's tag, so its data folders do not move to the official image; " +
				"its entrypoint is a small stand-in (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and PGDATA only: no /docker-entrypoint-initdb.d, POSTGRES_INITDB_ARGS or *_FILE secrets)",
			Default: true,
		},
		folder:      "pg-rootfs-" + debianSuite,
		buildLayout: 1,
		inputs: func(context.Context, *run, target) ([]input, error) {
			return []input{text("suite", debianSuite), text("variant", "minbase"), text("include", "postgresql")}, nil
		},
		build:       debootstrap,
		imageLayout: 1,
		imageInputs: func() []input { return []input{{"entrypoint", recipeFile("postgres/docker-entrypoint.sh")}} },
		image:       postgresImage,
	}
}

// debootstrap makes a Debian root file system with PostgreSQL in dir.
func debootstrap(ctx context.Context, r *run, t target, dir string) error {
	if os.Geteuid() != 0 {
		return errors.New("debootstrap needs root: run `toolbox images build postgres` as root")
	}
	if t.GOARCH != runtime.GOARCH {
		return fmt.Errorf("the engine runs %s and this machine %s: debootstrap here makes a root file system for this machine only", t.GOARCH, runtime.GOARCH)
	}
	bin, err := exec.LookPath("debootstrap")
	if err != nil {
		if bin, err = installDebootstrap(ctx, r); err != nil {
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
	r.say("postgres", "debootstrap %s from %s", debianSuite, mirror)
	cmd := exec.CommandContext(ctx, bin, "--variant=minbase", "--include=postgresql", debianSuite, dir, mirror)
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
	if _, err := pgBin(dir); err != nil {
		return err
	}
	return nil
}

// installDebootstrap installs Debian's debootstrap package, saying so.
func installDebootstrap(ctx context.Context, r *run) (string, error) {
	const how = "install debootstrap (apt-get install debootstrap)"
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return "", errors.New("debootstrap is missing and there is no apt-get to install it: " + how)
	}
	r.say("postgres", "debootstrap is missing: installing it with apt-get install debootstrap")
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
		r.say("postgres", "apt-get install failed; running apt-get update and trying again")
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

// pgBin is the folder of PostgreSQL's programs in the root file system, as
// a path in the image.
func pgBin(rootfs string) (string, error) {
	found, _ := filepath.Glob(filepath.Join(rootfs, "usr/lib/postgresql/*/bin/postgres"))
	if len(found) == 0 {
		return "", fmt.Errorf("%s holds no PostgreSQL (no usr/lib/postgresql/*/bin/postgres)", rootfs)
	}
	slices.Sort(found)
	rel, err := filepath.Rel(rootfs, filepath.Dir(found[len(found)-1]))
	if err != nil {
		return "", err
	}
	return "/" + filepath.ToSlash(rel), nil
}

// postgresImage is the root file system as debootstrap made it (owners,
// links and modes kept; no devices, nothing under /proc and /sys, and
// neither the downloaded packages nor apt's lists, as official images drop
// them), with an entrypoint that behaves like the official image's.
func postgresImage(dir string) ([]docker.Entry, []string, error) {
	bin, err := pgBin(dir)
	if err != nil {
		return nil, nil, err
	}
	es, err := docker.TreeEntries(dir, "", func(rel string) bool {
		for _, p := range []string{"dev/", "proc/", "sys/", "var/cache/apt/archives/", "var/lib/apt/lists/", pgEntrypoint} {
			if strings.HasPrefix(rel, p) || rel == p {
				return true
			}
		}
		return false
	})
	if err != nil {
		return nil, nil, err
	}
	es = append(es, docker.Entry{Name: pgEntrypoint, Mode: 0o755, Data: recipeFile("postgres/docker-entrypoint.sh")})
	changes := []string{
		`ENTRYPOINT ["/` + pgEntrypoint + `"]`, `CMD ["postgres"]`,
		"ENV PATH=" + bin + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"ENV PGDATA=/var/lib/postgresql/data", "EXPOSE 5432",
	}
	return es, changes, nil
}
