package commands

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// The reproduction: a health wait's error quotes the app's last log
// lines, and the whole error reached the bot's own log with the app's
// secrets in it.
func TestEngineErrorsReachTheLogScrubbed(t *testing.T) {
	m := &fakeEngine{total: 8 << 30}
	e, _ := appsEnv(t, m)
	wp, err := catalog.New(nil).Get("wordpress")
	if err != nil || len(wp.Secrets) == 0 {
		t.Fatalf("wordpress in the catalog = %+v, %v; want it with secrets", wp, err)
	}
	var secret string
	m.DeployFn = func(app string) error {
		v, err := e.store.Secret(secretName(app, wp.Secrets[0].Name))
		if err != nil {
			return err
		}
		secret = v.Reveal() + "/+ &" // the URL encodings differ from the value
		if err := e.store.SetSecret(secretName(app, wp.Secrets[0].Name), state.Secret(secret)); err != nil {
			return err
		}
		return fmt.Errorf("wordpress of wordpress did not become healthy: docker: container exited with code 1; last logs:\nconnecting with password %s to mysql://wp:%s@db/wp", secret, url.QueryEscape(secret))
	}
	ann := caller("ann")
	e.handle(ann, "set wordpress admin_email ann@example.org")
	if got := e.handle(ann, "add wordpress").Text; !strings.Contains(got, "Started job") {
		t.Fatalf("add = %q", got)
	}
	e.chat.waitFor(t, "the failure", e.postWith("failed"))
	e.chat.waitFor(t, "the log line", func() bool { return strings.Contains(e.log.String(), "did not become healthy") })
	log := e.log.String()
	for _, leak := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
		if strings.Contains(log, leak) {
			t.Errorf("the bot's log holds the secret (%q):\n%s", leak, log)
		}
		for _, p := range postTexts(e) {
			if strings.Contains(p, leak) {
				t.Errorf("a post holds the secret: %q", p)
			}
		}
	}
	if !strings.Contains(log, "connecting with password [redacted] to mysql://wp:[redacted]@db/wp") {
		t.Errorf("the log lost the failure's cause:\n%s", log)
	}
	jobs, err := e.store.RecentJobs(5)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if strings.Contains(j.Error+j.Progress+j.Result, secret) {
			t.Errorf("job #%d keeps the secret: %+v", j.ID, j)
		}
	}
}

func TestScrubbedErrorKeepsItsCause(t *testing.T) {
	cause := errors.New("boom hunter2hunter2")
	h := &hider{load: func() []string { return []string{"hunter2hunter2"} }}
	err := h.err(fmt.Errorf("deploy: %w", cause))
	if got, want := err.Error(), "deploy: boom [redacted]"; got != want {
		t.Errorf("err = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(scrubbed, cause) = false")
	}
	if h.err(nil) != nil {
		t.Errorf("h.err(nil) != nil")
	}
	plain := errors.New("nothing secret")
	if h.err(plain) != plain {
		t.Errorf("an error without secrets was wrapped")
	}
}

// A restore's error quotes the restored app's logs: the bot's log gets it
// scrubbed too, not only the post.
func TestBackupsErrorsReachTheLogScrubbed(t *testing.T) {
	b := &fakeBackups{restoreErr: errors.New("the restored copy of wordpress did not start: db did not become healthy\nlogs with " + dbPassword)}
	e, m := restoreEnv(t, b)
	confirmAll(t, e, m, caller("ann"), "restore wordpress")
	log := e.log.String()
	if strings.Contains(log, dbPassword) {
		t.Errorf("the bot's log holds the secret:\n%s", log)
	}
	if !strings.Contains(log, "logs with [redacted]") {
		t.Errorf("the log lost the failure's cause:\n%s", log)
	}
}
