package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// What EnsureContainer did.
const (
	ActionCreated   = "created"
	ActionStarted   = "started"
	ActionUnchanged = "unchanged"
	ActionRecreated = "recreated"
)

// ContainerSpec is the wanted state of one container.
type ContainerSpec struct {
	Name       string
	Image      string
	Cmd        []string // nil: the image's
	Entrypoint []string // nil: the image's
	Env        map[string]string
	Labels     map[string]string
	Network    string // "" : the default bridge
	Aliases    []string
	// ExtraNetworks are further networks the container joins, where it is
	// reached by its name (an app's entry service on the proxy's network).
	ExtraNetworks []string
	// Files are written into the container before it first starts (path →
	// content, mode 0644): configuration an upstream image expects on disk.
	Files  map[string][]byte
	Mounts []Mount
	// MemoryLimit and MemoryReservation are in bytes; 0 means none.
	MemoryLimit       int64
	MemoryReservation int64
	// ShmSize is /dev/shm's size in bytes (0: the engine's 64 MB).
	ShmSize int64
	// Restart is "unless-stopped" (default), "always", "no" or "on-failure[:N]".
	Restart string
	Health  *Health // nil: the image's
	User    string
	// StopTimeout is how long a stop waits before killing (0: the engine's
	// 10 s); a container that drains work on SIGTERM needs more.
	StopTimeout time.Duration
	// GroupAdd are further groups of the container's user (the group that
	// owns the engine's socket).
	GroupAdd   []string
	PublishTCP []Publish
}

// Mount puts a named volume into the container.
type Mount struct {
	Volume   string
	Target   string
	ReadOnly bool
	// HostPath, instead of Volume, binds a path of the machine: only for the
	// engine's own socket, which the toolbox's container drives.
	HostPath string
}

