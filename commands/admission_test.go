package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// blockingJob is a job verb that runs until release is closed.
func blockingJob(name string, release <-chan struct{}) *Verb {
	return jobVerb(name, func(ctx context.Context, _ Invocation) (string, error) {
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
}

// handleAll sends text from each caller at once and returns the replies.
func handleAll(e *env, callers []Caller, text string) []Reply {
	replies := make([]Reply, len(callers))
	var wg sync.WaitGroup
	for i, c := range callers {
		wg.Go(func() { replies[i] = e.handle(c, text) })
	}
	wg.Wait()
	return replies
}

func started(replies []Reply) (n int, refusals map[string]int) {
	refusals = map[string]int{}
	for _, r := range replies {
		if r.JobID != 0 {
			n++
		} else {
			refusals[r.Text]++
		}
	}
	return n, refusals
}

// Issue 8: a plain member started 200 selftests in four seconds, all
// running at once, 400 bot posts.
func TestSelftestFloodRunsOne(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, envOptions{checks: []Check{{Name: "slow", Run: func(ctx context.Context) (string, error) {
		select {
		case <-release:
			return "fine", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}}}})
	t.Cleanup(func() { close(release) })
	member := caller("mallory")
	callers := make([]Caller, 200)
	for i := range callers {
		callers[i] = member
	}
	n, refusals := started(handleAll(e, callers, "selftest"))
	running, starting := "A self-test is already running: job #1. Its result will appear in its channel.", "A self-test is being started right now. Its result will appear in its channel."
	if n != 1 || refusals[running]+refusals[starting] != 199 {
		t.Errorf("200 selftests at once: %d started, refusals %v; want 1 started and 199 times %q (or, while it is recorded, %q)", n, refusals, running, starting)
	}
	if jobs, _ := e.store.RecentJobs(500); len(jobs) != 1 {
		t.Errorf("%d jobs recorded, want 1", len(jobs))
	}
	// Another member is refused too: one self-test at a time, whoever starts it.
	if got := e.handle(caller("bob"), "selftest"); got.JobID != 0 || !strings.Contains(got.Text, "already running: job #1") {
		t.Errorf("selftest by another member = %+v, want refused", got)
	}
}

func TestJobCap(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, envOptions{limits: Limits{MaxRunningJobs: 3}, extra: []*Verb{blockingJob("work", release)}})
	t.Cleanup(func() { close(release) })
	for i, name := range []string{"ann", "bob", "carl"} {
		if got := e.handle(caller(name), "work"); got.JobID != uint64(i+1) {
			t.Fatalf("job %d by %s = %+v, want started", i+1, name, got)
		}
	}
	got := e.handle(caller("dan"), "work")
	want := "The toolbox already runs 3 jobs, the most it runs at once: job #1 `work`, job #2 `work`, job #3 `work`. Try again when one ends; `/toolbox jobs` shows them."
	if got.JobID != 0 || got.Text != want || !got.Failed {
		t.Errorf("a 4th job = %+v, want %q", got, want)
	}
	if rec := e.lastAudit(t); rec.Outcome != "refused" || rec.UserName != "dan" {
		t.Errorf("audit of the refusal = %+v", rec)
	}
	// The terminal (the operator, the nightly schedule) is never refused by the cap.
	if got := e.handle(Caller{UserName: "operator", Terminal: true}, "work"); got.JobID != 4 {
		t.Errorf("a job from the terminal beyond the cap = %+v, want started", got)
	}
}

func TestJobCapFreesWhenAJobEnds(t *testing.T) {
	e := newEnv(t, envOptions{limits: Limits{MaxRunningJobs: 1}, extra: []*Verb{jobVerb("quick", func(context.Context, Invocation) (string, error) { return "ok", nil })}})
	for i := range 3 {
		if got := e.handle(caller("ann"), "quick"); got.JobID == 0 {
			t.Fatalf("quick job %d after the previous ended = %+v", i+1, got)
		}
		e.router.Jobs().Wait()
	}
}

func TestJobRateLimitPerUser(t *testing.T) {
	e := newEnv(t, envOptions{extra: []*Verb{jobVerb("quick", func(context.Context, Invocation) (string, error) { return "ok", nil })}})
	ann := caller("ann")
	e.addAdmin(t, "ann") // admins are limited too
	for i := range DefaultJobStartsPerMinute {
		if got := e.handle(ann, "quick"); got.JobID == 0 {
			t.Fatalf("job %d of ann = %+v, want started", i+1, got)
		}
		e.router.Jobs().Wait()
	}
	want := "You have started 5 jobs in the last minute, the most each person may. Try again in 12 seconds."
	if got := e.handle(ann, "quick"); got.JobID != 0 || got.Text != want {
		t.Errorf("a 6th job within the minute = %+v, want %q", got, want)
	}
	if got := e.handle(caller("bob"), "quick"); got.JobID == 0 {
		t.Errorf("bob, limited by ann's jobs: %+v", got)
	}
	e.router.Jobs().Wait()
	e.clock.Add(12 * time.Second) // one token back
	if got := e.handle(ann, "quick"); got.JobID == 0 {
		t.Errorf("after 12 s = %+v, want started", got)
	}
	e.router.Jobs().Wait()
	if got := e.handle(ann, "quick"); got.JobID != 0 {
		t.Errorf("right after = %+v, want refused", got)
	}
	// Refusals cost nothing, and the terminal has no limit.
	for range 10 {
		if got := e.handle(Caller{UserName: "operator", Terminal: true}, "quick"); got.JobID == 0 {
			t.Fatalf("terminal job refused: %+v", got)
		}
		e.router.Jobs().Wait()
	}
}

func TestRateLimiterBounded(t *testing.T) {
	c := newClock()
	l := newRateLimiter(5, c.Now)
	for i := range maxBuckets + 10 {
		l.take(fmt.Sprint(i))
	}
	if len(l.buckets) > maxBuckets {
		t.Errorf("%d buckets, want at most %d", len(l.buckets), maxBuckets)
	}
}

// appsEnvBlocked is appsEnv whose deploys wait until the test ends.
func appsEnvBlocked(t *testing.T, m *fakeEngine) *env {
	t.Helper()
	unblock := make(chan struct{})
	m.DeployFn = func(string) error { <-unblock; return nil }
	e, _ := appsEnv(t, m)
	t.Cleanup(func() { close(unblock) })
	return e
}

// Issue 8: `remove wordpress` was accepted while its `add` was still running.
func TestOneJobPerApp(t *testing.T) {
	m := &fakeEngine{total: 8 << 30}
	e := appsEnvBlocked(t, m)
	if err := e.store.PutApp(state.App{Name: "mediawiki", Catalog: "mediawiki", Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	ann := caller("ann")
	if got := e.handle(ann, "add mediawiki"); got.JobID != 1 {
		t.Fatalf("add = %+v", got)
	}
	busy := "mediawiki is busy: job #1 `add mediawiki` holds it, and one job at a time may touch an app. Try again when it ends; `/toolbox jobs` shows it."
	prompts := len(e.chat.Prompts())
	for _, text := range []string{"add mediawiki", "remove mediawiki", "remove mediawiki --purge", "restart mediawiki", "upgrade mediawiki"} {
		if got := e.handle(ann, text); got.JobID != 0 || got.Text != busy {
			t.Errorf("%s during the add = %+v, want %q", text, got, busy)
		}
	}
	if n := len(e.chat.Prompts()) - prompts; n != 0 {
		t.Errorf("%d prompts posted for refused jobs", n)
	}
	// Another app is free.
	if err := e.store.PutApp(state.App{Name: "wordpress", Catalog: "wordpress", Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	if got := e.handle(ann, "restart wordpress"); got.JobID == 0 {
		t.Errorf("restart of another app = %+v, want started", got)
	}
}

func TestOneJobPerAppAtTheClick(t *testing.T) {
	m := &fakeEngine{total: 8 << 30}
	e := appsEnvBlocked(t, m)
	if err := e.store.PutApp(state.App{Name: "mediawiki", Catalog: "mediawiki", Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	ann := caller("ann")
	// The prompt is posted while the app is free; the add starts before the click.
	if got := e.handle(ann, "remove mediawiki").Text; !strings.Contains(got, "needs a confirmation") {
		t.Fatalf("remove = %q", got)
	}
	prompt := e.chat.Prompts()[0]
	if got := e.handle(ann, "add mediawiki"); got.JobID != 1 {
		t.Fatalf("add = %+v", got)
	}
	res := e.router.HandleClick(context.Background(), Click{Caller: ann, PostID: prompt.ID, Confirm: true, Token: prompt.Token})
	if !strings.Contains(res.Update, "It failed: mediawiki is busy: job #1 `add mediawiki` holds it") {
		t.Errorf("confirmed remove during the add = %+v", res)
	}
	if jobs, _ := e.store.RecentJobs(10); len(jobs) != 1 {
		t.Errorf("jobs = %+v, want only the add", jobs)
	}
}

// An app's hold ends with its job, and a job that holds the app since its
// acceptance may take it again inside (restore, upgrade).
func TestAppHoldEndsWithTheJob(t *testing.T) {
	m := &fakeEngine{total: 8 << 30}
	e, _ := appsEnv(t, m)
	ann := caller("ann")
	e.handle(ann, "add mediawiki")
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !strings.Contains(got, "**mediawiki** is running") {
		t.Fatalf("add = %q", got)
	}
	if n := confirmAll(t, e, m, ann, "upgrade mediawiki"); n != 1 {
		t.Errorf("upgrade took %d confirmations", n)
	}
	if got := lastPost(t, e); !strings.Contains(got, "succeeded") {
		t.Errorf("upgrade of a held app = %q", got)
	}
	if err := e.router.deps.Apps.lockTable().check("mediawiki"); err != nil {
		t.Errorf("after its jobs: %v", err)
	}
}

// Issue 8: on a machine with 1.2 GiB free, `add wordpress` twice plus `add
// mattermost` were all accepted at once. Adds sent together: exactly the ones
// that fit are accepted, whatever the order they arrive in.
func TestConcurrentAddsReserveMemory(t *testing.T) {
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			const free = 1228 << 20 // 1.2 GiB
			m := withFree(2<<30, free)
			e := appsEnvBlocked(t, m)
			if err := e.store.SetSetting(settingName("wordpress", "ADMIN_EMAIL"), "ann@example.org"); err != nil {
				t.Fatal(err)
			}
			texts := []string{"add wordpress", "add wordpress", "add mattermost", "add mediawiki", "add mediawiki", "add gitlab"}
			replies := make([]Reply, len(texts))
			var wg sync.WaitGroup
			for i, text := range texts {
				// Terminal callers: the rate limit is another test's.
				wg.Go(func() { replies[i] = e.handle(Caller{UserName: "operator", Terminal: true}, text) })
			}
			wg.Wait()
			cat := catalog.New(nil)
			need := func(name string) int64 {
				app, err := cat.Get(name)
				if err != nil {
					t.Fatal(err)
				}
				return app.Memory.Reservation()
			}
			accepted := map[string]bool{}
			var sum int64
			for i, r := range replies {
				name := strings.TrimPrefix(texts[i], "add ")
				if r.JobID != 0 {
					if accepted[name] {
						t.Errorf("%s accepted twice", name)
					}
					accepted[name] = true
					sum += need(name)
				}
			}
			if sum > free {
				t.Errorf("accepted %v: %d MiB, more than the %d MiB free", accepted, sum>>20, free>>20)
			}
			for i, r := range replies {
				name := strings.TrimPrefix(texts[i], "add ")
				switch {
				case r.JobID != 0:
				case accepted[name]:
					if !strings.Contains(r.Text, name+" is busy: ") {
						t.Errorf("second %s = %q, want busy", texts[i], r.Text)
					}
				case need(name) <= free-sum:
					t.Errorf("%s refused though it fits: %q (accepted %v)", name, r.Text, accepted)
				case strings.Contains(r.Text, name+" is busy: another job on it is being started"):
					// Its twin held it a moment, then was refused for memory:
					// the reservations only grow here, so it did not fit either.
				case !strings.Contains(r.Text, name+" needs "+formatBytes(need(name))+" of memory"):
					t.Errorf("%s = %q, want refused for memory", texts[i], r.Text)
				}
			}
			if len(accepted) == 0 {
				t.Errorf("nothing accepted: %+v", replies)
			}
		})
	}
}

// The reservation ends with the add: a failed add gives its memory back.
func TestReservationReleasedWhenTheAddEnds(t *testing.T) {
	m := withFree(2<<30, 500<<20)
	e, _ := appsEnv(t, m)
	// mattermost (240 MiB) and mediawiki (464 MiB) fit only alone; the
	// add of mattermost fails at the engine.
	m.DeployFn = func(string) error { return fmt.Errorf("engine down") }
	if got := e.handle(caller("ann"), "add mattermost"); got.JobID == 0 {
		t.Fatalf("add = %+v", got)
	}
	e.router.Jobs().Wait()
	m.DeployFn = nil
	if got := e.handle(caller("ann"), "add mediawiki"); got.JobID == 0 {
		t.Errorf("add after a failed add = %+v, want its memory free again", got)
	}
	e.router.Jobs().Wait()
	if len(e.router.deps.Apps.reserved) != 0 {
		t.Errorf("reservations left: %v", e.router.deps.Apps.reserved)
	}
}

// Issue 8: `remove mattermost --purge` was accepted from the chat.
func TestChatAppIsProtected(t *testing.T) {
	m := &fakeEngine{total: 8 << 30}
	e, _ := appsEnv(t, m)
	e.router.deps.Apps.ChatApp = "mattermost"
	if err := e.store.PutApp(state.App{Name: "mattermost", Catalog: "mattermost", Status: statusRunning}); err != nil {
		t.Fatal(err)
	}
	e.dir.IsSystemAdminFn = func(context.Context, string) (bool, error) { return true, nil } // even a system admin
	refused := "mattermost is the chat the toolbox lives in: it cannot be removed from the chat. " +
		"On the machine's terminal, `toolbox do --yes remove mattermost --chat` can, if that is really meant."
	for _, text := range []string{"remove mattermost", "remove mattermost --purge", "remove mattermost --purge --chat", "remove mattermost --chat"} {
		if got := e.handle(caller("ann"), text); got.Text != refused || !got.Failed {
			t.Errorf("%s from the chat = %+v, want %q", text, got, refused)
		}
		if rec := e.lastAudit(t); rec.Outcome != "refused" {
			t.Errorf("audit of %s = %q, want refused", text, rec.Outcome)
		}
	}
	if n := len(e.chat.Prompts()); n != 0 {
		t.Errorf("%d prompts posted", n)
	}
	term := func(text string) Reply {
		return e.router.Handle(context.Background(), Request{Caller: Caller{UserName: "operator", Terminal: true}, Text: text, Confirmed: true})
	}
	// The terminal's --yes is not enough: --chat is its own confirmation.
	if got := term("remove mattermost --purge").Text; !strings.Contains(got, "confirm it with `--chat`: `toolbox do --yes remove mattermost --purge --chat`") {
		t.Errorf("remove from the terminal without --chat = %q", got)
	}
	if got := term("remove wordpress --chat").Text; got != "`--chat` confirms the removal of the chat app (mattermost) only." {
		t.Errorf("--chat on another app = %q", got)
	}
	if got := term("remove mattermost --chat --chat").Text; got != "Usage: `/toolbox remove <app> [--purge]`" {
		t.Errorf("--chat twice = %q", got)
	}
	if calls := m.calls.changes(); len(calls) != 0 {
		t.Errorf("the engine was asked %q", calls)
	}
	if got := term("remove mattermost --purge --chat"); got.JobID == 0 {
		t.Fatalf("remove from the terminal with --chat = %+v", got)
	}
	e.router.Jobs().Wait()
	if got := m.calls.changes(); !slices.Contains(got, "remove mattermost purge=true") {
		t.Errorf("calls = %q, want the chat removed", got)
	}
}

// Starts that arrive together are admitted one by one: at most the cap run.
func TestJobCapUnderConcurrency(t *testing.T) {
	var running, most atomic.Int64
	release := make(chan struct{})
	e := newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(ctx context.Context, _ Invocation) (string, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		return "done", nil
	})}})
	var callers []Caller
	for i := range 50 {
		for range 5 {
			callers = append(callers, caller(fmt.Sprint("member", i)))
		}
	}
	n, _ := started(handleAll(e, callers, "work"))
	close(release)
	e.router.Jobs().Wait()
	if n != DefaultMaxRunningJobs || most.Load() > DefaultMaxRunningJobs {
		t.Errorf("250 starts at once: %d started, %d ran at once; want %d, and at most as many at once", n, most.Load(), DefaultMaxRunningJobs)
	}
}

