package commands

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/toolbox-collective/toolbox/state"
)

// jobVerb is a test-only job verb that runs fn.
func jobVerb(name string, fn func(ctx context.Context, inv Invocation) (string, error)) *Verb {
	return &Verb{Name: name, MaxArgs: -1, Job: true, Summary: "a test job", Run: fn}
}

// postWith reports whether the chat has a post containing all of parts.
func (e *env) postWith(parts ...string) func() bool {
	return func() bool {
		for _, p := range e.chat.Shown() {
			if contains(p.Text, parts...) {
				return true
			}
		}
		return false
	}
}

func (e *env) job(t *testing.T, id uint64) state.Job {
	t.Helper()
	jobs, err := e.store.RecentJobs(100)
	if err != nil {
		t.Fatalf("RecentJobs: %v", err)
	}
	for _, j := range jobs {
		if j.ID == id {
			return j
		}
	}
	t.Fatalf("no job #%d in the state", id)
	return state.Job{}
}

func TestJobIsRecordedBeforeTheReply(t *testing.T) {
	release := make(chan struct{})
	e := newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(ctx context.Context, inv Invocation) (string, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		return "worked on " + strings.Join(inv.Args, ","), nil
	})}})
	// The request's context ends with the reply; the job must not.
	ctx, cancel := context.WithCancel(context.Background())
	reply := e.router.Handle(ctx, Request{Caller: caller("ann"), Text: "work 'our site'"})
	cancel()
	if want := "Started job #1 (`work`). Progress and the result will appear in this channel."; reply.Text != want || reply.JobID != 1 {
		t.Fatalf("Handle(work) = %+v, want %q with JobID 1", reply, want)
	}
	j := e.job(t, 1)
	if (j.Status != state.JobQueued && j.Status != state.JobRunning) || j.Verb != "work" || len(j.Args) != 1 || j.Args[0] != "our site" ||
		j.UserName != "ann" || j.ChannelID != "chan1" || !j.Created.Equal(e.clock.Now()) {
		t.Errorf("job #1 right after the reply = %+v, want work ['our site'] by ann in chan1, queued or running", j)
	}
	if rec := e.lastAudit(t); rec.Outcome != "started job #1" {
		t.Errorf("audit outcome = %q, want %q", rec.Outcome, "started job #1")
	}
	close(release)
	e.chat.waitFor(t, "the result post", e.postWith(":white_check_mark: **job #1 `work 'our site'` succeeded** (0s)\nworked on our site"))
	if j := e.job(t, 1); j.Status != state.JobSucceeded || j.Result != "worked on our site" || j.Error != "" || j.Started.IsZero() || j.Finished.IsZero() {
		t.Errorf("job #1 when done = %+v, want succeeded with its result", j)
	}
}

func TestJobProgressEditsOnePost(t *testing.T) {
	var e *env
	e = newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(_ context.Context, inv Invocation) (string, error) {
		inv.Progress("pulling %s", "images")
		inv.Progress("creating volumes") // within a second of the last edit: no edit
		e.clock.Add(2 * time.Second)
		inv.Progress("starting containers")
		e.clock.Add(500 * time.Millisecond)
		return "3 containers up", nil
	})}})
	e.handle(caller("ann"), "work")
	e.chat.waitFor(t, "the result post", e.postWith("**job #1 `work` succeeded** (2.5s)\n3 containers up"))

	// One post per job: the progress post becomes the result.
	posts := e.chat.Posts()
	if len(posts) != 1 || posts[0].Text != ":hourglass: job #1 `work` started by @ann" || posts[0].ChannelID != "chan1" {
		t.Fatalf("posts = %+v, want only the progress post", posts)
	}
	progressID := posts[0].ID
	want := []chatEdit{
		{progressID, ":hourglass: job #1 `work` started by @ann\n```\npulling images\n```"},
		{progressID, ":hourglass: job #1 `work` started by @ann\n```\npulling images\ncreating volumes\nstarting containers\n```"},
		{progressID, ":white_check_mark: **job #1 `work` succeeded** (2.5s)\n3 containers up"},
	}
	edits := e.chat.Edits()
	if len(edits) != len(want) {
		t.Fatalf("edits = %q, want %q", edits, want)
	}
	for i := range want {
		if edits[i] != want[i] {
			t.Errorf("edit %d = %q, want %q", i, edits[i], want[i])
		}
	}
	if j := e.job(t, 1); j.PostID != progressID || j.Progress != "starting containers" || j.Duration() != 2500*time.Millisecond {
		t.Errorf("job #1 = %+v, want post %s, last progress recorded, 2.5s", j, progressID)
	}
}

