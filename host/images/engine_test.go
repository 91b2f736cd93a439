package images

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// testImages caches the images the engine tests build, per recipe, for the
// life of the test binary: a test helper's process-wide cache, as
// dockertest's BuildGoImage keeps one.
var testImages sync.Map // recipe name → *testImage

type testImage struct {
	once sync.Once
	tag  string
	err  error
}

// builtImage builds the named recipe's image under toolbox-test/NAME:dev,
// from the cache folder DefaultCacheDir names (so that the builds of
// `toolbox images build`, CI's included, are reused), once per test binary,
// and returns its tag. An image of that tag with the same key is reused.
func builtImage(t *testing.T, e *docker.Engine, name string) string {
	t.Helper()
	v, _ := testImages.LoadOrStore(name, &testImage{})
	ti := v.(*testImage)
	ti.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		b := &Builder{Engine: e, Progress: func(line string) { t.Log(line) }}
		r, rs, err := b.start([]string{name})
		if err != nil {
			ti.err = err
			return
		}
		info, err := e.Info(ctx)
		if err != nil {
			ti.err = err
			return
		}
		rc := rs[0]
		rc.Tag = "toolbox-test/" + name + ":dev"
		ti.tag, ti.err = rc.Tag, r.image(ctx, rc, target{"linux", info.GOARCH()})
	})
	if ti.err != nil {
		t.Fatal(ti.err)
	}
	return ti.tag
}

// needDebootstrap fails the test under CI=true, and skips it elsewhere,
// when this machine cannot run debootstrap.
func needDebootstrap(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "the test runs as uid " + strconv.Itoa(os.Geteuid())
	} else if _, err := exec.LookPath("debootstrap"); err != nil {
		if _, err := exec.LookPath("apt-get"); err != nil {
			why = "there is neither debootstrap nor apt-get"
		}
	}
	if why == "" {
		return
	}
	msg := "this test builds an image with debootstrap, which needs root and debootstrap (apt-get install debootstrap, Debian's mirror): " + why
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
