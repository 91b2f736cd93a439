package images

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// need is something a recipe's build needs on this machine, beyond the
// network (the Go module proxy, the Debian mirror), which only the build
// itself can tell.
type need int

const (
	needGo             need = iota + 1 // the go command on PATH
	needSource                         // the toolbox's source tree (the stand-in)
	needRoot                           // root: debootstrap runs as root, and the root file system it makes is readable by root only
	needDebootstrapBin                 // debootstrap, or apt-get to install it
	needNativeArch                     // an engine of this machine's architecture: debootstrap makes this machine's
)

// needsGo and needsDebootstrap are the needs of the Go builds and of the
// debootstrap builds.
var (
	needsGo          = []need{needGo}
	needsDebootstrap = []need{needRoot, needDebootstrapBin, needNativeArch}
)

// checkTimeout bounds the engine queries of Check, which takes no context.
const checkTimeout = time.Minute

// Check says, in one error, what the builds of the named images (no names:
// those up needs) need on this machine and lack, each with what to install
// or do: root and debootstrap (or apt-get to install it) and an engine of
// this machine's architecture for PostgreSQL and MariaDB, `go` on PATH for
// the Go builds, the toolbox's source tree for the stand-in. An image the
// engine already has with its key, or an image of the tag that Build keeps
// (see Replace), needs nothing; nor does a Go build already in the cache (a
// cached root file system still needs root, to be read). Build calls it
// before building anything; nil means nothing is missing that can be known
// without building.
func (b *Builder) Check(names ...string) error {
	r, rs, err := b.start(names)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkTimeout)
	defer cancel()
	t := target{GOOS: "linux", GOARCH: runtime.GOARCH}
	if b.Engine != nil {
		if t, err = engineTarget(ctx, b.Engine); err != nil {
			return err
		}
	}
	return r.check(ctx, rs, t)
}

// check is Check for the recipes rs and the engine's platform t.
func (r *run) check(ctx context.Context, rs []recipe, t target) error {
	lacking := map[need][]string{} // need → the recipes that lack it
	var order []need
	var names []string // the recipes that lack something
	for _, rc := range rs {
		ns := r.lacks(ctx, rc, t)
		if len(ns) > 0 {
			names = append(names, rc.Name)
		}
		for _, n := range ns {
			if _, ok := lacking[n]; !ok {
				order = append(order, n)
			}
			lacking[n] = append(lacking[n], rc.Name)
		}
	}
	if len(order) == 0 {
		return nil
	}
	slices.Sort(order)
	var b strings.Builder
	fmt.Fprintf(&b, "images: this machine lacks what building %s needs:", strings.Join(names, ", "))
	for _, n := range order {
		fmt.Fprintf(&b, "\n  - %s", r.howTo(n, lacking[n], t))
	}
	return fmt.Errorf("%s", b.String())
}

// lacks lists the needs of rc that this machine lacks and its build or
// import would meet, in the order of rc.needs.
func (r *run) lacks(ctx context.Context, rc recipe, t target) []need {
	var missing []need
	for _, n := range rc.needs {
		if !r.has(n, t) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// Something is missing: does the run need it? Computing the keys is
	// cheap (the stand-in's runs go, and fails without it or its source,
	// which then are missing indeed).
	fk, ik, err := r.imageKeyOf(ctx, rc, t)
	if err != nil {
		return missing
	}
	if r.engine != nil {
		if _, st := r.tagged(ctx, rc.Tag, ik); st == tagCurrent || st == tagForeign && !r.replace {
			return nil
		}
	}
	if isDir(r.folderPath(rc, fk)) {
		// Only the import is left: a Go build's binaries are anyone's to
		// read, a root file system's files are not.
		return slices.DeleteFunc(missing, func(n need) bool { return n != needRoot })
	}
	return missing
}

// has reports whether this machine meets n for a build for t.
func (r *run) has(n need, t target) bool {
	found := func(file string) bool { _, err := r.lookPath(file); return err == nil }
	switch n {
	case needGo:
		return found("go")
	case needSource:
		_, err := r.module()
		return err == nil
	case needRoot:
		return r.euid() == 0
	case needDebootstrapBin:
		// Root's PATH has /usr/sbin, where Debian keeps it; a user's may not.
		return found("debootstrap") || found("/usr/sbin/debootstrap") || found("apt-get")
	case needNativeArch:
		return t.GOARCH == runtime.GOARCH
	}
	return true
}

// howTo says what n is, who needs it and how to get it.
func (r *run) howTo(n need, names []string, t target) string {
	who := strings.Join(names, ", ")
	switch n {
	case needGo:
		return fmt.Sprintf("`go` on PATH, for %s (built from source with Go): %s", who, goHowTo)
	case needSource:
		_, err := r.module()
		return fmt.Sprintf("the toolbox's source tree, for %s: %v", who, err)
	case needRoot:
		return fmt.Sprintf("root, for %s (debootstrap makes their root file systems as root, readable by root only): "+
			"run the build as root once, `sudo toolbox images build %s`; the engine keeps the images for every user", who, strings.Join(names, " "))
	case needDebootstrapBin:
		return fmt.Sprintf("debootstrap, for %s, and no apt-get to install it: install Debian's debootstrap package", who)
	case needNativeArch:
		return fmt.Sprintf("an engine of this machine's architecture, for %s: the engine runs %s and this machine %s, and debootstrap here makes a root file system for this machine only: build them on a %s machine",
			who, t.GOARCH, runtime.GOARCH, t.GOARCH)
	}
	return fmt.Sprintf("need %d, for %s", n, who)
}
