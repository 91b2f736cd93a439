// Package stack deploys one app, described as a resolved Compose project, on a
// Docker engine: its network, volumes and containers, in dependency order,
// converging on every run. It is the orchestration above deploy/docker.
//
// It imports deploy/docker and nothing else of the project.
package stack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// Labels on everything the toolbox creates.
const (
	LabelManaged = "toolbox.managed" // "1"
	LabelApp     = "toolbox.app"
	LabelService = "toolbox.service"
)

// Stack deploys apps on one engine.
type Stack struct {
	Engine *docker.Engine
	// SharedNetwork is where the proxy runs; each app's entry service joins
	// it so the proxy reaches it by container name.
	SharedNetwork string
	// ChatApp's entry service also joins ChatNetwork, the bot's private
	// network: the bot and its chat call each other there, and no other app
	// can reach the bot.
	ChatApp, ChatNetwork string
	// Labels are added to everything created (tests mark their objects).
	Labels map[string]string
	// HealthTimeout bounds the wait for one service to become healthy.
	HealthTimeout time.Duration
}

// BackupsApp is the LabelApp of the local backup repository's volume: `down
// --purge` keeps it, so that a purge never takes the backups with it.
const BackupsApp = "toolbox-backups"

// Names of an app's objects on the engine.
func NetworkName(app string) string            { return "tb-" + app }
func VolumeName(app, volume string) string     { return "tb-" + app + "-" + volume }
func ContainerName(app, service string) string { return "tb-" + app + "-" + service }

// GenerationVolume names app's volume of generation gen: a restore writes
// into a new generation and swaps it in, keeping the previous one for undo.
// Generation "" is the first, VolumeName.
func GenerationVolume(app, gen, volume string) string {
	if gen == "" {
		return VolumeName(app, volume)
	}
	return VolumeName(app, volume) + "." + gen
}

// CopyName is the name of a scratch copy of app for a purpose, one of
// CopyPurposes: the '.' keeps it from ever being an app's name (see
// internal/names).
func CopyName(app, purpose string) string { return app + "." + purpose }

// CopyPurposes are the scratch copies an app may have: a restore's, checked
// before it is swapped in, and a drill's, checked and thrown away.
var CopyPurposes = []string{"restore", "drill"}

// EnsureVolume creates app's volume of generation gen if it is missing, as
// Deploy would, and returns its name.
func (s *Stack) EnsureVolume(ctx context.Context, app, gen, volume string) (string, error) {
	name := GenerationVolume(app, gen, volume)
	return name, s.Engine.EnsureVolume(ctx, name, s.labels(app))
}

// RemoveGeneration removes app's volumes of generation gen; the engine
// refuses to remove one that a container uses.
func (s *Stack) RemoveGeneration(ctx context.Context, app, gen string, volumes []string) error {
	var errs []error
	for _, v := range volumes {
		errs = append(errs, s.Engine.RemoveVolume(ctx, GenerationVolume(app, gen, v)))
	}
	return errors.Join(errs...)
}

// Placement says which of an app's objects a deploy uses.
type Placement struct {
	// Generation picks the app's volumes (see GenerationVolume).
	Generation string
	// Copy, when set, deploys a scratch copy of the app under that name
	// (CopyName): its own containers and network, on no shared network, so
	// that neither the proxy nor the bot can reach it, and internal, so that
	// it reaches nothing outside (no mail sent from a drill); its volumes
	// are the app's of Generation, labelled as the app's.
	Copy string
}

// Upstream is where the proxy reaches app's service on the shared network.
func Upstream(app, service string, port int) string {
	return ContainerName(app, service) + ":" + strconv.Itoa(port)
}
func (s *Stack) labels(app string) map[string]string {
	l := maps.Clone(s.Labels)
	if l == nil {
		l = map[string]string{}
	}
	l[LabelManaged] = "1"
	l[LabelApp] = app
	return l
}

