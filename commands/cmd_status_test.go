package commands

import (
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/state"
)

// A running job's command and progress hold user text and an app's output:
// status keeps each job on its line and mentions no one.
func TestStatusRunningJobsKeepToTheirLine(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.store.CreateJob(state.Job{Verb: "add", Args: []string{"x`y", "@channel"}, UserName: "ann", Status: state.JobRunning,
		Progress: "pulling images\n- step two @here"}); err != nil {
		t.Fatal(err)
	}
	got := e.handle(caller("bob"), "status").Text
	var line string
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "- #1 ") {
			line = l
		}
	}
	if !strings.Contains(line, "by @ann") || !strings.HasSuffix(line, ": pulling images …") || strings.Contains(got, "step two") {
		t.Errorf("status = %q, want job #1 on one line with the first line of its progress", got)
	}
	if outside := textOutsideCode(got); strings.Contains(outside, "@channel") || strings.Contains(outside, "@here") {
		t.Errorf("status shows user text outside code spans: %q", outside)
	}
}