// Health is a container health check. A Test not starting with "CMD",
// "CMD-SHELL" or "NONE" is run as "CMD" (exec form).
type Health struct {
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// Publish binds a container TCP port on the host. HostPort 0 picks a free
// port; HostIP "" means all addresses.
type Publish struct {
	HostIP        string
	HostPort      int
	ContainerPort int
}

// Result tells what EnsureContainer did.
type Result struct {
	ID     string
	Action string // ActionCreated, ActionStarted, ActionUnchanged or ActionRecreated
}

// Container is a container as listed.
type Container struct {
	ID     string
	Name   string
	Image  string
	State  string // created, running, paused, restarting, removing, exited, dead
	Health string // "", starting, healthy, unhealthy
	Labels map[string]string
}

// normalized fills the defaults, so that equivalent specs hash alike.
func (s ContainerSpec) normalized() ContainerSpec {
	if s.Restart == "" {
		s.Restart = string(container.RestartPolicyUnlessStopped)
	}
	if len(s.Cmd) == 0 {
		s.Cmd = nil
	}
	if len(s.Entrypoint) == 0 {
		s.Entrypoint = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	s.Labels = maps.Clone(s.Labels)
	delete(s.Labels, LabelSpecHash)
	if len(s.Labels) == 0 {
		s.Labels = nil
	}
	if len(s.Aliases) == 0 {
		s.Aliases = nil
	}
	if len(s.ExtraNetworks) == 0 {
		s.ExtraNetworks = nil
	}
	if len(s.Files) == 0 {
		s.Files = nil
	}
	if len(s.GroupAdd) == 0 {
		s.GroupAdd = nil
	}
	if len(s.Mounts) == 0 {
		s.Mounts = nil
	}
	if len(s.PublishTCP) == 0 {
		s.PublishTCP = nil
	}
	if s.Health != nil {
		h := *s.Health
		if len(h.Test) > 0 {
			switch h.Test[0] {
			case "CMD", "CMD-SHELL", "NONE":
			default:
				h.Test = append([]string{"CMD"}, h.Test...)
			}
		}
		s.Health = &h
	}
	return s
}

// Hash is the sha256 of the spec's canonical JSON (defaults filled in,
// map keys sorted by encoding/json), as stored in the LabelSpecHash label.
func (s ContainerSpec) Hash() string {
	b, err := json.Marshal(s.normalized())
	if err != nil {
		panic(err) // plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s ContainerSpec) validate() error {
	var problems []string
	if s.Name == "" {
		problems = append(problems, "no name")
	}
	if s.Image == "" {
		problems = append(problems, "no image")
	}
	if _, err := restartPolicy(s.Restart); err != nil {
		problems = append(problems, err.Error())
	}
	for _, m := range s.Mounts {
		if (m.Volume == "") == (m.HostPath == "") || !strings.HasPrefix(m.Target, "/") {
			problems = append(problems, fmt.Sprintf("mount %q at %q: want a volume name or a host path, and an absolute target", m.Volume+m.HostPath, m.Target))
		}
	}
	for _, p := range s.PublishTCP {
		if p.ContainerPort < 1 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
			problems = append(problems, fmt.Sprintf("published port %d:%d out of range", p.HostPort, p.ContainerPort))
		}
		if p.HostIP != "" {
			if _, err := netip.ParseAddr(p.HostIP); err != nil {
				problems = append(problems, fmt.Sprintf("published host address %q: %v", p.HostIP, err))
			}
		}
	}
	if len(s.Aliases) > 0 && s.Network == "" {
		problems = append(problems, "aliases need a network")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid container spec %q: %s", s.Name, strings.Join(problems, "; "))
	}
	return nil
}

func restartPolicy(s string) (container.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil || n < 0 || p.Name != container.RestartPolicyOnFailure {
			return p, fmt.Errorf("restart policy %q: a count goes only with on-failure", s)
		}
		p.MaximumRetryCount = n
	}
	switch p.Name {
	case "", container.RestartPolicyUnlessStopped, container.RestartPolicyAlways, container.RestartPolicyDisabled, container.RestartPolicyOnFailure:
		return p, nil
	}
	return p, fmt.Errorf("unknown restart policy %q", s)
}

// lock serialises the convergence of one container name within this Engine.
func (e *Engine) lock(name string) func() {
	m, _ := e.names.LoadOrStore(name, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// EnsureContainer converges the container named spec.Name to spec: absent, it
// is created and started; created from the same spec (same LabelSpecHash) and
// the same image, it is started if stopped and otherwise left alone; else it
// is stopped, removed and created again. There is never more than one.
// The image must be present on the engine.
func (e *Engine) EnsureContainer(ctx context.Context, spec ContainerSpec) (Result, error) {
	spec = spec.normalized()
	if err := spec.validate(); err != nil {
		return Result{}, err
	}
	unlock := e.lock(spec.Name)
	defer unlock()

	hash := spec.Hash()
	img, err := e.cli.ImageInspect(ctx, spec.Image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return Result{}, fmt.Errorf("docker: container %q: image %q is not on the engine (pull or build it first): %w", spec.Name, spec.Image, err)
		}
		return Result{}, fmt.Errorf("docker: container %q: inspect image %q: %w", spec.Name, spec.Image, err)
	}

	for attempt := 0; ; attempt++ {
		cur, found, err := e.inspect(ctx, spec.Name)
		if err != nil {
			return Result{}, err
		}
		action := ActionCreated
		if found {
			if cur.Config == nil || cur.Config.Labels[LabelSpecHash] == "" {
				return Result{}, fmt.Errorf("docker: container %q: %w", spec.Name, ErrNotOurs)
			}
			if cur.Config.Labels[LabelSpecHash] == hash && cur.Image == img.ID {
				return e.keep(ctx, spec.Name, cur)
			}
			if err := e.stopRemove(ctx, cur.ID); err != nil {
				return Result{}, fmt.Errorf("docker: replace container %q: %w", spec.Name, err)
			}
			action = ActionRecreated
		}
		id, err := e.create(ctx, spec, hash)
		if cerrdefs.IsConflict(err) && attempt < 20 {
			// Made by someone else meanwhile. The engine reserves the name
			// before the container can be inspected: look again shortly.
			select {
			case <-ctx.Done():
				return Result{}, fmt.Errorf("docker: create container %q: %w", spec.Name, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return Result{}, fmt.Errorf("docker: create container %q: %w", spec.Name, err)
		}
		if _, err := e.cli.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
			return Result{ID: id}, fmt.Errorf("docker: start container %q: %w", spec.Name, err)
		}
		return Result{ID: id, Action: action}, nil
	}
}

// keep starts an up-to-date container unless it runs already.
func (e *Engine) keep(ctx context.Context, name string, cur container.InspectResponse) (Result, error) {
	st := cur.State
	switch {
	case st == nil:
	case st.Paused:
		if _, err := e.cli.ContainerUnpause(ctx, cur.ID, client.ContainerUnpauseOptions{}); err != nil {
			return Result{ID: cur.ID}, fmt.Errorf("docker: unpause container %q: %w", name, err)
		}
		return Result{ID: cur.ID, Action: ActionStarted}, nil
	case st.Running || st.Restarting:
		return Result{ID: cur.ID, Action: ActionUnchanged}, nil
	}
	if _, err := e.cli.ContainerStart(ctx, cur.ID, client.ContainerStartOptions{}); err != nil {
		return Result{ID: cur.ID}, fmt.Errorf("docker: start container %q: %w", name, err)
	}
	return Result{ID: cur.ID, Action: ActionStarted}, nil
}

func (e *Engine) create(ctx context.Context, spec ContainerSpec, hash string) (string, error) {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelSpecHash] = hash
	env := make([]string, 0, len(spec.Env))
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	restart, _ := restartPolicy(spec.Restart) // validated

	var stopTimeout *int
	if spec.StopTimeout > 0 {
		secs := int(spec.StopTimeout.Seconds())
		stopTimeout = &secs
	}
	cfg := &container.Config{
		StopTimeout: stopTimeout,
		Image:       spec.Image,
		Cmd:         spec.Cmd,
		Entrypoint:  spec.Entrypoint,
		Env:         env,
		Labels:      labels,
		User:        spec.User,
	}
	if h := spec.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{
			Test:        h.Test,
			Interval:    h.Interval,
			Timeout:     h.Timeout,
			StartPeriod: h.StartPeriod,
			Retries:     h.Retries,
		}
	}
	hc := &container.HostConfig{
		GroupAdd:      spec.GroupAdd,
		ShmSize:       spec.ShmSize,
		RestartPolicy: restart,
		Resources: container.Resources{
			Memory:            spec.MemoryLimit,
			MemoryReservation: spec.MemoryReservation,
		},
	}
	for _, m := range spec.Mounts {
		if m.HostPath != "" {
			hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: m.HostPath, Target: m.Target, ReadOnly: m.ReadOnly})
			continue
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	if len(spec.PublishTCP) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		hc.PortBindings = network.PortMap{}
		for _, p := range spec.PublishTCP {
			port, _ := network.PortFrom(uint16(p.ContainerPort), network.TCP)
			b := network.PortBinding{}
			if p.HostIP != "" {
				b.HostIP, _ = netip.ParseAddr(p.HostIP) // validated
			}
			if p.HostPort > 0 {
				b.HostPort = strconv.Itoa(p.HostPort)
			}
			cfg.ExposedPorts[port] = struct{}{}
			hc.PortBindings[port] = append(hc.PortBindings[port], b)
		}
	}
	var nc *network.NetworkingConfig
	if spec.Network != "" {
		hc.NetworkMode = container.NetworkMode(spec.Network)
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	res, err := e.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:             spec.Name,
		Config:           cfg,
		HostConfig:       hc,
		NetworkingConfig: nc,
	})
	if err != nil {
		return "", err
	}
	undo := func(err error) (string, error) {
		_, _ = e.cli.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true})
		return "", err
	}
	for _, n := range spec.ExtraNetworks {
		if _, err := e.cli.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: res.ID}); err != nil {
			return undo(fmt.Errorf("connect to network %q: %w", n, err))
		}
	}
	if len(spec.Files) > 0 {
		var buf bytes.Buffer
		if err := writeFilesTar(&buf, spec.Files); err != nil {
			return undo(err)
		}
		if _, err := e.cli.CopyToContainer(ctx, res.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: &buf}); err != nil {
			return undo(fmt.Errorf("copy files into the container: %w", err))
		}
	}
	return res.ID, nil
}