func TestJobFailures(t *testing.T) {
	tests := []struct {
		name      string
		run       func(context.Context, Invocation) (string, error)
		wantError string // the job's recorded error; "*" matches an internal reference
		inLog     string
	}{
		{
			name:      "error for people",
			run:       func(context.Context, Invocation) (string, error) { return "", Errorf(Conflict, "The disk is full.") },
			wantError: "The disk is full.",
		},
		{
			name:      "internal error",
			run:       func(context.Context, Invocation) (string, error) { return "", errors.New("exec: restic: not found") },
			wantError: "*",
			inLog:     "exec: restic: not found",
		},
		{
			name:      "panic",
			run:       func(context.Context, Invocation) (string, error) { panic("nil map in the catalog") },
			wantError: "*",
			inLog:     "panic in work: nil map in the catalog",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{extra: []*Verb{jobVerb("work", tt.run)}})
			e.handle(caller("ann"), "work")
			e.chat.waitFor(t, "the failure post", e.postWith(":x: **job #1 `work` failed** (0s)\n"))
			j := e.job(t, 1)
			if j.Status != state.JobFailed {
				t.Errorf("job status = %s, want failed", j.Status)
			}
			if tt.wantError == "*" {
				if !strings.HasPrefix(j.Error, "Something went wrong on the toolbox's side (reference ") {
					t.Errorf("job error = %q, want the internal-error sentence", j.Error)
				}
				ref := strings.SplitN(strings.SplitN(j.Error, "reference ", 2)[1], ")", 2)[0]
				if log := e.log.String(); !contains(log, "ref="+ref, tt.inLog) {
					t.Errorf("log lacks reference %s and %q:\n%s", ref, tt.inLog, log)
				}
			} else if j.Error != tt.wantError {
				t.Errorf("job error = %q, want %q", j.Error, tt.wantError)
			}
			if !e.postWith(j.Error)() {
				t.Errorf("posts %+v do not say %q", e.chat.Posts(), j.Error)
			}
			for _, p := range e.chat.Shown() {
				if tt.inLog != "" && strings.Contains(p.Text, tt.inLog) {
					t.Errorf("a post shows the internal cause: %q", p.Text)
				}
			}
			// The bot is still alive and takes the next command.
			if got := e.handle(caller("ann"), "version").Text; !strings.HasPrefix(got, "toolbox test") {
				t.Errorf("after the failure, version = %q", got)
			}
		})
	}
}

func TestJobPostFailureDoesNotStopIt(t *testing.T) {
	e := newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(_ context.Context, inv Invocation) (string, error) {
		inv.Progress("step")
		return "done", nil
	})}})
	e.chat.PostFn = func(context.Context, string, string) (string, error) { return "", errors.New("mattermost: 502") }
	e.handle(caller("ann"), "work")
	e.router.Jobs().Wait() // the job was added before Handle returned
	if j := e.job(t, 1); j.Status != state.JobSucceeded || j.PostID != "" {
		t.Errorf("job = %+v, want succeeded without a post", j)
	}
	if n := len(e.chat.Edits()); n != 0 {
		t.Errorf("%d edits of a post that does not exist", n)
	}
	if log := e.log.String(); !strings.Contains(log, "bot post failed") {
		t.Errorf("log does not mention the failed post:\n%s", log)
	}
}

