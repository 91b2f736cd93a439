package stack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/toolbox-collective/toolbox/deploy/docker"
)

// Launcher describes an image that upstream supports building only on the
// machine, with its own launcher (Discourse's discourse_docker): clone
// Repository at Ref, write containers/app.yml, run Command, and tag the
// image it leaves (Output) as the service's image.
//
// Its fields are those of catalog.Build, in the same order, so that the
// engine adapter converts one into the other (stack.Launcher(b)) instead of
// copying fields; a change to one that the other lacks stops the build.
type Launcher struct {
	Service    string
	Repository string
	Ref        string
	BaseImage  string
	Templates  []string
	Params     map[string]string
	Command    []string
	Output     string
}

// LauncherImage runs the launcher: a shell, the Docker CLI talking to the
// engine's socket, and git and bash added at start. No digest of it could be
// confirmed from upstream's sources, so it stays a tag; the docker guard lets
// nothing but a pull from the registry put an image under this name.
const LauncherImage = "docker:27.5.1-cli"

// LauncherSocket is the engine's socket on its machine, which the launcher's
// container mounts: the launcher drives the engine with the docker CLI
// (discourse_docker runs its own containers, with binds and without the
// toolbox's labels, which the docker guard would refuse). The guard lets
// this bind through only for a container that runs exactly the catalog's
// launcher at its pinned commit (LauncherRunFor), refuses exec in it, and
// lets only an app.yml that CheckLauncherConfig accepts be copied into it.
const LauncherSocket = "/var/run/docker.sock"

// launcherConfigPath is where the launcher's app.yml is copied in.
const launcherConfigPath = "/build/app.yml"

// pinnedCommit is a full commit id: the launcher is cloned at one, and the
// clone is checked to be at it.
var pinnedCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

// LauncherConfig is the launcher's containers/app.yml for svc of app: the
// catalog's templates and parameters, the service's environment, and its
// volumes under the toolbox's names, so that the bootstrap (which migrates
// the database kept in them) works on the volumes the app will run with.
func LauncherConfig(app string, l Launcher, svc types.ServiceConfig) ([]byte, error) {
	env := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	type hostGuest struct {
		Host  string `yaml:"host"`
		Guest string `yaml:"guest"`
	}
	type volume struct {
		Volume hostGuest `yaml:"volume"`
	}
	var vols []volume
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeVolume {
			return nil, fmt.Errorf("service %s: only named volumes are supported, not %s %q", svc.Name, v.Type, v.Source)
		}
		vols = append(vols, volume{hostGuest{Host: VolumeName(app, v.Source), Guest: v.Target}})
	}
	cfg := struct {
		BaseImage string            `yaml:"base_image,omitempty"`
		Templates []string          `yaml:"templates"`
		Params    map[string]string `yaml:"params,omitempty"`
		Env       map[string]string `yaml:"env"`
		Volumes   []volume          `yaml:"volumes"`
	}{l.BaseImage, l.Templates, l.Params, env, vols}
	return yaml.Marshal(cfg)
}

// launcherScript clones the launcher and runs it; its inputs come as
// environment variables, so nothing is interpolated into the script.
// The clone goes to src in the working folder (/ in the container).
const launcherScript = `set -eu
apk add --no-cache bash git >/dev/null
git clone --quiet "$REPOSITORY" src
cd src
git -c advice.detachedHead=false checkout --quiet --detach "$REF"
head=$(git rev-parse HEAD)
if [ "$head" != "$REF" ]; then
  echo "the launcher's clone is at $head, not at the pinned commit $REF" >&2
  exit 1
fi
cp "$CONFIG" containers/app.yml
"$@"
docker tag "$OUTPUT" "$IMAGE"`

// Build makes the image of l.Service with its upstream launcher, unless the
// engine already has it.
func (s *Stack) Build(ctx context.Context, app string, l Launcher, p *types.Project, progress func(string)) error {
	svc, ok := p.Services[l.Service]
	if !ok {
		return fmt.Errorf("build: no service %q", l.Service)
	}
	if !pinnedCommit.MatchString(l.Ref) {
		return fmt.Errorf("build: the launcher's ref %q is not a full commit id: it is pinned to one, and checked after cloning", l.Ref)
	}
	if ok, err := s.Engine.ImagePresent(ctx, svc.Image); err != nil || ok {
		return err
	}
	appYML, err := LauncherConfig(app, l, svc)
	if err != nil {
		return err
	}
	labels := s.labels(app)
	for _, v := range slices.Sorted(maps.Keys(p.Volumes)) {
		if err := s.Engine.EnsureVolume(ctx, VolumeName(app, v), labels); err != nil {
			return err
		}
	}
	if err := s.Engine.PullImage(ctx, LauncherImage, progress); err != nil {
		return err
	}
	name := ContainerName(app, "build")
	labels[LabelService] = "build"
	_ = s.Engine.RemoveContainer(ctx, name) // a build left by a crash starts over
	run := LauncherRunFor(l, svc.Image)
	if _, err := s.Engine.EnsureContainer(ctx, docker.ContainerSpec{
		Name: name, Image: run.Image, Labels: labels, Restart: "no",
		Entrypoint: run.Entrypoint, Cmd: run.Cmd, Env: run.Env,
		Files:  map[string][]byte{run.ConfigPath: appYML},
		Mounts: []docker.Mount{{HostPath: run.Socket, Target: run.Socket}},
	}); err != nil {
		return err
	}
	defer func() { _ = s.Engine.RemoveContainer(context.WithoutCancel(ctx), name) }()
	progress(fmt.Sprintf("building %s with %s (this takes a while)", svc.Image, strings.Join(l.Command, " ")))
	code, err := s.waitBuild(ctx, name, progress)
	if err != nil {
		return err
	}
	if code != 0 {
		logs, _ := s.Engine.Logs(ctx, name, 10)
		return fmt.Errorf("building %s failed (exit %d): %s", svc.Image, code, docker.LogTail(logs))
	}
	if ok, err := s.Engine.ImagePresent(ctx, svc.Image); err != nil || !ok {
		return fmt.Errorf("building %s left no image (%v)", svc.Image, err)
	}
	return nil
}

