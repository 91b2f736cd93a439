package commands

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

func restoreEnv(t *testing.T, b *fakeBackups) (*env, *fakeEngine) {
	t.Helper()
	m := &fakeEngine{calls: &callLog{}, deployed: map[string]*types.Project{}, total: 8 << 30}
	p := &fakeProxy{routes: map[string]string{}, calls: m.calls}
	e := newEnv(t, envOptions{apps: func(st *state.Store) *AppDeps {
		return &AppDeps{Catalog: catalog.New(nil), Engine: m, Proxy: p, Store: st, BaseDomain: "example.org", Backups: b}
	}})
	e.addAdmin(t, "ann")
	installWordpress(t, e, p, "7.1.2")
	return e, m
}

func TestRestore(t *testing.T) {
	b := &fakeBackups{}
	e, m := restoreEnv(t, b)
	if n := confirmAll(t, e, m, caller("ann"), "restore wordpress"); n != 1 {
		t.Errorf("restore asked %d confirmations, want 1", n)
	}
	if len(b.restores) != 1 {
		t.Fatalf("restores = %+v", b.restores)
	}
	req := b.restores[0]
	if req.Live.App != "wordpress" || req.Live.Generation != "" || req.Into != "1" || req.Snapshot != "latest" || !req.Swap ||
		len(req.Dumps) != 1 || !slices.Equal(req.Volumes, []string{"html"}) || req.Live.Project == nil {
		t.Errorf("request = %+v", req)
	}
	got := lastPost(t, e)
	if !contains(got, "succeeded", "**wordpress** runs on its backup of", "job 41", "12.0 MiB restored in 40s", "wordpress.sql: 12 posts", "`/toolbox restore undo wordpress`") {
		t.Errorf("restore = %q", got)
	}
	for _, ed := range e.chat.Edits() {
		if strings.Contains(ed.Text, dbPassword) {
			t.Errorf("a progress edit shows a secret: %q", ed.Text)
		}
	}
	rec, err := e.store.App("wordpress")
	if err != nil || rec.Generation != "1" || rec.Previous == nil || rec.Previous.Generation != "" {
		t.Fatalf("record = %+v, %v; want generation 1, the first kept", rec, err)
	}
	if want := e.clock.Now().Add(DefaultUndoWindow); !rec.Previous.Until.Equal(want) {
		t.Errorf("undo until %v, want %v", rec.Previous.Until, want)
	}

	// A second restore writes a new generation and drops the oldest data.
	confirmAll(t, e, m, caller("ann"), "restore wordpress 0123abcd")
	if req := b.restores[1]; req.Into != "2" || req.Live.Generation != "1" || req.Snapshot != "0123abcd" {
		t.Errorf("second request = %+v", req)
	}
	if !slices.Equal(b.dropped, []string{"wordpress@"}) {
		t.Errorf("dropped = %q, want the first generation", b.dropped)
	}
	rec, _ = e.store.App("wordpress")
	if rec.Generation != "2" || rec.Previous.Generation != "1" {
		t.Errorf("after the second restore: %+v", rec)
	}

	// Undo swaps the generations, and undoing again redoes.
	confirmAll(t, e, m, caller("ann"), "restore undo wordpress")
	if got := lastPost(t, e); !contains(got, "succeeded", "runs on its data from before the restore again") {
		t.Errorf("undo = %q", got)
	}
	if got := m.calls.changes(); got[len(got)-1] != "deploy wordpress (volumes 1)" {
		t.Errorf("undo deployed %q", got)
	}
	rec, _ = e.store.App("wordpress")
	if rec.Generation != "1" || rec.Previous.Generation != "2" {
		t.Errorf("after undo: %+v", rec)
	}
	confirmAll(t, e, m, caller("ann"), "restore undo wordpress")
	if rec, _ = e.store.App("wordpress"); rec.Generation != "2" || rec.Previous.Generation != "1" {
		t.Errorf("after undo twice: %+v", rec)
	}
}

