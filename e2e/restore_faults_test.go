package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
	standincatalog "github.com/toolbox-collective/toolbox/internal/standin/catalog"
)

// The faults a backup or a restore of the stand-in must survive, on the real
// engine with the real restic: the toolbox killed in the middle, a
// repository that cannot be reached or does not take the password, a full
// disk in the restored copy, a copy that never becomes healthy. Each ends in
// a clear error, with the live app as it was and nothing swapped; after
// each, the repository passes `restic check`.

// faultRig is the stand-in installed by a toolbox that keeps its backups in
// a local repository volume of its own.
type faultRig struct {
	t      *testing.T
	e      *docker.Engine
	cli    *client.Client // for what docker.Engine does not show: a container's command
	env    []string
	app    string
	dir    string // the catalog folder
	volume string // the repository's volume
	start  time.Time
}

// step logs how long the test has taken when it reaches what.
func (r *faultRig) step(what string) {
	r.t.Helper()
	r.t.Logf("%6.1fs %s", time.Since(r.start).Seconds(), what)
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	e := dockertest.Engine(t)
	buildImages(t, e, "restic")
	env, app, dir := appsEnvDir(t, e)
	env, volume := withBackups(t, e, env)
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	// Before the repository's volume goes (cleanups run last first): a
	// killed toolbox's restic run, which only the next run of its name
	// would remove.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.RemoveContainer(ctx, "tb-restic-backup-"+app); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return &faultRig{t: t, e: e, cli: cli, env: env, app: app, dir: dir, volume: volume, start: time.Now()}
}

// do runs a toolbox command that must succeed, and logs how long it took.
func (r *faultRig) do(args ...string) string {
	r.t.Helper()
	start := time.Now()
	out := toolboxRun(r.t, r.env, args...)
	r.step(fmt.Sprintf("%q took %.1fs", args[len(args)-1], time.Since(start).Seconds()))
	return out
}

// with is the rig's environment and more.
func (r *faultRig) with(vars ...string) []string {
	return append(slices.Clip(r.env), vars...)
}

// records reads the live app's records.
func (r *faultRig) records(service string) string {
	r.t.Helper()
	var out strings.Builder
	name := stack.ContainerName(r.app, service)
	if code, err := r.e.Exec(context.Background(), name, []string{"/standin", "dump"}, &out, nil); err != nil || code != 0 {
		r.t.Fatalf("read the records of %s: code %d, %v", name, code, err)
	}
	return out.String()
}

// write replaces the live app's records.
func (r *faultRig) write(service, records string) {
	r.t.Helper()
	name := stack.ContainerName(r.app, service)
	if code, err := execIn(context.Background(), r.e, name, records, "/standin", "restore"); err != nil || code != 0 {
		r.t.Fatalf("write the records of %s: code %d, %v", name, code, err)
	}
}

// live is the app's containers by name, with their IDs: a swap recreates them.
func (r *faultRig) live() map[string]string {
	r.t.Helper()
	ids := map[string]string{}
	for _, c := range containersOf(r.t, r.e, r.app) {
		ids[c.Name] = c.ID
	}
	return ids
}

