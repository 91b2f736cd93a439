package commands

import (
	"context"
	"fmt"
	"strings"
)

func (r *Router) statusVerb() *Verb {
	return &Verb{
		Name: "status", MaxArgs: 0,
		Summary: "show the apps and the jobs running now",
		Run: func(context.Context, Invocation) (string, error) {
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
				for _, a := range apps {
					fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", a.Name, a.Status, a.Domain, a.Version)
				}
			}
			if len(jobs) == 0 {
				b.WriteString("\nNo job is running.")
			} else {
				b.WriteString("\nRunning jobs:\n")
				for _, j := range jobs {
					progress := j.Progress
					if progress == "" {
						progress = string(j.Status)
					}
					fmt.Fprintf(&b, "- #%d `%s` by @%s, since %s: %s\n", j.ID, strings.TrimSpace(j.Verb+" "+quoteArgs(j.Args)), j.UserName,
						r.deps.Now().Sub(j.Created).Round(1e9), progress)
				}
			}
			return strings.TrimRight(b.String(), "\n"), nil
		},
	}
}
