package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/toolbox-collective/toolbox/state"
)

// recoverVerb brings back, on a new machine, every app the recovered state
// records: each one not running is restored from its latest backup (and
// deployed empty when it has none), at the version it ran, then routed.
// Run again, it leaves what runs alone.
func (a *AppDeps) recoverVerb(r *Router) *Verb {
	return &Verb{
		Name: "recover", Role: Operator, Job: true, MaxArgs: 0,
		Summary: "bring back every recorded app that does not run, from its latest backup (toolbox recover runs it)",
		Help: "For a new machine, after the toolbox's state came back from the repository: each app the state records and " +
			"that has no container is restored from its latest backup at the version it ran, then routed. Apps that run are left alone.",
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			apps, err := a.Store.Apps()
			if err != nil {
				return "", err
			}
			// The chat first: the others report in it.
			slices.SortStableFunc(apps, func(x, y state.App) int {
				return boolInt(y.Name == a.ChatApp) - boolInt(x.Name == a.ChatApp)
			})
			var lines []string
			failed := 0
			for _, rec := range apps {
				line, err := a.recoverOne(ctx, inv, r, rec)
				if err != nil {
					failed++
					rep := r.rep.report(ctx, r.deps.Log, "recovery failed", err, "app", rec.Name)
					line = fmt.Sprintf("- **%s**: failed. %s", rec.Name, scrub(rep.Text, a.secretsOf(rec)))
				}
				lines = append(lines, line)
			}
			if len(lines) == 0 {
				return "The state records no app: there is nothing to recover.", nil
			}
			out := strings.Join(lines, "\n")
			if failed > 0 {
				return "", Errorf(Unavailable, "%d of %d apps could not be recovered:\n%s", failed, len(apps), out)
			}
			return "Recovered:\n" + out, nil
		},
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (a *AppDeps) recoverOne(ctx context.Context, inv Invocation, r *Router, rec state.App) (string, error) {
	// A scheduled backup or drill may start with the bot: recovery waits for it.
	release, err := a.hold(ctx, rec.Name, inv)
	if err != nil {
		return "", err
	}
	defer release()
	services, err := a.Engine.Services(ctx, rec.Name)
	if err != nil {
		return "", err
	}
	app, err := a.runningEntry(ctx, rec)
	if err != nil {
		return "", err
	}
	what := "already runs, left alone"
	if len(services) == 0 {
		inv.Progress("recovering %s", rec.Name)
		if app.Build != nil { // its image is made here, not pulled: before the copy needs it
			d, secrets, err := a.deployment(ctx, rec, app)
			if err != nil {
				return "", err
			}
			if err := a.Engine.Build(ctx, app.Name, *app.Build, d.Project, func(line string) { inv.Progress("%s", scrub(line, secrets)) }); err != nil {
				return "", err
			}
		}
		what = "restored from its latest backup"
		if _, err := a.restoreHeld(ctx, inv, r, rec.Name, "latest"); err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Kind != NotFound {
				return "", err
			}
			what = "had no backup: deployed with empty data"
		}
	}
	// Routed, and its post-install steps checked, at the version it ran:
	// run again, this repairs what a first run left undone.
	if err := a.deploy(ctx, app, rec.Domain, inv.Progress, r); err != nil {
		return "", err
	}
	return fmt.Sprintf("- **%s** %s: %s, running at %s://%s", rec.Name, app.Version, what, a.scheme(), rec.Domain), nil
}
