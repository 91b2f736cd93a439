// Package schedule runs named jobs at wall-clock times written by people,
// "daily 03:00" or "weekly sunday 04:30", in a configured time zone: the
// nightly backups, the retention, the weekly restore drills, the daily cost
// and health messages.
//
// One Scheduler holds every job. A run missed while the program was down is
// caught up once at start, from the last run times a Store keeps. A job never
// runs twice at once: an occurrence that comes due while the job's previous
// run is still going, or still waiting for a slot, is skipped and logged.
// Different jobs run concurrently up to MaxConcurrent; jobs due together
// start in the order of their due time, then of their name.
//
// It imports nothing of the project.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// Store keeps the due time of each job's last run across restarts. It must be
// safe for concurrent use. LastRun returns the zero Time and no error for a
// job that never ran. SetLastRun is called with the due time when a run
// returns, failed or not; a run cut short by a crash is caught up at the next
// start.
type Store interface {
	LastRun(name string) (time.Time, error)
	SetLastRun(name string, t time.Time) error
}

// Func is the work of a job. due is the occurrence it runs for, which is
// earlier than the current time when it catches up or waited for a slot. ctx
// ends when the scheduler's Run does.
type Func func(ctx context.Context, due time.Time) error

// Config is what a Scheduler is built from. Every field is optional.
type Config struct {
	Location      *time.Location               // in which Specs are read; nil: time.Local
	Now           func() time.Time             // nil: time.Now; waits are computed from it, timed by package time
	Store         Store                        // nil: no catch-up, nothing recorded
	MaxConcurrent int                          // jobs running at once; below 1: 1
	OnError       func(name string, err error) // called concurrently; nil: log with Logger
	Logger        *slog.Logger                 // nil: slog.Default()
}

// maxWait bounds each wait so that a change of the wall clock (or a
// suspended machine) is noticed within it.
const maxWait = 10 * time.Minute

// A Scheduler runs jobs on their Spec. Make one with New; its methods are
// safe for concurrent use.
type Scheduler struct {
	cfg  Config
	wake chan struct{} // a job was added or removed

	mu      sync.Mutex
	jobs    map[string]*job
	busy    map[string]bool // jobs queued or running
	running bool            // Run is going
}

type job struct {
	spec Spec
	run  Func
	next time.Time
}

type pending struct {
	name string
	due  time.Time
}

// New returns a Scheduler without jobs.
func New(cfg Config) *Scheduler {
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxConcurrent < 1 {
		cfg.MaxConcurrent = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Scheduler{cfg: cfg, wake: make(chan struct{}, 1), jobs: map[string]*job{}, busy: map[string]bool{}}
}

// Add schedules run under name, or replaces the schedule and function of the
// job of that name: a run of it already going goes on, one queued for a slot
// runs the new function, and the job still never runs twice at once.
//
// The catch-up is decided here, for a job new to this Scheduler: if its last
// run (from the Store) is older than its last occurrence, it is due at once,
// for that occurrence only. A job that never ran, and a replaced job, are due
// at their Spec's next occurrence.
func (s *Scheduler) Add(name string, spec Spec, run Func) error {
	switch {
	case name == "":
		return errors.New("schedule: add: empty job name")
	case !spec.valid:
		return fmt.Errorf("schedule: add %s: invalid schedule", name)
	case run == nil:
		return fmt.Errorf("schedule: add %s: nil function", name)
	}
	s.mu.Lock()
	_, known := s.jobs[name]
	s.mu.Unlock()
	now := s.cfg.Now()
	next := spec.Next(now, s.cfg.Location)
	if !known {
		if due, ok := s.missed(name, spec, now); ok {
			s.cfg.Logger.Info("schedule: catching up a missed run", "job", name, "due", due)
			next = due
		}
	}
	s.mu.Lock()
	s.jobs[name] = &job{spec: spec, run: run, next: next}
	s.mu.Unlock()
	s.poke()
	return nil
}

// missed returns the last occurrence at or before now if the job has run
// before and not since that occurrence.
func (s *Scheduler) missed(name string, spec Spec, now time.Time) (time.Time, bool) {
	if s.cfg.Store == nil {
		return time.Time{}, false
	}
	last, err := s.cfg.Store.LastRun(name)
	if err != nil {
		s.report(name, fmt.Errorf("schedule: last run of %s: %w", name, err))
		return time.Time{}, false
	}
	if last.IsZero() || spec.Next(last, s.cfg.Location).After(now) {
		return time.Time{}, false
	}
	return spec.prev(now, s.cfg.Location), true
}

// Reschedule gives the job of that name a new Spec and keeps its function:
// it is next due at spec's first occurrence after now, with no catch-up. A
// run of it already going, or queued for a slot, goes on, and the job still
// never runs twice at once. It is an error if there is no such job.
func (s *Scheduler) Reschedule(name string, spec Spec) error {
	if !spec.valid {
		return fmt.Errorf("schedule: reschedule %s: invalid schedule", name)
	}
	now := s.cfg.Now()
	s.mu.Lock()
	j, ok := s.jobs[name]
	if ok {
		j.spec, j.next = spec, spec.Next(now, s.cfg.Location)
	}
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("schedule: reschedule %s: no such job", name)
	}
	s.poke()
	return nil
}