// Deploy brings app to the state p describes: it creates what is missing,
// recreates what changed, and leaves the rest. entry is the service the
// proxy routes to.
func (s *Stack) Deploy(ctx context.Context, app string, at Placement, p *types.Project, entry string, progress func(string)) error {
	if progress == nil {
		progress = func(string) {}
	}
	order, err := dependencyOrder(p)
	if err != nil {
		return err
	}
	d := s.placed(app, at)
	if at.Copy == "" {
		for _, n := range s.extraNetworks(app) {
			if err := s.Engine.EnsureNetwork(ctx, n, s.labels("")); err != nil {
				return err
			}
		}
	}
	ensure := s.Engine.EnsureNetwork
	if d.copy {
		ensure = s.Engine.EnsureInternalNetwork
	}
	if err := ensure(ctx, NetworkName(d.name), d.labels); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(p.Volumes)) {
		if err := s.Engine.EnsureVolume(ctx, GenerationVolume(app, at.Generation, name), s.labels(app)); err != nil {
			return err
		}
	}
	for _, img := range images(p) {
		if err := s.Engine.PullImage(ctx, img, progress); err != nil {
			return err
		}
	}
	healthyNeeded := map[string]bool{}
	for _, svc := range p.Services {
		for dep, d := range svc.DependsOn {
			if d.Condition == types.ServiceConditionHealthy {
				healthyNeeded[dep] = true
			}
		}
	}
	for _, name := range order {
		spec, err := s.spec(d, p.Services[name], name == entry)
		if err != nil {
			return err
		}
		res, err := s.Engine.EnsureContainer(ctx, spec)
		if err != nil {
			return err
		}
		progress(fmt.Sprintf("%s: %s", name, res.Action))
		if healthyNeeded[name] {
			if err := s.waitHealthy(ctx, d.name, name, progress); err != nil {
				return err
			}
		}
	}
	for _, name := range order {
		if !healthyNeeded[name] {
			if err := s.waitHealthy(ctx, d.name, name, progress); err != nil {
				return err
			}
		}
	}
	return nil
}

// placement is a Placement resolved for one app.
type placement struct {
	app, name  string // the app, and the name its containers and network take
	generation string
	copy       bool
	labels     map[string]string // of its containers and network
}

func (s *Stack) placed(app string, at Placement) placement {
	d := placement{app: app, name: app, generation: at.Generation, copy: at.Copy != ""}
	if d.copy {
		d.name = at.Copy
	}
	d.labels = s.labels(d.name)
	return d
}

func (s *Stack) waitHealthy(ctx context.Context, app, service string, progress func(string)) error {
	timeout := s.HealthTimeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	progress(fmt.Sprintf("%s: waiting until healthy", service))
	if err := s.Engine.WaitHealthy(ctx, ContainerName(app, service)); err != nil {
		return fmt.Errorf("%s of %s did not become healthy: %w", service, app, err)
	}
	progress(fmt.Sprintf("%s: healthy", service))
	return nil
}

// extraNetworks are the networks app's entry service joins besides its own.
func (s *Stack) extraNetworks(app string) []string {
	var nets []string
	if s.SharedNetwork != "" {
		nets = append(nets, s.SharedNetwork)
	}
	if app == s.ChatApp && s.ChatNetwork != "" {
		nets = append(nets, s.ChatNetwork)
	}
	return nets
}

