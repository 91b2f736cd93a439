// Package engine adapts the Docker engine the apps run on (deploy/stack over
// deploy/docker) to the verbs' commands.Engine, and restic run on that
// engine (deploy/backup) to commands.Backups.
//
// It sits between commands and the deploy adapters: it may import commands
// (for the interfaces and their types), deploy/catalog, deploy/stack,
// deploy/docker and deploy/backup; nothing imports it but main.
package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
)

// Config says which engine to drive and how the apps are laid out on it.
type Config struct {
	Docker docker.Config
	// SharedNetwork is the network of the proxy and the apps' entry services.
	SharedNetwork string
	// ChatApp's entry service also joins ChatNetwork, the bot's private one.
	ChatApp, ChatNetwork string
	// Labels are added to everything created (tests mark their objects).
	Labels map[string]string
	// MachineMemory, when above 0, is the machine's memory instead of the
	// engine's MemTotal (TOOLBOX_MACHINE_MEMORY).
	MachineMemory int64
	// MachineSwap, when MachineSwapSet, is the machine's swap instead of
	// /proc/meminfo's (TOOLBOX_MACHINE_SWAP).
	MachineSwap    int64
	MachineSwapSet bool
	// Meminfo is the file localSwap reads ("" is /proc/meminfo).
	Meminfo string
}

// Engine is the Docker engine the apps run on, connected on first use so
// that the bot starts (and says what is wrong) even when the engine is down.
type Engine struct {
	cfg Config

	mu    sync.Mutex
	stack *stack.Stack // nil until connected
}

var _ commands.Engine = (*Engine)(nil)

// New returns an engine that connects on first use.
func New(cfg Config) *Engine { return &Engine{cfg: cfg} }

// connect returns the one Stack over the connected engine.
func (e *Engine) connect(ctx context.Context) (*stack.Stack, error) {
	e.mu.Lock()
	s := e.stack
	e.mu.Unlock()
	if s != nil {
		return s, nil
	}
	// Connect outside the lock: each caller waits for the engine within its
	// own deadline, not behind another's.
	d, err := docker.Connect(ctx, e.cfg.Docker)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stack != nil { // another caller connected meanwhile
		_ = d.Close()
		return e.stack, nil
	}
	e.stack = &stack.Stack{Engine: d, SharedNetwork: e.cfg.SharedNetwork, ChatApp: e.cfg.ChatApp, ChatNetwork: e.cfg.ChatNetwork, Labels: e.cfg.Labels}
	return e.stack, nil
}

// Close drops the engine connection.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stack == nil {
		return nil
	}
	err := e.stack.Engine.Close()
	e.stack = nil
	return err
}

func (e *Engine) Deploy(ctx context.Context, d commands.Deployment, progress func(string)) (string, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return "", err
	}
	if err := s.Deploy(ctx, d.App, stack.Placement{Generation: d.Generation}, d.Project, d.Entry.Service, progress); err != nil {
		return "", err
	}
	return stack.Upstream(d.App, d.Entry.Service, d.Entry.Port), nil
}

func (e *Engine) Build(ctx context.Context, app string, b catalog.Build, p *types.Project, progress func(string)) error {
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	return s.Build(ctx, app, stack.Launcher(b), p, progress)
}

func (e *Engine) Remove(ctx context.Context, app string, purge bool) error {
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	return s.Remove(ctx, app, purge)
}

func (e *Engine) Restart(ctx context.Context, app string, progress func(string)) error {
	s, err := e.connect(ctx)
	if err != nil {
		return err
	}
	return s.Restart(ctx, app, progress)
}

func (e *Engine) Services(ctx context.Context, app string) ([]commands.Service, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.Containers(ctx, app)
	if err != nil {
		return nil, err
	}
	out := make([]commands.Service, len(cs))
	for i, c := range cs {
		out[i] = commands.Service{Name: c.Labels[stack.LabelService], State: c.State, Health: c.Health}
	}
	return out, nil
}

func (e *Engine) Logs(ctx context.Context, app, service string, lines int) (string, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return "", err
	}
	return s.Engine.Logs(ctx, stack.ContainerName(app, service), lines)
}

// Bounds of what Exec reads of a verb's command (a post-install step): the
// command runs in an app's container, which must not make the bot read or
// hold as much as it likes.
const (
	maxExecRead   = 4 << 20 // stdout and stderr together
	maxExecStdout = 1 << 20 // kept: the first bytes
	maxExecStderr = 16 << 10
	maxCheckRead  = 1 << 20 // a restore's check, which prints a count
	// maxCommandStderrRead bounds the stderr of a dump or a load, whose
	// stdout is the data.
	maxCommandStderrRead = 16 << 20
)

