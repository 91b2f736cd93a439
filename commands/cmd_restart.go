package commands

import (
	"context"
	"fmt"
)

func (a *AppDeps) restartVerb() *Verb {
	return &Verb{
		Name: "restart", Args: "<app>", MinArgs: 1, MaxArgs: 1, Role: Admin, Job: true, Apps: firstApp,
		Summary: "restart an app's containers and wait until it is healthy",
		Validate: func(_ context.Context, args []string) error {
			_, err := a.installed(args[0])
			return err
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			name := inv.Args[0]
			rec, err := a.installed(name)
			if err != nil {
				return "", err
			}
			secrets := a.secretsOf(rec)
			if err := a.Engine.Restart(ctx, name, func(line string) { inv.Progress("%s", scrub(line, secrets)) }); err != nil {
				return "", engineFailed(fmt.Sprintf("Restarting %s", name), fmt.Sprintf("`/toolbox status` shows its containers and `/toolbox logs %s` what they say.", name), secrets, err)
			}
			return fmt.Sprintf("**%s** restarted and is healthy.", name), nil
		},
	}
}