// inspect finds the container called exactly name.
func (e *Engine) inspect(ctx context.Context, name string) (container.InspectResponse, bool, error) {
	res, err := e.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return container.InspectResponse{}, false, nil
	}
	if err != nil {
		return container.InspectResponse{}, false, fmt.Errorf("docker: inspect container %q: %w", name, err)
	}
	// The engine also resolves ID prefixes: only an exact name counts.
	if strings.TrimPrefix(res.Container.Name, "/") != name && res.Container.ID != name {
		return container.InspectResponse{}, false, nil
	}
	return res.Container, true, nil
}

func (e *Engine) stopRemove(ctx context.Context, id string) error {
	t := stopTimeout
	if _, err := e.cli.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &t}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop: %w", err)
	}
	if _, err := e.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// RemoveContainer stops the container (10 s grace) and removes it, keeping
// its volumes. An absent container is not an error.
func (e *Engine) RemoveContainer(ctx context.Context, name string) error {
	unlock := e.lock(name)
	defer unlock()
	cur, found, err := e.inspect(ctx, name)
	if err != nil || !found {
		return err
	}
	if err := e.stopRemove(ctx, cur.ID); err != nil {
		return fmt.Errorf("docker: remove container %q: %w", name, err)
	}
	return nil
}

// WaitHealthy waits until the container is healthy (or, without a health
// check, running). It fails at once when the container turns unhealthy,
// exits or restarts, with the last health output or log lines.
func (e *Engine) WaitHealthy(ctx context.Context, name string) error {
	// Poll briskly at first (inspect is cheap, most containers are quick),
	// then back off for the slow starters.
	const brisk, slowest = 50 * time.Millisecond, time.Second
	start := time.Now()
	delay := brisk
	last := "unknown"
	restarts := -1
	for {
		cur, found, err := e.inspect(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("docker: container %q is not healthy yet (%s): %w", name, last, ctx.Err())
			}
			return err
		}
		if !found {
			return fmt.Errorf("docker: container %q does not exist", name)
		}
		st := cur.State
		if st == nil {
			st = &container.State{}
		}
		if restarts < 0 {
			restarts = cur.RestartCount
		}
		switch {
		case st.Status == container.StateExited || st.Status == container.StateDead:
			return fmt.Errorf("docker: container %q exited with code %d%s", name, st.ExitCode, e.logTail(ctx, name))
		case st.Restarting || cur.RestartCount > restarts:
			return fmt.Errorf("docker: container %q keeps restarting (last exit code %d)%s", name, st.ExitCode, e.logTail(ctx, name))
		case st.Status == container.StateCreated:
			return fmt.Errorf("docker: container %q was created but not started", name)
		case st.Paused:
			return fmt.Errorf("docker: container %q is paused", name)
		case st.Running && (st.Health == nil || st.Health.Status == container.NoHealthcheck || st.Health.Status == container.Healthy):
			return nil
		case st.Health != nil && st.Health.Status == container.Unhealthy:
			return fmt.Errorf("docker: container %q is unhealthy: %s", name, lastHealthOutput(st.Health))
		}
		last = string(st.Status)
		if st.Health != nil {
			last = "health " + string(st.Health.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("docker: container %q is not healthy yet (%s): %w", name, last, ctx.Err())
		case <-time.After(delay):
		}
		if time.Since(start) > 5*time.Second {
			delay = min(delay*3/2, slowest)
		}
	}
}

