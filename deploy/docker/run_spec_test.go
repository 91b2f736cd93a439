package docker

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

func TestRunConfig(t *testing.T) {
	type want struct {
		cfg *container.Config
		hc  *container.HostConfig
	}
	// Every case starts from a minimal spec and the engine types it gives,
	// and changes both.
	base := func() (RunSpec, want) {
		return RunSpec{Name: "backup-1", Image: "restic:0.18"}, want{
			cfg: &container.Config{
				Image: "restic:0.18", Env: []string{}, Labels: map[string]string{LabelRun: "1"},
				AttachStdout: true, AttachStderr: true,
			},
			hc: &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled}},
		}
	}
	tests := []struct {
		name   string
		change func(*RunSpec, *want)
	}{
		{"defaults", func(*RunSpec, *want) {}},
		{"command, entrypoint, user and env in key order", func(s *RunSpec, w *want) {
			s.Cmd, s.Entrypoint, s.User = []string{"backup", "--stdin"}, []string{"/usr/bin/restic"}, "1000:1000"
			s.Env = map[string]string{"RESTIC_REPOSITORY": "s3:x", "AWS_SECRET_ACCESS_KEY": "k=1"}
			w.cfg.Cmd, w.cfg.Entrypoint, w.cfg.User = []string{"backup", "--stdin"}, []string{"/usr/bin/restic"}, "1000:1000"
			w.cfg.Env = []string{"AWS_SECRET_ACCESS_KEY=k=1", "RESTIC_REPOSITORY=s3:x"}
		}},
		{"labels keep the caller's and add the run label", func(s *RunSpec, w *want) {
			s.Labels = map[string]string{"toolbox.app": "wiki", LabelRun: "0"}
			w.cfg.Labels = map[string]string{"toolbox.app": "wiki", LabelRun: "1"}
		}},
		{"stdin is opened once", func(s *RunSpec, w *want) {
			s.Stdin = strings.NewReader("")
			w.cfg.AttachStdin, w.cfg.OpenStdin, w.cfg.StdinOnce = true, true, true
		}},
		{"mounts, network none, memory", func(s *RunSpec, w *want) {
			s.Mounts = []Mount{
				{Volume: "wiki-data", Target: "/data", ReadOnly: true},
				{HostPath: "/srv/cache", Target: "/cache"},
			}
			s.Network, s.MemoryLimit = "none", 256<<20
			w.hc.Mounts = []mount.Mount{
				{Type: mount.TypeVolume, Source: "wiki-data", Target: "/data", ReadOnly: true},
				{Type: mount.TypeBind, Source: "/srv/cache", Target: "/cache"},
			}
			w.hc.NetworkMode, w.hc.Memory = "none", 256<<20
		}},
		{"a network by name", func(s *RunSpec, w *want) {
			s.Network = "wiki-net"
			w.hc.NetworkMode = "wiki-net"
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec, w := base()
			tc.change(&spec, &w)
			if err := spec.validate(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			labels := map[string]string{}
			for k, v := range spec.Labels {
				labels[k] = v
			}
			cfg, hc := runConfig(spec)
			if !reflect.DeepEqual(cfg, w.cfg) {
				t.Errorf("runConfig config =\n%+v\nwant\n%+v", cfg, w.cfg)
			}
			if !reflect.DeepEqual(hc, w.hc) {
				t.Errorf("runConfig host config =\n%+v\nwant\n%+v", hc, w.hc)
			}
			if len(spec.Labels) > 0 && !reflect.DeepEqual(spec.Labels, labels) {
				t.Errorf("runConfig changed the spec's labels to %v, want %v", spec.Labels, labels)
			}
		})
	}
}

func TestRunSpecValidate(t *testing.T) {
	ok := RunSpec{Name: "backup-1", Image: "restic:0.18"}
	tests := []struct {
		name   string
		change func(*RunSpec)
		want   string // "" = valid
	}{
		{"minimal", func(*RunSpec) {}, ""},
		{"no name", func(s *RunSpec) { s.Name = "" }, "no name"},
		{"no image", func(s *RunSpec) { s.Image = "" }, "no image"},
		{"env name with =", func(s *RunSpec) { s.Env = map[string]string{"A=B": "x"} }, `environment variable name "A=B"`},
		{"empty env name", func(s *RunSpec) { s.Env = map[string]string{"": "x"} }, `environment variable name ""`},
		{"relative mount target", func(s *RunSpec) { s.Mounts = []Mount{{Volume: "v", Target: "data"}} }, "absolute target"},
		{"volume and host path", func(s *RunSpec) { s.Mounts = []Mount{{Volume: "v", HostPath: "/x", Target: "/data"}} }, "want a volume name or a host path"},
		{"negative memory", func(s *RunSpec) { s.MemoryLimit = -1 }, "negative memory limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.change(&s)
			err := s.validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Values, secrets among them, stay out of the message.
	s := ok
	s.Name, s.Env = "", map[string]string{"A=B": "s3cret"}
	if err := s.validate(); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("validate() = %v, want an error without the value", err)
	}
}
