package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

func TestSpecHash(t *testing.T) {
	base := ContainerSpec{
		Name:   "wiki",
		Image:  "mediawiki:1.43",
		Env:    map[string]string{"A": "1", "B": "2"},
		Health: &Health{Test: []string{"/app", "health"}, Interval: time.Second},
	}
	same := []struct {
		name   string
		change func(*ContainerSpec)
	}{
		{"default restart spelled out", func(s *ContainerSpec) { s.Restart = "unless-stopped" }},
		{"health test in CMD form", func(s *ContainerSpec) {
			s.Health = &Health{Test: []string{"CMD", "/app", "health"}, Interval: time.Second}
		}},
		{"empty rather than nil", func(s *ContainerSpec) { s.Cmd, s.Labels, s.Mounts = []string{}, map[string]string{}, []Mount{} }},
		{"env built in another order", func(s *ContainerSpec) { s.Env = map[string]string{"B": "2", "A": "1"} }},
		{"a stale hash label", func(s *ContainerSpec) { s.Labels = map[string]string{LabelSpecHash: "x"} }},
	}
	for _, tt := range same {
		s := base
		tt.change(&s)
		if got, want := s.Hash(), base.Hash(); got != want {
			t.Errorf("%s: Hash = %s, want %s", tt.name, got, want)
		}
	}
	different := []struct {
		name   string
		change func(*ContainerSpec)
	}{
		{"env", func(s *ContainerSpec) { s.Env = map[string]string{"A": "1", "B": "3"} }},
		{"image", func(s *ContainerSpec) { s.Image = "mediawiki:1.44" }},
		{"restart", func(s *ContainerSpec) { s.Restart = "always" }},
		{"memory", func(s *ContainerSpec) { s.MemoryLimit = 1 << 30 }},
		{"health interval", func(s *ContainerSpec) {
			s.Health = &Health{Test: []string{"/app", "health"}, Interval: 2 * time.Second}
		}},
		{"mount read-only", func(s *ContainerSpec) { s.Mounts = []Mount{{Volume: "v", Target: "/data", ReadOnly: true}} }},
	}
	for _, tt := range different {
		s := base
		tt.change(&s)
		if s.Hash() == base.Hash() {
			t.Errorf("%s changed: Hash unchanged, want a new one", tt.name)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		spec ContainerSpec
		want string // "" : valid
	}{
		{ContainerSpec{Name: "a", Image: "i"}, ""},
		{ContainerSpec{Name: "a", Image: "i", Restart: "on-failure:3"}, ""},
		{ContainerSpec{Image: "i"}, "no name"},
		{ContainerSpec{Name: "a"}, "no image"},
		{ContainerSpec{Name: "a", Image: "i", Restart: "sometimes"}, "unknown restart policy"},
		{ContainerSpec{Name: "a", Image: "i", Restart: "always:3"}, "a count goes only with on-failure"},
		{ContainerSpec{Name: "a", Image: "i", Mounts: []Mount{{Volume: "v", Target: "data"}}}, "absolute target"},
		{ContainerSpec{Name: "a", Image: "i", PublishTCP: []Publish{{ContainerPort: 0}}}, "out of range"},
		{ContainerSpec{Name: "a", Image: "i", PublishTCP: []Publish{{HostIP: "localhost", ContainerPort: 80}}}, "published host address"},
		{ContainerSpec{Name: "a", Image: "i", Aliases: []string{"x"}}, "aliases need a network"},
	}
	for _, tt := range tests {
		err := tt.spec.normalized().validate()
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("validate(%+v) = %v, want %q", tt.spec, err, tt.want)
		}
	}
}

func TestPullProgress(t *testing.T) {
	var p pullProgress
	msgs := []jsonstream.Message{
		{Status: "Pulling from library/wordpress", ID: "6.8"},
		{Status: "Pulling fs layer", ID: "a"},
		{Status: "Downloading", ID: "a", Progress: &jsonstream.Progress{Current: 10e6, Total: 40e6}},
		{Status: "Downloading", ID: "b", Progress: &jsonstream.Progress{Current: 3e6, Total: 80e6}},
		{Status: "Download complete", ID: "a"},
		{Status: "Extracting", ID: "a", Progress: &jsonstream.Progress{Current: 1, Total: 40e6}},
	}
	if got, want := p.line("wordpress:6.8"), "pulling wordpress:6.8"; got != want {
		t.Errorf("line before any layer = %q, want %q", got, want)
	}
	for _, m := range msgs {
		p.add(m)
	}
	if got, want := p.line("wordpress:6.8"), "pulling wordpress:6.8: 43 MB of 120 MB"; got != want {
		t.Errorf("line = %q, want %q", got, want)
	}
}

