package commands

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/state"
)

// auditEnv is a router whose store logs its audit and job writes in calls,
// with test verbs that log their runs there too.
func auditEnv(t *testing.T) (*confirmEnv, *watchedStore) {
	t.Helper()
	calls := &callLog{}
	var watched *watchedStore
	ran := func(name string) func(context.Context, Invocation) (string, error) {
		return func(context.Context, Invocation) (string, error) { calls.add("run %s", name); return "done", nil }
	}
	e := &confirmEnv{env: newEnv(t, envOptions{
		store: func(st *state.Store) Store { watched = &watchedStore{Store: st, calls: calls}; return watched },
		extra: []*Verb{
			{Name: "tweak", MaxArgs: -1, Changes: always, Run: ran("tweak")},
			{Name: "peek", MaxArgs: -1, Run: ran("peek")},
			{Name: "work", MaxArgs: -1, Job: true, Run: ran("work")},
			{Name: "wipe", MaxArgs: -1, Changes: always, Confirmations: 1, Run: ran("wipe")},
			{Name: "sweep", MaxArgs: -1, Job: true, Confirmations: 1, Run: ran("sweep")},
		},
	})}
	return e, watched
}

// callsSince returns the calls logged after the first n.
func callsSince(l *callLog, n int) []string { return l.list()[n:] }

// Issue 8: a verb that changes state writes its audit record durably before
// it acts (a job, with its record in one transaction); read-only verbs keep
// the group commit.
func TestAuditBeforeActing(t *testing.T) {
	e, st := auditEnv(t)
	ann := caller("ann")
	tests := []struct {
		text string
		want []string
	}{
		{"tweak a", []string{"durable audit tweak a: running", "run tweak", "audit outcome: ok"}},
		{"peek a", []string{"run peek", "audit peek a: ok"}},
		{"work a", []string{"start job work with audit work a", "run work"}},
	}
	for _, tt := range tests {
		n := len(st.calls.list())
		e.handle(ann, tt.text)
		e.router.Jobs().Wait()
		if got := callsSince(st.calls, n); !slices.Equal(got, tt.want) {
			t.Errorf("%s: calls = %q, want %q", tt.text, got, tt.want)
		}
	}
	// Confirmed by a click: the click's record is the one written first.
	n := len(st.calls.list())
	token := e.ask(t, ann, "wipe a")
	e.click(t, ann, true, token)
	want := []string{"audit wipe a: asked for confirmation", "durable audit confirm on post prompt-post: running", "run wipe", "audit outcome: confirmed, ok"}
	if got := callsSince(st.calls, n); !slices.Equal(got, want) {
		t.Errorf("confirmed wipe: calls = %q, want %q", got, want)
	}
	n = len(st.calls.list())
	token = e.ask(t, ann, "sweep")
	e.click(t, ann, true, token)
	e.router.Jobs().Wait()
	// The job runs while the click is answered: only the job's record is
	// ordered before it.
	want = []string{"audit sweep: asked for confirmation", "start job sweep with audit confirm on post prompt-post", "audit outcome: confirmed, started job #2", "run sweep"}
	got := callsSince(st.calls, n)
	start, run := slices.Index(got, want[1]), slices.Index(got, want[3])
	if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, slices.Sorted(slices.Values(want))) || start > run {
		t.Errorf("confirmed sweep: calls = %q, want %q with the job recorded before it runs", got, want)
	}
	// What the log holds in the end: one record each, with its outcome.
	recs, err := e.store.RecentAudit(100)
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, r := range recs {
		got = append(got, r.Text+": "+r.Outcome)
	}
	wantLog := []string{"tweak a: ok", "peek a: ok", "work a: started job #1", "wipe a: asked for confirmation", "confirm on post prompt-post: confirmed, ok",
		"sweep: asked for confirmation", "confirm on post prompt-post: confirmed, started job #2"}
	slices.Reverse(got) // newest first
	if !slices.Equal(got, wantLog) {
		t.Errorf("audit log = %q, want %q", got, wantLog)
	}
}

func TestNoActionWithoutItsAuditRecord(t *testing.T) {
	e, st := auditEnv(t)
	st.AppendAuditDurableFn = func(state.AuditRecord) (uint64, error) { return 0, errors.New("no space left on device") }
	got := e.handle(caller("ann"), "tweak a")
	if want := "I could not write the audit log, so I did nothing. Try again in a moment."; got.Text != want || !got.Failed {
		t.Errorf("tweak with the audit log failing = %+v, want %q", got, want)
	}
	for _, c := range st.calls.list() {
		if strings.HasPrefix(c, "run ") {
			t.Errorf("the verb ran: %q", st.calls.list())
		}
	}
	if log := e.log.String(); !strings.Contains(log, "no space left on device") {
		t.Errorf("log lacks the cause:\n%s", log)
	}
}

// admins add and remove change state: their record is on disk before the list changes.
func TestAdminsAuditedBeforeTheChange(t *testing.T) {
	e, st := auditEnv(t)
	e.dir.IsSystemAdminFn = func(_ context.Context, id string) (bool, error) { return id == "id-root", nil }
	e.dir.UserByNameFn = func(_ context.Context, name string) (User, error) { return User{ID: "id-" + name, Name: name}, nil }
	root := caller("root")
	n := len(st.calls.list())
	e.click(t, root, true, e.ask(t, root, "admins add @bob"))
	want := []string{"audit admins add @bob: asked for confirmation", "durable audit confirm on post prompt-post: running", "add admin bob", "audit outcome: confirmed, ok"}
	if got := callsSince(st.calls, n); !slices.Equal(got, want) {
		t.Errorf("admins add: calls = %q, want %q", got, want)
	}
	term := Caller{UserName: "operator", Terminal: true}
	n = len(st.calls.list())
	e.router.Handle(context.Background(), Request{Caller: term, Text: "admins remove bob", Confirmed: true})
	want = []string{"durable audit admins remove bob: running", "remove admin id-bob", "audit outcome: ok"}
	if got := callsSince(st.calls, n); !slices.Equal(got, want) {
		t.Errorf("admins remove: calls = %q, want %q", got, want)
	}
}

// Every quick verb of the admins or the operator says whether it changes
// state, or is known to read only: a new one cannot forget its durable record.
func TestQuickAdminVerbsSayWhetherTheyChange(t *testing.T) {
	e, _ := restoreEnv(t, &fakeBackups{})
	readOnly := map[string]bool{"audit": true, "logs": true, "backup key": true}
	for _, v := range e.router.order {
		if v.Job || v.Role == Anyone || readOnly[v.Name] {
			continue
		}
		if v.Changes == nil {
			t.Errorf("%s: a quick verb of %s without Changes; mark it (verbs.go changing) or list it as read-only here", v.Name, v.Role)
		}
	}
}