func lastHealthOutput(h *container.Health) string {
	if len(h.Log) == 0 || h.Log[len(h.Log)-1] == nil {
		return "no health check output"
	}
	r := h.Log[len(h.Log)-1]
	out := strings.TrimSpace(r.Output)
	if i := strings.LastIndexByte(out, '\n'); i >= 0 {
		out = strings.TrimSpace(out[i+1:])
	}
	if out == "" {
		out = "no output"
	}
	return fmt.Sprintf("check exited with code %d: %s", r.ExitCode, abbreviate(out, 300))
}

// logTail gives ": last logs: ..." for error messages, or "".
func (e *Engine) logTail(ctx context.Context, name string) string {
	logs, err := e.Logs(ctx, name, 10)
	logs = strings.TrimSpace(logs)
	if err != nil || logs == "" {
		return ""
	}
	if len(logs) > 2000 {
		logs = "…" + logs[len(logs)-2000:]
	}
	return "; last logs:\n" + logs
}

// Containers lists the containers (running or not) carrying all the labels.
func (e *Engine) Containers(ctx context.Context, labels map[string]string) ([]Container, error) {
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	out := make([]Container, 0, len(res.Items))
	for _, c := range res.Items {
		var name string
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		health := ""
		if c.Health != nil && c.Health.Status != container.NoHealthcheck {
			health = string(c.Health.Status)
		} else {
			health = healthFromStatus(c.Status)
		}
		out = append(out, Container{ID: c.ID, Name: name, Image: c.Image, State: string(c.State), Health: health, Labels: c.Labels})
	}
	slices.SortFunc(out, func(a, b Container) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// healthFromStatus reads "Up 3 minutes (healthy)": engines before API 1.52
// give no Health field in lists.
func healthFromStatus(status string) string {
	switch {
	case strings.HasSuffix(status, "(healthy)"):
		return string(container.Healthy)
	case strings.HasSuffix(status, "(unhealthy)"):
		return string(container.Unhealthy)
	case strings.HasSuffix(status, "(health: starting)"):
		return string(container.Starting)
	}
	return ""
}

// PublishedAddr gives the host address ("ip:port") a container TCP port is
// published on; an unspecified host IP is given as 127.0.0.1.
func (e *Engine) PublishedAddr(ctx context.Context, name string, containerPort int) (string, error) {
	cur, found, err := e.inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("docker: container %q does not exist", name)
	}
	port, _ := network.PortFrom(uint16(containerPort), network.TCP)
	if cur.NetworkSettings != nil {
		for _, b := range cur.NetworkSettings.Ports[port] {
			if b.HostPort == "" {
				continue
			}
			ip := b.HostIP
			if !ip.IsValid() || ip.IsUnspecified() {
				ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			}
			return net.JoinHostPort(ip.String(), b.HostPort), nil
		}
	}
	return "", fmt.Errorf("docker: container %q does not publish port %d", name, containerPort)
}

// Exec runs cmd in the running container, copying its output to stdout and
// stderr (nil discards), and returns its exit code. A non-zero exit code is
// not an error.
func (e *Engine) Exec(ctx context.Context, name string, cmd []string, stdout, stderr io.Writer) (int, error) {
	return e.ExecInput(ctx, name, cmd, nil, stdout, stderr)
}

// ExecInput is Exec with stdin fed from in (nil: none), closed when in ends:
// how a dump is restored into a database container.
func (e *Engine) ExecInput(ctx context.Context, name string, cmd []string, in io.Reader, stdout, stderr io.Writer) (int, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	ex, err := e.cli.ExecCreate(ctx, name, client.ExecCreateOptions{AttachStdin: in != nil, AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return -1, fmt.Errorf("docker: exec in %q: %w", name, err)
	}
	att, err := e.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return -1, fmt.Errorf("docker: exec in %q: %w", name, err)
	}
	stop := context.AfterFunc(ctx, att.Close)
	if in != nil {
		go func() {
			// A failed copy shows as the command's own error or exit code.
			_, _ = io.Copy(att.Conn, in)
			_ = att.CloseWrite()
		}()
	}
	_, err = stdcopy.StdCopy(stdout, stderr, att.Reader)
	stop()
	att.Close()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("docker: exec in %q: %w", name, ctx.Err())
	}
	if err != nil {
		return -1, fmt.Errorf("docker: exec in %q: read output: %w", name, err)
	}
	// The stream ends as the process exits; the engine may take a moment to
	// record the exit code.
	for delay := 5 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		res, err := e.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return -1, fmt.Errorf("docker: exec in %q: %w", name, err)
		}
		if !res.Running {
			return res.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return -1, fmt.Errorf("docker: exec in %q: %w", name, ctx.Err())
		case <-time.After(delay):
		}
	}
}

