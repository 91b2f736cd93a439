// Package images builds, on an engine that cannot pull, the images that
// `toolbox up`, the backups and the tests need, under the names the catalog
// and up use: Caddy, Mattermost and restic from their Go modules, PostgreSQL
// and MariaDB from Debian's packages, and the stand-in test app from this
// module's source.
//
// Each image is one entry of a table (recipes.go): a name, a tag, what its
// build depends on, a function that builds it into a cache folder, and one
// that lays the folder out as an image. What a build makes (binaries, a root
// file system) is kept under the cache folder, one folder per content key
// (a hash of the inputs, the target platform and a layout version), built in
// a temporary folder and renamed, under a file lock so that concurrent
// builders (parallel tests, CI) build each key once. Images carry a label
// with their own key (the folder's key plus the image layout); an image of
// the tag with the same key is reused without any work, and an image of the
// tag without the label (pulled or loaded: an official image) is kept unless
// Builder.Replace is set. The root file systems' keys also carry the month
// of the build, so that they pick up Debian's updates (debian.go).
package images

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// LabelKey is the label that carries an image's content key.
const LabelKey = "toolbox.image-key"

// EnvCache overrides the cache folder (see DefaultCacheDir).
const EnvCache = "TOOLBOX_CACHE"

// Info describes one image the builder makes.
type Info struct {
	Name    string // what Build takes: "caddy"
	Tag     string // the image it makes, as the catalog or up names it
	From    string // what it is built from
	Takes   string // how long the first build takes, roughly
	Needs   string // what the build needs on this machine
	Lacks   string // what it lacks next to the official image
	Default bool   // built when Build is given no names: up needs it
	Env     string // the variable Paths sets for its cache folder or binary, if any
}

// Builder builds images into Engine, keeping what it builds under CacheDir.
type Builder struct {
	Engine *docker.Engine // where the images go; Paths does not need it
	// CacheDir holds the builds, one folder per content key; "" means
	// DefaultCacheDir(os.Getenv).
	CacheDir string
	// Progress receives a line per step (from several goroutines, one at a
	// time); nil discards them.
	Progress func(line string)
	// ModuleDir is the toolbox's source tree, for the stand-in app; "" means
	// the first folder from the working directory up whose go.mod is the
	// toolbox's module.
	ModuleDir string
	// Replace makes Build replace an image of a recipe's tag that it did
	// not make (one without LabelKey: pulled or loaded, an official image),
	// which it otherwise keeps, saying so. Its own older builds are always
	// replaced.
	Replace bool
}

// DefaultCacheDir is $TOOLBOX_CACHE, else /var/cache/toolbox for root, else
// $XDG_CACHE_HOME/toolbox or ~/.cache/toolbox.
func DefaultCacheDir(getenv func(string) string) (string, error) {
	if d := getenv(EnvCache); d != "" {
		return filepath.Abs(d)
	}
	if os.Geteuid() == 0 {
		return "/var/cache/toolbox", nil
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "toolbox"), nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("images: no cache folder: set " + EnvCache + " or HOME")
	}
	return filepath.Join(home, ".cache", "toolbox"), nil
}

// Names lists the images Build knows, in build order.
func Names() []string {
	rs, _ := recipes() // the names do not depend on the catalog
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	return names
}

// Images describes every image Build knows, in the order of Names.
func Images() ([]Info, error) {
	rs, err := recipes()
	if err != nil {
		return nil, err
	}
	infos := make([]Info, len(rs))
	for i, r := range rs {
		infos[i] = r.Info
	}
	return infos, nil
}