// TestShutdownInterruptsJobs runs in a synctest bubble: the grace period is
// fake time, so the test waits for nothing.
func TestShutdownInterruptsJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		started := make(chan struct{})
		e := newEnv(t, envOptions{extra: []*Verb{
			jobVerb("block", func(ctx context.Context, _ Invocation) (string, error) {
				close(started)
				<-ctx.Done()
				return "", ctx.Err()
			}),
		}})
		e.handle(caller("ann"), "block")
		<-started
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		before := time.Now()
		err := e.router.Jobs().Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want the grace period's deadline", err)
		}
		if waited := time.Since(before); waited != 30*time.Second {
			t.Errorf("Shutdown returned after %s, want the whole grace of 30s", waited)
		}
		j := e.job(t, 1)
		if j.Status != state.JobInterrupted || j.Error != "interrupted by a shutdown of the toolbox" {
			t.Errorf("job after Shutdown = %+v, want interrupted by a shutdown", j)
		}
		if !e.postWith(":warning: **job #1 `block` was interrupted by a shutdown**", "interrupted by a shutdown of the toolbox")() {
			t.Errorf("posts = %+v, want one saying the job was interrupted", e.chat.Posts())
		}
		edits := e.chat.Edits()
		if len(edits) == 0 || !strings.HasPrefix(edits[len(edits)-1].Text, ":warning: job #1 `block` was interrupted by a shutdown in ") {
			t.Errorf("edits = %+v, want the progress post to say interrupted", edits)
		}
		// After Shutdown no job starts.
		if got := e.handle(caller("ann"), "block").Text; got != "The toolbox is restarting. Try again in a minute." {
			t.Errorf("a job after Shutdown = %q, want a polite refusal", got)
		}
	})
}

func TestShutdownWaitsForJobsWithinTheGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, envOptions{extra: []*Verb{
			jobVerb("nap", func(ctx context.Context, _ Invocation) (string, error) {
				select {
				case <-time.After(5 * time.Second):
					return "rested", nil
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}),
		}})
		e.handle(caller("ann"), "nap")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := e.router.Jobs().Shutdown(ctx); err != nil {
			t.Errorf("Shutdown = %v, want nil: the job ends within the grace", err)
		}
		if j := e.job(t, 1); j.Status != state.JobSucceeded || j.Result != "rested" {
			t.Errorf("job = %+v, want succeeded", j)
		}
	})
}

func TestRecoverInterruptsLeftoverJobs(t *testing.T) {
	e := newEnv(t, envOptions{})
	leftovers := []state.Job{
		{Verb: "backup", Args: []string{"our site"}, UserName: "ann", ChannelID: "chan7", PostID: "post-old", Status: state.JobRunning},
		{Verb: "add", Args: []string{"wiki"}, UserName: "bob", ChannelID: "chan8", Status: state.JobQueued},
		{Verb: "status", UserName: "carl", ChannelID: "chan9", Status: state.JobSucceeded},
	}
	for _, j := range leftovers {
		if _, err := e.store.CreateJob(j); err != nil {
			t.Fatal(err)
		}
	}
	got, err := e.router.Jobs().Recover(context.Background())
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if len(got) != 2 || got[0].ID != 1 || got[1].ID != 2 {
		t.Fatalf("Recover = %+v, want jobs 1 and 2", got)
	}
	for id := uint64(1); id <= 2; id++ {
		if j := e.job(t, id); j.Status != state.JobInterrupted || j.Error != "the toolbox stopped while this job ran" || j.Finished.IsZero() {
			t.Errorf("job #%d after Recover = %+v, want interrupted", id, j)
		}
	}
	if j := e.job(t, 3); j.Status != state.JobSucceeded {
		t.Errorf("finished job #3 after Recover = %+v, want it untouched", j)
	}
	wantPosts := []chatPost{
		{ChannelID: "chan7", Text: ":warning: job #1 `backup 'our site'` was interrupted: the toolbox stopped while it ran. Nothing was retried; run it again if it is still needed."},
		{ChannelID: "chan8", Text: ":warning: job #2 `add wiki` was interrupted: the toolbox stopped while it ran. Nothing was retried; run it again if it is still needed."},
	}
	posts := e.chat.Posts()
	if len(posts) != len(wantPosts) {
		t.Fatalf("posts = %+v, want %+v", posts, wantPosts)
	}
	for i, want := range wantPosts {
		if posts[i].ChannelID != want.ChannelID || posts[i].Text != want.Text {
			t.Errorf("post %d = %+v, want %+v", i, posts[i], want)
		}
	}
	if edits := e.chat.Edits(); len(edits) != 1 || edits[0] != (chatEdit{"post-old", ":warning: job #1 `backup 'our site'` was interrupted"}) {
		t.Errorf("edits = %+v, want only the old progress post marked interrupted", edits)
	}
	if again, err := e.router.Jobs().Recover(context.Background()); err != nil || len(again) != 0 {
		t.Errorf("second Recover = %+v, %v; want nothing left", again, err)
	}
}

