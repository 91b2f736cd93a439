package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// DefaultUndoWindow is how long a restore keeps the data it replaced.
const DefaultUndoWindow = 7 * 24 * time.Hour

// keptGenerationKey is the setting that keeps the generation of the data of
// an app removed without --purge, which `add` brings back.
func keptGenerationKey(app string) string { return "app/" + app + "/data generation" }

// drillKey is the setting that keeps an app's last drill (a DrillResult).
func drillKey(app string) string { return "drill/" + app }

// DrillResult is the outcome of an app's last restore drill.
type DrillResult struct {
	Time    time.Time     `json:"time"`
	OK      bool          `json:"ok"`
	Took    time.Duration `json:"took"`
	Size    int64         `json:"size"`
	Backup  time.Time     `json:"backup,omitzero"` // when the drilled backup was made
	Checks  []string      `json:"checks,omitempty"`
	Failure string        `json:"failure,omitempty"`
	Skipped string        `json:"-"` // not drilled: another job held the app
}

func (a *AppDeps) undoWindow() time.Duration {
	if a.UndoWindow > 0 {
		return a.UndoWindow
	}
	return DefaultUndoWindow
}

// validSnapshotArg accepts "latest" and a snapshot ID as `backups` shows it.
func validSnapshotArg(s string) error {
	if s == "latest" {
		return nil
	}
	ok := len(s) >= 8 && len(s) <= 64
	for _, c := range s {
		ok = ok && (c >= '0' && c <= '9' || c >= 'a' && c <= 'f')
	}
	if !ok {
		return Errorf(Invalid, "%s is not a snapshot: give `latest` or an ID from `/toolbox backups` (8 hexadecimal digits or more).", code(truncate(s, 70)))
	}
	return nil
}

// deployment is an installed app as it runs: its project, from the catalog
// with its secrets and settings, and its volumes' generation.
func (a *AppDeps) deployment(ctx context.Context, rec state.App, app catalog.App) (Deployment, []string, error) {
	vars, secrets, err := a.vars(app, rec.Domain)
	if err != nil {
		return Deployment{}, nil, err
	}
	project, err := app.Project(ctx, vars)
	if err != nil {
		return Deployment{}, nil, err
	}
	return Deployment{App: rec.Name, Project: project, Entry: app.Entry, Generation: rec.Generation}, secrets, nil
}

// nextGeneration names the generation a restore of rec writes: one that
// neither its live data nor its kept data uses.
func nextGeneration(rec state.App) string {
	n, _ := strconv.Atoi(rec.Generation)
	for _, other := range []*state.PreviousData{rec.Previous, rec.Pending} {
		if other != nil {
			p, _ := strconv.Atoi(other.Generation)
			n = max(n, p)
		}
	}
	return strconv.Itoa(n + 1)
}

// errSwapInterrupted refuses to restore an app whose last restore stopped
// in the middle of its swap: `add` finishes that one first.
func errSwapInterrupted(app string) error {
	return Errorf(Conflict, "The last restore of %s was interrupted while it moved %s onto the restored data. `/toolbox add %s` finishes it first.", app, app, app)
}

func (a *AppDeps) restoreVerb(r *Router) *Verb {
	return &Verb{
		Name: "restore", Args: "<app> [snapshot|latest]", MinArgs: 1, MaxArgs: 2, Role: Admin, Job: true, Confirmations: 1, Apps: firstApp,
		Summary: "bring an app back to one of its backups (checked in a copy first; undo for 7 days)",
		Help: "The backup is restored into new volumes and started as a copy beside the live app, on a network of its own; " +
			"its databases are loaded and queried, and it must be healthy. Only then is the app moved onto the restored data, " +
			"after a short stop. If anything fails, the app is left as it was. Its previous data is kept for 7 days: " +
			"`/toolbox restore undo <app>` swaps it back. Without a snapshot, the latest whole backup is restored.",
		Describe: func(args []string) string {
			which := "its latest backup"
			if len(args) == 2 && args[1] != "latest" {
				which = "the backup " + code(args[1])
			}
			return fmt.Sprintf("The data of %s will be replaced by %s. It is checked in a copy first, then %s stops for a moment. "+
				"Its current data is kept for 7 days: `/toolbox restore undo %s` brings it back.", args[0], which, args[0], args[0])
		},
		Validate: func(_ context.Context, args []string) error {
			if len(args) == 2 {
				if err := validSnapshotArg(args[1]); err != nil {
					return err
				}
			}
			_, err := a.installed(args[0])
			return err
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			snapshot := "latest"
			if len(inv.Args) == 2 {
				snapshot = inv.Args[1]
			}
			return a.restore(ctx, inv, r, inv.Args[0], snapshot)
		},
	}
}

