package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/toolbox-collective/toolbox/state"
)

func (r *Router) statusVerb() *Verb {
	return &Verb{
		Name: "status", MaxArgs: 0,
		Summary: "show the apps and the jobs running now",
		Run: func(ctx context.Context, _ Invocation) (string, error) {
			apps, err := r.deps.Store.Apps()
			if err != nil {
				return "", err
			}
			jobs, err := r.deps.Store.ActiveJobs()
			if err != nil {
				return "", err
			}
			var b strings.Builder
			if len(apps) == 0 {
				b.WriteString("No apps yet. `/toolbox help` shows how to add one.\n")
			} else {
				b.WriteString("| app | status | address | version |\n|---|---|---|---|\n")
				// One deadline for all apps: a slow engine must not hold the reply.
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				for _, a := range apps {
					fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", a.Name, r.appHealth(ctx, a), r.appURL(a), a.Version)
				}
			}
			r.backupStatus(&b, apps)
			if len(jobs) == 0 {
				b.WriteString("\nNo job is running.")
			} else {
				b.WriteString("\nRunning jobs:\n")
				for _, j := range jobs {
					progress := j.Progress
					if progress == "" {
						progress = string(j.Status)
					}
					fmt.Fprintf(&b, "- #%d %s by @%s, since %s: %s\n", j.ID, code(strings.TrimSpace(j.Verb+" "+quoteArgs(j.Args))), j.UserName,
						r.deps.Now().Sub(j.Created).Round(1e9), oneLine(progress, 200))
				}
			}
			return strings.TrimRight(b.String(), "\n"), nil
		},
	}
}

// appHealth summarises an app's containers, or its recorded status when the
// machine cannot be asked.
func (r *Router) appHealth(ctx context.Context, a state.App) string {
	if r.deps.Apps == nil || a.Status != statusRunning {
		return a.Status
	}
	svcs, err := r.deps.Apps.Engine.Services(ctx, a.Name)
	if err != nil {
		return a.Status + " (engine not answering)"
	}
	if len(svcs) == 0 {
		return ":x: no containers"
	}
	healthy := 0
	var bad []string
	for _, s := range svcs {
		if s.State == "running" && (s.Health == "" || s.Health == "healthy") {
			healthy++
			continue
		}
		what := s.State
		if s.Health != "" && s.State == "running" {
			what = s.Health
		}
		bad = append(bad, s.Name+" "+what)
	}
	if len(bad) == 0 {
		return fmt.Sprintf(":white_check_mark: %d/%d healthy", healthy, len(svcs))
	}
	return fmt.Sprintf(":warning: %d/%d healthy (%s)", healthy, len(svcs), strings.Join(bad, ", "))
}

func (r *Router) appURL(a state.App) string {
	if a.Domain == "" {
		return "–"
	}
	scheme := "https"
	if r.deps.Apps != nil {
		scheme = r.deps.Apps.scheme()
	}
	return scheme + "://" + a.Domain
}

// backupStatus says where the backups are, each app's last restore drill and
// the restores that can still be undone; nothing slow (no restic run).
func (r *Router) backupStatus(b *strings.Builder, apps []state.App) {
	a := r.deps.Apps
	if a == nil || a.Backups == nil {
		return
	}
	if where, local := a.Backups.Where(); local {
		b.WriteString("\n" + localWarning + "\n")
	} else {
		fmt.Fprintf(b, "\nBackups go to %s.\n", where)
	}
	for _, rec := range apps {
		if d, ok := a.LastDrill(rec.Name); ok {
			if d.OK {
				fmt.Fprintf(b, "- %s: last restore drill passed %s (%s in %s)\n", rec.Name, d.Time.Format("2006-01-02 15:04"), sizeOf(d.Size), d.Took.Round(time.Second))
			} else {
				fmt.Fprintf(b, "- %s: :rotating_light: last restore drill FAILED %s: %s\n", rec.Name, d.Time.Format("2006-01-02 15:04"), oneLine(d.Failure, 200))
			}
		}
		if p := rec.Previous; p != nil {
			fmt.Fprintf(b, "- %s: its data from before the last restore is kept until %s (`restore undo %s`)\n", rec.Name, p.Until.Format("2006-01-02 15:04"), rec.Name)
		}
	}
}
