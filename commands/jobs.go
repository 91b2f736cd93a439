package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/toolbox-collective/toolbox/state"
)

// Jobs runs slow verbs in the background on the application's root context,
// records them in the state and reports on them by editing one bot post.
// It admits a job only within the limits (see Limits) and while the apps
// the job touches are free.
type Jobs struct {
	root    context.Context
	deps    Deps
	rep     *reporter
	wg      sync.WaitGroup
	mu      sync.Mutex // guards what follows
	running map[uint64]runningJob
	// starting are the jobs admitted and not yet recorded: they count in the
	// limits, while the state records them without holding mu.
	starting  map[uint64]string // slot → verb
	nextSlot  uint64
	done      map[uint64]chan struct{} // closed when the job has recorded its outcome
	closed    bool
	cancelled bool // Shutdown has cancelled the running jobs
	rate      *rateLimiter
	locks     *appLocks
	// progressEvery throttles edits of the progress post.
	progressEvery time.Duration
}

// runningJob is a job started here that has not ended.
type runningJob struct {
	verb   string
	title  string
	cancel context.CancelFunc
}

func newJobs(root context.Context, deps Deps, rep *reporter, locks *appLocks) *Jobs {
	return &Jobs{
		root: root, deps: deps, rep: rep, running: map[uint64]runningJob{}, starting: map[uint64]string{}, done: map[uint64]chan struct{}{},
		rate: newRateLimiter(deps.Limits.perMinute(), deps.Now), locks: locks, progressEvery: time.Second,
	}
}

// admissible refuses, without holding anything, a job that start would
// refuse now for its limits or its apps: a prompt is not posted for it.
func (j *Jobs) admissible(c Caller, v *Verb, args []string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.withinLimits(c, v); err != nil {
		return err
	}
	if v.Apps != nil {
		return j.locks.check(v.Apps(args)...)
	}
	return nil
}

// withinLimits checks the caller's rate, the job cap and the verbs that run
// one at a time. Call it with j.mu held.
func (j *Jobs) withinLimits(c Caller, v *Verb) error {
	if j.closed {
		return Errorf(Unavailable, "The toolbox is restarting. Try again in a minute.")
	}
	if v.Single != "" {
		for id, r := range j.running {
			if r.verb == v.Name {
				return singleRefusal(v.Single, id)
			}
		}
		for _, verb := range j.starting {
			if verb == v.Name {
				return singleRefusal(v.Single, 0)
			}
		}
	}
	if c.Terminal {
		return nil
	}
	if wait := j.rate.wait(c.UserID); wait > 0 {
		return rateRefusal(j.rate.perMinute, wait)
	}
	if limit := j.deps.Limits.maxRunning(); len(j.running)+len(j.starting) >= limit {
		return capRefusal(limit, j.running)
	}
	return nil
}