func (a *AppDeps) restore(ctx context.Context, inv Invocation, r *Router, name, snapshot string) (string, error) {
	release, err := a.exclusive(inv.JobID, name)
	if err != nil {
		return "", err
	}
	defer release()
	return a.restoreHeld(ctx, inv, r, name, snapshot)
}

// restoreHeld is restore for a job that holds the app already.
func (a *AppDeps) restoreHeld(ctx context.Context, inv Invocation, r *Router, name, snapshot string) (string, error) {
	rec, app, err := a.installedRunning(ctx, name)
	if err != nil {
		return "", err
	}
	if rec.Pending != nil {
		return "", errSwapInterrupted(name)
	}
	live, secrets, err := a.deployment(ctx, rec, app)
	if err != nil {
		return "", err
	}
	into := nextGeneration(rec)
	pending := rec
	pending.Pending = &state.PreviousData{Generation: into, Version: rec.Version, Snapshot: snapshot}
	done, err := a.Backups.Restore(ctx, RestoreRequest{Live: live, Snapshot: snapshot, Into: into, Dumps: app.Dumps, Volumes: app.DataVolumes, Swap: true,
		BeforeSwap: func() error { return a.Store.PutApp(pending) }},
		func(line string) { inv.Progress("%s", scrub(line, secrets)) })
	if err != nil {
		if !errors.Is(err, ErrNotAsItWas) {
			rec.Pending = nil
			if perr := a.Store.PutApp(rec); perr != nil {
				r.deps.Log.Error("app state not recorded", "app", name, "err", perr)
			}
		}
		return "", restoreFailed(name, secrets, err)
	}
	// The data the restore replaced is kept for undo; the one kept before
	// (a second restore within the window) goes now.
	var dropped string
	if old := rec.Previous; old != nil {
		if err := a.Backups.DropGeneration(ctx, Deployment{App: name, Project: live.Project, Generation: old.Generation}); err != nil {
			r.deps.Log.Warn("older data kept for undo not removed", "app", name, "generation", old.Generation, "err", err)
		} else {
			dropped = fmt.Sprintf(" The data kept from the restore before (of %s) was removed: one undo is kept.", old.Until.Add(-a.undoWindow()).Format("2006-01-02"))
		}
	}
	until := r.deps.Now().Add(a.undoWindow())
	rec.Previous = &state.PreviousData{Generation: rec.Generation, Version: rec.Version, Until: until, Snapshot: snapshot}
	if !done.Replaced {
		rec.Previous = nil // nothing ran: nothing to go back to
	}
	rec.Generation = into
	if err := a.Store.PutApp(rec); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("**%s** runs on its backup of %s (job %d, version %s) and is healthy. %s restored in %s.",
		name, done.Time.Local().Format("2006-01-02 15:04"), done.Job, done.Version, sizeOf(done.Size), done.Took.Round(time.Second))
	if len(done.Checks) > 0 {
		msg += " Checked: " + strings.Join(done.Checks, ", ") + "."
	}
	if done.Version != "" && done.Version != rec.Version {
		msg += fmt.Sprintf(" The backup was made with version %s; %s runs %s.", done.Version, name, rec.Version)
	}
	if done.Replaced {
		msg += fmt.Sprintf(" Its data from before is kept until %s: `/toolbox restore undo %s` brings it back.%s", until.Format("2006-01-02 15:04"), name, dropped)
	}
	return msg, nil
}

// restoreFailed says that a restore failed and that nothing changed, or
// plainly that the app could not be put back.
func restoreFailed(app string, secrets []string, err error) error {
	if errors.Is(err, ErrNotAsItWas) {
		return &Error{Kind: Unavailable, Message: fmt.Sprintf(":rotating_light: The restore of %s failed while it swapped the data in, and %s could not be put back on its previous data: it needs a look now. "+
			"`/toolbox add %s` finishes the restore. %s", app, app, app, scrub(causeLine(err), secrets)), Err: err}
	}
	if m := peopleMessage(err); m != "" {
		return err // already said for people
	}
	return &Error{Kind: Unavailable, Message: fmt.Sprintf("The restore of %s failed, and %s is as it was: %s", app, app, scrub(causeLine(err), secrets)), Err: err}
}

// causeLine is an error's first line, long enough to hold its cause
// (restic's message, a health check's output) after the chain of steps.
func causeLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return truncate(line, 600)
}

