package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// ErrNotOurs is wrapped by the Ensure methods when an object of the name
// exists but lacks the labels the toolbox puts on what it makes: it belongs to
// someone else, and is neither reused nor replaced.
var ErrNotOurs = errors.New("it exists and was not made by the toolbox: rename or remove it")

// hasKeys reports whether got carries every key of want.
func hasKeys(got, want map[string]string) bool {
	for k := range want {
		if _, ok := got[k]; !ok {
			return false
		}
	}
	return true
}

// EnsureNetwork creates a bridge network with the given labels unless one of
// that name exists (its labels are then left as they are). An existing
// network without the labels' keys is refused with ErrNotOurs.
func (e *Engine) EnsureNetwork(ctx context.Context, name string, labels map[string]string) error {
	return e.ensureNetwork(ctx, name, labels, false)
}

// EnsureInternalNetwork is EnsureNetwork for a network with no way out of
// the machine: a scratch copy of an app must not send mail or reach others.
func (e *Engine) EnsureInternalNetwork(ctx context.Context, name string, labels map[string]string) error {
	return e.ensureNetwork(ctx, name, labels, true)
}

func (e *Engine) ensureNetwork(ctx context.Context, name string, labels map[string]string, internal bool) error {
	// Engines before API 1.44 accept two networks with one name; serialise
	// here and remove a duplicate made by someone else meanwhile.
	e.netMu.Lock()
	defer e.netMu.Unlock()

	ids, err := e.networkIDs(ctx, name)
	if err != nil {
		return fmt.Errorf("docker: network %q: %w", name, err)
	}
	if len(ids) > 0 {
		res, err := e.cli.NetworkInspect(ctx, ids[0], client.NetworkInspectOptions{})
		if err != nil {
			return fmt.Errorf("docker: network %q: %w", name, err)
		}
		if !hasKeys(res.Network.Labels, labels) {
			return fmt.Errorf("docker: network %q: %w", name, ErrNotOurs)
		}
		return nil
	}
	if _, err := e.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels, Internal: internal}); err != nil {
		if cerrdefs.IsConflict(err) {
			return nil // created meanwhile (newer engines refuse duplicates)
		}
		return fmt.Errorf("docker: create network %q: %w", name, err)
	}
	ids, err = e.networkIDs(ctx, name)
	if err != nil {
		return fmt.Errorf("docker: network %q: %w", name, err)
	}
	// Someone else created it at the same time: every creator keeps the
	// same one, the first in the shared order, and removes the others (a
	// creator that looked before the other existed kept its own: it may be
	// the one removed; later calls name the network, not its ID).
	for i := 1; i < len(ids); i++ {
		id := ids[i]
		if _, err := e.cli.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("docker: remove duplicate network %q: %w", name, err)
		}
	}
	return nil
}

// networkIDs lists the IDs of the networks named exactly name, oldest first.
func (e *Engine) networkIDs(ctx context.Context, name string) ([]string, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, err
	}
	items := slices.DeleteFunc(res.Items, func(n network.Summary) bool { return n.Name != name }) // the filter matches substrings
	// Oldest first; the ID breaks ties, so that racing creators, which may
	// see equal times, agree on which one to keep.
	slices.SortFunc(items, func(a, b network.Summary) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	ids := make([]string, len(items))
	for i, n := range items {
		ids[i] = n.ID
	}
	return ids, nil
}

// RemoveNetwork removes the network; an absent one is not an error.
func (e *Engine) RemoveNetwork(ctx context.Context, name string) error {
	if _, err := e.cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove network %q: %w", name, err)
	}
	return nil
}

// Networks lists the names of the networks carrying all the given labels.
func (e *Engine) Networks(ctx context.Context, labels map[string]string) ([]string, error) {
	res, err := e.cli.NetworkList(ctx, client.NetworkListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("docker: list networks: %w", err)
	}
	names := make([]string, 0, len(res.Items))
	for _, n := range res.Items {
		names = append(names, n.Name)
	}
	slices.Sort(names)
	return names, nil
}

// EnsureVolume creates a local volume with the given labels unless one of
// that name exists (its labels are then left as they are). An existing
// volume without the labels' keys is refused with ErrNotOurs: its data is
// someone else's.
func (e *Engine) EnsureVolume(ctx context.Context, name string, labels map[string]string) error {
	if res, err := e.cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
		if !hasKeys(res.Volume.Labels, labels) {
			return fmt.Errorf("docker: volume %q: %w", name, ErrNotOurs)
		}
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: volume %q: %w", name, err)
	}
	// Creating an existing local volume returns it: this is idempotent too.
	if _, err := e.cli.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: labels}); err != nil {
		return fmt.Errorf("docker: create volume %q: %w", name, err)
	}
	return nil
}

// RemoveVolume removes the volume and its data; an absent one is not an error.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	if _, err := e.cli.VolumeRemove(ctx, name, client.VolumeRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("docker: remove volume %q: %w", name, err)
	}
	return nil
}

// Volumes lists the names of the volumes carrying all the given labels.
func (e *Engine) Volumes(ctx context.Context, labels map[string]string) ([]string, error) {
	res, err := e.cli.VolumeList(ctx, client.VolumeListOptions{Filters: labelFilters(labels)})
	if err != nil {
		return nil, fmt.Errorf("docker: list volumes: %w", err)
	}
	names := make([]string, 0, len(res.Items))
	for _, v := range res.Items {
		names = append(names, v.Name)
	}
	slices.Sort(names)
	return names, nil
}

func labelFilters(labels map[string]string) client.Filters {
	f := make(client.Filters)
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	return f
}
