package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

func TestMonthBucket(t *testing.T) {
	// UTC: the same instant is the same month everywhere.
	eve := time.Date(2026, 1, 31, 23, 30, 0, 0, time.FixedZone("UTC-2", -2*3600))
	if got := monthOf(eve); got != "2026-02" {
		t.Errorf("monthOf(%v) = %q, want 2026-02", eve, got)
	}
	b := &Builder{CacheDir: t.TempDir()}
	r, rs, err := b.start(Names())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tg := target{"linux", "amd64"}
	keyIn := func(rc recipe, month string) string {
		t.Helper()
		r.month = month
		k, err := r.key(ctx, rc, tg)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, rc := range rs {
		if rc.Name == "standin" {
			continue // its key runs go list on this checkout: nothing to do with the month
		}
		jan, feb := keyIn(rc, "2026-01"), keyIn(rc, "2026-02")
		debootstrapped := slices.Contains(rc.needs, needDebootstrapBin)
		if debootstrapped && jan == feb {
			t.Errorf("%s: the same folder key in two months: its root file system would never be rebuilt", rc.Name)
		}
		if !debootstrapped && jan != feb {
			t.Errorf("%s: the folder key changes with the month: a Go build pinned by version would be rebuilt for nothing", rc.Name)
		}
		if again := keyIn(rc, "2026-01"); again != jan {
			t.Errorf("%s: the key of one month is not stable", rc.Name)
		}
	}
	if r2, _, err := b.start(nil); err != nil || r2.month != monthOf(time.Now()) {
		t.Errorf("a run's month = %q (%v), want this month, %q", r2.month, err, monthOf(time.Now()))
	}
}

// fakeMachine makes r's machine a user's (uid 1000) on which lookPath finds
// only the commands in found.
func fakeMachine(r *run, found ...string) {
	r.euid = func() int { return 1000 }
	r.lookPath = func(file string) (string, error) {
		for _, f := range found {
			if f == file {
				return "/usr/bin/" + file, nil
			}
		}
		return "", errors.New("not found")
	}
}

func TestCheck(t *testing.T) {
	ctx := context.Background()
	b := &Builder{CacheDir: t.TempDir(), ModuleDir: t.TempDir()} // a source tree without the toolbox
	r, rs, err := b.start(Names())
	if err != nil {
		t.Fatal(err)
	}
	fakeMachine(r)
	here := target{"linux", runtime.GOARCH}
	err = r.check(ctx, rs, here)
	if err == nil {
		t.Fatal("check on a machine with neither root, go nor debootstrap passed")
	}
	msg := err.Error()
	t.Logf("check said:\n%s", msg)
	for _, want := range []string{
		"lacks what building caddy, mattermost, postgres, standin, restic, mariadb, wordpress, mediawiki needs",
		"`go` on PATH, for caddy, mattermost, standin, restic (built from source with Go): install Go",
		"the toolbox's source tree, for standin: ",
		"root, for postgres, mariadb, wordpress, mediawiki (",
		"sudo toolbox images build postgres mariadb wordpress mediawiki",
		"debootstrap, for postgres, mariadb, wordpress, mediawiki, and no apt-get",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("check said:\n%s\nwant it to say %q", msg, want)
		}
	}
	if strings.Contains(msg, "architecture") {
		t.Errorf("check said:\n%s\nbut the engine's architecture is this machine's", msg)
	}
	if n := strings.Count(msg, "\n  - "); n != 4 {
		t.Errorf("check said %d needs:\n%s\nwant 4, one a line", n, msg)
	}

	// apt-get installs debootstrap: only root is missing for it.
	fakeMachine(r, "apt-get")
	if err := r.check(ctx, rs, here); err == nil || strings.Contains(err.Error(), "debootstrap, for") {
		t.Errorf("with apt-get, check said:\n%v\nwant no debootstrap line", err)
	}

	// Cached builds: caddy's needs nothing more, postgres's root file system
	// still needs root to be read.
	fakeMachine(r)
	for _, name := range []string{"caddy", "postgres"} {
		rc := rs[indexOf(t, rs, name)]
		fk, err := r.key(ctx, rc, here)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(r.folderPath(rc, fk), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	msg = r.check(ctx, rs, here).Error()
	for _, want := range []string{"`go` on PATH, for mattermost, standin, restic ", "root, for postgres, mariadb, wordpress, mediawiki (", "debootstrap, for mariadb, wordpress, mediawiki, "} {
		if !strings.Contains(msg, want) {
			t.Errorf("with caddy and postgres cached, check said:\n%s\nwant it to say %q", msg, want)
		}
	}

	// An engine of another architecture.
	other := "arm64"
	if runtime.GOARCH == other {
		other = "amd64"
	}
	r.euid = func() int { return 0 }
	r.lookPath = func(f string) (string, error) { return f, nil }
	msg = r.check(ctx, rs[indexOf(t, rs, "mariadb"):], target{"linux", other}).Error()
	if !strings.Contains(msg, "an engine of this machine's architecture, for mariadb, wordpress, mediawiki: the engine runs "+other) || strings.Count(msg, "\n  - ") != 1 {
		t.Errorf("with an engine of %s, check said:\n%s\nwant only the architecture", other, msg)
	}

	// Everything there.
	if err := r.check(ctx, rs[indexOf(t, rs, "mariadb"):], here); err != nil {
		t.Errorf("as root with every command, check said: %v", err)
	}
}

func indexOf(t *testing.T, rs []recipe, name string) int {
	t.Helper()
	for i, rc := range rs {
		if rc.Name == name {
			return i
		}
	}
	t.Fatalf("no recipe %s", name)
	return -1
}

// TestKeepsForeignImage imports a tiny image without LabelKey (as a pulled
// official image is) under a tag of its own, and checks that a recipe of
// that tag keeps it, and that Check asks nothing for it, unless Replace is
// set; replaced, the foreign image is left on the engine, untagged.
func TestKeepsForeignImage(t *testing.T) {
	e := dockertest.Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tag := dockertest.Unique(t, "toolbox-test/images-foreign") + ":1"
	if err := e.ImportEntries(ctx, tag, []docker.Entry{{Name: "official", Mode: 0o644, Data: []byte("pulled\n")}}, nil); err != nil {
		t.Fatal(err)
	}
	foreign, err := e.Image(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.RemoveImage(context.Background(), tag)
		_ = e.RemoveImage(context.Background(), foreign.ID)
	})
	var mu sync.Mutex
	var lines []string
	b := &Builder{Engine: e, CacheDir: t.TempDir(), Progress: func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }}
	r, _, err := b.start(nil)
	if err != nil {
		t.Fatal(err)
	}
	fakeMachine(r) // were it built, it would need root, debootstrap and go
	rc := recipe{
		Info:        Info{Name: "fake", Tag: tag},
		folder:      "fake",
		buildLayout: 1,
		build: func(_ context.Context, _ *run, _ target, dir string) error {
			return os.WriteFile(filepath.Join(dir, "built"), []byte("here\n"), 0o644)
		},
		imageLayout: 1,
		image: func(dir string) ([]docker.Entry, []string, error) {
			return []docker.Entry{{Name: "built", Mode: 0o644, SourcePath: filepath.Join(dir, "built")}}, nil, nil
		},
		needs: append(append([]need{}, needsDebootstrap...), needGo),
	}
	tg := target{"linux", runtime.GOARCH}
	said := func() string {
		mu.Lock()
		defer mu.Unlock()
		s := strings.Join(lines, "\n")
		lines = nil
		return s
	}

	if err := r.check(ctx, []recipe{rc}, tg); err != nil {
		t.Errorf("check of a kept image: %v, want nil: nothing is built", err)
	}
	if err := r.image(ctx, rc, tg); err != nil {
		t.Fatal(err)
	}
	want := "fake: " + tag + " is on the engine and was not built here (an official image?): kept; `toolbox images build --replace` replaces it"
	if got := said(); got != want {
		t.Errorf("said:\n%s\nwant:\n%s", got, want)
	}
	if img, err := e.Image(ctx, tag); err != nil || img.ID != foreign.ID {
		t.Errorf("the foreign image was replaced: %s (%v), was %s", img.ID, err, foreign.ID)
	}
	if fk, _ := r.key(ctx, rc, tg); isDir(r.folderPath(rc, fk)) {
		t.Errorf("a kept image was built anyway into %s", r.folderPath(rc, fk))
	}

	r.replace = true
	if err := r.check(ctx, []recipe{rc}, tg); err == nil || !strings.Contains(err.Error(), "root, for fake") {
		t.Errorf("check with replace: %v, want root (and more) missing", err)
	}
	r.euid = func() int { return 0 }
	r.lookPath = func(f string) (string, error) { return f, nil }
	if err := r.image(ctx, rc, tg); err != nil {
		t.Fatal(err)
	}
	if got := said(); !strings.Contains(got, "over the image of that tag not built here (replace is on)") || !strings.Contains(got, "ready in") {
		t.Errorf("with replace, said:\n%s\nwant an import over the foreign image", got)
	}
	img, err := e.Image(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	_, ik, _ := r.imageKeyOf(ctx, rc, tg)
	if img.ID == foreign.ID || img.Labels[LabelKey] != ik {
		t.Errorf("with replace, the tag is %s labelled %q, want a new image labelled %q", img.ID, img.Labels[LabelKey], ik)
	}
	if ok, err := e.ImagePresent(ctx, foreign.ID); err != nil || !ok {
		t.Errorf("the replaced foreign image %s was removed (%v): it is not the builder's to remove", foreign.ID, err)
	}
	fakeMachine(r) // the image is current now: nothing is needed
	if err := r.check(ctx, []recipe{rc}, tg); err != nil {
		t.Errorf("check of a current image: %v, want nil", err)
	}
}
