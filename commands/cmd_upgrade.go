package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

func (a *AppDeps) upgradeVerb(r *Router) *Verb {
	return &Verb{
		Name: "upgrade", Args: "<app>", MinArgs: 1, MaxArgs: 1, Role: Admin, Job: true, Confirmations: 1, Apps: firstApp,
		Summary: "move an app to the catalog's current version (backed up first, rolled back if unhealthy)",
		Help: "The app is backed up first; then its containers are recreated on the new images and health-checked. " +
			"If it does not become healthy, it goes back to its previous version and to that backup, and says so.",
		Describe: func(args []string) string {
			return fmt.Sprintf("%s will be backed up, then recreated on the catalog's current version, with a short downtime.", args[0])
		},
		Validate: func(_ context.Context, args []string) error {
			_, err := a.installed(args[0])
			return err
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			release, err := a.exclusive(inv.JobID, inv.Args[0])
			if err != nil {
				return "", err
			}
			defer release()
			rec, app, err := a.installedApp(inv.Args[0])
			if err != nil {
				return "", err
			}
			if rec.Version == app.Version && rec.Status == statusRunning {
				inv.Progress("%s is already at %s; checking it", app.Name, app.Version)
				if err := a.deploy(ctx, app, rec.Domain, inv.Progress, r); err != nil {
					return "", err
				}
				return fmt.Sprintf("**%s** runs version %s and is healthy.", app.Name, app.Version), nil
			}
			var before []Snapshot
			if a.Backups != nil {
				inv.Progress("backing up %s before the upgrade", rec.Name)
				if _, before, err = a.backupHeld(ctx, rec, inv); err != nil {
					return "", &Error{Kind: Unavailable, Message: fmt.Sprintf("The backup before the upgrade failed, so %s was not upgraded: it runs version %s as before. "+
						"`/toolbox backup now %s` says more.", rec.Name, rec.Version, rec.Name), Err: err}
				}
			}
			err = a.deploy(ctx, app, rec.Domain, inv.Progress, r)
			if err == nil {
				return fmt.Sprintf("**%s** runs version %s (was %s) and is healthy.", app.Name, app.Version, rec.Version), nil
			}
			if len(before) == 0 || len(rec.Source) == 0 {
				// Deployed before records kept their entry: no version to go back to.
				return "", &Error{Kind: Unavailable, Message: fmt.Sprintf("%s It was not rolled back: its record does not keep the entry of the version it ran. "+
					"`/toolbox restore %s` brings back the backup made just before.", reason(err), rec.Name), Err: err}
			}
			return "", a.rollBack(ctx, inv, r, rec, before[0].ID, app.Version, err)
		},
	}
}

// rollBack takes an app whose upgrade failed back to the version it ran
// (old, with its entry kept in old.Source) and to the backup made just
// before the upgrade, and says what happened.
func (a *AppDeps) rollBack(ctx context.Context, inv Invocation, r *Router, old state.App, snapshot, version string, cause error) error {
	failed := func(what string, err error) error {
		return &Error{Kind: Unavailable, Message: fmt.Sprintf("The upgrade of %s to %s failed (%s), and %s: it needs a look. "+
			"`/toolbox restore %s %s` is the backup from just before the upgrade.", old.Name, version, reason(cause), what, old.Name, snapshot), Err: err}
	}
	inv.Progress("%s is not healthy on %s: going back to %s and the backup from before the upgrade", old.Name, version, old.Version)
	app, err := catalog.Parse(ctx, old.Catalog, old.Source)
	if err != nil {
		return failed("its previous catalog entry cannot be read", err)
	}
	cur, err := a.Store.App(old.Name)
	if err != nil {
		return failed("its record cannot be read", err)
	}
	live, secrets, err := a.deployment(ctx, old, app)
	if err != nil {
		return failed("its previous version cannot be prepared", err)
	}
	live.Generation = cur.Generation
	if old := cur.Previous; old != nil { // one undo is kept: the failed upgrade's data
		if err := a.Backups.DropGeneration(ctx, Deployment{App: cur.Name, Project: live.Project, Generation: old.Generation}); err != nil {
			r.deps.Log.Warn("older data kept for undo not removed", "app", cur.Name, "generation", old.Generation, "err", err)
		}
	}
	into := nextGeneration(cur)
	pending := cur
	pending.Pending = &state.PreviousData{Generation: into, Version: cur.Version, Snapshot: snapshot}
	_, err = a.Backups.Restore(ctx, RestoreRequest{Live: live, Snapshot: snapshot, Into: into, Dumps: app.Dumps, Volumes: app.DataVolumes, Swap: true,
		BeforeSwap: func() error { return a.Store.PutApp(pending) }},
		func(line string) { inv.Progress("%s", scrub(line, secrets)) })
	if err != nil {
		return failed("going back to its previous version failed too", err)
	}
	back := old
	back.Status, back.Generation = statusRunning, into
	back.Previous = &state.PreviousData{Generation: cur.Generation, Version: version, Until: r.deps.Now().Add(a.undoWindow()), Snapshot: snapshot}
	if err := a.Store.PutApp(back); err != nil {
		return err
	}
	return &Error{Kind: Unavailable, Message: fmt.Sprintf("The upgrade of %s to %s failed: %s. %s went back to version %s and to its backup from just before the upgrade, and is healthy. "+
		"The data the failed upgrade left is kept until %s.", old.Name, version, reason(cause), old.Name, old.Version, back.Previous.Until.Format(time.DateTime)), Err: cause}
}

// reason is what an error says for people.
func reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return firstLine(err.Error())
}