// start admits the job, records it durably, then runs it in a goroutine.
// What the job holds (its place in the limits, its apps, the memory an add
// reserves) is taken here, at its acceptance, and given back when it ends.
// Only the admission holds j.mu: the durable write does not, so that a
// refusal is answered at once while other jobs are being recorded.
func (j *Jobs) start(ctx context.Context, c Caller, v *Verb, args []string, trail *auditTrail) (state.Job, error) {
	j.mu.Lock()
	if err := j.withinLimits(c, v); err != nil {
		j.mu.Unlock()
		return state.Job{}, err
	}
	// The job's place in the limits from its admission to its record.
	j.nextSlot++
	slot := j.nextSlot
	j.starting[slot] = v.Name
	if !c.Terminal {
		j.rate.take(c.UserID)
	}
	// Added while not closed, under mu: Shutdown's Wait counts this job.
	j.wg.Add(1)
	j.mu.Unlock()
	release := func() {}
	started := false
	defer func() {
		if !started { // refused, failed or panicked: its place and its token back
			release()
			j.mu.Lock()
			delete(j.starting, slot)
			if !c.Terminal {
				j.rate.refund(c.UserID)
			}
			j.mu.Unlock()
			j.wg.Done()
		}
	}()

	var apps []string
	if v.Apps != nil {
		apps = v.Apps(args)
	}
	// Held under a placeholder until the job has its number.
	releaseApps, err := j.locks.claim(appHolder{title: "another job on it is being started"}, apps...)
	if err != nil {
		return state.Job{}, err
	}
	release = releaseApps
	if v.Admit != nil {
		releaseAdmit, err := v.Admit(ctx, args)
		if err != nil {
			return state.Job{}, err
		}
		release = func() { releaseAdmit(); releaseApps() }
	}
	// The job and its audit record reach the disk together, before it runs.
	rec := trail.rec
	rec.Outcome = "" // "started job #<id>"
	job, recID, err := j.deps.Store.StartJob(state.Job{
		Verb: v.Name, Args: args, UserID: c.UserID, UserName: c.UserName, ChannelID: c.ChannelID,
		Status: state.JobQueued, Created: j.deps.Now(),
	}, rec)
	if err != nil {
		return state.Job{}, &Error{Kind: Unavailable, Message: "I could not record the job, so it did not start. Try again in a moment.", Err: err}
	}
	trail.id, trail.written = recID, fmt.Sprintf("started job #%d", job.ID)
	title := j.title(job)
	j.locks.retitle(appHolder{job: job.ID, title: title}, apps...)
	jctx, cancel := context.WithCancel(j.root)
	finished := make(chan struct{})
	j.mu.Lock()
	delete(j.starting, slot)
	j.running[job.ID] = runningJob{verb: v.Name, title: title, cancel: cancel}
	j.done[job.ID] = finished
	if j.cancelled { // Shutdown's grace ended while it was recorded
		cancel()
	}
	j.mu.Unlock()
	started = true
	// The apps are free once the outcome is recorded, before it is posted:
	// whoever reads the result may retry at once.
	free := sync.OnceFunc(release)
	go func() {
		defer j.wg.Done()
		defer func() {
			free()
			j.mu.Lock()
			delete(j.running, job.ID)
			delete(j.done, job.ID)
			j.mu.Unlock()
			close(finished)
			cancel()
		}()
		j.execute(jctx, c, v, job, free)
	}()
	return job, nil
}

func (j *Jobs) title(job state.Job) string {
	return fmt.Sprintf("job #%d %s", job.ID, code(strings.TrimSpace(job.Verb+" "+quoteArgs(job.Args))))
}

// maxProgressLine bounds one line of a job's progress, in bytes.
const maxProgressLine = 500

func (j *Jobs) execute(ctx context.Context, c Caller, v *Verb, job state.Job, free func()) {
	log := j.deps.Log.With("job", job.ID, "verb", job.Verb)
	title := j.title(job)
	postID := j.post(ctx, job.ChannelID, fmt.Sprintf(":hourglass: %s started by %s", title, c.mention()))
	started := j.deps.Now()
	if _, err := j.deps.Store.UpdateJob(job.ID, func(s *state.Job) error {
		s.Status, s.Started, s.PostID = state.JobRunning, started, postID
		return nil
	}); err != nil {
		log.Error("job state not recorded", "err", err)
	}

	var (
		pmu      sync.Mutex
		lines    []string
		lastEdit time.Time
		ended    bool // the result is being reported: no more progress edits
	)
	progress := func(format string, args ...any) {
		// A line may quote an app's output: it must not close the code block.
		// Bounded: eight lines of it must fit a post (16383 characters)
		// however long an app's output is.
		line := truncate(strings.ReplaceAll(fmt.Sprintf(format, args...), "```", "'''"), maxProgressLine)
		pmu.Lock()
		defer pmu.Unlock()
		if ended {
			return
		}
		lines = append(lines, line)
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		now := j.deps.Now()
		if now.Sub(lastEdit) < j.progressEvery {
			return
		}
		lastEdit = now
		if _, err := j.deps.Store.UpdateJob(job.ID, func(s *state.Job) error { s.Progress = line; return nil }); err != nil {
			log.Warn("job progress not recorded", "err", err)
		}
		j.edit(ctx, postID, fmt.Sprintf(":hourglass: %s started by %s\n```\n%s\n```", title, c.mention(), strings.Join(lines, "\n")))
	}

	result, runErr := j.runSafely(ctx, v, Invocation{Caller: c, Args: job.Args, Progress: progress, JobID: job.ID})
	pmu.Lock()
	ended = true
	pmu.Unlock()
	finished := j.deps.Now()
	status, icon, outcome := state.JobSucceeded, ":white_check_mark:", "succeeded"
	var errText string
	switch {
	case runErr != nil && ctx.Err() != nil:
		status, icon, outcome = state.JobInterrupted, ":warning:", "was interrupted by a shutdown"
		errText = "interrupted by a shutdown of the toolbox"
	case runErr != nil:
		status, icon, outcome = state.JobFailed, ":x:", "failed"
		errText = j.rep.report(ctx, log, "job failed", runErr).Text
	}
	dur := finished.Sub(started).Round(10 * time.Millisecond)
	if _, err := j.deps.Store.UpdateJob(job.ID, func(s *state.Job) error {
		s.Status, s.Finished, s.Result, s.Error = status, finished, result, errText
		return nil
	}); err != nil {
		log.Error("job outcome not recorded", "err", err)
	}
	free()
	// Report on a context that outlives a shutdown's cancellation, briefly.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	body := result
	if errText != "" {
		body = errText
	}
	report := fmt.Sprintf("%s **%s %s** (%s)\n%s", icon, title, outcome, dur, body)
	switch {
	case status == state.JobSucceeded:
		// One post per job: the progress post becomes the result. If it is
		// gone (a restore of the chat itself), the result is posted anew.
		if !j.edit(rctx, postID, report) {
			j.post(rctx, job.ChannelID, report)
		}
	default:
		// A failure stays loud: the progress post says so briefly, and a
		// new post, which notifies, says why.
		j.edit(rctx, postID, fmt.Sprintf("%s %s %s in %s", icon, title, outcome, dur))
		j.post(rctx, job.ChannelID, report)
	}
	log.Info("job done", "status", status, "duration", dur)
}

