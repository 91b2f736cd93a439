package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestRestoreStandin restores the stand-in on the real engine with the real
// restic: back up, change its records, restore (a scratch copy checked
// first, then swapped in), undo and redo, drill; and the refusals that must
// change nothing.
func TestRestoreStandin(t *testing.T) {
	e := dockertest.Engine(t)
	buildImages(t, e, "restic")
	env, app := appsEnv(t, e)
	env, _ = withBackups(t, e, env)
	ctx := context.Background()
	container := stack.ContainerName(app, "app")
	records := func() string {
		t.Helper()
		var out strings.Builder
		if code, err := e.Exec(ctx, container, []string{"/standin", "dump"}, &out, nil); err != nil || code != 0 {
			t.Fatalf("read the records: code %d, %v", code, err)
		}
		return out.String()
	}
	write := func(s string) {
		t.Helper()
		if code, err := execIn(ctx, e, container, s, "/standin", "restore"); err != nil || code != 0 {
			t.Fatalf("write the records: code %d, %v", code, err)
		}
	}

	toolboxRun(t, env, "do", "add "+app)
	var vols []string
	out, err := toolboxTry(t, env, "do", "--yes", "restore "+app)
	if err == nil || !strings.Contains(out, "There are no backups yet") {
		t.Errorf("restore with no backup answered:\n%s", out)
	}
	before := "one\ntwo\n"
	write(before)
	toolboxRun(t, env, "do", "backup now "+app)
	write("one\ntwo\nthree, after the backup\n")

	out, err = toolboxTry(t, env, "do", "--yes", "restore "+app+" 0123abcd")
	if err == nil || !strings.Contains(out, "There is no snapshot `0123abcd`") {
		t.Errorf("restore of a snapshot that does not exist answered:\n%s", out)
	}
	out = toolboxRun(t, env, "do", "--yes", "restore "+app)
	if !strings.Contains(out, "runs on its backup of") || !strings.Contains(out, "records.txt: 2 records") {
		t.Fatalf("restore answered:\n%s", out)
	}
	if got := records(); got != before {
		t.Errorf("after the restore, records = %q, want %q", got, before)
	}
	if got := containersOf(t, e, stack.CopyName(app, "restore")); len(got) != 0 {
		t.Errorf("the scratch copy is left: %v", got)
	}
	vols, err = e.Volumes(ctx, map[string]string{stack.LabelApp: app})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(vols)
	if strings.Join(vols, " ") != stack.VolumeName(app, "data")+" "+stack.GenerationVolume(app, "1", "data") {
		t.Errorf("volumes = %q, want the first kept for undo and the restored one", vols)
	}

	out = toolboxRun(t, env, "do", "--yes", "restore undo "+app)
	if !strings.Contains(out, "runs on its data from before the restore again") {
		t.Fatalf("restore undo answered:\n%s", out)
	}
	if got := records(); !strings.Contains(got, "three, after the backup") {
		t.Errorf("after undo, records = %q, want the ones from before the restore", got)
	}
	toolboxRun(t, env, "do", "--yes", "restore undo "+app)
	if got := records(); got != before {
		t.Errorf("after undoing the undo, records = %q, want %q", got, before)
	}

	// The next backup reads the live generation, saved under the same path.
	write("one\ntwo\nfour\n")
	toolboxRun(t, env, "do", "backup now "+app)
	out = toolboxRun(t, env, "do", "drill now "+app)
	if !strings.Contains(out, "Restore drill passed") || !strings.Contains(out, "records.txt: 3 records") {
		t.Errorf("drill answered:\n%s", out)
	}
	if got := records(); got != "one\ntwo\nfour\n" {
		t.Errorf("a drill changed the live app: %q", got)
	}
	if got := containersOf(t, e, stack.CopyName(app, "drill")); len(got) != 0 {
		t.Errorf("the drill's copy is left: %v", got)
	}
}
