package commands

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Whisperer sends text to the one person who typed a command, through the
// command's response URL: the chat shows it to them only (Mattermost's
// ephemeral post, for 30 minutes after the command). The chat may implement
// it; selftest uses it for what only admins may read.
type Whisperer interface {
	Whisper(ctx context.Context, responseURL, text string) error
}

func (r *Router) selftestVerb() *Verb {
	return &Verb{
		Name: "selftest", MaxArgs: 0, Job: true,
		Summary: "check that the state, Mattermost and the Docker engine answer",
		Help: "Each check is timed and says whether it passed. The details (paths, addresses, versions, errors) are for admins: " +
			"an admin who runs it gets them in a message only they see.",
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			var public, details strings.Builder
			failed := 0
			for _, c := range r.deps.Checks {
				inv.Progress("checking %s…", c.Name)
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				start := time.Now()
				detail, err := c.Run(cctx)
				took := time.Since(start)
				cancel()
				if err != nil {
					failed++
					fmt.Fprintf(&public, "- :x: **%s** failed after %s", c.Name, round(took))
					if kind, msg := r.rep.render(err); kind != Internal {
						fmt.Fprintf(&public, ": %s", oneLine(msg, 200)) // written for people
					}
					public.WriteString("\n")
					// The operators' own check: its raw cause is what they need.
					fmt.Fprintf(&details, "- **%s** failed: %s\n", c.Name, oneLine(err.Error(), 1000))
					inv.Progress("%s: failed", c.Name)
					continue
				}
				fmt.Fprintf(&public, "- :white_check_mark: **%s** in %s\n", c.Name, round(took))
				fmt.Fprintf(&details, "- **%s**: %s\n", c.Name, oneLine(detail, 1000))
				inv.Progress("%s: ok (%s)", c.Name, round(took))
			}
			text := strings.TrimRight(public.String(), "\n")
			if note := r.selftestDetails(ctx, inv, strings.TrimRight(details.String(), "\n")); note != "" {
				text += "\n" + note
			}
			if failed > 0 {
				return "", Errorf(Unavailable, "%d of %d checks failed:\n%s", failed, len(r.deps.Checks), text)
			}
			return fmt.Sprintf("All %d checks passed:\n%s", len(r.deps.Checks), text), nil
		},
	}
}

// selftestDetails gives the checks' details to whoever may read them (the
// state's path, Mattermost's address, the engine's version, raw errors are
// nobody else's business): the operator's terminal gets them in the result,
// an admin in the chat privately; they always go to the log. It returns what
// the result says about them.
func (r *Router) selftestDetails(ctx context.Context, inv Invocation, details string) string {
	c := inv.Caller
	r.deps.Log.InfoContext(ctx, "selftest details", "job", inv.JobID, "user", c.UserName, "details", details)
	if c.Terminal && c.ChannelID == "" { // the operator's own terminal; nothing is posted
		return "Details:\n" + details
	}
	w, ok := r.deps.Chat.(Whisperer)
	if !ok || c.ResponseURL == "" || c.Terminal {
		return "_The details are in the toolbox's log; an admin who runs `/toolbox selftest` gets them privately._"
	}
	if admin, err := r.isAdmin(ctx, c.UserID); err != nil || !admin {
		return "_Admins who run `/toolbox selftest` get the details privately._"
	}
	text := fmt.Sprintf("Details of the self-test (job #%d), for your eyes only:\n%s", inv.JobID, details)
	if err := w.Whisper(ctx, c.ResponseURL, text); err != nil {
		r.deps.Log.WarnContext(ctx, "selftest details not sent", "job", inv.JobID, "user", c.UserName, "err", err)
		return "_I could not send the details privately to the admin who ran it: they are in the toolbox's log._"
	}
	return "_The admin who ran it got the details privately._"
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}