func TestPullError(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errors.New(`Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host`), "its registry cannot be reached"},
		{fmt.Errorf("manifest for x:1 not found: %w", cerrdefs.ErrNotFound), "the registry does not have it"},
		{errors.New("pull access denied for x, repository does not exist or may require 'docker login'"), "refused access"},
		{&jsonstream.Error{Code: 500, Message: "disk full"}, `cannot pull image "x:1": disk full`},
	}
	for _, tt := range tests {
		got := pullError("x:1", tt.err)
		if !strings.Contains(got.Error(), tt.want) || !strings.Contains(got.Error(), `"x:1"`) || !errors.Is(got, tt.err) {
			t.Errorf("pullError(%v) = %v, want %q naming the image and wrapping the cause", tt.err, got, tt.want)
		}
		if unreachable := tt.want == "its registry cannot be reached"; errors.Is(got, ErrRegistryUnreachable) != unreachable {
			t.Errorf("errors.Is(pullError(%v), ErrRegistryUnreachable) = %v, want %v", tt.err, !unreachable, unreachable)
		}
	}
}

func TestPinnedHostKey(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n"} {
		if _, _, err := hostKeyCheck("vm.example.org:22", Config{SSHKnownHosts: in}); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("hostKeyCheck(%q) = %v, want a refusal", in, err)
		}
	}
	if _, _, err := hostKeyCheck("vm.example.org:22", Config{SSHKnownHosts: "example.org ssh-ed25519 not-base64"}); err == nil {
		t.Error("hostKeyCheck(garbage) = nil error, want one")
	}
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for _, in := range []string{key, "[vm.example.org]:2222 " + key + " comment", "|1|c2FsdA==|aGFzaA== " + key} {
		if _, algorithms, err := hostKeyCheck("vm.example.org:22", Config{SSHKnownHosts: in}); err != nil || !slices.Equal(algorithms, []string{"ssh-ed25519"}) {
			t.Errorf("hostKeyCheck(%q) = %v, %v; want it accepted for ssh-ed25519", in, algorithms, err)
		}
	}
}

