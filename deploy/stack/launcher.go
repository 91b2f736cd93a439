package stack

import (
	"context"
	"fmt"
	"maps"
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
// engine's socket, and git and bash added at start.
const LauncherImage = "docker:27.5.1-cli"

// engineSocket is the engine's socket on its machine, which the launcher's
// container mounts: the launcher drives the engine with the docker CLI.
const engineSocket = "/var/run/docker.sock"

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
const launcherScript = `set -eu
apk add --no-cache bash git >/dev/null
git clone --quiet "$REPOSITORY" /src
cd /src
git checkout --quiet "$REF"
cp /build/app.yml containers/app.yml
"$@"
docker tag "$OUTPUT" "$IMAGE"`

// Build makes the image of l.Service with its upstream launcher, unless the
// engine already has it.
func (s *Stack) Build(ctx context.Context, app string, l Launcher, p *types.Project, progress func(string)) error {
	svc, ok := p.Services[l.Service]
	if !ok {
		return fmt.Errorf("build: no service %q", l.Service)
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
	if _, err := s.Engine.EnsureContainer(ctx, docker.ContainerSpec{
		Name: name, Image: LauncherImage, Labels: labels, Restart: "no",
		Entrypoint: []string{"sh", "-c", launcherScript, "launcher"}, Cmd: l.Command,
		Env:    map[string]string{"REPOSITORY": l.Repository, "REF": l.Ref, "OUTPUT": l.Output, "IMAGE": svc.Image},
		Files:  map[string][]byte{"/build/app.yml": appYML},
		Mounts: []docker.Mount{{HostPath: engineSocket, Target: engineSocket}},
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
		return fmt.Errorf("building %s failed (exit %d): %s", svc.Image, code, strings.TrimSpace(logs))
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
