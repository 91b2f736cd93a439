package commands

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// The reproduction: selftest posted the state's path, the engine's
// version and raw error text in the channel, for every member to read.
func TestSelftestDetailsOnlyForAdmins(t *testing.T) {
	const path, raw = "/var/lib/toolbox/toolbox.db", "dial unix /var/run/docker.sock: connect: permission denied"
	e := newEnv(t, envOptions{checks: []Check{
		{Name: "state", Run: func(context.Context) (string, error) { return path + " is writable", nil }},
		{Name: "docker", Run: func(context.Context) (string, error) { return "", errors.New(raw) }},
	}})
	e.addAdmin(t, "ann")
	run := func(c Caller) string {
		t.Helper()
		reply := e.handle(c, "selftest")
		if reply.JobID == 0 {
			t.Fatalf("selftest by %s = %q, want a job", c.UserName, reply.Text)
		}
		if err := e.router.Jobs().Await(context.Background(), reply.JobID); err != nil {
			t.Fatal(err)
		}
		job, err := e.store.Job(reply.JobID)
		if err != nil {
			t.Fatal(err)
		}
		return job.Result + job.Error
	}
	secret := func(s string) bool { return strings.Contains(s, path) || strings.Contains(s, "docker.sock") }

	bob := caller("bob")
	bob.ResponseURL = "https://chat.example.org/hooks/commands/bob"
	got := run(bob)
	if !contains(got, "1 of 2 checks failed", ":white_check_mark: **state** in", ":x: **docker** failed after") || secret(got) {
		t.Errorf("a member's selftest = %q, want pass and fail per check, without details", got)
	}
	ann := caller("ann")
	ann.ResponseURL = "https://chat.example.org/hooks/commands/ann"
	got = run(ann)
	if secret(got) || !strings.Contains(got, "The admin who ran it got the details privately.") {
		t.Errorf("an admin's selftest result = %q, want no details in it, and a word on where they went", got)
	}
	for _, p := range e.chat.Posts() {
		if secret(p.Text) {
			t.Errorf("a post shows the details: %q", p.Text)
		}
	}
	for _, ed := range e.chat.Edits() {
		if secret(ed.Text) {
			t.Errorf("an edit shows the details: %q", ed.Text)
		}
	}
	if w := e.chat.Whispers(bob.ResponseURL); len(w) != 0 {
		t.Errorf("the member was sent %q, want nothing", w)
	}
	if w := e.chat.Whispers(ann.ResponseURL); len(w) != 1 || !contains(w[0], path+" is writable", raw) {
		t.Errorf("the admin was sent %q, want the details once", w)
	}
	// The operator's terminal posts nothing: the details are in the result.
	if got := run(Caller{UserName: "operator", Terminal: true}); !contains(got, path+" is writable", raw) {
		t.Errorf("the terminal's selftest = %q, want the details", got)
	}
	if log := e.log.String(); !contains(log, "selftest details", path) {
		t.Errorf("the log lacks the details:\n%s", log)
	}
}