// Logs returns the last tail lines (all when tail <= 0) of the container's
// stdout and stderr, merged.
func (e *Engine) Logs(ctx context.Context, name string, tail int) (string, error) {
	cur, found, err := e.inspect(ctx, name)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("docker: logs of %q: %w", name, cerrdefs.ErrNotFound.WithMessage("no such container"))
	}
	opts := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: "all"}
	if tail > 0 {
		opts.Tail = strconv.Itoa(tail)
	}
	r, err := e.cli.ContainerLogs(ctx, cur.ID, opts)
	if err != nil {
		return "", fmt.Errorf("docker: logs of %q: %w", name, err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if cur.Config != nil && cur.Config.Tty {
		_, err = io.Copy(&buf, r)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, r)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return buf.String(), fmt.Errorf("docker: logs of %q: %w", name, err)
	}
	return buf.String(), nil
}

// Reservations sums, over running containers, the memory each may be
// counted on to use: its reservation, or its limit when it has no reservation.
func (e *Engine) Reservations(ctx context.Context) (int64, error) {
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return 0, fmt.Errorf("docker: list containers: %w", err)
	}
	var sum int64
	for _, c := range res.Items {
		in, err := e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // gone meanwhile
		}
		if err != nil {
			return 0, fmt.Errorf("docker: inspect container %s: %w", c.ID, err)
		}
		if hc := in.Container.HostConfig; hc != nil {
			if hc.MemoryReservation > 0 {
				sum += hc.MemoryReservation
			} else {
				sum += hc.Memory
			}
		}
	}
	return sum, nil
}

