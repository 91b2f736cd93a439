package catalog

import (
	"fmt"
	"strings"
)

// Summary is the catalog as a Markdown table, for /toolbox catalog: each app
// with its description, the memory it needs (minimum / recommended), its
// disk, and the upstream version it runs, followed by the settings each app
// asks for.
func Summary(apps []App) string {
	var b strings.Builder
	b.WriteString("| App | Description | Memory (min / recommended) | Disk | Version |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, a := range apps {
		fmt.Fprintf(&b, "| %s | %s | %s / %s | %s | %s |\n",
			cell(a.Name), cell(a.Description),
			formatSize(a.Memory.Min), formatSize(a.Memory.Recommended),
			formatSize(a.Disk), cell(a.Version))
	}
	var needs []string
	for _, a := range apps {
		var required []string
		for _, s := range a.Settings {
			if s.Required {
				required = append(required, s.Name)
			}
		}
		if len(required) > 0 {
			needs = append(needs, fmt.Sprintf("%s needs %s", a.Name, strings.Join(required, ", ")))
		}
	}
	if len(needs) > 0 {
		b.WriteString("\nSettings to provide: " + strings.Join(needs, "; ") + ".\n")
	}
	return b.String()
}

// cell keeps a value from breaking the table.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