// waitBuild waits for the build container to stop, passing on its last log
// line every half minute.
func (s *Stack) waitBuild(ctx context.Context, name string, progress func(string)) (int, error) {
	type exit struct {
		code int
		err  error
	}
	done := make(chan exit, 1)
	go func() {
		code, err := s.Engine.WaitExit(ctx, name)
		done <- exit{code, err}
	}()
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.code, r.err
		case <-tick.C:
			if line, err := s.Engine.Logs(ctx, name, 1); err == nil && strings.TrimSpace(line) != "" {
				progress(strings.TrimSpace(line))
			}
		}
	}
}

// LauncherRun is what the launcher's container runs, all of it from the
// catalog: the docker guard grants the engine's socket to exactly this.
type LauncherRun struct {
	Image      string
	Entrypoint []string
	Cmd        []string
	Env        map[string]string
	Socket     string // the engine's socket, bound at the same path
	ConfigPath string // the one file copied in: the launcher's app.yml
}

// LauncherRunFor is the launcher's container for l, tagging its output as image.
func LauncherRunFor(l Launcher, image string) LauncherRun {
	return LauncherRun{
		Image:      LauncherImage,
		Entrypoint: []string{"sh", "-c", launcherScript, "launcher"},
		Cmd:        slices.Clone(l.Command),
		Env:        map[string]string{"REPOSITORY": l.Repository, "REF": l.Ref, "OUTPUT": l.Output, "IMAGE": image, "CONFIG": launcherConfigPath},
		Socket:     LauncherSocket,
		ConfigPath: launcherConfigPath,
	}
}

// LauncherVolumes are the volumes of a launcher's service, by the path
// they are mounted at (guest) to their name in the Compose file: app.yml
// mounts each as VolumeName(app, name).
func LauncherVolumes(svc types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume {
			out[v.Target] = v.Source
		}
	}
	return out
}

// launcherApp is the app whose build container is called container
// (ContainerName(app, "build")).
func launcherApp(container string) (string, bool) {
	app := strings.TrimSuffix(strings.TrimPrefix(container, "tb-"), "-build")
	return app, app != "" && ContainerName(app, "build") == container
}

// CheckLauncherConfig vets an app.yml for l's launcher as LauncherConfig
// writes it, for the build container called container, whose service mounts
// volumes (LauncherVolumes): the launcher turns parts of app.yml into
// arguments of its own `docker run` (docker_args, binds from volume hosts
// that are paths, links, ports), run with the engine's socket and past the
// docker guard's label checks, so anything else is refused, and its volumes
// are exactly the app's own, under the names LauncherConfig gives them.
func CheckLauncherConfig(l Launcher, volumes map[string]string, container string, data []byte) error {
	app, ok := launcherApp(container)
	if !ok {
		return fmt.Errorf("the container %q is not an app's build container", container)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("not YAML: %w", err)
	}
	for k := range raw {
		switch k {
		case "base_image", "templates", "params", "env", "volumes":
		default:
			return fmt.Errorf("the key %q is not one the toolbox writes", k)
		}
	}
	var cfg struct {
		BaseImage string            `yaml:"base_image"`
		Templates []string          `yaml:"templates"`
		Params    map[string]string `yaml:"params"`
		Env       map[string]string `yaml:"env"`
		Volumes   []struct {
			Volume struct {
				Host  string `yaml:"host"`
				Guest string `yaml:"guest"`
			} `yaml:"volume"`
		} `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("not the launcher's configuration: %w", err)
	}
	var problems []error
	if cfg.BaseImage != l.BaseImage {
		problems = append(problems, fmt.Errorf("base image %q, not the catalog's %q", cfg.BaseImage, l.BaseImage))
	}
	if !slices.Equal(cfg.Templates, l.Templates) {
		problems = append(problems, fmt.Errorf("templates %v, not the catalog's %v", cfg.Templates, l.Templates))
	}
	if !maps.Equal(cfg.Params, l.Params) && (len(cfg.Params) > 0 || len(l.Params) > 0) {
		problems = append(problems, errors.New("parameters other than the catalog's"))
	}
	for k, v := range cfg.Env {
		// The launcher passes each variable as one line of arguments.
		if strings.ContainsAny(k+v, "\n\r") || strings.ContainsAny(k, " =") {
			problems = append(problems, fmt.Errorf("the variable %q has a line break or a bad name", k))
		}
	}
	seen := map[string]bool{}
	for _, v := range cfg.Volumes {
		h, guest := v.Volume.Host, v.Volume.Guest
		source, ok := volumes[guest]
		if !ok || seen[guest] || h != VolumeName(app, source) {
			problems = append(problems, fmt.Errorf("the volume %q at %q is not one of the app %s's own volumes", h, guest, app))
		}
		seen[guest] = true
	}
	if len(seen) != len(volumes) {
		problems = append(problems, fmt.Errorf("the volumes are not exactly the app %s's own (%d of %d)", app, len(seen), len(volumes)))
	}
	return errors.Join(problems...)
}