// A verb whose admission panics gives back what its start took: the app, the
// job's place under the cap and the caller's token (found by review: the
// cleanup looked at an error that a panic never sets).
func TestAdmitPanicReleasesTheApp(t *testing.T) {
	boom := true
	verb := func(name string) *Verb {
		return &Verb{
			Name: name, Role: Anyone, Job: true, MaxArgs: 0,
			Apps: func([]string) []string { return []string{"wiki"} },
			Admit: func(context.Context, []string) (func(), error) {
				if boom {
					panic("admission broke")
				}
				return func() {}, nil
			},
			Run: func(context.Context, Invocation) (string, error) { return "done", nil },
		}
	}
	e := newEnv(t, envOptions{extra: []*Verb{verb("breaks")}, limits: Limits{MaxRunningJobs: 1, JobStartsPerMinute: 1}})
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the admission's panic did not reach the caller")
			}
		}()
		e.handle(caller("ann"), "breaks")
	}()
	boom = false
	if r := e.handle(caller("ann"), "breaks"); r.JobID == 0 {
		t.Fatalf("after a panicked admission, the same job by the same user = %q, want it started (app, place and token given back)", r.Text)
	}
}

// withFree is a machine of total bytes, without swap, on which other
// containers reserve what leaves free bytes to the adds.
func withFree(total, free int64) *fakeEngine {
	c := capacity{m: Machine{Memory: total}}
	return &fakeEngine{total: total, reserved: c.free() - free}
}
