package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

const (
	defaultLogLines = 50
	maxLogLines     = 500
	// maxLogBytes keeps a reply inside Mattermost's post size (16383 characters).
	maxLogBytes = 12000
)

func (a *AppDeps) logsVerb() *Verb {
	return &Verb{
		Name: "logs", Args: "<app> [service] [n]", MinArgs: 1, MaxArgs: 3, Role: Admin,
		Summary: "show the last lines of an app's logs, secrets hidden",
		Help:    fmt.Sprintf("Shows the entry service unless you name another; %d lines by default, at most %d.", defaultLogLines, maxLogLines),
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			_, app, err := a.installedApp(inv.Args[0])
			if err != nil {
				return "", err
			}
			service, lines := app.Entry.Service, defaultLogLines
			for _, arg := range inv.Args[1:] {
				if n, err := strconv.Atoi(arg); err == nil {
					if n < 1 {
						return "", Errorf(Invalid, "The number of lines must be positive.")
					}
					lines = min(n, maxLogLines)
					continue
				}
				service = arg
			}
			svcs, err := a.Engine.Services(ctx, app.Name)
			if err != nil {
				return "", err
			}
			names := make([]string, len(svcs))
			found := false
			for i, s := range svcs {
				names[i] = s.Name
				found = found || s.Name == service
			}
			if !found {
				return "", Errorf(NotFound, "%s has no service %s. Its services: %s.", app.Name, code(service), strings.Join(names, ", "))
			}
			out, err := a.Engine.Logs(ctx, app.Name, service, lines)
			if err != nil {
				return "", err
			}
			out = scrub(out, a.knownSecrets(app))
			if len(out) > maxLogBytes {
				out = "…" + out[len(out)-maxLogBytes:]
			}
			out = strings.ReplaceAll(out, "```", "'''")
			return fmt.Sprintf("Last %d lines of %s/%s:\n```\n%s\n```", lines, app.Name, service, strings.TrimRight(out, "\n")), nil
		},
	}
}