// runSafely turns a panic in a verb into a failed job instead of a dead bot.
func (j *Jobs) runSafely(ctx context.Context, v *Verb, inv Invocation) (out string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in %s: %v", v.Name, p)
		}
	}()
	return v.Run(ctx, inv)
}

func (j *Jobs) post(ctx context.Context, channelID, text string) string {
	if j.deps.Chat == nil {
		return ""
	}
	id, err := j.deps.Chat.Post(ctx, channelID, text)
	if err != nil {
		j.deps.Log.Warn("bot post failed", "channel", channelID, "err", err)
	}
	return id
}

// edit replaces the text of a bot post and says whether it did.
func (j *Jobs) edit(ctx context.Context, postID, text string) bool {
	if j.deps.Chat == nil || postID == "" {
		return false
	}
	if err := j.deps.Chat.Edit(ctx, postID, text); err != nil {
		j.deps.Log.Warn("bot post edit failed", "post", postID, "err", err)
		return false
	}
	return true
}

// Recover marks the jobs a previous run left running as interrupted and says
// so in their channels. Call it once at start-up, before serving.
func (j *Jobs) Recover(ctx context.Context) ([]state.Job, error) {
	jobs, err := j.deps.Store.InterruptRunning("the toolbox stopped while this job ran")
	if err != nil {
		return nil, fmt.Errorf("recover jobs: %w", err)
	}
	for _, job := range jobs {
		title := j.title(job)
		j.edit(ctx, job.PostID, fmt.Sprintf(":warning: %s was interrupted", title))
		j.post(ctx, job.ChannelID, fmt.Sprintf(":warning: %s was interrupted: the toolbox stopped while it ran. Nothing was retried; run it again if it is still needed.", title))
	}
	return jobs, nil
}

func (j *Jobs) drain() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
}

// Shutdown refuses new jobs and waits for running ones until ctx ends; then it
// cancels them and waits for them to record their interruption.
func (j *Jobs) Shutdown(ctx context.Context) error {
	j.drain()
	done := make(chan struct{})
	go func() { j.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	j.mu.Lock()
	j.cancelled = true
	for _, r := range j.running {
		r.cancel()
	}
	j.mu.Unlock()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		return errors.New("jobs did not stop after cancellation")
	}
	return ctx.Err()
}

// Await waits until job id, if it is running here, has recorded its outcome.
func (j *Jobs) Await(ctx context.Context, id uint64) error {
	j.mu.Lock()
	finished, ok := j.done[id]
	j.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait blocks until every started job has finished (for `toolbox do`).
func (j *Jobs) Wait() { j.wg.Wait() }
