package commands

import (
	"context"
	"fmt"
)

func (a *AppDeps) upgradeVerb(r *Router) *Verb {
	return &Verb{
		Name: "upgrade", Args: "<app>", MinArgs: 1, MaxArgs: 1, Role: Admin, Job: true, Confirmations: 1,
		Summary: "move an app to the catalog's current version",
		Help:    "The app's containers are recreated on the new images, then health-checked. Back it up first.",
		Describe: func(args []string) string {
			return fmt.Sprintf("%s will be recreated on the catalog's current version, with a short downtime.", args[0])
		},
		Validate: func(_ context.Context, args []string) error {
			_, err := a.installed(args[0])
			return err
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			rec, app, err := a.installedApp(inv.Args[0])
			if err != nil {
				return "", err
			}
			if rec.Version == app.Version && rec.Status == statusRunning {
				inv.Progress("%s is already at %s; checking it", app.Name, app.Version)
			}
			if err := a.deploy(ctx, app, rec.Domain, inv.Progress, r); err != nil {
				return "", err
			}
			return fmt.Sprintf("**%s** runs version %s (was %s) and is healthy.", app.Name, app.Version, rec.Version), nil
		},
	}
}
