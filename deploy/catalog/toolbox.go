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
	{Service: ToolboxBot, Reservation: 64 << 20, Limit: 256 << 20, Basis: Measured, Figure: 60 << 20, Date: "2026-12-02",
		Source: "working set at most during TestTwoGigabyteMachine's load and backups (idle 32 MiB; 12 MiB by docker stats after up)",
		Note:   "the limit leaves room for jobs: a backup's dump passes through the bot"},
	{Service: ToolboxGuard, Reservation: 64 << 20, Limit: 64 << 20, Basis: Measured, Figure: 45 << 20, Date: "2026-12-02",
		Source: "working set at most during TestTwoGigabyteMachine's load and backups (idle 30 MiB)"},
	{Service: ToolboxProxy, Reservation: 32 << 20, Limit: 256 << 20, Basis: Measured, Figure: 15 << 20, Date: "2026-12-02",
		Source: "working set of Caddy at most during TestTwoGigabyteMachine's load (idle 13 MiB)"},
	// restic's memory grows with the repository's index (restic's own
	// documentation says no figure); the limit is left unset so that a large
	// repository's backup is slow, not killed.
	{Service: ToolboxBackup, Reservation: 96 << 20, Basis: Measured, Figure: 76 << 20, Date: "2026-12-02",
		Source: "working set of restic 0.18.1's containers at most during TestTwoGigabyteMachine's backups of three apps (69 MiB of maximum RSS backing up a 2.8 MB folder)",
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
