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

func (e *Engine) Memory(ctx context.Context) (int64, int64, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return 0, 0, err
	}
	info, err := s.Engine.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	reserved, err := s.Engine.Reservations(ctx)
	return info.MemTotal, reserved, err
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
