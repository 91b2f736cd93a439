package dockerguard

import (
	"context"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// TestGuardNetworkNameTakesNoOtherNetwork: the engine keeps a container's
// networks by the name it was given and looks each up again when the
// container starts, by ID, then name, then ID prefix (moby
// daemon/network.go FindNetwork, daemon/container_operations.go
// connectToNetwork). A network of the toolbox named like a prefix of
// someone else's network's ID, or like someone else's network (engines
// before API 1.44 take two networks of one name), removed between the
// creation and the start, would have the container started on that other
// network. Such names are refused.
func TestGuardNetworkNameTakesNoOtherNetwork(t *testing.T) {
	g := startGuard(t, nil)
	ctx := context.Background()
	otherLabels := dockertest.Labels(t, g.direct)
	otherNet := dockertest.Unique(t, "tb-guard-othernet")
	if err := g.direct.EnsureNetwork(ctx, otherNet, otherLabels); err != nil {
		t.Fatal(err)
	}
	in, err := g.rawDirect.NetworkInspect(ctx, otherNet, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	otherID := in.Network.ID

	// escape creates a network of the toolbox named name, a container on
	// it (by create or, stopped, by connect), removes the network and
	// starts the container: it must not end up on the other network.
	escape := func(t *testing.T, name string, byConnect bool) {
		t.Helper()
		_, err := g.raw.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: g.labels})
		if err != nil {
			if !cerrdefs.IsConflict(err) {
				refusedWith(t, "create the network "+name, err, "network")
			}
			return
		}
		t.Errorf("the network %q was created through the guard, want it refused", name)
		hc := &container.HostConfig{NetworkMode: container.NetworkMode(name)}
		if byConnect {
			hc.NetworkMode = "bridge"
		}
		c, err := g.raw.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:       dockertest.Unique(t, "tb-guard-netescape"),
			Config:     &container.Config{Image: g.standin, Cmd: []string{"sleep"}, Labels: g.labels},
			HostConfig: hc,
		})
		if err != nil {
			t.Logf("create the container: %v", err)
			return
		}
		if byConnect {
			if _, err := g.raw.NetworkConnect(ctx, name, client.NetworkConnectOptions{Container: c.ID}); err != nil {
				t.Logf("connect: %v", err)
				return
			}
		}
		if _, err := g.raw.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil {
			t.Logf("remove the network: %v", err)
			return
		}
		_, err = g.raw.ContainerStart(ctx, c.ID, client.ContainerStartOptions{})
		res, ierr := g.rawDirect.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if ierr != nil {
			t.Fatal(ierr)
		}
		for n, ep := range res.Container.NetworkSettings.Networks {
			if ep != nil && ep.NetworkID == otherID {
				t.Errorf("the container started (%v) on someone else's network %s (as %q)", err, otherNet, n)
			}
		}
	}
	t.Run("ID prefix", func(t *testing.T) { escape(t, otherID[:12], false) })
	t.Run("ID prefix by connect", func(t *testing.T) { escape(t, otherID[:10], true) })
	t.Run("same name by connect", func(t *testing.T) { escape(t, otherNet, true) })
}