func TestJobsAndStatusVerbs(t *testing.T) {
	release := make(chan struct{})
	var e *env
	e = newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(_ context.Context, inv Invocation) (string, error) {
		inv.Progress("halfway")
		<-release
		e.clock.Add(3 * time.Second)
		return "ok", nil
	})}})
	if got, want := e.handle(caller("ann"), "jobs").Text, "No job has run yet."; got != want {
		t.Errorf("jobs before any = %q, want %q", got, want)
	}
	e.handle(caller("ann"), "work now")
	e.chat.waitFor(t, "the progress edit", func() bool { return len(e.chat.Edits()) > 0 })
	got := e.handle(caller("ann"), "status").Text
	if want := "No apps yet. `/toolbox help` shows how to add one.\n\nRunning jobs:\n- #1 `work now` by @ann, since 0s: halfway"; got != want {
		t.Errorf("status with a running job = %q, want %q", got, want)
	}
	close(release)
	e.chat.waitFor(t, "the result post", e.postWith("succeeded"))
	got = e.handle(caller("ann"), "jobs").Text
	if want := "| #1 | `work now` | @ann | Mar 1 12:00 | succeeded | 3s |"; !strings.Contains(got, want) {
		t.Errorf("jobs = %q, want a row %q", got, want)
	}
}

// Issue 8: every job made two posts, the progress post and a result post
// saying the same. A success is one post, edited; a failure stays loud.
func TestOnePostPerJob(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		e := newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(context.Context, Invocation) (string, error) { return "all good", nil })}})
		e.handle(caller("ann"), "work")
		e.router.Jobs().Wait()
		if shown := e.chat.Shown(); len(shown) != 1 || shown[0].Text != ":white_check_mark: **job #1 `work` succeeded** (0s)\nall good" {
			t.Errorf("channel shows %+v, want one post with the result", shown)
		}
	})
	t.Run("failure", func(t *testing.T) {
		e := newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(context.Context, Invocation) (string, error) { return "", Errorf(Conflict, "The disk is full.") })}})
		e.handle(caller("ann"), "work")
		e.router.Jobs().Wait()
		shown := e.chat.Shown()
		if len(shown) != 2 || shown[0].Text != ":x: job #1 `work` failed in 0s" || shown[1].Text != ":x: **job #1 `work` failed** (0s)\nThe disk is full." {
			t.Errorf("channel shows %+v, want the progress post marked failed and a new post saying why", shown)
		}
	})
	t.Run("progress post gone", func(t *testing.T) {
		e := newEnv(t, envOptions{extra: []*Verb{jobVerb("work", func(context.Context, Invocation) (string, error) { return "all good", nil })}})
		e.chat.EditFn = func(context.Context, string, string) error { return errors.New("mattermost: 404 post not found") }
		e.handle(caller("ann"), "work")
		e.router.Jobs().Wait()
		posts := e.chat.Posts()
		if len(posts) != 2 || posts[1].Text != ":white_check_mark: **job #1 `work` succeeded** (0s)\nall good" {
			t.Errorf("posts = %+v, want the result posted anew", posts)
		}
	})
}
