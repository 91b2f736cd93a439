package commands

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/toolbox-collective/toolbox/internal/names"
	"github.com/toolbox-collective/toolbox/state"
)

// localWarning is said wherever backups are, while they are on the machine
// they protect.
const localWarning = "These backups are on this machine: they do not survive losing it. " +
	"Give the toolbox an off-machine repository to keep them elsewhere: `/toolbox backup repository` with a swift:, s3: or rest: URL."

func (a *AppDeps) backupNowVerb(r *Router) *Verb {
	return &Verb{
		Name: "backup now", Args: "[app]", MaxArgs: 1, Role: Admin, Job: true, Apps: firstApp,
		Summary: "back up every app now (or one): database dumps, data volumes and the toolbox's state",
		Help: "Each app is backed up through its catalog hooks: its databases are dumped and streamed into the encrypted, " +
			"deduplicated restic repository, then its data volumes are added, then the toolbox's own state, so that the " +
			"repository alone is enough to rebuild. `/toolbox backups` lists what there is.",
		Validate: a.validOneOrAll,
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			recs, err := a.oneOrAll(inv.Args)
			if err != nil {
				return "", err
			}
			if len(recs) == 0 {
				return "No app is installed: there is nothing to back up yet.", nil
			}
			var lines []string
			var failed []error
			for _, rec := range recs {
				line, _, err := a.backupOne(ctx, rec, inv)
				if err != nil {
					failed = append(failed, err)
					// The cause goes to the log; people read its kind's sentence.
					rep := r.rep.report(ctx, r.deps.Log, "backup failed", err, "app", rec.Name, "job", inv.JobID)
					lines = append(lines, fmt.Sprintf("- **%s**: failed. %s", rec.Name, scrub(rep.Text, a.secretsOf(rec))))
					continue
				}
				lines = append(lines, line)
			}
			if len(inv.Args) == 0 { // the nightly run also ends the undo windows
				if ended := a.dropExpiredUndo(ctx, r); len(ended) > 0 {
					lines = append(lines, ended...)
				}
			}
			out := strings.Join(lines, "\n")
			if where, local := a.Backups.Where(); local {
				out += "\n\n" + localWarning
			} else {
				out += "\n\nRepository: " + where
			}
			if len(failed) > 0 {
				// Already logged one by one above: the job's failure is the summary.
				return "", Errorf(Unavailable, "%d of %d backups failed:\n%s", len(failed), len(recs), out)
			}
			return out, nil
		},
	}
}

// validOneOrAll accepts no app (all of them) or one installed app.
func (a *AppDeps) validOneOrAll(_ context.Context, args []string) error {
	if len(args) == 0 {
		return nil
	}
	_, err := a.installed(args[0])
	return err
}

// oneOrAll is the installed app args names, or every app when none.
func (a *AppDeps) oneOrAll(args []string) ([]state.App, error) {
	if len(args) == 1 {
		rec, err := a.installed(args[0])
		if err != nil {
			return nil, err
		}
		return []state.App{rec}, nil
	}
	return a.Store.Apps()
}

// backupOne backs up one installed app and says what was kept. It waits
// while a restore, an undo, an upgrade or a drill holds the app, and reads
// its record again then: a backup never mixes two generations of its data.
func (a *AppDeps) backupOne(ctx context.Context, rec state.App, inv Invocation) (string, []Snapshot, error) {
	release, err := a.hold(ctx, rec.Name, inv)
	if err != nil {
		return "", nil, err
	}
	defer release()
	if rec, err = a.installed(rec.Name); err != nil {
		return "", nil, err
	}
	return a.backupHeld(ctx, rec, inv)
}

// backupHeld is backupOne for a job that holds the app already.
func (a *AppDeps) backupHeld(ctx context.Context, rec state.App, inv Invocation) (string, []Snapshot, error) {
	app, err := a.runningEntry(ctx, rec)
	if err != nil {
		return "", nil, err
	}
	inv.Progress("backing up %s", rec.Name)
	start := time.Now()
	snaps, err := a.Backups.Backup(ctx, BackupRequest{
		App: rec.Name, Version: rec.Version, Job: inv.JobID, Dumps: app.Dumps, Volumes: app.DataVolumes, Generation: rec.Generation,
	}, func(line string) { inv.Progress("%s: %s", rec.Name, scrub(line, a.secretsOf(rec))) })
	if err != nil {
		return "", nil, err
	}
	var added, size int64
	for _, s := range snaps {
		added += s.Added
		size += s.Size
	}
	return fmt.Sprintf("- **%s** %s: %d snapshots, %s added (of %s), in %s", rec.Name, rec.Version, len(snaps),
		sizeOf(added), sizeOf(size), time.Since(start).Round(time.Second)), snaps, nil
}

func (a *AppDeps) backupsVerb() *Verb {
	return &Verb{
		Name: "backups", Args: "[app]", MaxArgs: 1,
		Summary: "list the backups (of one app)",
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			app := ""
			if len(inv.Args) == 1 {
				app = inv.Args[0]
				if err := checkName(names.App(app)); err != nil {
					return "", err
				}
			}
			snaps, err := a.Backups.Snapshots(ctx, app)
			if err != nil {
				return "", &Error{Kind: Unavailable, Message: "I could not read the backup repository.", Err: err}
			}
			where, local := a.Backups.Where()
			if len(snaps) == 0 {
				msg := "No backups yet. `/toolbox backup now` makes one."
				if app != "" {
					msg = fmt.Sprintf("No backups of %s yet. `/toolbox backup now %s` makes one.", app, app)
				}
				return msg, nil
			}
			sort.SliceStable(snaps, func(i, j int) bool { return snaps[i].Time.After(snaps[j].Time) })
			const shown = 20
			var b strings.Builder
			b.WriteString("| when | app | what | version | added | size | took | snapshot |\n|---|---|---|---|---|---|---|---|\n")
			for i, s := range snaps {
				if i == shown {
					fmt.Fprintf(&b, "\n(%d older ones not shown)\n", len(snaps)-shown)
					break
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | `%s` |\n", s.Time.Format("2006-01-02 15:04"), s.App, s.What,
					s.Version, sizeOf(s.Added), sizeOf(s.Size), s.Duration.Round(time.Second), s.ID)
			}
			if local {
				b.WriteString("\n" + localWarning)
			} else {
				b.WriteString("\nRepository: " + where)
			}
			return b.String(), nil
		},
	}
}

func (a *AppDeps) backupKeyVerb() *Verb {
	return &Verb{
		Name: "backup key", Role: Operator, MaxArgs: 0,
		Summary: "show the backup repository's password (on the machine's terminal only)",
		Help:    "Without this password the backups cannot be read, and anyone with it and the repository can read them: keep it offline, on paper in a safe place.",
		Run: func(context.Context, Invocation) (string, error) {
			key, err := a.Backups.Key()
			if err != nil {
				return "", err
			}
			where, _ := a.Backups.Where()
			return fmt.Sprintf("The password of the backup repository at %s:\n\n    %s\n\n"+
				"Keep it offline, on paper in a safe place: without it the backups cannot be read, "+
				"and with it anyone who has the repository can read them. `toolbox backup key` shows it again, on this terminal only.", where, key), nil
		},
	}
}

// sizeOf writes a byte count for people.
func sizeOf(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