// RestartContainer stops (waiting up to 30 s) and starts the container called name.
func (e *Engine) RestartContainer(ctx context.Context, name string) error {
	unlock := e.lock(name)
	defer unlock()
	timeout := 30
	if _, err := e.cli.ContainerRestart(ctx, name, client.ContainerRestartOptions{Timeout: &timeout}); err != nil {
		return fmt.Errorf("docker: restart container %q: %w", name, err)
	}
	return nil
}

// writeFilesTar writes files as a tar stream, their parent directories first.
func writeFilesTar(w io.Writer, files map[string][]byte) error {
	tw := tar.NewWriter(w)
	clean := map[string][]byte{}
	dirs := map[string]bool{}
	for name, data := range files {
		p := strings.TrimPrefix(path.Clean("/"+name), "/")
		if p == "" || p == "." {
			return fmt.Errorf("bad file path %q", name)
		}
		clean[p] = data
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) { // sorted: parents come first
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755}); err != nil {
			return err
		}
	}
	for _, p := range slices.Sorted(maps.Keys(clean)) {
		data := clean[p]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// PID is the host process id of the container's main process (0 when it is
// not running): for measuring it from the engine's machine.
func (e *Engine) PID(ctx context.Context, name string) (int, error) {
	cur, found, err := e.inspect(ctx, name)
	if err != nil {
		return 0, err
	}
	if !found || cur.State == nil {
		return 0, fmt.Errorf("docker: container %q: %w", name, cerrdefs.ErrNotFound.WithMessage("no such container"))
	}
	return cur.State.Pid, nil
}

// WaitExit waits until the container called name stops and returns its exit
// code: for one-shot containers, such as an image build.
func (e *Engine) WaitExit(ctx context.Context, name string) (int, error) {
	res := e.cli.ContainerWait(ctx, name, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			return -1, fmt.Errorf("docker: wait for %q: %s", name, r.Error.Message)
		}
		return int(r.StatusCode), nil
	case err := <-res.Error:
		return -1, fmt.Errorf("docker: wait for %q: %w", name, err)
	}
}
