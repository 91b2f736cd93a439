package catalog

import (
	"fmt"
	"strings"
)

// Summary is the catalog as a Markdown table, for /toolbox catalog: each app
// with its description, the memory its services reserve (what the capacity
// guard counts) and may reach at most, whether those figures were measured
// or come from upstream's documents, its disk and the upstream version it
// runs, followed by the settings each app asks for. When fits is not nil, a
// last column says, for each app by name, how it fits the machine.
func Summary(apps []App, fits map[string]string) string {
	var b strings.Builder
	b.WriteString("| App | Description | Memory reserved (limit) | Disk | Version |")
	if fits != nil {
		b.WriteString(" On this machine |")
	}
	b.WriteString("\n| --- | --- | --- | --- | --- |")
	if fits != nil {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, a := range apps {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |",
			cell(a.Name), cell(a.Description), memoryCell(a.Memory), formatSize(a.Disk), cell(a.Version))
		if fits != nil {
			fmt.Fprintf(&b, " %s |", cell(fits[a.Name]))
		}
		b.WriteString("\n")
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

// memoryCell is "224 MiB measured (limit 2 GiB)", or "upstream figures" when
// any service's reservation is not a measurement.
func memoryCell(m Memory) string {
	basis := "upstream figures"
	if m.Measured() {
		basis = "measured"
	}
	return fmt.Sprintf("%s %s (limit %s)", formatSize(m.Reservation()), basis, formatSize(m.Limit()))
}

// cell keeps a value from breaking the table.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
