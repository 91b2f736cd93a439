package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/proxy"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/state"
)

// machine is the Docker engine the apps run on, connected on first use so
// that the bot starts (and says what is wrong) even when the engine is down.
type machine struct {
	cfg           docker.Config
	sharedNetwork string
	chatNetwork   string // the bot's private network, shared with Mattermost only

	mu     sync.Mutex
	engine *docker.Engine
}

var (
	_ commands.Machine = (*machine)(nil)
	_ commands.Proxy   = routes{}
)

func (m *machine) connect(ctx context.Context) (*docker.Engine, error) {
	m.mu.Lock()
	e := m.engine
	m.mu.Unlock()
	if e != nil {
		return e, nil
	}
	// Connect outside the lock: each caller waits for the engine within its
	// own deadline, not behind another's.
	e, err := docker.Connect(ctx, m.cfg)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.engine != nil { // another caller connected meanwhile
		_ = e.Close()
		return m.engine, nil
	}
	m.engine = e
	return e, nil
}

func (m *machine) stack(ctx context.Context) (*stack.Stack, error) {
	e, err := m.connect(ctx)
	if err != nil {
		return nil, err
	}
	return &stack.Stack{Engine: e, SharedNetwork: m.sharedNetwork, ChatApp: chatApp, ChatNetwork: m.chatNetwork}, nil
}

// Close drops the engine connection.
func (m *machine) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.engine == nil {
		return nil
	}
	return m.engine.Close()
}

func (m *machine) Deploy(ctx context.Context, app string, p *types.Project, entry catalog.Entry, progress func(string)) (string, error) {
	s, err := m.stack(ctx)
	if err != nil {
		return "", err
	}
	if err := s.Deploy(ctx, app, p, entry.Service, progress); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s:%d", stack.ContainerName(app, entry.Service), entry.Port), nil
}

func (m *machine) Build(ctx context.Context, app string, b catalog.Build, p *types.Project, progress func(string)) error {
	s, err := m.stack(ctx)
	if err != nil {
		return err
	}
	return s.Build(ctx, app, stack.Launcher{
		Service: b.Service, Repository: b.Repository, Ref: b.Ref, BaseImage: b.BaseImage, Output: b.Output,
		Templates: b.Templates, Params: b.Params, Command: b.Command,
	}, p, progress)
}

func (m *machine) Remove(ctx context.Context, app string, purge bool) error {
	s, err := m.stack(ctx)
	if err != nil {
		return err
	}
	return s.Remove(ctx, app, purge)
}

func (m *machine) Restart(ctx context.Context, app string, progress func(string)) error {
	s, err := m.stack(ctx)
	if err != nil {
		return err
	}
	cs, err := s.Containers(ctx, app)
	if err != nil {
		return err
	}
	for _, c := range cs {
		progress("restarting " + c.Labels[stack.LabelService])
		if err := s.Engine.RestartContainer(ctx, c.Name); err != nil {
			return err
		}
	}
	for _, c := range cs {
		if err := s.Engine.WaitHealthy(ctx, c.Name); err != nil {
			return err
		}
		progress(c.Labels[stack.LabelService] + ": healthy")
	}
	return nil
}

func (m *machine) Services(ctx context.Context, app string) ([]commands.Service, error) {
	s, err := m.stack(ctx)
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

func (m *machine) Logs(ctx context.Context, app, service string, lines int) (string, error) {
	e, err := m.connect(ctx)
	if err != nil {
		return "", err
	}
	return e.Logs(ctx, stack.ContainerName(app, service), lines)
}

func (m *machine) Exec(ctx context.Context, app, service string, cmd []string) (string, error) {
	e, err := m.connect(ctx)
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	code, err := e.Exec(ctx, stack.ContainerName(app, service), cmd, &stdout, &stderr)
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
	return strings.Join(lines, " | ")
}

func (m *machine) Memory(ctx context.Context) (int64, int64, error) {
	e, err := m.connect(ctx)
	if err != nil {
		return 0, 0, err
	}
	info, err := e.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	reserved, err := e.Reservations(ctx)
	return info.MemTotal, reserved, err
}

func newMachine(cfg config) *machine {
	return &machine{cfg: docker.Config{Host: cfg.DockerHost}, sharedNetwork: cfg.Network, chatNetwork: cfg.BotNetwork}
}

// newAppDeps wires the app verbs: the catalog (with the collective's own
// entries), the machine and, when configured, the proxy.
func newAppDeps(cfg config, st *state.Store, m *machine) (*commands.AppDeps, error) {
	var extra fs.FS
	if cfg.CatalogDir != "" {
		if _, err := os.Stat(cfg.CatalogDir); err != nil {
			return nil, fmt.Errorf("TOOLBOX_CATALOG_DIR: %w", err)
		}
		extra = os.DirFS(cfg.CatalogDir)
	}
	apps := &commands.AppDeps{
		Catalog: catalog.New(extra), Machine: m, Store: st, BaseDomain: cfg.BaseDomain, Scheme: "http",
	}
	if cfg.ProxyAdmin != "" {
		apps.Proxy = routes{newProxy(cfg)}
		apps.Scheme = "https"
	}
	return apps, nil
}

func newProxy(cfg config) *proxy.Proxy {
	return proxy.New(cfg.ProxyAdmin, proxy.Options{Local: cfg.Local, Email: cfg.ACMEEmail})
}

// routes sets up Caddy's base config the first time a route needs it (a
// Caddy whose volume was lost comes back empty).
type routes struct{ *proxy.Proxy }

func (r routes) SetRoute(ctx context.Context, app, domain, upstream string) error {
	err := r.Proxy.SetRoute(ctx, app, domain, upstream)
	if errors.Is(err, proxy.ErrNotInitialized) {
		if err = r.Init(ctx); err == nil {
			err = r.Proxy.SetRoute(ctx, app, domain, upstream)
		}
	}
	return err
}

// proxyCommand prepares Caddy's config (init) or prints its local CA (ca).
func proxyCommand(ctx context.Context, cfg config, what string, stdout io.Writer) error {
	if cfg.ProxyAdmin == "" {
		return errors.New("set TOOLBOX_PROXY_ADMIN to Caddy's admin API (http://host:port or unix:///path)")
	}
	p := newProxy(cfg)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.Wait(wctx); err != nil {
		return err
	}
	if what == "ca" {
		pem, err := p.RootCA(ctx)
		if err != nil {
			return err
		}
		_, err = stdout.Write(pem)
		return err
	}
	return p.Init(ctx)
}