func TestRestoreFailsAndChangesNothing(t *testing.T) {
	b := &fakeBackups{restoreErr: errors.New("the restored copy of wordpress did not start: db did not become healthy\nlogs with " + dbPassword)}
	e, m := restoreEnv(t, b)
	confirmAll(t, e, m, caller("ann"), "restore wordpress")
	got := lastPost(t, e)
	if !contains(got, "failed", "The restore of wordpress failed, and wordpress is as it was: the restored copy of wordpress did not start") || strings.Contains(got, dbPassword) {
		t.Errorf("failed restore = %q", got)
	}
	rec, _ := e.store.App("wordpress")
	if rec.Generation != "" || rec.Previous != nil {
		t.Errorf("record after a failed restore = %+v, want it unchanged", rec)
	}
	if len(m.calls.changes()) != 0 {
		t.Errorf("engine calls = %q, want none from commands", m.calls.changes())
	}
}

func TestRestoreRefusals(t *testing.T) {
	e, _ := restoreEnv(t, &fakeBackups{})
	for text, want := range map[string]string{
		"restore gitlab":             "not installed",
		"restore wordpress ../etc":   "is not a snapshot",
		"restore wordpress XYZ":      "is not a snapshot",
		"restore undo wordpress":     "nothing to undo",
		"restore wordpress a b":      "",
		"restore Bad_Name":           "is not an app name",
		"drill now gitlab":           "not installed",
		"restore wordpress 1234567g": "is not a snapshot",
	} {
		got := e.handle(caller("ann"), text).Text
		if want == "" {
			want = "Usage"
		}
		if !strings.Contains(got, want) {
			t.Errorf("%s = %q, want %q", text, got, want)
		}
	}
	if got := e.handle(caller("bob"), "restore wordpress").Text; !strings.Contains(got, "Only toolbox admins") {
		t.Errorf("restore by a member = %q", got)
	}
}

func TestDrill(t *testing.T) {
	b := &fakeBackups{}
	e, m := restoreEnv(t, b)
	e.handle(caller("ann"), "drill now")
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !contains(got, "succeeded", "Restore drill passed", "**wordpress**: passed", "wordpress.sql: 12 posts") {
		t.Errorf("drill = %q", got)
	}
	if req := b.restores[0]; req.Swap || req.Into != "drill" || req.Snapshot != "latest" {
		t.Errorf("drill request = %+v, want a scratch copy, not swapped", req)
	}
	if len(m.calls.changes()) != 0 {
		t.Errorf("a drill touched the live app: %q", m.calls.changes())
	}
	if got := e.handle(caller("bob"), "status").Text; !contains(got, "Backups go to swift:backups:/", "- wordpress: last restore drill passed") {
		t.Errorf("status after a drill = %q", got)
	}
	last, ok := e.router.deps.Apps.LastDrill("wordpress")
	if !ok || !last.OK || last.Size != 12<<20 {
		t.Errorf("kept drill = %+v, %v", last, ok)
	}

	b.restoreErr = Errorf(NotFound, "There is no whole backup of wordpress to restore.")
	e.handle(caller("ann"), "drill now wordpress")
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !contains(got, "failed", "Restore drill failed", ":rotating_light: **wordpress**: the drill FAILED: There is no whole backup") {
		t.Errorf("failed drill = %q", got)
	}
	if last, _ := e.router.deps.Apps.LastDrill("wordpress"); last.OK || last.Failure == "" {
		t.Errorf("kept failed drill = %+v", last)
	}
}

func TestUndoWindowEnds(t *testing.T) {
	b := &fakeBackups{}
	e, m := restoreEnv(t, b)
	confirmAll(t, e, m, caller("ann"), "restore wordpress")
	e.clock.Add(DefaultUndoWindow - time.Minute)
	if lines := e.router.deps.Apps.dropExpiredUndo(t.Context(), e.router); len(lines) != 0 || len(b.dropped) != 0 {
		t.Fatalf("before the end of the window: %q, dropped %q", lines, b.dropped)
	}
	e.clock.Add(2 * time.Minute)
	lines := e.router.deps.Apps.dropExpiredUndo(t.Context(), e.router)
	if len(lines) != 1 || !strings.Contains(lines[0], "7 days to undo the restore ended") || !slices.Equal(b.dropped, []string{"wordpress@"}) {
		t.Errorf("after the window: %q, dropped %q", lines, b.dropped)
	}
	if rec, _ := e.store.App("wordpress"); rec.Previous != nil || rec.Generation != "1" {
		t.Errorf("record = %+v", rec)
	}
}

