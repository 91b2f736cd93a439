package commands

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
)

// Machine is what the capacity guard weighs an add against: the machine's
// memory and swap, and what its running containers reserve.
type Machine struct {
	Memory int64 // bytes: the engine's MemTotal, or TOOLBOX_MACHINE_MEMORY
	Swap   int64 // bytes: /proc/meminfo's SwapTotal, or TOOLBOX_MACHINE_SWAP
	// SwapUnknown is set when the swap could not be read (a remote engine
	// with no TOOLBOX_MACHINE_SWAP): Swap is then 0.
	SwapUnknown bool
	// Running is what the running containers reserve, summed by app (the
	// toolbox's own containers under ToolboxApp): each container's
	// reservation, or its limit when it has none.
	Running map[string]int64
	// BackupRunning says that a restic run (a backup, restore or drill) is
	// under way: its reservation is then in Running.
	BackupRunning bool
}

// ToolboxApp is the app label of the toolbox's own containers (bot, guard,
// proxy, restic runs).
const ToolboxApp = "toolbox"

// MemoryMargin is the memory the guard leaves to what runs outside the
// containers: the kernel (slab, page tables, network buffers), the page cache
// through which the apps read their code and the databases their files (with
// none, every read goes to the disk), the Docker daemon and containerd (84 and
// 38 MiB of RSS measured here on 2026-12-02, plus a shim per container),
// systemd, journald and sshd. The figure is the one GKE reserves on its nodes
// for the same (kubelet, container runtime and OS): 25% of the first 4 GiB of
// memory, 20% of the next 4, 10% of the next 8, 6% of the next 112 and 2%
// beyond, plus 100 MiB below which the kubelet starts evicting
// (https://cloud.google.com/kubernetes-engine/docs/concepts/plan-node-sizes#memory_cpu).
// A 2 GB VM (1.9 GiB of MemTotal) keeps 586 MiB. Swap gets no margin: it
// holds what the containers do not touch.
func MemoryMargin(memory int64) int64 {
	const gib = 1 << 30
	tiers := []struct {
		size    int64
		percent int64
	}{{4 * gib, 25}, {4 * gib, 20}, {8 * gib, 10}, {112 * gib, 6}, {1 << 62, 2}}
	margin := int64(100 << 20)
	rest := max(memory, 0)
	for _, t := range tiers {
		n := min(rest, t.size)
		margin += n * t.percent / 100
		rest -= n
	}
	return margin
}

// capacity is the guard's view of the machine at one moment.
type capacity struct {
	m       Machine
	pending map[string]int64 // adds accepted and not ended
	chatApp string           // never proposed for removal
}

// budget is what the containers may reserve in all: memory plus swap less
// the margin.
func (c capacity) budget() int64 { return c.m.Memory + c.m.Swap - MemoryMargin(c.m.Memory) }

// backupAside is restic's reservation, set aside when no run is under way:
// a scheduled backup may start at any time.
func (c capacity) backupAside() int64 {
	if c.m.BackupRunning {
		return 0
	}
	return catalog.Toolbox(catalog.ToolboxBackup).Reservation
}

func (c capacity) reserved() int64 {
	sum := c.backupAside()
	for _, n := range c.m.Running {
		sum += n
	}
	for _, n := range c.underWay() {
		sum += n
	}
	return sum
}

// underWay is what the adds under way reserve beyond what their containers
// already count among the running: an add's containers run from its deploy
// step on, long before the add ends and gives its reservation back.
func (c capacity) underWay() map[string]int64 {
	out := map[string]int64{}
	for app, n := range c.pending {
		if rest := n - c.m.Running[app]; rest > 0 {
			out[app] = rest
		}
	}
	return out
}

func (c capacity) free() int64 { return c.budget() - c.reserved() }

