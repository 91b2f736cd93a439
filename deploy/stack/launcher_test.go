package stack

import (
	"context"
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
)

// TestLauncherConfig writes Discourse's app.yml from its catalog entry.
func TestLauncherConfig(t *testing.T) {
	app, err := catalog.Get("discourse")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{catalog.VarDomain: "forum.example.org", catalog.VarApp: "discourse"}
	for _, s := range app.Secrets {
		vars[s.Name] = strings.Repeat("x", s.Length)
	}
	for _, s := range app.Settings {
		vars[s.Name] = "value-of-" + strings.ToLower(s.Name)
	}
	p, err := app.Project(context.Background(), vars)
	if err != nil {
		t.Fatal(err)
	}
	b := app.Build
	out, err := LauncherConfig("discourse", Launcher{Service: b.Service, BaseImage: b.BaseImage, Templates: b.Templates, Params: b.Params}, p.Services[b.Service])
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		BaseImage string            `yaml:"base_image"`
		Templates []string          `yaml:"templates"`
		Params    map[string]string `yaml:"params"`
		Env       map[string]string `yaml:"env"`
		Volumes   []struct {
			Volume struct{ Host, Guest string } `yaml:"volume"`
		} `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(out, &got); err != nil {
		t.Fatalf("app.yml is not YAML: %v\n%s", err, out)
	}
	if got.BaseImage != b.BaseImage || len(got.Templates) != len(b.Templates) || got.Params["version"] != app.Version {
		t.Errorf("app.yml base %q, templates %v, params %v", got.BaseImage, got.Templates, got.Params)
	}
	if got.Env["DISCOURSE_HOSTNAME"] != "forum.example.org" || got.Env["DISCOURSE_SMTP_ADDRESS"] != "value-of-smtp_host" {
		t.Errorf("app.yml env = %v", got.Env)
	}
	vols := map[string]string{}
	for _, v := range got.Volumes {
		vols[v.Volume.Guest] = v.Volume.Host
	}
	if vols["/shared"] != "tb-discourse-shared" || vols["/var/log"] != "tb-discourse-log" {
		t.Errorf("app.yml volumes = %v: the bootstrap must work on the app's own volumes", vols)
	}
}