// Build makes the named images (no names: those up needs), reusing an image
// of the tag whose key matches and any cached build, and keeping an image of
// the tag that it did not make unless Replace is set. It first checks what
// the builds need on this machine (see Check) and fails, before building
// anything, if something is missing. The images are built side by side, one
// Go build at a time on a small machine; every failure is reported.
func (b *Builder) Build(ctx context.Context, names ...string) error {
	if b.Engine == nil {
		return errors.New("images: no Docker engine to build into")
	}
	r, rs, err := b.start(names)
	if err != nil {
		return err
	}
	t, err := engineTarget(ctx, b.Engine)
	if err != nil {
		return err
	}
	if err := r.check(ctx, rs, t); err != nil {
		return err
	}
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, rc := range rs {
		wg.Go(func() { errs[i] = r.image(ctx, rc, t) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Paths builds (or finds in the cache) what the named images (no names: all)
// are made of for this machine's platform, and returns the variables the
// tests read to use them without an image: TOOLBOX_CADDY_BIN (the Caddy
// binary, for deploy/proxy), TOOLBOX_MATTERMOST_DIR (the folder with
// bin/mattermost, i18n, templates and fonts, for internal/mmtest) and
// TOOLBOX_RESTIC_BIN (the restic binary, for deploy/backup). Images without
// such a variable are skipped.
func (b *Builder) Paths(ctx context.Context, names ...string) (map[string]string, error) {
	if len(names) == 0 {
		names = Names()
	}
	r, rs, err := b.start(names)
	if err != nil {
		return nil, err
	}
	t := target{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH}
	env := map[string]string{}
	var mu sync.Mutex
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for i, rc := range rs {
		if rc.Env == "" {
			continue
		}
		wg.Go(func() {
			dir, err := r.folder(ctx, rc, t)
			if err != nil {
				errs[i] = err
				return
			}
			mu.Lock()
			env[rc.Env] = filepath.Join(dir, rc.envPath)
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return env, nil
}

// start checks the names and prepares one run.
func (b *Builder) start(names []string) (*run, []recipe, error) {
	all, err := recipes()
	if err != nil {
		return nil, nil, err
	}
	var rs []recipe
	if len(names) == 0 {
		for _, rc := range all {
			if rc.Default {
				rs = append(rs, rc)
			}
		}
	}
	for _, n := range names {
		i := slices.IndexFunc(all, func(rc recipe) bool { return rc.Name == n })
		if i < 0 {
			return nil, nil, fmt.Errorf("images: no image %q: the builder knows %s", n, strings.Join(Names(), ", "))
		}
		if !slices.ContainsFunc(rs, func(rc recipe) bool { return rc.Name == n }) {
			rs = append(rs, all[i])
		}
	}
	cache := b.CacheDir
	if cache == "" {
		if cache, err = DefaultCacheDir(os.Getenv); err != nil {
			return nil, nil, err
		}
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, nil, fmt.Errorf("images: cache folder: %w", err)
	}
	r := &run{
		engine:    b.Engine,
		cache:     cache,
		moduleDir: b.ModuleDir,
		progress:  b.Progress,
		replace:   b.Replace,
		month:     monthOf(time.Now()),
		euid:      os.Geteuid,
		lookPath:  exec.LookPath,
		goSlots:   make(chan struct{}, max(1, runtime.NumCPU()/4)),
		waiting:   map[string]bool{},
	}
	return r, rs, nil
}

// run is the state of one Build or Paths call.
type run struct {
	engine    *docker.Engine
	cache     string
	moduleDir string
	progress  func(string)
	replace   bool   // Builder.Replace
	month     string // the month bucket of the debootstrap builds' keys (monthOf)
	// euid and lookPath are os.Geteuid and exec.LookPath but in tests.
	euid     func() int
	lookPath func(string) (string, error)
	mu       sync.Mutex      // serializes progress; guards waiting
	waiting  map[string]bool // recipes waiting for a Go build slot
	// goSlots bounds the Go builds that run at once: each already uses every
	// core, so on two cores a second one only makes both finish later.
	goSlots chan struct{}
}

func (r *run) say(name, format string, args ...any) {
	if r.progress == nil {
		return
	}
	line := name + ": " + fmt.Sprintf(format, args...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.progress(line)
}

// heartbeat is how often a long step says it is still going.
const heartbeat = 30 * time.Second

// step runs fn, saying every heartbeat that it is still doing what.
func (r *run) step(ctx context.Context, name, what string, fn func() error) error {
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(heartbeat)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				doing := what
				r.mu.Lock()
				if r.waiting[name] {
					doing = "waiting for another Go build"
				}
				r.mu.Unlock()
				r.say(name, "still %s (%s)", doing, time.Since(start).Round(time.Second))
			}
		}
	})
	err := fn()
	close(done)
	wg.Wait()
	return err
}

// engineTarget is the platform of e's images.
func engineTarget(ctx context.Context, e *docker.Engine) (target, error) {
	info, err := e.Info(ctx)
	if err != nil {
		return target{}, fmt.Errorf("images: %w", err)
	}
	return target{GOOS: "linux", GOARCH: info.GOARCH()}, nil
}

// target is the platform a build is for.
type target struct{ GOOS, GOARCH string }

func (t target) String() string { return t.GOOS + "/" + t.GOARCH }
