package schedule

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A bubble's clock starts at 2000-01-01 00:00 UTC, a Saturday, 01:00 in Paris.

type run struct {
	name    string
	due, at time.Time
}

// recorder records runs and the most runs going at once.
type recorder struct {
	mu      sync.Mutex
	runs    []run
	going   int
	maxSeen int
}

// job returns a Func that records its run, then works for d or until ctx ends.
func (r *recorder) job(name string, d time.Duration) Func {
	return func(ctx context.Context, due time.Time) error {
		r.mu.Lock()
		r.runs = append(r.runs, run{name, due, time.Now()})
		r.going++
		r.maxSeen = max(r.maxSeen, r.going)
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.going--
			r.mu.Unlock()
		}()
		select {
		case <-time.After(d):
		case <-ctx.Done():
		}
		return nil
	}
}

func (r *recorder) check(t *testing.T, want ...run) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.runs) != len(want) {
		t.Fatalf("runs = %v, want %v", r.runs, want)
	}
	for i, got := range r.runs {
		if got.name != want[i].name || !got.due.Equal(want[i].due) || !got.at.Equal(want[i].at) {
			t.Errorf("run %d = %s due %v at %v, want %s due %v at %v", i, got.name, got.due, got.at, want[i].name, want[i].due, want[i].at)
		}
	}
}

// logBuffer is what a test's logger writes to.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	var l logBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(l.String())
		}
	})
	return slog.New(slog.NewTextHandler(&l, nil)), &l
}

// start runs s until the returned function is called, which waits for Run.
func start(t *testing.T, s *Scheduler) (stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func mustParse(t *testing.T, s string) Spec {
	t.Helper()
	spec, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func add(t *testing.T, s *Scheduler, name, spec string, run Func) {
	t.Helper()
	if err := s.Add(name, mustParse(t, spec), run); err != nil {
		t.Fatal(err)
	}
}

func sleepUntil(tm time.Time) {
	time.Sleep(time.Until(tm))
	synctest.Wait()
}

func TestDaily(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		paris := load(t, "Europe/Paris")
		at := func(d, h, m int) time.Time { return time.Date(2000, 1, d, h, m, 0, 0, paris) }
		logger, _ := testLogger(t)
		s := New(Config{Location: paris, Logger: logger})
		var r recorder
		add(t, s, "backup:wordpress", "daily 03:00", r.job("backup:wordpress", time.Minute))
		if next, ok := s.Next("backup:wordpress"); !ok || !next.Equal(at(1, 3, 0)) {
			t.Errorf("Next = %v, %v, want %v, true", next, ok, at(1, 3, 0))
		}
		stop := start(t, s)
		sleepUntil(at(4, 12, 0))
		r.check(t,
			run{"backup:wordpress", at(1, 3, 0), at(1, 3, 0)},
			run{"backup:wordpress", at(2, 3, 0), at(2, 3, 0)},
			run{"backup:wordpress", at(3, 3, 0), at(3, 3, 0)},
			run{"backup:wordpress", at(4, 3, 0), at(4, 3, 0)},
		)
		if next, ok := s.Next("backup:wordpress"); !ok || !next.Equal(at(5, 3, 0)) {
			t.Errorf("Next = %v, %v, want %v, true", next, ok, at(5, 3, 0))
		}
		stop()
	})
}

func TestDaylightSaving(t *testing.T) {
	paris := load(t, "Europe/Paris")
	utc := func(mo time.Month, d, h, m int) time.Time { return time.Date(2000, mo, d, h, m, 0, 0, time.UTC) }
	for _, tt := range []struct {
		name string
		from time.Time
		want []time.Time
	}{
		// 2000-03-26 02:00 CET became 03:00 CEST: 02:30 did not exist.
		{"spring forward", utc(3, 25, 12, 0), []time.Time{utc(3, 26, 1, 0), utc(3, 27, 0, 30), utc(3, 28, 0, 30)}},
		// 2000-10-29 03:00 CEST became 02:00 CET: 02:30 happened twice.
		{"fall back", utc(10, 28, 12, 0), []time.Time{utc(10, 29, 0, 30), utc(10, 30, 1, 30), utc(10, 31, 1, 30)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sleepUntil(tt.from)
				logger, _ := testLogger(t)
				s := New(Config{Location: paris, Logger: logger})
				var r recorder
				add(t, s, "backup", "daily 02:30", r.job("backup", time.Minute))
				stop := start(t, s)
				sleepUntil(tt.from.Add(3 * 24 * time.Hour))
				var want []run
				for _, w := range tt.want {
					want = append(want, run{"backup", w, w})
				}
				r.check(t, want...)
				stop()
			})
		})
	}
}

