package commands

import (
	"context"
	"fmt"
	"strings"
	"time"
)

func (r *Router) jobsVerb() *Verb {
	return &Verb{
		Name: "jobs", MaxArgs: 0,
		Summary: "list recent jobs with their outcome and duration",
		Run: func(context.Context, Invocation) (string, error) {
			jobs, err := r.deps.Store.RecentJobs(15)
			if err != nil {
				return "", err
			}
			if len(jobs) == 0 {
				return "No job has run yet.", nil
			}
			var b strings.Builder
			b.WriteString("| job | command | by | started | outcome | took |\n|---|---|---|---|---|---|\n")
			for _, j := range jobs {
				took := "–"
				if d := j.Duration(); d > 0 {
					took = d.Round(10 * time.Millisecond).String()
				}
				outcome := string(j.Status)
				if j.Error != "" {
					// One line per cell: a multi-line error would end the table.
					outcome += ": " + cellLine(j.Error, 80)
				}
				fmt.Fprintf(&b, "| #%d | %s | @%s | %s | %s | %s |\n", j.ID,
					codeCell(strings.TrimSpace(j.Verb+" "+quoteArgs(j.Args))), j.UserName,
					j.Created.UTC().Format("Jan 2 15:04"), outcome, took)
			}
			return strings.TrimRight(b.String(), "\n"), nil
		},
	}
}