func TestAPIConfig(t *testing.T) {
	const hash = "0123abcd"
	// Every case starts from a minimal spec and the engine types it gives,
	// and changes both.
	type want struct {
		cfg *container.Config
		hc  *container.HostConfig
		nc  *network.NetworkingConfig
	}
	base := func() (ContainerSpec, want) {
		return ContainerSpec{Name: "wiki", Image: "mediawiki:1.43"}, want{
			cfg: &container.Config{Image: "mediawiki:1.43", Env: []string{}, Labels: map[string]string{LabelSpecHash: hash}},
			hc:  &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}},
		}
	}
	tests := []struct {
		name   string
		change func(*ContainerSpec, *want)
	}{
		{"defaults", func(*ContainerSpec, *want) {}},
		{"command, entrypoint, user and env in key order", func(s *ContainerSpec, w *want) {
			s.Cmd, s.Entrypoint, s.User = []string{"serve"}, []string{"/app"}, "33:33"
			s.Env = map[string]string{"B": "2", "A": "1=one"}
			w.cfg.Cmd, w.cfg.Entrypoint, w.cfg.User = []string{"serve"}, []string{"/app"}, "33:33"
			w.cfg.Env = []string{"A=1=one", "B=2"}
		}},
		{"labels with the spec hash replacing a stale one", func(s *ContainerSpec, w *want) {
			s.Labels = map[string]string{"toolbox.app": "wiki", LabelSpecHash: "stale"}
			w.cfg.Labels = map[string]string{"toolbox.app": "wiki", LabelSpecHash: hash}
		}},
		{"mounts: volume, read-only volume, read-only bind", func(s *ContainerSpec, w *want) {
			s.Mounts = []Mount{
				{Volume: "wiki-data", Target: "/data"},
				{Volume: "wiki-conf", Target: "/conf", ReadOnly: true},
				{HostPath: "/var/run/docker.sock", Target: "/var/run/docker.sock", ReadOnly: true},
			}
			w.hc.Mounts = []mount.Mount{
				{Type: mount.TypeVolume, Source: "wiki-data", Target: "/data"},
				{Type: mount.TypeVolume, Source: "wiki-conf", Target: "/conf", ReadOnly: true},
				{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock", ReadOnly: true},
			}
		}},
		{"published ports: fixed, any host port, two bindings of one port", func(s *ContainerSpec, w *want) {
			s.PublishTCP = []Publish{
				{HostIP: "127.0.0.1", HostPort: 8080, ContainerPort: 80},
				{ContainerPort: 443},
				{HostIP: "::1", HostPort: 8080, ContainerPort: 80},
			}
			p80, p443 := network.MustParsePort("80/tcp"), network.MustParsePort("443/tcp")
			w.cfg.ExposedPorts = network.PortSet{p80: {}, p443: {}}
			w.hc.PortBindings = network.PortMap{
				p80: {
					{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: "8080"},
					{HostIP: netip.MustParseAddr("::1"), HostPort: "8080"},
				},
				p443: {{}},
			}
		}},
		{"health check in exec form", func(s *ContainerSpec, w *want) {
			s.Health = &Health{Test: []string{"/app", "health"}, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 3 * time.Second, Retries: 4}
			w.cfg.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "/app", "health"}, Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 3 * time.Second, Retries: 4}
		}},
		{"memory limit, reservation and shared memory", func(s *ContainerSpec, w *want) {
			s.MemoryLimit, s.MemoryReservation, s.ShmSize = 512<<20, 256<<20, 128<<20
			w.hc.Resources = container.Resources{Memory: 512 << 20, MemoryReservation: 256 << 20}
			w.hc.ShmSize = 128 << 20
		}},
		{"group add", func(s *ContainerSpec, w *want) {
			s.GroupAdd = []string{"998"}
			w.hc.GroupAdd = []string{"998"}
		}},
		{"stop timeout in whole seconds", func(s *ContainerSpec, w *want) {
			s.StopTimeout = 90*time.Second + 500*time.Millisecond
			secs := 90
			w.cfg.StopTimeout = &secs
		}},
		{"restart policy with a count", func(s *ContainerSpec, w *want) {
			s.Restart = "on-failure:3"
			w.hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}
		}},
		{"restart policy no", func(s *ContainerSpec, w *want) {
			s.Restart = "no"
			w.hc.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyDisabled}
		}},
		{"network with aliases", func(s *ContainerSpec, w *want) {
			s.Network, s.Aliases = "apps", []string{"wiki", "www"}
			w.hc.NetworkMode = "apps"
			w.nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"apps": {Aliases: []string{"wiki", "www"}}}}
		}},
		{"network without aliases", func(s *ContainerSpec, w *want) {
			s.Network = "apps"
			w.hc.NetworkMode = "apps"
			w.nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"apps": {}}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, w := base()
			tt.change(&spec, &w)
			spec = spec.normalized()
			if err := spec.validate(); err != nil {
				t.Fatal(err)
			}
			cfg, hc, nc := apiConfig(spec, hash)
			if !reflect.DeepEqual(cfg, w.cfg) {
				t.Errorf("container.Config = %s, want %s", asJSON(cfg), asJSON(w.cfg))
			}
			if !reflect.DeepEqual(hc, w.hc) {
				t.Errorf("container.HostConfig = %s, want %s", asJSON(hc), asJSON(w.hc))
			}
			if !reflect.DeepEqual(nc, w.nc) {
				t.Errorf("network.NetworkingConfig = %s, want %s", asJSON(nc), asJSON(w.nc))
			}
		})
	}
}

func TestAPIConfigLeavesSpecAlone(t *testing.T) {
	spec := ContainerSpec{Name: "wiki", Image: "i", Labels: map[string]string{"a": "1"}}.normalized()
	cfg, _, _ := apiConfig(spec, "h")
	cfg.Labels["b"] = "2"
	if got, want := len(spec.Labels), 1; got != want {
		t.Errorf("spec labels after apiConfig: %d, want %d (the config must have its own map)", got, want)
	}
}

func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}
