package dockerguard

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
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

// TestGuardBuildFetchesNothing: on the engine, a build through the guard
// does not have the engine fetch a URL of the machine's loopback, whether
// the Dockerfile's own ADD asks it or a base image's ONBUILD trigger (an
// image imported with that change, as any pulled image may carry it).
func TestGuardBuildFetchesNothing(t *testing.T) {
	g := startGuard(t, nil)
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fetched := make(chan string, 8)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched <- r.URL.Path
		_, _ = io.WriteString(w, "what only the machine reaches")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	url := "http://" + ln.Addr().String()

	run := g.labels[dockertest.LabelTestRun]
	onbuild := "toolbox-test/guard-onbuild:" + run
	var rootfs bytes.Buffer
	tw := tar.NewWriter(&rootfs)
	_ = tw.WriteHeader(&tar.Header{Name: "x", Mode: 0o644, Size: 1})
	_, _ = io.WriteString(tw, "x")
	_ = tw.Close()
	if res, err := g.raw.ImageImport(ctx, client.ImageImportSource{Source: &rootfs, SourceName: "-"}, onbuild,
		client.ImageImportOptions{Changes: []string{"ONBUILD ADD " + url + "/onbuild /y"}}); err != nil {
		t.Fatalf("import an image with an ONBUILD trigger: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, res)
		res.Close()
	}
	t.Cleanup(func() { _ = g.direct.RemoveImage(ctx, onbuild) })

	for name, dockerfile := range map[string]string{
		"ADD":     "FROM " + g.standin + "\nADD " + url + "/add /x\n",
		"ONBUILD": "FROM " + onbuild + "\n",
	} {
		tag := "toolbox-test/guard-fetch-" + strings.ToLower(name) + ":" + run
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))})
		_, _ = io.WriteString(tw, dockerfile)
		_ = tw.Close()
		res, err := g.raw.ImageBuild(ctx, &buf, client.ImageBuildOptions{Dockerfile: "Dockerfile", Version: "1", Remove: true, ForceRemove: true, Tags: []string{tag}})
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			_ = g.direct.RemoveImage(ctx, tag)
			t.Errorf("%s: the build went through the guard", name)
		} else {
			refusedWith(t, name, err, "build")
		}
	}
	select {
	case p := <-fetched:
		t.Errorf("the engine fetched %s%s from the machine's loopback for a build", url, p)
	default:
	}
}