// images lists the project's images, once each, sorted.
func images(p *types.Project) []string {
	set := map[string]bool{}
	for _, svc := range p.Services {
		set[svc.Image] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// dependencyOrder sorts services so that each comes after what it depends on;
// ties are broken by name, so the order is stable.
func dependencyOrder(p *types.Project) ([]string, error) {
	var (
		order []string
		state = map[string]int{} // 0 new, 1 visiting, 2 done
		visit func(name string, path []string) error
	)
	visit = func(name string, path []string) error {
		svc, ok := p.Services[name]
		if !ok {
			return fmt.Errorf("service %q is depended on but not defined", name)
		}
		switch state[name] {
		case 1:
			return fmt.Errorf("services depend on each other in a cycle: %s", strings.Join(append(path, name), " -> "))
		case 2:
			return nil
		}
		state[name] = 1
		for _, dep := range slices.Sorted(maps.Keys(svc.DependsOn)) {
			if err := visit(dep, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		order = append(order, name)
		return nil
	}
	names := slices.Sorted(maps.Keys(p.Services))
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// spec turns a Compose service into a container spec.
func (s *Stack) spec(d placement, svc types.ServiceConfig, entry bool) (docker.ContainerSpec, error) {
	labels := maps.Clone(d.labels)
	maps.Copy(labels, svc.Labels)
	labels[LabelService] = svc.Name
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	spec := docker.ContainerSpec{
		Name: ContainerName(d.name, svc.Name), Image: svc.Image,
		Cmd: svc.Command, Entrypoint: svc.Entrypoint, Env: env, Labels: labels,
		Network: NetworkName(d.name), Aliases: []string{svc.Name},
		MemoryLimit: int64(svc.MemLimit), MemoryReservation: int64(svc.MemReservation), ShmSize: int64(svc.ShmSize),
		Restart: svc.Restart, User: svc.User,
	}
	if spec.Restart == "" || spec.Restart == "always" {
		spec.Restart = "unless-stopped"
	}
	if r := svc.Deploy; r != nil {
		if r.Resources.Limits != nil && spec.MemoryLimit == 0 {
			spec.MemoryLimit = int64(r.Resources.Limits.MemoryBytes)
		}
		if r.Resources.Reservations != nil && spec.MemoryReservation == 0 {
			spec.MemoryReservation = int64(r.Resources.Reservations.MemoryBytes)
		}
	}
	if entry && !d.copy {
		spec.ExtraNetworks = s.extraNetworks(d.app)
	}
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			return docker.ContainerSpec{}, fmt.Errorf("service %s: only named volumes are supported, not %s %q", svc.Name, v.Type, v.Source)
		}
		spec.Mounts = append(spec.Mounts, docker.Mount{Volume: GenerationVolume(d.app, d.generation, v.Source), Target: v.Target, ReadOnly: v.ReadOnly})
	}
	sort.Slice(spec.Mounts, func(i, j int) bool { return spec.Mounts[i].Target < spec.Mounts[j].Target })
	if h := svc.HealthCheck; h != nil {
		if h.Disable {
			spec.Health = &docker.Health{Test: []string{"NONE"}}
		} else {
			spec.Health = &docker.Health{Test: h.Test}
			if h.Interval != nil {
				spec.Health.Interval = time.Duration(*h.Interval)
			}
			if h.Timeout != nil {
				spec.Health.Timeout = time.Duration(*h.Timeout)
			}
			if h.StartPeriod != nil {
				spec.Health.StartPeriod = time.Duration(*h.StartPeriod)
			}
			if h.Retries != nil {
				spec.Health.Retries = int(*h.Retries)
			}
		}
	}
	return spec, nil
}

// Remove deletes app's containers and network, and its scratch copies'; with
// purge, its volumes too (of every generation).
func (s *Stack) Remove(ctx context.Context, app string, purge bool) error {
	for _, purpose := range CopyPurposes {
		if err := s.RemoveContainers(ctx, CopyName(app, purpose)); err != nil {
			return err
		}
	}
	if err := s.RemoveContainers(ctx, app); err != nil {
		return err
	}
	if !purge {
		return nil
	}
	vols, err := s.Engine.Volumes(ctx, map[string]string{LabelManaged: "1", LabelApp: app})
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range vols {
		errs = append(errs, s.Engine.RemoveVolume(ctx, v))
	}
	return errors.Join(errs...)
}

// RemoveContainers deletes the containers and the network named after app
// (an app or a scratch copy), leaving the volumes.
func (s *Stack) RemoveContainers(ctx context.Context, app string) error {
	cs, err := s.Containers(ctx, app)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		errs = append(errs, s.Engine.RemoveContainer(ctx, c.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return s.Engine.RemoveNetwork(ctx, NetworkName(app))
}

// Containers lists app's containers.
func (s *Stack) Containers(ctx context.Context, app string) ([]docker.Container, error) {
	return s.Engine.Containers(ctx, map[string]string{LabelManaged: "1", LabelApp: app})
}

// Restart restarts each of app's containers, then waits for them all to be
// healthy again.
func (s *Stack) Restart(ctx context.Context, app string, progress func(string)) error {
	cs, err := s.Containers(ctx, app)
	if err != nil {
		return err
	}
	for _, c := range cs {
		progress("restarting " + c.Labels[LabelService])
		if err := s.Engine.RestartContainer(ctx, c.Name); err != nil {
			return err
		}
	}
	for _, c := range cs {
		if err := s.Engine.WaitHealthy(ctx, c.Name); err != nil {
			return err
		}
		progress(c.Labels[LabelService] + ": healthy")
	}
	return nil
}