// untouched checks that the live app is as it was: the same containers,
// running and healthy, on its first volumes only, with the same records,
// and that no scratch copy is left.
func (r *faultRig) untouched(service, want string, ids map[string]string) {
	r.t.Helper()
	ctx := context.Background()
	cs := containersOf(r.t, r.e, r.app)
	got := map[string]string{}
	for _, c := range cs {
		got[c.Name] = c.ID
		if c.State != "running" || c.Health != "healthy" {
			r.t.Errorf("the live container %s is %s (%s), want running and healthy", c.Name, c.State, c.Health)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		r.t.Errorf("the live containers are %v, want %v unchanged", got, ids)
	}
	if got := r.records(service); got != want {
		r.t.Errorf("the live records are %s, want %s", digest(got), digest(want))
	}
	vols, err := r.e.Volumes(ctx, map[string]string{stack.LabelApp: r.app})
	if err != nil {
		r.t.Fatal(err)
	}
	if first := []string{stack.VolumeName(r.app, "data")}; !slices.Equal(vols, first) {
		r.t.Errorf("the app's volumes are %q, want %q: nothing restored is kept", vols, first)
	}
	for _, purpose := range stack.CopyPurposes {
		copyName := stack.CopyName(r.app, purpose)
		if cs := containersOf(r.t, r.e, copyName); len(cs) != 0 {
			r.t.Errorf("the scratch copy %s is left: %+v", copyName, cs)
		}
		if nets, err := r.e.Networks(ctx, map[string]string{stack.LabelApp: copyName}); err != nil || len(nets) != 0 {
			r.t.Errorf("the scratch copy's networks are left: %v, %v", nets, err)
		}
	}
}

// key is the repository's password, as `toolbox backup key` shows it.
func (r *faultRig) key() string {
	r.t.Helper()
	out := toolboxRun(r.t, r.env, "backup", "key")
	m := regexp.MustCompile(`(?m)^    (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		r.t.Fatalf("backup key printed no key:\n%s", out)
	}
	return m[1]
}

// restic runs plain restic on the repository, as the README's section on
// restoring without the toolbox does.
func (r *faultRig) restic(key string, args ...string) (string, int) {
	r.t.Helper()
	var out bytes.Buffer
	code, err := r.e.Run(context.Background(), docker.RunSpec{
		Name: dockertest.Unique(r.t, "restic"), Image: resticImage, Network: "none", Labels: dockertest.Labels(r.t, r.e),
		Cmd:    append([]string{"--no-cache"}, args...),
		Env:    map[string]string{"RESTIC_REPOSITORY": "/repository", "RESTIC_PASSWORD": key},
		Mounts: []docker.Mount{{Volume: r.volume, Target: "/repository"}},
		Stdout: &out, Stderr: &out,
	})
	if err != nil {
		r.t.Fatalf("restic %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), code
}

// checkRepository runs `restic check` (reading all the data) and wants it
// clean, with no lock left behind.
func (r *faultRig) checkRepository(key string) {
	r.t.Helper()
	defer r.step("restic check")
	if out, code := r.restic(key, "check", "--read-data"); code != 0 || !strings.Contains(out, "no errors were found") {
		r.t.Errorf("restic check: exit %d:\n%s", code, out)
	}
	if out, code := r.restic(key, "list", "locks", "--no-lock"); code != 0 || strings.TrimSpace(out) != "" {
		r.t.Errorf("locks left in the repository (exit %d):\n%s", code, out)
	}
}

// snapshot is what the tests read of `restic snapshots --json`.
type snapshot struct {
	ID   string   `json:"id"`
	Tags []string `json:"tags"`
}

func (r *faultRig) snapshots(key string) []snapshot {
	r.t.Helper()
	out, code := r.restic(key, "snapshots", "--json", "--no-lock", "--tag", "app="+r.app)
	var list []snapshot
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil {
		r.t.Fatalf("restic snapshots: exit %d:\n%s", code, out)
	}
	return list
}

// manyRecords makes n records of about 80 bytes each.
func manyRecords(what string, n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "%s record %07d of the collective, with some words to make it longer than short\n", what, i)
	}
	return b.String()
}

// digest names a set of records in messages: its size and its hash.
func digest(s string) string {
	return fmt.Sprintf("%d bytes (%x)", len(s), sha256.Sum256([]byte(s)))
}

// killToolbox sends SIGKILL: no deferred clean-up, no drain.
func killToolbox(t *testing.T, p *process) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err // for the cleanup
}

// until polls cond briskly while p runs; p ending first is a failure.
func until(t *testing.T, p *process, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("the toolbox ended (%v) before %s:\n%s", err, what, p.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// running says whether the container called name runs a command holding
// all of words; state is its state ("" when there is none).
func (r *faultRig) running(name string, words ...string) (ok bool, state string) {
	res, err := r.cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil || res.Container.Config == nil {
		return false, ""
	}
	state = string(res.Container.State.Status)
	for _, w := range words {
		if !slices.Contains(res.Container.Config.Cmd, w) {
			return false, state
		}
	}
	return res.Container.State.Running, state
}

// mounts lists the volumes the container called name mounts.
func (r *faultRig) mounts(name string) []string {
	res, err := r.cli.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		return nil
	}
	var vols []string
	for _, m := range res.Container.Mounts {
		vols = append(vols, m.Name)
	}
	return vols
}

// said is what people read of a toolbox command's output: without the log
// lines (slog's text, on stderr), which hold the whole error chain.
func said(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "time=") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// noTrace fails when out looks like a stack trace rather than sentences
// for people.
func noTrace(t *testing.T, what, out string) {
	t.Helper()
	for _, bad := range []string{"goroutine ", "panic:", ".go:", "runtime."} {
		if strings.Contains(out, bad) {
			t.Errorf("%s answered with a trace (%q):\n%s", what, bad, out)
		}
	}
}

// TestBackupFaultKilled kills the toolbox while restic saves the stand-in's
// dump (the stream the toolbox feeds it): the next run says the job was
// interrupted and backs up, the truncated stream is never listed nor
// restored, and the repository is clean.
func TestBackupFaultKilled(t *testing.T) {
	r := newFaultRig(t)
	r.do("do", "add "+r.app)
	// 9 MB of records: the dump takes long enough to be caught in the middle.
	first := manyRecords("first", 100_000)
	r.write("app", first)
	r.do("do", "backup now "+r.app)
	second := manyRecords("second", 100_000)
	r.write("app", second)
	ids := r.live()

	p := startToolbox(t, r.env, "do", "backup now "+r.app)
	run := "tb-restic-backup-" + r.app
	until(t, p, 2*time.Minute, "restic saving the dump", func() bool {
		ok, _ := r.running(run, "backup", "--stdin")
		return ok
	})
	killToolbox(t, p)
	_, state := r.running(run)
	t.Logf("right after the kill, the restic run %s is %q", run, cmp.Or(state, "gone"))
	r.untouched("app", second, ids)

	// The killed toolbox's restic goes on until it has read its input to
	// the end (the engine closes it when the toolbox's connection drops).
	// While it runs, the next run of the app's backup is refused with a
	// sentence that says so; once it has ended, its container is replaced.
	out, err := toolboxTry(t, r.env, "do", "backup now "+r.app)
	t.Logf("the next backup answered:\n%s", out)
	if !strings.Contains(out, "was interrupted") {
		t.Errorf("the next run does not report the interrupted backup:\n%s", out)
	}
	if err != nil {
		t.Fatalf("the backup after the kill failed (%v), want it to wait for the killed toolbox's restic:\n%s", err, out)
	}
	if !strings.Contains(out, "**"+r.app+"** 1.0: 3 snapshots") {
		t.Fatalf("the backup after the kill answered:\n%s", out)
	}
	if _, state := r.running(run); state != "" {
		t.Errorf("the restic run %s is left, %s", run, state)
	}

	key := r.key()
	var whole, cut int
	for _, s := range r.snapshots(key) {
		if slices.Contains(s.Tags, "what=records.txt") {
			if slices.Contains(s.Tags, "complete=1") {
				whole++
			} else {
				cut++
			}
		}
	}
	if cut != 0 {
		t.Errorf("%d records.txt snapshots cut short by the kill are left; the next run forgets them", cut)
	}
	if whole != 2 {
		t.Errorf("%d whole records.txt snapshots, want 2 (the runs before and after the kill)", whole)
	}
	list := r.do("do", "backups "+r.app)
	if n := strings.Count(list, "| "+r.app+" | records.txt |"); n != 2 {
		t.Errorf("backups lists %d records.txt snapshots, want the 2 whole ones:\n%s", n, list)
	}

	// The latest whole backup is the one after the kill.
	r.write("app", "changed after the backups\n")
	out = r.do("do", "--yes", "restore "+r.app)
	if !strings.Contains(out, "runs on its backup of") || !strings.Contains(out, "records.txt: 100000 records") {
		t.Errorf("the restore after the kill answered:\n%s", out)
	}
	if got := r.records("app"); got != second {
		t.Errorf("after the restore, the records are %s, want those of the backup after the kill, %s", digest(got), digest(second))
	}
	r.checkRepository(key)
}

// TestRestoreFaultKilledInCopy kills the toolbox while the restore's
// scratch copy runs: the live app is as it was, and the next restore says
// the first was interrupted, clears what it left and swaps in; the next
// backup works and the repository is clean.
func TestRestoreFaultKilledInCopy(t *testing.T) {
	r := newFaultRig(t)
	r.do("do", "add "+r.app)
	backedUp := manyRecords("backed up", 200_000)
	r.write("app", backedUp)
	r.do("do", "backup now "+r.app)
	after := "one record written after the backup\n"
	r.write("app", after)
	ids := r.live()

	p := startToolbox(t, r.env, "do", "--yes", "restore "+r.app)
	copyName := stack.CopyName(r.app, "restore")
	// Killed while the copy runs: its dump loads, or it is checked.
	until(t, p, 2*time.Minute, "the scratch copy running", func() bool {
		cs := containersOf(t, r.e, copyName)
		return len(cs) > 0 && cs[0].State == "running"
	})
	killToolbox(t, p)
	for _, c := range containersOf(t, r.e, copyName) {
		t.Logf("left by the kill: the copy's container %s, %s (%s)", c.Name, c.State, c.Health)
	}

	// The live app was never touched; only the copy and its volumes are left.
	if got := r.live(); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("after the kill, the live containers are %v, want %v", got, ids)
	}
	if got := r.records("app"); got != after {
		t.Errorf("after the kill, the live records are %s, want %s", digest(got), digest(after))
	}

	out := r.do("do", "--yes", "restore "+r.app)
	if !strings.Contains(said(out), "was interrupted") {
		t.Errorf("the next restore does not report the interrupted one:\n%s", out)
	}
	if !strings.Contains(out, "runs on its backup of") || !strings.Contains(out, "records.txt: 200000 records") {
		t.Fatalf("the restore after the kill answered:\n%s", out)
	}
	if got := r.records("app"); got != backedUp {
		t.Errorf("after the restore, the records are %s, want the backup's %s", digest(got), digest(backedUp))
	}
	if cs := containersOf(t, r.e, copyName); len(cs) != 0 {
		t.Errorf("the scratch copy is left: %+v", cs)
	}
	vols, err := r.e.Volumes(context.Background(), map[string]string{stack.LabelApp: r.app})
	if want := []string{stack.VolumeName(r.app, "data"), stack.GenerationVolume(r.app, "1", "data")}; err != nil || !slices.Equal(vols, want) {
		t.Errorf("volumes = %q (%v), want %q: the first kept for undo, the restored one", vols, err, want)
	}

	r.write("app", "after the restore\n")
	if out := r.do("do", "backup now "+r.app); !strings.Contains(out, "3 snapshots") {
		t.Errorf("the backup after the restore answered:\n%s", out)
	}
	r.checkRepository(r.key())
}

// TestRestoreFaultKilledInRestic kills the toolbox while restic restores
// the volume into the restore's new one: that restic goes on alone, and its
// container holds the new volume. The next restore replaces it (or, while
// it still runs, says so), clears what it left and swaps in.
func TestRestoreFaultKilledInRestic(t *testing.T) {
	r := newFaultRig(t)
	r.do("do", "add "+r.app)
	backedUp := manyRecords("backed up", 200_000)
	r.write("app", backedUp)
	r.do("do", "backup now "+r.app)
	before := "one record written after the backup\n"
	r.write("app", before)
	ids := r.live()

	p := startToolbox(t, r.env, "do", "--yes", "restore "+r.app)
	restored := stack.GenerationVolume(r.app, "1", "data")
	var run string
	until(t, p, 2*time.Minute, "restic restoring the volume", func() bool {
		cs, err := r.e.Containers(context.Background(), map[string]string{docker.LabelRun: "1", stack.LabelApp: "toolbox"})
		if err != nil {
			return false
		}
		for _, c := range cs {
			if c.State == "running" && slices.Contains(r.mounts(c.Name), restored) {
				run = c.Name
				return true
			}
		}
		return false
	})
	killToolbox(t, p)
	t.Cleanup(func() { _ = r.e.RemoveContainer(context.Background(), run) })
	_, state := r.running(run)
	t.Logf("killed while %s ran; right after the kill it is %q", run, cmp.Or(state, "gone"))
	if got := r.live(); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("after the kill, the live containers are %v, want %v", got, ids)
	}
	if got := r.records("app"); got != before {
		t.Errorf("after the kill, the live records are %s, want %s", digest(got), digest(before))
	}

	out, err := toolboxTry(t, r.env, "do", "--yes", "restore "+r.app)
	if !strings.Contains(said(out), "was interrupted") {
		t.Errorf("the next restore does not report the interrupted one:\n%s", out)
	}
	if err != nil {
		t.Fatalf("the restore after the kill failed (%v), want it to wait for the killed toolbox's restic:\n%s", err, out)
	}
	if !strings.Contains(out, "runs on its backup of") || !strings.Contains(out, "records.txt: 200000 records") {
		t.Fatalf("the restore after the kill answered:\n%s", out)
	}
	if got := r.records("app"); got != backedUp {
		t.Errorf("after the restore, the records are %s, want the backup's %s", digest(got), digest(backedUp))
	}
	if _, state := r.running(run); state != "" {
		t.Errorf("the killed toolbox's restic run %s is left, %s", run, state)
	}
	r.checkRepository(r.key())
}

// TestRestoreFaultKilledInSwap kills the toolbox in the swap itself: the
// live app's container recreated on the restored volume (its copy passed
// every check), the swap recorded as pending. The next restore says the
// first was interrupted and that add finishes it; add does, and the state
// knows both volumes: undo goes back to the data from before the restore,
// which is kept.
func TestRestoreFaultKilledInSwap(t *testing.T) {
	r := newFaultRig(t)
	r.do("do", "add "+r.app)
	backedUp := "one\ntwo\n"
	r.write("app", backedUp)
	r.do("do", "backup now "+r.app)
	before := "written after the backup\n"
	r.write("app", before)

	p := startToolbox(t, r.env, "do", "--yes", "restore "+r.app)
	live, restored := stack.ContainerName(r.app, "app"), stack.GenerationVolume(r.app, "1", "data")
	until(t, p, 2*time.Minute, "the live container on the restored volume", func() bool {
		return slices.Contains(r.mounts(live), restored)
	})
	killToolbox(t, p)
	for _, c := range containersOf(t, r.e, r.app) {
		t.Logf("left by the kill: %s, %s (%s), on %v", c.Name, c.State, c.Health, r.mounts(c.Name))
	}

	out, err := toolboxTry(t, r.env, "do", "--yes", "restore "+r.app)
	answer := said(out)
	if !strings.Contains(answer, "was interrupted") {
		t.Errorf("the next restore does not report the interrupted one:\n%s", out)
	}
	if err == nil || !strings.Contains(answer, "`/toolbox add "+r.app+"` finishes it first") {
		t.Fatalf("after a kill in the swap, the next restore answered (exit %v), want a refusal saying that add finishes the swap:\n%s", err, out)
	}
	out = r.do("do", "add "+r.app)
	if !strings.Contains(out, "finishing the interrupted restore") || !strings.Contains(out, "is running at") {
		t.Errorf("add after the kill in the swap answered:\n%s", out)
	}
	if cs := containersOf(t, r.e, r.app); len(cs) != 1 || cs[0].Health != "healthy" {
		t.Errorf("after add, the app's containers are %+v, want one healthy", cs)
	}
	if got := r.records("app"); got != backedUp {
		t.Errorf("after add finished the swap, the records are %q, want the backup's %q", got, backedUp)
	}
	r.do("do", "--yes", "restore undo "+r.app)
	if got := r.records("app"); got != before {
		t.Errorf("after undo, the records are %q, want those from before the restore, %q", got, before)
	}
}

// TestBackupFaultRepository backs up and restores with a repository that
// cannot be reached and with a wrong password: a sentence that says so,
// and nothing changed, neither the app nor the repository.
func TestBackupFaultRepository(t *testing.T) {
	r := newFaultRig(t)
	r.do("do", "add "+r.app)
	before := "one\ntwo\n"
	r.write("app", before)
	r.do("do", "backup now "+r.app)
	key := r.key()
	snaps := r.snapshots(key)
	ids := r.live()

	for _, tc := range []struct {
		name string
		env  string
		want map[string]string // by command: what the answer must say
	}{
		{"unreachable", "TOOLBOX_BACKUP_REPOSITORY=rest:http://127.0.0.1:1/", map[string]string{
			"backup now": "The backup repository cannot be reached",
			"restore":    "The backup repository cannot be reached",
			"backups":    "I could not read the backup repository",
		}},
		{"wrong password", "TOOLBOX_BACKUP_PASSWORD=not-the-repository-key", map[string]string{
			"backup now": "The backup repository does not accept the toolbox's password",
			"restore":    "The backup repository does not accept the toolbox's password",
			"backups":    "I could not read the backup repository",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := r.with(tc.env)
			for _, args := range [][]string{
				{"do", "backup now " + r.app},
				{"do", "--yes", "restore " + r.app},
				{"do", "backups " + r.app},
			} {
				verb := strings.TrimSuffix(args[len(args)-1], " "+r.app)
				start := time.Now()
				out, err := toolboxTry(t, env, args...)
				t.Logf("%s answered in %s:\n%s", verb, time.Since(start).Round(time.Millisecond), out)
				if err == nil || !strings.Contains(said(out), tc.want[verb]) {
					t.Errorf("%s answered (exit %v), want a failure saying %q:\n%s", verb, err, tc.want[verb], out)
				}
				noTrace(t, verb, out)
			}
			r.untouched("app", before, ids)
		})
	}
	if got := r.snapshots(key); fmt.Sprint(got) != fmt.Sprint(snaps) {
		t.Errorf("the repository's snapshots changed:\nbefore %v\nafter  %v", snaps, got)
	}
	r.checkRepository(key)
}

// TestRestoreFaultFullDisk restores into a scratch volume too small for the
// data: first the dump's load fills it, then restic's restore of the
// volume. The restore creates its volumes itself, after removing any it
// finds of that name (an earlier restore's leftovers), so no volume made
// beforehand can stand in: the toolbox reaches the engine through a proxy
// of the engine's API that creates that one volume as a 1 MiB tmpfs (see
// engineProxy).
func TestRestoreFaultFullDisk(t *testing.T) {
	r := newFaultRig(t)
	px := startEngineProxy(t, r.e)
	r.env = r.with("DOCKER_HOST=unix://" + px.socket)
	r.do("do", "add "+r.app)
	scratch := stack.GenerationVolume(r.app, "1", "data")
	px.tiny(scratch, "1m")

	for _, tc := range []struct {
		name    string
		records string
	}{
		// 700 kB fit the volume, not twice: the load writes a new file beside.
		{"the dump's load", manyRecords("small", 9_000)},
		// 3 MB do not fit at all.
		{"the volume's restore", manyRecords("large", 40_000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.write("app", tc.records)
			r.do("do", "backup now "+r.app)
			r.write("app", "after the backup\n")
			ids := r.live()
			out, err := toolboxTry(t, r.env, "do", "--yes", "restore "+r.app)
			t.Logf("the restore answered:\n%s", out)
			answer := said(out)
			if err == nil || !strings.Contains(answer, "is as it was") {
				t.Errorf("the restore into a full volume answered (exit %v), want a failure saying the app is as it was:\n%s", err, out)
			}
			if !strings.Contains(answer, "no space left on device") {
				t.Errorf("the answer does not say that the disk is full")
			}
			noTrace(t, "restore", out)
			if !px.made(scratch) {
				t.Errorf("the restore did not create %s through the proxy", scratch)
			}
			r.untouched("app", "after the backup\n", ids)
		})
	}

	// With room, the same backup restores.
	px.tiny(scratch, "")
	out := r.do("do", "--yes", "restore "+r.app)
	if !strings.Contains(out, "records.txt: 40000 records") {
		t.Errorf("the restore with room answered:\n%s", out)
	}
	r.checkRepository(r.key())
}

// unhealthyCopyEntry is the stand-in as an app with a database: its app
// service checks its health through its container's name, which only the
// live app has, so that a restored copy loads and checks its dump, then
// never becomes healthy.
const unhealthyCopyEntry = `services:
  db:
    image: toolbox-test/standin:1.0
    restart: unless-stopped
    command: ["serve"]
    environment:
      DATA_DIR: /data
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "/standin", "health"]
      interval: 1s
      retries: 30
    mem_reservation: 16m
    mem_limit: 32m
  app:
    image: toolbox-test/standin:1.0
    restart: unless-stopped
    command: ["serve"]
    environment:
      APP_NAME: ${TOOLBOX_APP}
      PORT: "8080"
      DATA_DIR: /tmp
      SECRET_KEY: ${SECRET_KEY}
      STANDIN_REQUIRE_ENV: SECRET_KEY
    expose:
      - "8080"
    healthcheck:
      test: ["CMD", "/standin", "health", "http://LIVE:8080/healthz"]
      interval: 1s
      retries: 3
    mem_reservation: 16m
    mem_limit: 32m

volumes:
  data: {}

x-toolbox:
  description: The stand-in with a database, healthy only as the live app
  upstream: https://github.com/toolbox-collective/toolbox
  version: "1.0"
  memory:
    db: {measured: 2m, date: 2026-12-02, how: "VmRSS of the stand-in run as a process after 60 requests"}
    app: {measured: 2m, date: 2026-12-02, how: "VmRSS of the stand-in run as a process after 60 requests"}
  disk: 16m
  entry:
    service: app
    port: 8080
  health_path: /healthz
  data_volumes: [data]
  dumps:
    - service: db
      file: records.txt
      command: ["/standin", "dump"]
      restore: ["/standin", "restore"]
      check: ["/standin", "count"]
      check_counts: records
  secrets:
    - name: SECRET_KEY
      length: 24
`

// TestRestoreFaultUnhealthyCopy restores an app whose restored copy never
// becomes healthy: the answer says the copy did not start and why, and the
// live app is as it was.
func TestRestoreFaultUnhealthyCopy(t *testing.T) {
	r := newFaultRig(t)
	entry := strings.ReplaceAll(unhealthyCopyEntry, "LIVE", stack.ContainerName(r.app, "app"))
	if err := os.WriteFile(filepath.Join(r.dir, r.app+".yaml"), []byte(entry), 0o644); err != nil {
		t.Fatal(err)
	}
	r.do("do", "add "+r.app)
	r.write("db", "one\ntwo\n")
	r.do("do", "backup now "+r.app)
	after := "one\ntwo\nthree, after the backup\n"
	r.write("db", after)
	ids := r.live()

	out, err := toolboxTry(t, r.env, "do", "--yes", "restore "+r.app)
	t.Logf("the restore answered:\n%s", out)
	answer := said(out)
	if err == nil || !strings.Contains(answer, "is as it was") || !strings.Contains(answer, "the restored copy of "+r.app+" did not start") {
		t.Errorf("the restore whose copy is unhealthy answered (exit %v), want a failure saying the copy did not start:\n%s", err, out)
	}
	if !strings.Contains(answer, "is unhealthy: check exited with code 1") {
		t.Errorf("the answer does not say why the copy did not start")
	}
	noTrace(t, "restore", out)
	r.untouched("db", after, ids)
	r.checkRepository(r.key())
}

// engineProxy passes the Docker engine's API through a unix socket of its
// own, and creates the volumes it is told to as small tmpfs volumes: a full
// disk where the toolbox makes its own volumes.
//
// The engine mounts a tmpfs volume when a container first uses it and
// unmounts it, its files gone, when the last one stops: unlike a disk, it
// would forget what restic restored before the copy starts. So a holder
// container keeps each small volume mounted from its creation until the
// toolbox removes it.
type engineProxy struct {
	socket string
	e      *docker.Engine
	labels map[string]string // of the holders

	mu    sync.Mutex
	sizes map[string]string // volume name → tmpfs size
	seen  map[string]bool   // volumes made small
}

func startEngineProxy(t *testing.T, e *docker.Engine) *engineProxy {
	t.Helper()
	host := cmp.Or(os.Getenv("DOCKER_HOST"), "unix:///var/run/docker.sock")
	u, err := client.ParseHostURL(host)
	if err != nil || (u.Scheme != "unix" && u.Scheme != "tcp") {
		t.Fatalf("the engine proxy reaches unix:// and tcp:// engines, not DOCKER_HOST=%s (%v)", host, err)
	}
	// The socket's path must fit in 108 bytes: not under t.TempDir's long name.
	dir, err := os.MkdirTemp("", "tbpx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	px := &engineProxy{socket: filepath.Join(dir, "docker.sock"), e: e, labels: dockertest.Labels(t, e),
		sizes: map[string]string{}, seen: map[string]bool{}}
	ln, err := net.Listen("unix", px.socket)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", "docker", "docker"
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, u.Scheme, u.Host)
			},
			DisableCompression: true,
		},
		FlushInterval: -1, // logs, events and progress stream
		ErrorLog:      log.New(io.Discard, "", 0),
		ModifyResponse: func(res *http.Response) error {
			// A small volume made: held mounted before the toolbox hears of it.
			if name := res.Request.Header.Get(holdHeader); name != "" && res.StatusCode/100 == 2 {
				return px.hold(res.Request.Context(), name)
			}
			return nil
		},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch {
		case req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/volumes/create"):
			if err := px.rewriteVolume(req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		case req.Method == http.MethodDelete && strings.Contains(req.URL.Path, "/volumes/"):
			// Let go of the volume, so that the toolbox can remove it.
			name := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
			if err := px.e.RemoveContainer(req.Context(), holderName(name)); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		rp.ServeHTTP(w, req)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return px
}

// tiny makes the volume called name a tmpfs of size when it is created;
// "" creates it as asked again.
func (px *engineProxy) tiny(name, size string) {
	px.mu.Lock()
	defer px.mu.Unlock()
	if size == "" {
		delete(px.sizes, name)
		return
	}
	px.sizes[name] = size
}

// made says whether the volume called name was created small.
func (px *engineProxy) made(name string) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	return px.seen[name]
}

func (px *engineProxy) rewriteVolume(req *http.Request) error {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	var v map[string]any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	name, _ := v["Name"].(string)
	px.mu.Lock()
	size := px.sizes[name]
	if size != "" {
		px.seen[name] = true
	}
	px.mu.Unlock()
	if size != "" {
		v["Driver"] = "local"
		v["DriverOpts"] = map[string]string{"type": "tmpfs", "device": "tmpfs", "o": "size=" + size}
		if body, err = json.Marshal(v); err != nil {
			return err
		}
		req.Header.Set(holdHeader, name)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	return nil
}

// holdHeader marks, between the proxy's halves, a volume created small.
const holdHeader = "X-Test-Hold-Volume"

func holderName(volume string) string { return "tbpx-hold-" + volume }

// hold starts a container that keeps the volume mounted.
func (px *engineProxy) hold(ctx context.Context, volume string) error {
	_, err := px.e.EnsureContainer(ctx, docker.ContainerSpec{
		Name: holderName(volume), Image: standincatalog.Image, Cmd: []string{"sleep", "1h"},
		Network: "none", Labels: px.labels, Restart: "no",
		Mounts: []docker.Mount{{Volume: volume, Target: "/held"}},
	})
	return err
}
