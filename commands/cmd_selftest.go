package commands

import (
	"context"
	"fmt"
	"strings"
	"time"
)

func (r *Router) selftestVerb() *Verb {
	return &Verb{
		Name: "selftest", MaxArgs: 0, Job: true,
		Summary: "check that the state, Mattermost and the Docker engine answer",
		Help:    "Each check is timed; a failed check says why.",
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			var b strings.Builder
			failed := 0
			for _, c := range r.deps.Checks {
				inv.Progress("checking %s…", c.Name)
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				start := time.Now()
				detail, err := c.Run(cctx)
				took := time.Since(start)
				cancel()
				if err != nil {
					failed++
					kind, msg := r.rep.render(err)
					if kind == Internal {
						msg = err.Error() // the operators' own check: its cause is what they need
					}
					fmt.Fprintf(&b, "- :x: **%s** failed after %s: %s\n", c.Name, round(took), msg)
					inv.Progress("%s: failed", c.Name)
					continue
				}
				fmt.Fprintf(&b, "- :white_check_mark: **%s** in %s: %s\n", c.Name, round(took), detail)
				inv.Progress("%s: ok (%s)", c.Name, round(took))
			}
			if failed > 0 {
				return "", Errorf(Unavailable, "%d of %d checks failed:\n%s", failed, len(r.deps.Checks), strings.TrimRight(b.String(), "\n"))
			}
			return fmt.Sprintf("All %d checks passed:\n%s", len(r.deps.Checks), strings.TrimRight(b.String(), "\n")), nil
		},
	}
}

func round(d time.Duration) time.Duration {
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Microsecond)
}
