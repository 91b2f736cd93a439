package commands

import (
	"context"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
)

func (a *AppDeps) catalogVerb(r *Router) *Verb {
	return &Verb{
		Name: "catalog", MaxArgs: 0,
		Summary: "list the apps I can add, with the memory each reserves and whether it fits this machine",
		Run: func(ctx context.Context, _ Invocation) (string, error) {
			apps, err := a.Catalog.All()
			if err != nil {
				return "", err
			}
			a.reserveMu.Lock()
			c, err := a.capacity(ctx)
			a.reserveMu.Unlock()
			if err != nil {
				// The catalog is still worth showing; the cause goes to the log.
				r.deps.Log.Warn("catalog: memory unknown", "err", err)
				return catalog.Summary(apps, nil) + "\nI could not ask the Docker engine how much memory is free, so I cannot say which apps fit.\n\nAdd one with `/toolbox add <app> [domain]`.", nil
			}
			fits := map[string]string{}
			for _, app := range apps {
				_, err := a.Store.App(app.Name)
				fits[app.Name] = c.fit(app, err == nil)
			}
			return catalog.Summary(apps, fits) + "\nFree now: " + formatBytes(max(c.free(), 0)) + " = " + c.accounts() + ".\n\nAdd one with `/toolbox add <app> [domain]`.", nil
		},
	}
}
