package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/host/images"
)

// buildImages makes the named images with the program's own builder (as
// `toolbox images build` does): the images the catalog and `toolbox up` name,
// from real components, because no registry can be reached. A warm cache
// (.ci/run fills it) makes this a label check. A build that cannot run here
// fails the test in CI and skips it elsewhere.
func buildImages(t *testing.T, e *docker.Engine, names ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	b := &images.Builder{Engine: e, Progress: func(line string) { t.Log(line) }}
	if err := b.Build(ctx, names...); err != nil {
		msg := fmt.Sprintf("%v\n(toolbox images build %s makes them; bash .ci/run does it)", err, strings.Join(names, " "))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}