func TestWeekly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		paris := load(t, "Europe/Paris")
		at := func(d int) time.Time { return time.Date(2000, 1, d, 4, 30, 0, 0, paris) }
		logger, _ := testLogger(t)
		s := New(Config{Location: paris, Logger: logger})
		var r recorder
		add(t, s, "drill", "weekly Sunday 04:30", r.job("drill", time.Hour))
		stop := start(t, s)
		sleepUntil(time.Date(2000, 1, 29, 12, 0, 0, 0, paris)) // a Saturday
		r.check(t, run{"drill", at(2), at(2)}, run{"drill", at(9), at(9)}, run{"drill", at(16), at(16)}, run{"drill", at(23), at(23)})
		stop()
	})
}

// memStore is a Store in memory, with function fields for failures.
type memStore struct {
	mu      sync.Mutex
	last    map[string]time.Time
	lastErr error
}

func (m *memStore) LastRun(name string) (time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last[name], m.lastErr
}

func (m *memStore) SetLastRun(name string, t time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[name] = t
	return nil
}

var _ Store = (*memStore)(nil)

func TestCatchUp(t *testing.T) {
	paris := load(t, "Europe/Paris")
	at := func(d, h, m int) time.Time { return time.Date(2000, 1, d, h, m, 0, 0, paris) }
	for _, tt := range []struct {
		name, spec string
		last       time.Time // zero: never ran
		want       []run
	}{
		{"down three days", "daily 03:00", at(7, 3, 0), []run{{"job", at(10, 3, 0), at(10, 10, 0)}, {"job", at(11, 3, 0), at(11, 3, 0)}}},
		{"ran today", "daily 03:00", at(10, 3, 0), []run{{"job", at(11, 3, 0), at(11, 3, 0)}}},
		{"ran today late", "daily 03:00", at(10, 9, 0), []run{{"job", at(11, 3, 0), at(11, 3, 0)}}},
		{"never ran", "daily 03:00", time.Time{}, []run{{"job", at(11, 3, 0), at(11, 3, 0)}}},
		{"weekly down two weeks", "weekly sunday 04:30", time.Date(1999, 12, 26, 4, 30, 0, 0, paris), []run{{"job", at(9, 4, 30), at(10, 10, 0)}}},
		{"weekly ran", "weekly sunday 04:30", at(9, 4, 30), nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				sleepUntil(at(10, 10, 0)) // a Monday
				store := &memStore{last: map[string]time.Time{}}
				if !tt.last.IsZero() {
					store.last["job"] = tt.last
				}
				logger, _ := testLogger(t)
				s := New(Config{Location: paris, Store: store, Logger: logger})
				var r recorder
				add(t, s, "job", tt.spec, r.job("job", time.Minute))
				stop := start(t, s)
				sleepUntil(at(11, 12, 0))
				r.check(t, tt.want...)
				if len(tt.want) > 0 {
					if got, _ := store.LastRun("job"); !got.Equal(tt.want[len(tt.want)-1].due) {
						t.Errorf("LastRun = %v, want %v", got, tt.want[len(tt.want)-1].due)
					}
				}
				stop()
			})
		})
	}
}

func TestCatchUpStoreError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDisk := errors.New("disk on fire")
		var mu sync.Mutex
		var errs []error
		s := New(Config{
			Location: time.UTC,
			Store:    &memStore{last: map[string]time.Time{}, lastErr: errDisk},
			OnError:  func(name string, err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
		})
		add(t, s, "job", "daily 03:00", func(context.Context, time.Time) error { return nil })
		if len(errs) != 1 || !errors.Is(errs[0], errDisk) || !strings.Contains(errs[0].Error(), "last run of job") {
			t.Errorf("errors = %v, want one about the last run of job", errs)
		}
		if next, _ := s.Next("job"); !next.Equal(time.Date(2000, 1, 1, 3, 0, 0, 0, time.UTC)) {
			t.Errorf("Next = %v, want the next occurrence", next)
		}
	})
}

func TestNoOverlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		at := func(d, h int) time.Time { return time.Date(2000, 1, d, h, 0, 0, 0, time.UTC) }
		logger, logs := testLogger(t)
		s := New(Config{Location: time.UTC, Logger: logger, MaxConcurrent: 4})
		var r recorder
		add(t, s, "slow", "daily 03:00", r.job("slow", 36*time.Hour))
		stop := start(t, s)
		sleepUntil(at(5, 12))
		r.check(t, run{"slow", at(1, 3), at(1, 3)}, run{"slow", at(3, 3), at(3, 3)}, run{"slow", at(5, 3), at(5, 3)})
		if r.maxSeen != 1 {
			t.Errorf("at most %d runs at once, want 1", r.maxSeen)
		}
		if got := strings.Count(logs.String(), "skipped a run"); got != 2 {
			t.Errorf("%d skipped runs logged, want 2", got)
		}
		stop()
	})
}

func TestReplace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		at := func(d, h, m int) time.Time { return time.Date(2000, 1, d, h, m, 0, 0, time.UTC) }
		logger, _ := testLogger(t)
		s := New(Config{Location: time.UTC, Logger: logger})
		var r recorder
		add(t, s, "backup", "daily 03:00", r.job("backup", time.Minute))
		stop := start(t, s)
		sleepUntil(at(1, 12, 0))
		add(t, s, "backup", "daily 04:00", r.job("backup", time.Minute))
		if next, _ := s.Next("backup"); !next.Equal(at(2, 4, 0)) {
			t.Errorf("Next = %v, want %v", next, at(2, 4, 0))
		}
		sleepUntil(at(3, 3, 30))
		// Replaced while a run goes: the new schedule does not start a second one.
		add(t, s, "backup", "daily 03:45", r.job("backup", time.Hour))
		sleepUntil(at(3, 3, 50))
		add(t, s, "backup", "daily 04:05", r.job("backup", time.Minute))
		sleepUntil(at(4, 12, 0))
		r.check(t,
			run{"backup", at(1, 3, 0), at(1, 3, 0)},
			run{"backup", at(2, 4, 0), at(2, 4, 0)},
			run{"backup", at(3, 3, 45), at(3, 3, 45)}, // ends at 04:45
			run{"backup", at(4, 4, 5), at(4, 4, 5)},   // 3 January 04:05 was skipped
		)
		if r.maxSeen != 1 {
			t.Errorf("at most %d runs at once, want 1", r.maxSeen)
		}
		stop()
	})
}

func TestRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		at := func(d, h int) time.Time { return time.Date(2000, 1, d, h, 0, 0, 0, time.UTC) }
		logger, _ := testLogger(t)
		s := New(Config{Location: time.UTC, Logger: logger})
		var r recorder
		add(t, s, "a", "daily 03:00", r.job("a", time.Hour))
		add(t, s, "b", "daily 03:00", r.job("b", time.Hour))
		add(t, s, "c", "daily 05:00", r.job("c", time.Hour))
		stop := start(t, s)
		sleepUntil(at(1, 3).Add(30 * time.Minute)) // a runs, b waits for the slot
		if !s.Remove("b") || !s.Remove("c") {
			t.Error("Remove of a scheduled job = false, want true")
		}
		if s.Remove("c") {
			t.Error("Remove of a removed job = true, want false")
		}
		if next, ok := s.Next("c"); ok {
			t.Errorf("Next of a removed job = %v, true, want false", next)
		}
		sleepUntil(at(2, 12))
		r.check(t, run{"a", at(1, 3), at(1, 3)}, run{"a", at(2, 3), at(2, 3)})
		stop()
	})
}

func TestMaxConcurrent(t *testing.T) {
	for _, tt := range []struct {
		max    int
		starts []int // hours at which a, b and c start
	}{
		{0, []int{3, 4, 5}},
		{1, []int{3, 4, 5}},
		{2, []int{3, 3, 4}},
		{3, []int{3, 3, 3}},
	} {
		t.Run(strings.Repeat("I", tt.max), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				at := func(h int) time.Time { return time.Date(2000, 1, 1, h, 0, 0, 0, time.UTC) }
				logger, _ := testLogger(t)
				s := New(Config{Location: time.UTC, Logger: logger, MaxConcurrent: tt.max})
				var r recorder
				for _, name := range []string{"c", "a", "b"} {
					add(t, s, name, "daily 03:00", r.job(name, time.Hour))
				}
				stop := start(t, s)
				sleepUntil(at(12))
				// Runs that start together go on in any order.
				r.mu.Lock()
				slices.SortFunc(r.runs, func(a, b run) int { return cmp.Or(a.at.Compare(b.at), strings.Compare(a.name, b.name)) })
				r.mu.Unlock()
				r.check(t,
					run{"a", at(3), at(tt.starts[0])},
					run{"b", at(3), at(tt.starts[1])},
					run{"c", at(3), at(tt.starts[2])},
				)
				if want := max(tt.max, 1); r.maxSeen != want {
					t.Errorf("at most %d runs at once, want %d", r.maxSeen, want)
				}
				stop()
			})
		})
	}
}

func TestCancelWaitsForRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, _ := testLogger(t)
		s := New(Config{Location: time.UTC, Logger: logger})
		var gotErr error
		finished := false
		add(t, s, "drill", "daily 03:00", func(ctx context.Context, due time.Time) error {
			<-ctx.Done()
			gotErr = ctx.Err()
			time.Sleep(time.Minute) // cleaning up
			finished = true
			return nil
		})
		stop := start(t, s)
		sleepUntil(time.Date(2000, 1, 1, 4, 0, 0, 0, time.UTC))
		stop()
		if !finished || !errors.Is(gotErr, context.Canceled) {
			t.Errorf("after Run: finished = %v, ctx.Err() = %v, want true, %v", finished, gotErr, context.Canceled)
		}
		if got, want := time.Now(), time.Date(2000, 1, 1, 4, 1, 0, 0, time.UTC); !got.Equal(want) {
			t.Errorf("Run returned at %v, want %v", got, want)
		}
	})
}

func TestErrorsAndPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errRestic := errors.New("restic: repository locked")
		var mu sync.Mutex
		var errs []string
		store := &memStore{last: map[string]time.Time{}}
		logger, _ := testLogger(t)
		s := New(Config{
			Location: time.UTC,
			Logger:   logger,
			Store:    store,
			OnError: func(name string, err error) {
				mu.Lock()
				defer mu.Unlock()
				if name == "backup" && !errors.Is(err, errRestic) {
					t.Errorf("backup error %v is not %v", err, errRestic)
				}
				errs = append(errs, name+": "+strings.SplitN(err.Error(), "\n", 2)[0])
			},
		})
		add(t, s, "backup", "daily 03:00", func(context.Context, time.Time) error { return errRestic })
		add(t, s, "cost-daily", "daily 08:00", func(context.Context, time.Time) error { panic("boom") })
		stop := start(t, s)
		sleepUntil(time.Date(2000, 1, 2, 12, 0, 0, 0, time.UTC))
		stop()
		want := []string{
			"backup: schedule: backup due 2000-01-01 03:00 UTC: restic: repository locked",
			"cost-daily: schedule: cost-daily due 2000-01-01 08:00 UTC: panicked: boom",
			"backup: schedule: backup due 2000-01-02 03:00 UTC: restic: repository locked",
			"cost-daily: schedule: cost-daily due 2000-01-02 08:00 UTC: panicked: boom",
		}
		if strings.Join(errs, "\n") != strings.Join(want, "\n") {
			t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(errs, "\n"), strings.Join(want, "\n"))
		}
		if got, _ := store.LastRun("cost-daily"); !got.Equal(time.Date(2000, 1, 2, 8, 0, 0, 0, time.UTC)) {
			t.Errorf("LastRun(cost-daily) = %v, want the failed run recorded", got)
		}
	})
}

func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logger, _ := testLogger(t)
		s := New(Config{Logger: logger})
		stop := start(t, s)
		synctest.Wait()
		if err := s.Run(t.Context()); err == nil {
			t.Error("second Run = nil, want an error")
		}
		stop()
		stop = start(t, s) // again after the first ended
		stop()
	})
}

func TestAddInvalid(t *testing.T) {
	s := New(Config{})
	ok := func(context.Context, time.Time) error { return nil }
	spec := mustParse(t, "daily 03:00")
	for _, tt := range []struct {
		name string
		spec Spec
		run  Func
	}{
		{"", spec, ok},
		{"job", Spec{}, ok},
		{"job", spec, nil},
	} {
		if err := s.Add(tt.name, tt.spec, tt.run); err == nil {
			t.Errorf("Add(%q, %v, %p) = nil, want an error", tt.name, tt.spec, tt.run)
		}
	}
}

func TestReschedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		paris := load(t, "Europe/Paris")
		at := func(d, h, m int) time.Time { return time.Date(2000, 1, d, h, m, 0, 0, paris) }
		logger, logs := testLogger(t)
		store := &memStore{last: map[string]time.Time{}}
		s := New(Config{Location: paris, Logger: logger, Store: store})
		var r recorder
		add(t, s, "backup", "daily 03:00", r.job("backup", time.Hour))
		stop := start(t, s)
		sleepUntil(at(1, 12, 0))

		// Later the same day: the next run is tomorrow's, at the new time,
		// with the function given to Add.
		if err := s.Reschedule("backup", mustParse(t, "daily 04:30")); err != nil {
			t.Fatal(err)
		}
		if next, _ := s.Next("backup"); !next.Equal(at(2, 4, 30)) {
			t.Errorf("Next = %v, want %v", next, at(2, 4, 30))
		}
		if spec, ok := s.Spec("backup"); !ok || spec.String() != "daily 04:30" {
			t.Errorf("Spec = %v, %v, want daily 04:30, true", spec, ok)
		}
		// Earlier the same day than now: the first occurrence after now,
		// no catch-up of today's.
		sleepUntil(at(2, 20, 0))
		if err := s.Reschedule("backup", mustParse(t, "daily 19:00")); err != nil {
			t.Fatal(err)
		}
		if next, _ := s.Next("backup"); !next.Equal(at(3, 19, 0)) {
			t.Errorf("Next = %v, want %v", next, at(3, 19, 0))
		}
		// While a run goes: the new time comes during the run and is skipped.
		sleepUntil(at(3, 19, 30))
		if err := s.Reschedule("backup", mustParse(t, "daily 19:45")); err != nil {
			t.Fatal(err)
		}
		// To a weekly schedule: 2000-01-09 is a Sunday.
		sleepUntil(at(4, 21, 0))
		if err := s.Reschedule("backup", mustParse(t, "weekly sunday 05:00")); err != nil {
			t.Fatal(err)
		}
		sleepUntil(at(10, 12, 0))
		r.check(t,
			run{"backup", at(1, 3, 0), at(1, 3, 0)},
			run{"backup", at(2, 4, 30), at(2, 4, 30)},
			run{"backup", at(3, 19, 0), at(3, 19, 0)}, // ends at 20:00
			run{"backup", at(4, 19, 45), at(4, 19, 45)},
			run{"backup", at(9, 5, 0), at(9, 5, 0)},
		)
		if r.maxSeen != 1 {
			t.Errorf("at most %d runs at once, want 1", r.maxSeen)
		}
		if got := strings.Count(logs.String(), "skipped a run"); got != 1 {
			t.Errorf("%d skipped runs logged, want 1 (3 January 19:45)", got)
		}
		if got, _ := store.LastRun("backup"); !got.Equal(at(9, 5, 0)) {
			t.Errorf("LastRun = %v, want %v", got, at(9, 5, 0))
		}
		stop()
	})
}

func TestRescheduleRefusals(t *testing.T) {
	s := New(Config{Location: time.UTC})
	if err := s.Reschedule("backup", mustParse(t, "daily 03:00")); err == nil || !strings.Contains(err.Error(), "no such job") {
		t.Errorf("Reschedule of an unknown job = %v, want no such job", err)
	}
	add(t, s, "backup", "daily 03:00", func(context.Context, time.Time) error { return nil })
	if err := s.Reschedule("backup", Spec{}); err == nil {
		t.Error("Reschedule with the zero Spec = nil, want an error")
	}
	if spec, _ := s.Spec("backup"); spec.String() != "daily 03:00" {
		t.Errorf("Spec after a refused Reschedule = %v, want daily 03:00", spec)
	}
	if _, ok := s.Spec("drill"); ok {
		t.Error("Spec of an unknown job: ok, want not")
	}
}

// TestRescheduleWhileRunning changes the schedule from many goroutines while
// Run goes (for the race detector): the last change wins, and runs follow it.
func TestRescheduleWhileRunning(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		at := func(d, h, m int) time.Time { return time.Date(2000, 1, d, h, m, 0, 0, time.UTC) }
		logger, _ := testLogger(t)
		s := New(Config{Location: time.UTC, Logger: logger, MaxConcurrent: 2})
		var r recorder
		add(t, s, "backup", "daily 03:00", r.job("backup", time.Minute))
		add(t, s, "drill", "weekly sunday 05:00", r.job("drill", time.Minute))
		stop := start(t, s)
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				spec := mustParse(t, fmt.Sprintf("daily %02d:15", i))
				if err := s.Reschedule("backup", spec); err != nil {
					t.Error(err)
				}
				s.Next("backup")
				s.Spec("drill")
			})
		}
		wg.Wait()
		if err := s.Reschedule("backup", mustParse(t, "daily 10:15")); err != nil {
			t.Fatal(err)
		}
		sleepUntil(at(2, 12, 0))
		r.check(t, run{"backup", at(1, 10, 15), at(1, 10, 15)}, run{"drill", at(2, 5, 0), at(2, 5, 0)}, run{"backup", at(2, 10, 15), at(2, 10, 15)})
		stop()
	})
}
