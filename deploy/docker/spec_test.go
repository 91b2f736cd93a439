package docker

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/jsonstream"
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
	}
}

func TestPinnedHostKey(t *testing.T) {
	for _, in := range []string{"", "# only a comment\n"} {
		if _, err := pinnedHostKey(in); err == nil || !strings.Contains(err.Error(), "refusing") {
			t.Errorf("pinnedHostKey(%q) = %v, want a refusal", in, err)
		}
	}
	if _, err := pinnedHostKey("example.org ssh-ed25519 not-base64"); err == nil {
		t.Error("pinnedHostKey(garbage) = nil error, want one")
	}
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for _, in := range []string{key, "[vm.example.org]:2222 " + key + " comment", "|1|c2FsdA==|aGFzaA== " + key} {
		if _, err := pinnedHostKey(in); err != nil {
			t.Errorf("pinnedHostKey(%q) = %v, want it accepted", in, err)
		}
	}
}
