package commands

import (
	"context"
	"fmt"
	"strings"
)

func (a *AppDeps) catalogVerb() *Verb {
	return &Verb{
		Name: "catalog", MaxArgs: 0,
		Summary: "list the apps I can add, with what each needs",
		Run: func(context.Context, Invocation) (string, error) {
			apps, err := a.Catalog.All()
			if err != nil {
				return "", err
			}
			var b strings.Builder
			b.WriteString("| app | what it is | memory (min / recommended) | disk | version |\n|---|---|---|---|---|\n")
			for _, app := range apps {
				fmt.Fprintf(&b, "| [%s](%s) | %s | %s / %s | %s | %s |\n", app.Name, app.Upstream, tableCell(app.Description),
					formatBytes(app.Memory.Min), formatBytes(app.Memory.Recommended), formatBytes(app.Disk), app.Version)
			}
			b.WriteString("\nAdd one with `/toolbox add <app> [domain]`.")
			return b.String(), nil
		},
	}
}
