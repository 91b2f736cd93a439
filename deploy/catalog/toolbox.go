package catalog

// The toolbox's own containers, in the same memory model as an app's
// services: up and the backups set these reservations and limits on the
// containers, and the capacity guard counts them. Figures rounded up to a
// multiple of 32 MiB.
const (
	ToolboxBot    = "bot"
	ToolboxGuard  = "guard"
	ToolboxProxy  = "proxy"
	ToolboxBackup = "backup"
)

var toolboxMemory = []ServiceMemory{
	{Service: ToolboxBot, Reservation: 32 << 20, Limit: 256 << 20, Basis: Measured, Figure: 12 << 20, Date: "2026-12-02",
		Source: "docker stats after toolbox up, idle (issue 9)",
		Note:   "the limit leaves room for jobs: a backup's dump passes through the bot"},
	{Service: ToolboxGuard, Reservation: 32 << 20, Limit: 64 << 20, Basis: Measured, Figure: 31 << 20, Date: "2026-12-02",
		Source: "VmRSS of `toolbox docker-guard` after 40 requests through it, as a process on the engine's machine (its mapped binary included, so more than docker stats would say)"},
	{Service: ToolboxProxy, Reservation: 32 << 20, Limit: 256 << 20, Basis: Measured, Figure: 12 << 20, Date: "2026-12-02",
		Source: "docker stats of Caddy after toolbox up, idle (issue 9)"},
	// restic's memory grows with the repository's index (restic's own
	// documentation says no figure); the limit is left unset so that a large
	// repository's backup is slow, not killed.
	{Service: ToolboxBackup, Reservation: 96 << 20, Basis: Measured, Figure: 69 << 20, Date: "2026-12-02",
		Source: "maximum RSS (/usr/bin/time) of restic 0.18.1 backing up a 2.8 MB folder into a new local repository",
		Note:   "reserved only while a backup, restore or drill runs; the guard sets it aside for the next one"},
}

// Toolbox returns the memory of the toolbox's own container called service
// (ToolboxBot, ToolboxGuard, ToolboxProxy, ToolboxBackup). It panics for any
// other name: the names are constants.
func Toolbox(service string) ServiceMemory {
	for _, s := range toolboxMemory {
		if s.Service == service {
			return s
		}
	}
	panic("catalog: no toolbox container " + service)
}

// ToolboxMemory is the memory of all the toolbox's own containers, the
// backup's included.
func ToolboxMemory() Memory {
	return Memory{Services: append([]ServiceMemory(nil), toolboxMemory...)}
}