// accounts is how free was reached, for people: "1.9 GiB of memory + 2.0 GiB
// of swap - 586 MiB margin - 712 MiB reserved (toolbox 192 MiB with the next
// backup's, mattermost 224 MiB, ...)".
func (c capacity) accounts() string {
	swap := formatBytes(c.m.Swap) + " of swap"
	if c.m.SwapUnknown {
		swap = "no swap counted (unknown: set TOOLBOX_MACHINE_SWAP)"
	}
	var parts []string
	running := maps.Clone(c.m.Running)
	if running == nil {
		running = map[string]int64{}
	}
	toolbox := running[ToolboxApp] + c.backupAside()
	delete(running, ToolboxApp)
	parts = append(parts, fmt.Sprintf("toolbox %s", formatBytes(toolbox)))
	for _, app := range slices.Sorted(maps.Keys(running)) {
		parts = append(parts, fmt.Sprintf("%s %s", app, formatBytes(running[app])))
	}
	underWay := c.underWay()
	for _, app := range slices.Sorted(maps.Keys(underWay)) {
		parts = append(parts, fmt.Sprintf("%s %s (add under way)", app, formatBytes(underWay[app])))
	}
	return fmt.Sprintf("%s of memory + %s - %s margin - %s reserved (%s)",
		formatBytes(c.m.Memory), swap, formatBytes(MemoryMargin(c.m.Memory)), formatBytes(c.reserved()), strings.Join(parts, ", "))
}

// whatMakesRoom says what would let an app that needs need bytes fit:
// removing which running apps (the fewest, the chat app never), or a
// machine with how much memory. "" when need fits.
func (c capacity) whatMakesRoom(need int64) string {
	short := need - c.free()
	if short <= 0 {
		return ""
	}
	var options []string
	if apps := c.toRemove(short); len(apps) > 0 {
		var sum int64
		for _, a := range apps {
			sum += c.m.Running[a]
		}
		options = append(options, fmt.Sprintf("removing %s (%s)", joinAnd(apps), formatBytes(sum)))
	}
	if gib := c.machineFor(need); gib > 0 {
		options = append(options, fmt.Sprintf("a machine with %d GiB of memory", gib))
	}
	if len(options) == 0 {
		return ""
	}
	return strings.Join(options, ", or ")
}

// toRemove is the fewest running apps whose reservations free short bytes,
// preferring the smallest app that does it alone.
func (c capacity) toRemove(short int64) []string {
	type app struct {
		name string
		n    int64
	}
	var apps []app
	for name, n := range c.m.Running {
		if name != ToolboxApp && name != c.chatApp && n > 0 {
			apps = append(apps, app{name, n})
		}
	}
	sort.Slice(apps, func(i, j int) bool {
		if apps[i].n != apps[j].n {
			return apps[i].n < apps[j].n
		}
		return apps[i].name < apps[j].name
	})
	for _, a := range apps {
		if a.n >= short {
			return []string{a.name}
		}
	}
	var picked []string
	var sum int64
	for i := len(apps) - 1; i >= 0 && sum < short; i-- {
		picked = append(picked, apps[i].name)
		sum += apps[i].n
	}
	if sum < short {
		return nil
	}
	sort.Strings(picked)
	return picked
}

// vmReports is the share of a VM's nominal memory that Linux reports as
// MemTotal (a "2 GB" VM reports about 1.9 GiB: the kernel's own image and
// reserved areas are not counted).
const vmReports = 0.95

// machineFor is the smallest machine, in whole GiB of nominal memory, that
// would hold what runs now plus need, with the same swap; 0 past 64 GiB.
func (c capacity) machineFor(need int64) int64 {
	for gib := int64(1); gib <= 64; gib++ {
		bigger := c
		bigger.m.Memory = int64(float64(gib<<30) * vmReports)
		if gib<<30 > c.m.Memory && bigger.free() >= need {
			return gib
		}
	}
	return 0
}

// fit is what the catalog says of one app on this machine.
func (c capacity) fit(a catalog.App, installed bool) string {
	need := a.Memory.Reservation()
	switch {
	case installed:
		return "added"
	case need <= c.free():
		return fmt.Sprintf("fits, leaves %s free", formatBytes(c.free()-need))
	}
	msg := fmt.Sprintf("does not fit (%s free)", formatBytes(max(c.free(), 0)))
	if room := c.whatMakesRoom(need); room != "" {
		msg += ": " + room + " would make room"
	}
	return msg
}

func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