// peopleMessage is the sentence of an error already written for people ("" if none).
func peopleMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return ""
}

func (a *AppDeps) restoreUndoVerb(r *Router) *Verb {
	return &Verb{
		Name: "restore undo", Args: "<app>", MinArgs: 1, MaxArgs: 1, Role: Admin, Job: true, Confirmations: 1, Apps: firstApp,
		Summary: "swap back the data an app had before its last restore",
		Help:    "For 7 days after a restore, the app's previous data is kept. This moves the app back onto it; the restored data is kept in its place, so that undoing again redoes the restore.",
		Describe: func(args []string) string {
			return fmt.Sprintf("%s will go back to the data it had before its last restore, after a short stop.", args[0])
		},
		Validate: func(_ context.Context, args []string) error {
			rec, err := a.installed(args[0])
			if err != nil {
				return err
			}
			if rec.Previous == nil {
				return Errorf(NotFound, "%s has no data kept from before a restore: there is nothing to undo.", args[0])
			}
			return nil
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			release, err := a.exclusive(inv.JobID, inv.Args[0])
			if err != nil {
				return "", err
			}
			defer release()
			rec, app, err := a.installedRunning(ctx, inv.Args[0])
			if err != nil {
				return "", err
			}
			prev := rec.Previous
			switch {
			case prev == nil:
				return "", Errorf(NotFound, "%s has no data kept from before a restore: there is nothing to undo.", rec.Name)
			case rec.Pending != nil:
				return "", errSwapInterrupted(rec.Name)
			case prev.Version != "" && prev.Version != rec.Version:
				return "", Errorf(Conflict, "The data kept for %s is from version %s, and %s runs %s: swapping it back under another version could damage it, so it is not done. "+
					"`/toolbox restore %s` with a backup of %s is the way back.", rec.Name, prev.Version, rec.Name, rec.Version, rec.Name, rec.Version)
			}
			d, secrets, err := a.deployment(ctx, rec, app)
			if err != nil {
				return "", err
			}
			inv.Progress("moving %s back onto its data from before the restore", rec.Name)
			back := d
			back.Generation = prev.Generation
			if _, err := a.Engine.Deploy(ctx, back, func(line string) { inv.Progress("%s", scrub(line, secrets)) }); err != nil {
				// Never left half-way: onto the restored data again.
				if _, rerr := a.Engine.Deploy(context.WithoutCancel(ctx), d, func(string) {}); rerr != nil {
					r.deps.Log.Error("going back to the restored data failed", "app", rec.Name, "err", rerr)
				}
				return "", engineFailed(fmt.Sprintf("Undoing the restore of %s", rec.Name), "It runs on the restored data still.", secrets, err)
			}
			rec.Generation, prev.Generation = prev.Generation, rec.Generation
			if err := a.Store.PutApp(rec); err != nil {
				return "", err
			}
			return fmt.Sprintf("**%s** runs on its data from before the restore again, and is healthy. The restored data is kept until %s: "+
				"`/toolbox restore undo %s` swaps it back in.", rec.Name, prev.Until.Format("2006-01-02 15:04"), rec.Name), nil
		},
	}
}

