package commands

import (
	"sort"
	"strings"
	"sync"
	"time"
)

// Defaults of Limits.
const (
	DefaultMaxRunningJobs     = 4
	DefaultJobStartsPerMinute = 5
)

// Limits bound what the chat can start at once, so that no member (nor a
// careless admin) can flood the machine with jobs.
type Limits struct {
	// MaxRunningJobs is how many jobs may run at once (0: DefaultMaxRunningJobs).
	// The terminal's jobs (the operator's, the schedule's) count, but are
	// never refused: a nightly backup must not fail because members filled the slots.
	MaxRunningJobs int
	// JobStartsPerMinute is each chat user's rate of job starts, admins
	// included, in bursts of as many (0: DefaultJobStartsPerMinute). The
	// terminal has no limit.
	JobStartsPerMinute int
}

func (l Limits) maxRunning() int {
	if l.MaxRunningJobs > 0 {
		return l.MaxRunningJobs
	}
	return DefaultMaxRunningJobs
}

func (l Limits) perMinute() int {
	if l.JobStartsPerMinute > 0 {
		return l.JobStartsPerMinute
	}
	return DefaultJobStartsPerMinute
}

// rateLimiter is a token bucket per user: a burst of perMinute job starts,
// refilled at perMinute a minute.
type rateLimiter struct {
	perMinute int
	now       func() time.Time
	buckets   map[string]*bucket // user id → bucket; guarded by the caller (Jobs.mu)
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the limiter's memory; full buckets are forgotten first.
const maxBuckets = 10000

func newRateLimiter(perMinute int, now func() time.Time) *rateLimiter {
	return &rateLimiter{perMinute: perMinute, now: now, buckets: map[string]*bucket{}}
}

// refill brings user's bucket to now and returns it.
func (l *rateLimiter) refill(user string) *bucket {
	now := l.now()
	b, ok := l.buckets[user]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.forgetFull(now)
		}
		b = &bucket{tokens: float64(l.perMinute), at: now}
		l.buckets[user] = b
	}
	if elapsed := now.Sub(b.at); elapsed > 0 {
		b.tokens = min(float64(l.perMinute), b.tokens+elapsed.Minutes()*float64(l.perMinute))
		b.at = now
	}
	return b
}

// wait is how long user must wait for a token (0: one is there).
func (l *rateLimiter) wait(user string) time.Duration {
	b := l.refill(user)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / float64(l.perMinute) * float64(time.Minute))
}

// take uses one of user's tokens; call it after wait said 0.
func (l *rateLimiter) take(user string) { l.refill(user).tokens-- }

// refund gives back a token taken for a job that did not start.
func (l *rateLimiter) refund(user string) {
	b := l.refill(user)
	b.tokens = min(float64(l.perMinute), b.tokens+1)
}

func (l *rateLimiter) forgetFull(now time.Time) {
	for user, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Minutes()*float64(l.perMinute) >= float64(l.perMinute) {
			delete(l.buckets, user)
		}
	}
	if len(l.buckets) >= maxBuckets { // all busy: forget them all rather than grow
		clear(l.buckets)
	}
}

// appLocks says which job holds which app: one job per app at a time.
type appLocks struct {
	mu   sync.Mutex
	held map[string]appHolder
}

// appHolder is who holds an app: a job (its number and title), or work
// outside jobs or not yet recorded (job 0, and a clause that says what).
type appHolder struct {
	job   uint64
	title string
}

func newAppLocks() *appLocks { return &appLocks{held: map[string]appHolder{}} }

// claim holds every app of apps for h, or none of them: it refuses with the
// job that holds one already. A job that holds an app already may claim it
// again; the release of that second claim does nothing.
func (l *appLocks) claim(h appHolder, apps ...string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var mine []string
	for _, app := range apps {
		other, busy := l.held[app]
		switch {
		case !busy:
			mine = append(mine, app)
		case h.job != 0 && other.job == h.job:
			// this job's own claim, from its acceptance
		default:
			return nil, errAppBusy(app, other)
		}
	}
	for _, app := range mine {
		l.held[app] = h
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, app := range mine {
				delete(l.held, app)
			}
		})
	}, nil
}

// check refuses, as claim would, without holding anything.
func (l *appLocks) check(apps ...string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, app := range apps {
		if other, busy := l.held[app]; busy {
			return errAppBusy(app, other)
		}
	}
	return nil
}

// retitle names the job that holds apps, once the job has its number.
func (l *appLocks) retitle(h appHolder, apps ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, app := range apps {
		if cur, ok := l.held[app]; ok && cur.job == 0 {
			l.held[app] = h
		}
	}
}

func errAppBusy(app string, h appHolder) error {
	if h.job == 0 {
		return Errorf(Conflict, "%s is busy: %s. Try again in a minute.", app, h.title)
	}
	return Errorf(Conflict, "%s is busy: %s holds it, and one job at a time may touch an app. Try again when it ends; `/toolbox jobs` shows it.", app, h.title)
}

// runningList names running jobs for a refusal: "#3 `add wiki`, #4 `selftest`".
func runningList(running map[uint64]runningJob) string {
	ids := make([]uint64, 0, len(running))
	for id := range running {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, k int) bool { return ids[i] < ids[k] })
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = running[id].title
	}
	return strings.Join(parts, ", ")
}

// rateRefusal is the answer to a user who starts jobs too fast.
func rateRefusal(perMinute int, wait time.Duration) error {
	secs := int(wait.Round(time.Second) / time.Second)
	secs = max(secs, 1)
	jobs, seconds := "jobs", "seconds"
	if perMinute == 1 {
		jobs = "job"
	}
	if secs == 1 {
		seconds = "second"
	}
	return Errorf(Conflict, "You have started %d %s in the last minute, the most each person may. Try again in %d %s.", perMinute, jobs, secs, seconds)
}

// capRefusal is the answer when the job cap is reached.
func capRefusal(limit int, running map[uint64]runningJob) error {
	return Errorf(Conflict, "The toolbox already runs %d jobs, the most it runs at once: %s. Try again when one ends; `/toolbox jobs` shows them.",
		limit, runningList(running))
}

// singleRefusal is the answer to a second job of a verb that runs once at
// a time (id 0: the first is being recorded).
func singleRefusal(what string, id uint64) error {
	if id == 0 {
		return Errorf(Conflict, "%s is being started right now. Its result will appear in its channel.", what)
	}
	return Errorf(Conflict, "%s is already running: job #%d. Its result will appear in its channel.", what, id)
}
