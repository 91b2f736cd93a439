package commands

import (
	"context"
	"fmt"
	"strings"
)

func (r *Router) helpVerb() *Verb {
	return &Verb{
		Name: "help", Args: "[verb]", MaxArgs: 2,
		Summary: "list what I can do, or explain one verb",
		Help:    "Without a verb, lists every verb. With one, shows its usage, who may run it and what it does.",
		Run: func(_ context.Context, inv Invocation) (string, error) {
			if len(inv.Args) == 0 {
				return r.overview(), nil
			}
			return r.explain(strings.ToLower(strings.Join(inv.Args, " ")))
		},
	}
}

// overview lists every verb, generated from the table.
func (r *Router) overview() string {
	var b strings.Builder
	b.WriteString("**/toolbox** runs the collective's tools from this chat.\n\n| command | what it does |\n|---|---|\n")
	for _, v := range r.order {
		summary := v.Summary
		var notes []string
		if v.Role == Admin {
			notes = append(notes, "admins")
		}
		if v.Confirmations > 0 || v.ConfirmationsFor != nil {
			notes = append(notes, "asks to confirm")
		}
		if len(notes) > 0 {
			summary += " _(" + strings.Join(notes, ", ") + ")_"
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", v.usage(), summary)
	}
	b.WriteString("\nType `/toolbox help <verb>` for more on one of them.")
	return b.String()
}

func (r *Router) explain(name string) (string, error) {
	if v, ok := r.verbs[name]; ok {
		return r.describe(v), nil
	}
	if group := r.group(name); len(group) > 0 {
		parts := make([]string, len(group))
		for i, v := range group {
			parts[i] = r.describe(v)
		}
		return strings.Join(parts, "\n\n"), nil
	}
	msg := fmt.Sprintf("There is no verb %s.", code(name))
	if words := strings.Fields(name); len(words) > 0 { // `help ''` has none
		if s := r.suggest(words[0]); s != "" {
			msg += fmt.Sprintf(" Did you mean `%s`?", s)
		}
	}
	return "", Errorf(NotFound, "%s Type `/toolbox help` for the list.", msg)
}

func (r *Router) describe(v *Verb) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`%s`: %s.\n", v.usage(), v.Summary)
	if v.Help != "" {
		b.WriteString(v.Help + "\n")
	}
	fmt.Fprintf(&b, "Who may run it: %s.", v.Role)
	switch {
	case v.Confirmations == 1:
		b.WriteString(" It asks for a confirmation first.")
	case v.Confirmations > 1:
		fmt.Fprintf(&b, " It asks for %d confirmations first.", v.Confirmations)
	}
	if v.Job {
		b.WriteString(" It runs as a job: I answer at once and post the result when it is done.")
	}
	return b.String()
}
