package docker

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Container is a container as listed.
type Container struct {
	ID     string
	Name   string
	Image  string
	State  string // created, running, paused, restarting, removing, exited, dead
	Health string // "", starting, healthy, unhealthy
	Labels map[string]string
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

// Reservations sums, over running containers, the memory each may be
// counted on to use: its reservation, or its limit when it has no reservation.
func (e *Engine) Reservations(ctx context.Context) (int64, error) {
	rs, err := e.RunningReservations(ctx)
	var sum int64
	for _, r := range rs {
		sum += r.Bytes
	}
	return sum, err
}

// Reservation is what one running container may be counted on to use.
type Reservation struct {
	Container string            // its name, without the leading /
	Labels    map[string]string // its labels
	Bytes     int64             // its memory reservation, or its limit when it has none; 0 when neither
}

// RunningReservations lists, for each running container, the memory it may
// be counted on to use (see Reservation), sorted by name.
func (e *Engine) RunningReservations(ctx context.Context) ([]Reservation, error) {
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		return nil, fmt.Errorf("docker: list containers: %w", err)
	}
	var out []Reservation
	for _, c := range res.Items {
		in, err := e.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			continue // gone meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("docker: inspect container %s: %w", c.ID, err)
		}
		r := Reservation{Container: strings.TrimPrefix(in.Container.Name, "/")}
		if cfg := in.Container.Config; cfg != nil {
			r.Labels = cfg.Labels
		}
		if hc := in.Container.HostConfig; hc != nil {
			r.Bytes = hc.MemoryReservation
			if r.Bytes <= 0 {
				r.Bytes = hc.Memory
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Reservation) int { return strings.Compare(a.Container, b.Container) })
	return out, nil
}
