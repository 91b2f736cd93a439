package commands

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/mattermost/mattermost/server/public/shared/markdown"

	"github.com/toolbox-collective/toolbox/state"
)

// cellSplit splits a Markdown table row at the pipes that end cells (not \|).
var cellSplit = regexp.MustCompile(`(^|[^\\])\|`)

// The reproduction: a multi-line result inside a table cell broke the
// table. User text in a row must not break it either, nor mention anyone.
func TestJobsTableKeepsOneLinePerCell(t *testing.T) {
	e := newEnv(t, envOptions{})
	job, err := e.store.CreateJob(state.Job{Verb: "add", Args: []string{"a|b", "x`y", "@channel"}, UserName: "ann", Status: state.JobFailed,
		Error: "The deploy failed:\n- step one | broken\n- step two"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateJob(state.Job{Verb: "selftest", UserName: "bob", Status: state.JobSucceeded}); err != nil {
		t.Fatal(err)
	}
	got := e.handle(caller("bob"), "jobs").Text
	lines := strings.Split(got, "\n")
	if len(lines) != 4 {
		t.Fatalf("jobs = %d lines, want a header, a rule and 2 rows:\n%s", len(lines), got)
	}
	for _, line := range lines {
		if n := len(cellSplit.FindAllStringIndex(line, -1)); n != 7 {
			t.Errorf("row %q has %d cell separators, want 7 (6 cells)", line, n)
		}
	}
	row := lines[len(lines)-1] // the oldest job last
	if !strings.HasPrefix(row, "| #1 ") || !strings.Contains(row, "failed: The deploy failed: …") || strings.Contains(row, "step two") {
		t.Errorf("row of job #%d = %q, want its first line only", job.ID, row)
	}
	markdown.Inspect(got, func(node any) bool {
		if text, ok := node.(*markdown.Text); ok && strings.Contains(text.Text, "@channel") {
			t.Errorf("jobs shows @channel outside a code span: %q", text.Text)
		}
		return true
	})
}

// An app's output can make a progress line as long as it likes: the post
// that shows the job's progress stays within Mattermost's 16383 characters.
func TestProgressLinesAreBounded(t *testing.T) {
	loud := &Verb{Name: "loud", Job: true, Summary: "print a long line", Run: func(_ context.Context, inv Invocation) (string, error) {
		inv.Progress("%s", strings.Repeat("x", 100_000))
		return "done", nil
	}}
	e := newEnv(t, envOptions{extra: []*Verb{loud}})
	if got := e.handle(caller("ann"), "loud"); got.JobID == 0 {
		t.Fatalf("loud = %q, want a job", got.Text)
	}
	e.router.Jobs().Wait()
	edits := e.chat.Edits()
	if len(edits) == 0 {
		t.Fatal("no progress edit")
	}
	for _, ed := range edits {
		if len(ed.Text) > 16383 {
			t.Errorf("an edit of %d bytes, want at most 16383", len(ed.Text))
		}
	}
}