// installedFrom records wordpress as running version from its catalog entry
// rewritten to that version, as an older toolbox would have deployed it.
func installedFrom(t *testing.T, e *env, version string) {
	t.Helper()
	app, err := catalog.Get("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(string(app.Source()), app.Version, version)
	rec, err := e.store.App("wordpress")
	if err != nil {
		t.Fatal(err)
	}
	rec.Version, rec.Source = version, []byte(src)
	if err := e.store.PutApp(rec); err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeBacksUpFirstAndRollsBack(t *testing.T) {
	b := &fakeBackups{}
	e, m := restoreEnv(t, b)
	installedFrom(t, e, "7.0.0")
	m.DeployFn = func(string) error { return errors.New("wordpress of wordpress did not become healthy: exited (1)") }
	confirmAll(t, e, m, caller("ann"), "upgrade wordpress")

	if len(b.requests) != 1 || b.requests[0].Version != "7.0.0" {
		t.Fatalf("backups = %+v, want one of 7.0.0 before the upgrade", b.requests)
	}
	if len(b.restores) != 1 {
		t.Fatalf("restores = %+v, want the rollback", b.restores)
	}
	req := b.restores[0]
	if req.Snapshot != "abc123" || !req.Swap || req.Into != "1" {
		t.Errorf("rollback request = %+v, want the backup just made, swapped into a new generation", req)
	}
	if img := req.Live.Project.Services["wordpress"].Image; !strings.Contains(img, "7.0.0") {
		t.Errorf("rollback deploys %s, want the previous version's image", img)
	}
	got := lastPost(t, e)
	if !contains(got, "failed", "The upgrade of wordpress to 7.1.2 failed", "went back to version 7.0.0 and to its backup from just before the upgrade") {
		t.Errorf("rollback = %q", got)
	}
	rec, _ := e.store.App("wordpress")
	if rec.Version != "7.0.0" || rec.Status != statusRunning || rec.Generation != "1" || rec.Previous == nil || rec.Previous.Version != "7.1.2" {
		t.Errorf("record after rollback = %+v", rec)
	}
}

func TestUpgradeRefusedWhenTheBackupFails(t *testing.T) {
	b := &fakeBackups{failApp: "wordpress"}
	e, m := restoreEnv(t, b)
	installedFrom(t, e, "7.0.0")
	confirmAll(t, e, m, caller("ann"), "upgrade wordpress")
	if got := lastPost(t, e); !contains(got, "The backup before the upgrade failed, so wordpress was not upgraded") {
		t.Errorf("upgrade with a failing backup = %q", got)
	}
	if got := m.calls.changes(); len(got) != 0 {
		t.Errorf("engine calls = %q, want none", got)
	}
	if rec, _ := e.store.App("wordpress"); rec.Version != "7.0.0" {
		t.Errorf("record = %+v", rec)
	}
}

func TestRecover(t *testing.T) {
	b := &fakeBackups{}
	e, m := restoreEnv(t, b)
	operator := Caller{UserName: "operator", Terminal: true}
	if got := e.handle(caller("ann"), "recover").Text; !strings.Contains(got, "only on the machine's terminal") {
		t.Errorf("recover from the chat = %q", got)
	}
	e.handle(operator, "recover")
	e.router.Jobs().Wait()
	if len(b.restores) != 1 || b.restores[0].Live.App != "wordpress" || b.restores[0].Snapshot != "latest" {
		t.Fatalf("restores = %+v", b.restores)
	}
	if got := m.calls.changes(); !slices.Equal(got, []string{"deploy wordpress (volumes 1)", "set-route wordpress blog.example.org tb-wordpress-wordpress:80"}) {
		t.Errorf("calls = %q, want the restored generation deployed and routed", got)
	}
	rec, _ := e.store.App("wordpress")
	if rec.Generation != "1" || rec.Status != statusRunning {
		t.Errorf("record = %+v", rec)
	}
	// The fake's restore replaced a running app; the recovery's undo is its
	// business. Run again while it runs: left alone.
	m.services = map[string][]Service{"wordpress": {{Name: "wordpress", State: "running", Health: "healthy"}}}
	e.handle(operator, "recover")
	e.router.Jobs().Wait()
	if len(b.restores) != 1 {
		t.Errorf("a second recover restored again: %+v", b.restores)
	}
	if got := lastPost(t, e); !strings.Contains(got, "already runs, left alone") {
		t.Errorf("second recover = %q", got)
	}
}

func TestOneDataJobPerApp(t *testing.T) {
	b := &fakeBackups{}
	e, m := restoreEnv(t, b)
	release, err := e.router.deps.Apps.exclusive(0, "wordpress")
	if err != nil {
		t.Fatal(err)
	}
	// Refused at once, before a prompt is posted.
	prompts := len(e.chat.Prompts())
	if got := e.handle(caller("ann"), "restore wordpress").Text; got != "wordpress is busy: the data it kept for undo is being removed. Try again in a minute." ||
		len(b.restores) != 0 || len(e.chat.Prompts()) != prompts {
		t.Errorf("restore while the app is held = %q, restores %d, prompts %d", got, len(b.restores), len(e.chat.Prompts())-prompts)
	}
	release()
	confirmAll(t, e, m, caller("ann"), "restore wordpress")
	if len(b.restores) != 1 {
		t.Errorf("restore after the other job = %d restores", len(b.restores))
	}
}

func TestSwapInterruptedIsFinishedByAdd(t *testing.T) {
	b := &fakeBackups{restoreErr: fmt.Errorf("wordpress did not start on the restored data, and going back failed: %w", ErrNotAsItWas)}
	e, m := restoreEnv(t, b)
	confirmAll(t, e, m, caller("ann"), "restore wordpress")
	if got := lastPost(t, e); !contains(got, "could not be put back on its previous data", "`/toolbox add wordpress` finishes the restore") {
		t.Errorf("a restore that could not go back = %q", got)
	}
	rec, _ := e.store.App("wordpress")
	if rec.Pending == nil || rec.Pending.Generation != "1" || rec.Generation != "" {
		t.Fatalf("record = %+v, want the swap recorded as pending", rec)
	}
	confirmAll(t, e, m, caller("ann"), "restore wordpress")
	if got := lastPost(t, e); !contains(got, "was interrupted while it moved wordpress onto the restored data") || len(b.restores) != 1 {
		t.Errorf("restore while a swap is pending = %q", got)
	}
	e.handle(caller("ann"), "add wordpress")
	e.router.Jobs().Wait()
	if got := m.calls.changes(); got[len(got)-2] != "deploy wordpress (volumes 1)" {
		t.Errorf("add after an interrupted swap deployed %q, want the restored generation", got)
	}
	rec, _ = e.store.App("wordpress")
	if rec.Pending != nil || rec.Generation != "1" || rec.Previous == nil || rec.Previous.Generation != "" {
		t.Errorf("record after add = %+v, want the swap finished and the old data kept for undo", rec)
	}
}

func TestUndoRefusedAcrossVersions(t *testing.T) {
	e, m := restoreEnv(t, &fakeBackups{})
	rec, _ := e.store.App("wordpress")
	rec.Generation, rec.Previous = "2", &state.PreviousData{Generation: "1", Version: "7.2.0", Until: e.clock.Now().Add(time.Hour)}
	if err := e.store.PutApp(rec); err != nil {
		t.Fatal(err)
	}
	confirmAll(t, e, m, caller("ann"), "restore undo wordpress")
	if got := lastPost(t, e); !contains(got, "is from version 7.2.0, and wordpress runs 7.1.2") {
		t.Errorf("undo across versions = %q", got)
	}
}

func TestRemoveThenAddKeepsTheRestoredData(t *testing.T) {
	b := &fakeBackups{}
	e, m := restoreEnv(t, b)
	confirmAll(t, e, m, caller("ann"), "restore wordpress")
	confirmAll(t, e, m, caller("ann"), "remove wordpress")
	e.handle(caller("ann"), "add wordpress blog.example.org")
	e.router.Jobs().Wait()
	lastDeploy := func() string {
		got := m.calls.changes()
		for i := len(got) - 1; i >= 0; i-- {
			if strings.HasPrefix(got[i], "deploy ") {
				return got[i]
			}
		}
		return ""
	}
	if got := lastDeploy(); got != "deploy wordpress (volumes 1)" {
		t.Errorf("add after remove: %q, want the restored generation", got)
	}
	confirmAll(t, e, m, caller("ann"), "remove wordpress --purge")
	e.handle(caller("ann"), "add wordpress blog.example.org")
	e.router.Jobs().Wait()
	if got := lastDeploy(); got != "deploy wordpress" {
		t.Errorf("add after a purge: %q, want the first generation", got)
	}
}
