package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
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
	// CgroupParent is set by the engine from its Config, so that it is part
	// of the spec's hash: a container made under another parent is made again.
	CgroupParent string
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
	problems = append(problems, mountProblems(s.Mounts)...)
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

func mountProblems(mounts []Mount) []string {
	var problems []string
	for _, m := range mounts {
		if (m.Volume == "") == (m.HostPath == "") || !strings.HasPrefix(m.Target, "/") {
			problems = append(problems, fmt.Sprintf("mount %q at %q: want a volume name or a host path, and an absolute target", m.Volume+m.HostPath, m.Target))
		}
	}
	return problems
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

// apiConfig translates the normalised, validated spec into the Engine API's
// creation types, labelling the container with the spec's hash. It is pure:
// everything create sends but the name, the extra networks and the files.
func apiConfig(spec ContainerSpec, hash string) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelSpecHash] = hash
	env := envList(spec.Env)
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
			CgroupParent:      spec.CgroupParent,
		},
	}
	hc.Mounts = apiMounts(spec.Mounts)
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
	return cfg, hc, nc
}

// envList is the environment in the Engine API's form, sorted by name.
func envList(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		list = append(list, k+"="+env[k])
	}
	return list
}

// apiMounts translates validated mounts (nil for none).
func apiMounts(mounts []Mount) []mount.Mount {
	var out []mount.Mount
	for _, m := range mounts {
		if m.HostPath != "" {
			out = append(out, mount.Mount{Type: mount.TypeBind, Source: m.HostPath, Target: m.Target, ReadOnly: m.ReadOnly})
			continue
		}
		out = append(out, mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.Target, ReadOnly: m.ReadOnly})
	}
	return out
}
