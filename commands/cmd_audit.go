package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/toolbox-collective/toolbox/state"
)

const maxAudit = 200

func (r *Router) auditVerb() *Verb {
	return &Verb{
		Name: "audit", Args: "[n]", MaxArgs: 1, Role: Admin,
		Summary: "show the last n commands and clicks (20 by default)",
		Help:    fmt.Sprintf("Every command and button click is recorded: who, where, what, the outcome and when. At most %d are shown.", maxAudit),
		Run: func(_ context.Context, inv Invocation) (string, error) {
			n := 20
			if len(inv.Args) == 1 {
				v, err := strconv.Atoi(inv.Args[0])
				if err != nil || v < 1 {
					return "", Errorf(Invalid, "%s is not a number of records. Usage: `/toolbox audit [n]`.", code(truncate(inv.Args[0], 20)))
				}
				n = min(v, maxAudit)
			}
			recs, err := r.deps.Store.RecentAudit(n)
			if err != nil {
				return "", err
			}
			var b strings.Builder
			b.WriteString("| when (UTC) | who | where | what | outcome |\n|---|---|---|---|---|\n")
			for _, a := range recs {
				who := "@" + a.UserName
				if a.Kind == state.AuditTerminal {
					who = "operator"
				}
				where := "~" + a.ChannelName
				if a.ChannelName == "" {
					where = "–"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s `%s` | %s |\n", a.Time.UTC().Format("Jan 2 15:04:05"), who, where, a.Kind,
					tableCell(truncate(a.Text, 60)), tableCell(a.Outcome))
			}
			return strings.TrimRight(b.String(), "\n"), nil
		},
	}
}

// tableCell keeps a value from breaking a Markdown table or code span.
func tableCell(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "`", "'").Replace(s)
}
