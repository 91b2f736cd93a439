package stack

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

func project(services ...types.ServiceConfig) *types.Project {
	p := &types.Project{Name: "t", Services: types.Services{}}
	for _, s := range services {
		p.Services[s.Name] = s
	}
	return p
}

func dependsOn(names ...string) types.DependsOnConfig {
	d := types.DependsOnConfig{}
	for _, n := range names {
		d[n] = types.ServiceDependency{Condition: types.ServiceConditionHealthy, Required: true}
	}
	return d
}

func svc(name string, deps ...string) types.ServiceConfig {
	s := types.ServiceConfig{Name: name}
	s.Image = name + ":1"
	s.DependsOn = dependsOn(deps...)
	return s
}

func TestDependencyOrder(t *testing.T) {
	for _, tc := range []struct {
		name    string
		p       *types.Project
		want    []string
		wantErr string
	}{
		{"alone", project(svc("web")), []string{"web"}, ""},
		{"chain", project(svc("web", "app"), svc("app", "db"), svc("db")), []string{"db", "app", "web"}, ""},
		{"diamond", project(svc("web", "db", "cache"), svc("db"), svc("cache"), svc("worker", "db")), []string{"cache", "db", "web", "worker"}, ""},
		{"cycle", project(svc("a", "b"), svc("b", "a")), nil, "cycle: a -> b -> a"},
		{"missing", project(svc("web", "db")), nil, `service "db" is depended on but not defined`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := dependencyOrder(tc.p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("dependencyOrder = %v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("dependencyOrder = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestSpec(t *testing.T) {
	secret := "s3cret"
	interval := types.Duration(2 * time.Second)
	retries := uint64(5)
	s := &Stack{SharedNetwork: "toolbox", Labels: map[string]string{"toolbox.test": "1"}}
	web := types.ServiceConfig{Name: "web", Restart: "always"}
	web.Image, web.MemLimit = "web:1", 256<<20
	web.Environment = types.MappingWithEquals{"PASSWORD": &secret, "UNSET": nil}
	web.Volumes = []types.ServiceVolumeConfig{
		{Type: types.VolumeTypeVolume, Source: "files", Target: "/srv/files"},
		{Type: types.VolumeTypeVolume, Source: "cache", Target: "/cache", ReadOnly: true},
	}
	web.HealthCheck = &types.HealthCheckConfig{Test: []string{"CMD", "true"}, Interval: &interval, Retries: &retries}
	spec, err := s.spec(s.placed("wiki", Placement{}), web, true)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name != "tb-wiki-web" || spec.Network != "tb-wiki" || !slices.Equal(spec.Aliases, []string{"web"}) || !slices.Equal(spec.ExtraNetworks, []string{"toolbox"}) {
		t.Errorf("names: %+v", spec)
	}
	if spec.Restart != "unless-stopped" || spec.MemoryLimit != 256<<20 {
		t.Errorf("restart %q, memory %d", spec.Restart, spec.MemoryLimit)
	}
	if _, ok := spec.Env["UNSET"]; ok || spec.Env["PASSWORD"] != secret {
		t.Errorf("env = %v", spec.Env)
	}
	if spec.Labels[LabelApp] != "wiki" || spec.Labels[LabelService] != "web" || spec.Labels[LabelManaged] != "1" || spec.Labels["toolbox.test"] != "1" {
		t.Errorf("labels = %v", spec.Labels)
	}
	if len(spec.Mounts) != 2 || spec.Mounts[0].Volume != "tb-wiki-cache" || !spec.Mounts[0].ReadOnly || spec.Mounts[1].Target != "/srv/files" {
		t.Errorf("mounts = %+v", spec.Mounts)
	}
	if spec.Health == nil || spec.Health.Interval != 2*time.Second || spec.Health.Retries != 5 {
		t.Errorf("health = %+v", spec.Health)
	}
	if other, _ := s.spec(s.placed("wiki", Placement{}), svc("db"), false); len(other.ExtraNetworks) != 0 {
		t.Errorf("a service that is not the entry joined %v", other.ExtraNetworks)
	}
	bind := web
	bind.Volumes = []types.ServiceVolumeConfig{{Type: types.VolumeTypeBind, Source: "/etc", Target: "/etc"}}
	if _, err := s.spec(s.placed("wiki", Placement{}), bind, false); err == nil || !strings.Contains(err.Error(), "only named volumes") {
		t.Errorf("a bind mount: err = %v", err)
	}
}