// Spec returns the Spec of the job of that name, and whether there is such a
// job.
func (s *Scheduler) Spec(name string) (Spec, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[name]
	if !ok {
		return Spec{}, false
	}
	return j.spec, true
}

// Remove unschedules the job of that name and reports whether there was one.
// A run of it already going finishes; a queued one does not start.
func (s *Scheduler) Remove(name string) bool {
	s.mu.Lock()
	_, ok := s.jobs[name]
	delete(s.jobs, name)
	s.mu.Unlock()
	s.poke()
	return ok
}

// Next returns when the job of that name is next due, which is in the past
// when it is due now, and whether there is such a job.
func (s *Scheduler) Next(name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[name]
	if !ok {
		return time.Time{}, false
	}
	return j.next, true
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run runs the jobs as they come due until ctx ends, then waits for the runs
// going, which get ctx's cancellation, and returns nil. Runs queued for a
// slot are dropped. It returns an error at once if Run is already going.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("schedule: already running")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		clear(s.busy)
		s.mu.Unlock()
	}()

	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan string, s.cfg.MaxConcurrent) // never blocks: one send per run going
	var queue []pending
	running := 0
	for {
		s.mu.Lock()
		now := s.cfg.Now()
		queue = append(queue, s.due(now)...)
		for running < s.cfg.MaxConcurrent && len(queue) > 0 {
			p := queue[0]
			queue = queue[1:]
			j, ok := s.jobs[p.name]
			if !ok {
				delete(s.busy, p.name)
				continue
			}
			running++
			run := j.run
			wg.Go(func() {
				s.runOnce(ctx, p.name, run, p.due)
				done <- p.name
			})
		}
		wait := maxWait
		for _, j := range s.jobs {
			wait = min(wait, j.next.Sub(now))
		}
		s.mu.Unlock()

		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case name := <-done:
			running--
			s.mu.Lock()
			delete(s.busy, name)
			s.mu.Unlock()
		case <-timer.C:
		case <-s.wake:
		}
		timer.Stop()
	}
}

// due marks the jobs due at now as busy and returns them in the order they
// start, moving every due job to its next occurrence after now. The caller
// holds s.mu.
func (s *Scheduler) due(now time.Time) []pending {
	var due []pending
	for name, j := range s.jobs {
		if j.next.After(now) {
			continue
		}
		if s.busy[name] {
			s.cfg.Logger.Warn("schedule: skipped a run, the previous one is not finished", "job", name, "due", j.next)
		} else {
			s.busy[name] = true
			due = append(due, pending{name, j.next})
		}
		j.next = j.spec.Next(now, s.cfg.Location)
	}
	slices.SortFunc(due, func(a, b pending) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	return due
}

// runOnce runs one occurrence, reports its error and records it in the Store.
func (s *Scheduler) runOnce(ctx context.Context, name string, run Func, due time.Time) {
	s.cfg.Logger.Info("schedule: run", "job", name, "due", due)
	if err := call(ctx, run, due); err != nil {
		s.report(name, fmt.Errorf("schedule: %s due %s: %w", name, due.In(s.cfg.Location).Format("2006-01-02 15:04 MST"), err))
	}
	// A run cut short by the stop is not recorded: the next start catches
	// it up. A run that failed on its own is, so it is not retried at every
	// restart.
	if s.cfg.Store != nil && ctx.Err() == nil {
		if err := s.cfg.Store.SetLastRun(name, due); err != nil {
			s.report(name, fmt.Errorf("schedule: record last run of %s: %w", name, err))
		}
	}
}

func call(ctx context.Context, run Func, due time.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return run(ctx, due)
}

func (s *Scheduler) report(name string, err error) {
	if s.cfg.OnError != nil {
		s.cfg.OnError(name, err)
		return
	}
	s.cfg.Logger.Error("schedule: job failed", "job", name, "err", err)
}
