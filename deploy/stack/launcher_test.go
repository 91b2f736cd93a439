package stack

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
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

func discourseLauncher(t *testing.T) (Launcher, map[string]string, []byte) {
	t.Helper()
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
	l := Launcher(*app.Build)
	out, err := LauncherConfig("discourse", l, p.Services[l.Service])
	if err != nil {
		t.Fatal(err)
	}
	return l, LauncherVolumes(p.Services[l.Service]), out
}

// TestCheckLauncherConfig: the app.yml the toolbox writes passes; one that
// would steer the launcher's own `docker run` does not.
func TestCheckLauncherConfig(t *testing.T) {
	l, volumes, good := discourseLauncher(t)
	build := ContainerName("discourse", "build")
	if err := CheckLauncherConfig(l, volumes, build, good); err != nil {
		t.Fatalf("the toolbox's own app.yml: %v", err)
	}
	if !pinnedCommit.MatchString(l.Ref) {
		t.Errorf("the catalog's launcher ref %q is not a full commit id", l.Ref)
	}
	for name, bad := range map[string]string{
		"docker_args":    string(good) + "docker_args: --privileged -v /:/host\n",
		"links":          string(good) + "links:\n  - link: {name: x, alias: y}\n",
		"expose":         string(good) + "expose:\n  - \"22:22\"\n",
		"other template": strings.Replace(string(good), "templates/web.template.yml", "templates/web.ssl.template.yml", 1),
		"other base":     strings.Replace(string(good), l.BaseImage, "evil/base:1", 1),
		"bind volume":    strings.Replace(string(good), "host: tb-discourse-shared", "host: /etc", 1),
		"env line break": strings.Replace(string(good), "env:\n", "env:\n    EVIL: \"x\\n--privileged\"\n", 1),
		"not yaml":       "{",
		// The launcher mounts app.yml's volumes past the guard's label
		// checks: only the app's own, under the toolbox's names.
		"any volume":         strings.Replace(string(good), "host: tb-discourse-shared", "host: someones_data", 1),
		"another app's":      strings.Replace(string(good), "host: tb-discourse-shared", "host: tb-wiki-shared", 1),
		"own volume swapped": strings.Replace(string(good), "host: tb-discourse-shared", "host: tb-discourse-log", 1),
		"extra volume":       strings.Replace(string(good), "volumes:\n", "volumes:\n    - volume:\n        host: tb-discourse-shared\n        guest: /root\n", 1),
		"missing volume":     strings.Replace(string(good), "guest: /var/log", "guest: /shared", 1),
	} {
		t.Run(name, func(t *testing.T) {
			if bad == string(good) {
				t.Fatal("the test's change did not apply")
			}
			if err := CheckLauncherConfig(l, volumes, build, []byte(bad)); err == nil {
				t.Errorf("CheckLauncherConfig accepted:\n%s", bad)
			}
		})
	}
	// The same app.yml, copied into another app's build container, names
	// volumes that are not that app's; and only build containers get one.
	for _, c := range []string{ContainerName("forum", "build"), ContainerName("discourse", "app"), "discourse", "tb--build"} {
		if err := CheckLauncherConfig(l, volumes, c, good); err == nil {
			t.Errorf("the app.yml of discourse was accepted for the container %q", c)
		}
	}
}

// TestLauncherScriptChecksThePin runs the launcher's script with the real
// git on a local repository, with apk and docker replaced by scripts that
// record their arguments: at the pinned commit the launcher's command runs;
// at a ref that is not that commit the script stops before it.
func TestLauncherScriptChecksThePin(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs git (apt-get install git)")
		}
		t.Skip("no git")
	}
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	gitRun := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@t")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(filepath.Join(repo, "containers"), 0o755); err != nil {
		t.Fatal(err)
	}
	gitRun("init", "--quiet", "-b", "main")
	launcher := "#!/bin/sh\necho \"launcher $* at $(git rev-parse HEAD)\" >> \"$LOG\"\n"
	if err := os.WriteFile(filepath.Join(repo, "launcher"), []byte(launcher), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "containers", ".keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gitRun("add", ".")
	gitRun("commit", "--quiet", "-m", "one")
	pinned := gitRun("rev-parse", "HEAD")
	gitRun("commit", "--quiet", "--allow-empty", "-m", "two")
	gitRun("tag", "v2")

	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, stub := range []string{"apk", "docker"} {
		if err := os.WriteFile(filepath.Join(bin, stub), []byte("#!/bin/sh\necho \""+stub+" $*\" >> \"$LOG\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	config := filepath.Join(dir, "app.yml")
	if err := os.WriteFile(config, []byte("templates: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(ref string) (string, error) {
		work := t.TempDir()
		l := Launcher{Repository: repo, Ref: ref, Command: []string{"./launcher", "bootstrap", "app"}, Output: "local/app"}
		r := LauncherRunFor(l, "local/app:1")
		r.Env["CONFIG"] = config
		logFile := filepath.Join(work, "log")
		cmd := exec.Command(r.Entrypoint[0], append(r.Entrypoint[1:], r.Cmd...)...)
		cmd.Dir = work
		cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "LOG=" + logFile, "HOME=" + work}
		for k, v := range r.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		logged, _ := os.ReadFile(logFile)
		return string(logged) + string(out), err
	}
	out, err := run(pinned)
	if err != nil || !strings.Contains(out, "launcher bootstrap app at "+pinned) || !strings.Contains(out, "docker tag local/app local/app:1") {
		t.Errorf("at the pinned commit: %v\n%s", err, out)
	}
	for _, ref := range []string{"v2", "main", pinned[:12]} {
		out, err := run(ref)
		if err == nil || strings.Contains(out, "launcher bootstrap") || !strings.Contains(out, "not at the pinned commit") {
			t.Errorf("at ref %q: %v, want the script to stop before the launcher\n%s", ref, err, out)
		}
	}
}