func (e *Engine) Exec(ctx context.Context, app, service string, cmd []string) (string, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return "", err
	}
	budget := newReadBudget(maxExecRead)
	stdout := &capture{budget: budget, keep: maxExecStdout}
	stderr := &capture{budget: budget, keep: maxExecStderr, last: true}
	code, err := s.Engine.Exec(ctx, stack.ContainerName(app, service), cmd, stdout, stderr)
	if errors.Is(err, errTooMuchOutput) {
		return "", fmt.Errorf("%s in %s printed more than %s, so the toolbox stopped reading it (last lines: %s): %w",
			strings.Join(cmd, " "), service, sizeText(maxExecRead), lastLines(stderr.String(), 5), err)
	}
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("%s in %s exited with %d: %s", strings.Join(cmd, " "), service, code, lastLines(stderr.String(), 5))
	}
	return stdout.String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := strings.Join(lines, " | ")
	if len(out) > maxLastLines { // a line is as long as the command makes it
		out = "…" + strings.ToValidUTF8(out[len(out)-maxLastLines:], "")
	}
	return out
}

// maxLastLines bounds what an error quotes of a command's output.
const maxLastLines = 1000

// Memory is the machine as the capacity guard sees it: its memory (the
// engine's MemTotal, or Config.MachineMemory), its swap (Config.MachineSwap,
// else SwapTotal from /proc/meminfo when that file is the engine's machine's,
// see localSwap) and what the running containers reserve, by app.
func (e *Engine) Memory(ctx context.Context) (commands.Machine, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return commands.Machine{}, err
	}
	info, err := s.Engine.Info(ctx)
	if err != nil {
		return commands.Machine{}, err
	}
	rs, err := s.Engine.RunningReservations(ctx)
	if err != nil {
		return commands.Machine{}, err
	}
	m := commands.Machine{Memory: info.MemTotal, Running: map[string]int64{}}
	if e.cfg.MachineMemory > 0 {
		m.Memory = e.cfg.MachineMemory
	}
	switch swap, ok := e.localSwap(s.Engine.Host(), info.MemTotal); {
	case e.cfg.MachineSwapSet:
		m.Swap = e.cfg.MachineSwap
	case ok:
		m.Swap = swap
	default:
		m.SwapUnknown = true
	}
	for _, r := range rs {
		app := r.Labels[stack.LabelApp]
		if app == "" || r.Labels[stack.LabelManaged] == "" {
			app = "other containers"
		}
		m.Running[app] += r.Bytes
		if strings.HasPrefix(r.Container, backupContainerPrefix) {
			m.BackupRunning = true
		}
	}
	return m, nil
}

// backupContainerPrefix begins the name of every restic run (runner.Run).
const backupContainerPrefix = "tb-restic-"

// localSwap reads SwapTotal from /proc/meminfo (Config.Meminfo in tests)
// when the engine is on this machine: reached over a unix socket, and the
// file's MemTotal the engine's own (a container reads its host's
// /proc/meminfo, so the bot beside the engine sees the machine's; Docker
// Desktop's engine runs in a VM whose MemTotal differs). Docker's Info has
// no swap total.
func (e *Engine) localSwap(host string, engineMemTotal int64) (int64, bool) {
	if host != "" && !strings.HasPrefix(host, "unix://") {
		return 0, false
	}
	path := e.cfg.Meminfo
	if path == "" {
		path = "/proc/meminfo"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	fields := parseMeminfo(string(data))
	total, okTotal := fields["MemTotal"]
	swap, okSwap := fields["SwapTotal"]
	if !okTotal || !okSwap || total != engineMemTotal {
		return 0, false
	}
	return swap, true
}

// parseMeminfo reads /proc/meminfo's "Name:   123 kB" lines, in bytes
// (proc(5): the figures are in KiB though written kB).
func parseMeminfo(text string) map[string]int64 {
	out := map[string]int64{}
	for line := range strings.Lines(text) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			continue
		}
		if len(f) > 1 && f[1] == "kB" {
			n *= 1024
		}
		out[name] = n
	}
	return out
}

// Check says which engine answers and what it has: selftest's docker line.
func (e *Engine) Check(ctx context.Context) (string, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return "", err
	}
	info, err := s.Engine.Info(ctx)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("engine %s (API %s) at %s: %d CPUs, %.1f GiB", info.ServerVersion, info.APIVersion, s.Engine.Host(), info.NCPU, float64(info.MemTotal)/(1<<30)), nil
}
