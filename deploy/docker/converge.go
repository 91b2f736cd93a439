package docker

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// What EnsureContainer did.
const (
	ActionCreated   = "created"
	ActionStarted   = "started"
	ActionUnchanged = "unchanged"
	ActionRecreated = "recreated"
)

// Result tells what EnsureContainer did.
type Result struct {
	ID     string
	Action string // ActionCreated, ActionStarted, ActionUnchanged or ActionRecreated
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
	spec.CgroupParent = e.cgroupParent
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
	cfg, hc, nc := apiConfig(spec, hash)
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
		if err := writeTar(&buf, filesEntries(spec.Files)); err != nil {
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
	c, found, err := e.lookup(ctx, name)
	if err != nil {
		return c, false, fmt.Errorf("docker: inspect container %q: %w", name, err)
	}
	return c, found, nil
}

// lookup is inspect with the engine's error as it is.
func (e *Engine) lookup(ctx context.Context, name string) (container.InspectResponse, bool, error) {
	res, err := e.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return container.InspectResponse{}, false, nil
	}
	if err != nil {
		return container.InspectResponse{}, false, err
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

// filesEntries are the container's Files: mode 0644, owned by root, with
// paths cleaned ("/etc/x" is "etc/x"); WriteTar refuses the archive root.
func filesEntries(files map[string][]byte) []Entry {
	entries := make([]Entry, 0, len(files))
	for name, data := range files {
		entries = append(entries, Entry{Name: strings.TrimPrefix(path.Clean("/"+name), "/"), Mode: 0o644, Data: data})
	}
	return entries
}