// dropExpiredUndo removes the data kept for undo whose window has ended and
// says so (one line per app), for the nightly run to post.
func (a *AppDeps) dropExpiredUndo(ctx context.Context, r *Router) []string {
	apps, err := a.Store.Apps()
	if err != nil {
		r.deps.Log.Warn("apps not read for the undo windows", "err", err)
		return nil
	}
	var lines []string
	for _, rec := range apps {
		prev := rec.Previous
		if prev == nil || r.deps.Now().Before(prev.Until) {
			continue
		}
		release, err := a.exclusive(0, rec.Name)
		if err != nil {
			continue // a job is changing it: tomorrow
		}
		line := a.dropUndo(ctx, r, rec.Name)
		release()
		if line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

// dropUndo removes the data an app kept for undo; the app is held.
func (a *AppDeps) dropUndo(ctx context.Context, r *Router, name string) string {
	rec, err := a.Store.App(name) // read again under the hold
	if err != nil || rec.Previous == nil {
		return ""
	}
	prev := rec.Previous
	app, err := a.runningEntry(ctx, rec)
	if err == nil {
		var d Deployment
		if d, _, err = a.deployment(ctx, rec, app); err == nil {
			d.Generation = prev.Generation
			err = a.Backups.DropGeneration(ctx, d)
		}
	}
	if err != nil {
		r.deps.Log.Warn("data kept for undo not removed", "app", rec.Name, "err", err)
		return fmt.Sprintf("- **%s**: its data from before the restore could not be removed; it is retried tomorrow.", rec.Name)
	}
	rec.Previous = nil
	if err := a.Store.PutApp(rec); err != nil {
		r.deps.Log.Warn("undo window not recorded", "app", rec.Name, "err", err)
		return ""
	}
	return fmt.Sprintf("- **%s**: its 7 days to undo the restore ended; the data from before it was removed.", rec.Name)
}

func (a *AppDeps) drillNowVerb(r *Router) *Verb {
	return &Verb{
		Name: "drill now", Args: "[app]", MaxArgs: 1, Role: Admin, Job: true, Apps: firstApp,
		Summary: "prove the backups work: restore each app's latest backup into a scratch copy, check it, throw it away",
		Help: "The live apps are not touched. Each app's latest backup is restored into new volumes, started on a network of its own, " +
			"its databases loaded and queried; the result (pass or fail, time, size) is posted and kept. It runs every week by itself.",
		Validate: a.validOneOrAll,
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			recs, err := a.oneOrAll(inv.Args)
			if err != nil {
				return "", err
			}
			if len(recs) == 0 {
				return "No app is installed: there is nothing to drill.", nil
			}
			var lines []string
			failed := 0
			for _, rec := range recs {
				res := a.drillOne(ctx, inv, rec)
				res.Time = r.deps.Now()
				if res.Skipped != "" {
					lines = append(lines, fmt.Sprintf("- **%s**: not drilled this time: %s", rec.Name, res.Skipped))
					continue
				}
				if err := a.saveDrill(rec.Name, res); err != nil {
					r.deps.Log.Warn("drill result not kept", "app", rec.Name, "err", err)
				}
				if !res.OK {
					failed++
					lines = append(lines, fmt.Sprintf("- :rotating_light: **%s**: the drill FAILED: %s", rec.Name, res.Failure))
					continue
				}
				line := fmt.Sprintf("- **%s**: passed, the backup of %s restored (%s) and healthy in %s", rec.Name,
					res.Backup.Local().Format("2006-01-02 15:04"), sizeOf(res.Size), res.Took.Round(time.Second))
				if len(res.Checks) > 0 {
					line += "; " + strings.Join(res.Checks, ", ")
				}
				lines = append(lines, line)
			}
			out := strings.Join(lines, "\n")
			if failed > 0 {
				return "", Errorf(Unavailable, "**Restore drill failed** for %d of %d apps: these backups could not be restored as they are. "+
					"Look at it now, while the live apps still run.\n%s", failed, len(recs), out)
			}
			return "Restore drill passed: each backup was restored into a scratch copy, checked, and thrown away.\n" + out, nil
		},
	}
}

func (a *AppDeps) drillOne(ctx context.Context, inv Invocation, rec state.App) DrillResult {
	var res DrillResult
	release, err := a.exclusive(inv.JobID, rec.Name)
	if err != nil {
		res.Skipped = peopleMessage(err)
		return res
	}
	defer release()
	inv.Progress("drilling %s", rec.Name)
	app, err := a.runningEntry(ctx, rec)
	if err != nil {
		res.Failure = err.Error()
		return res
	}
	live, secrets, err := a.deployment(ctx, rec, app)
	if err != nil {
		res.Failure = scrub(err.Error(), secrets)
		return res
	}
	done, err := a.Backups.Restore(ctx, RestoreRequest{Live: live, Snapshot: "latest", Into: "drill", Dumps: app.Dumps, Volumes: app.DataVolumes},
		func(line string) { inv.Progress("%s: %s", rec.Name, scrub(line, secrets)) })
	if err != nil {
		res.Failure = peopleMessage(err)
		if res.Failure == "" {
			res.Failure = scrub(causeLine(err), secrets)
		}
		return res
	}
	res.OK, res.Took, res.Size, res.Backup, res.Checks = true, done.Took, done.Size, done.Time, done.Checks
	return res
}

func (a *AppDeps) saveDrill(app string, res DrillResult) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return a.Store.SetSetting(drillKey(app), string(b))
}

// LastDrill returns an app's last drill, if it had one.
func (a *AppDeps) LastDrill(app string) (DrillResult, bool) {
	v, err := a.Store.Setting(drillKey(app))
	if err != nil || v == "" {
		return DrillResult{}, false
	}
	var res DrillResult
	return res, json.Unmarshal([]byte(v), &res) == nil
}
