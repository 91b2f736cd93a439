package host

import (
	"context"
	"strconv"
	"time"

	"github.com/distribution/reference"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
)

// The docker guard (deploy/dockerguard): the bot reaches the engine only
// through it. It runs from the bot's own image (`toolbox docker-guard`), on
// no network, and it alone mounts the engine's socket; its own socket is in
// a volume that it and the bot mount.
const (
	GuardContainer = "toolbox-guard"
	guardVolume    = "toolbox-guard"
	// GuardLabel marks the guard's container and volume: the guard lets
	// the bot inspect them, never change them.
	GuardLabel = "toolbox.guard"
	// GuardListen is the guard's socket in its container. The volume is
	// mounted on the image's /tmp, so that a new volume takes /tmp's mode
	// (1777) and the guard, which runs as the bot's user, can create it.
	GuardListen = "/tmp/docker.sock"
	// botGuardDir is where the bot mounts that volume; DOCKER_HOST points
	// at the socket in it.
	botGuardDir = "/run/toolbox-guard"
	// guardEngineSocket is where the guard's container sees the engine's.
	guardEngineSocket = "/var/run/docker.sock"
)

// GuardEnv names the guard's settings, passed by up to its container.
const (
	EnvGuardListen  = "TOOLBOX_GUARD_LISTEN"  // the socket it serves
	EnvGuardEngine  = "TOOLBOX_GUARD_ENGINE"  // the engine's socket it forwards to
	EnvGuardProtect = "TOOLBOX_GUARD_PROTECT" // the bot image's repository, kept from builds, tags and pulls
	// EnvCgroupParent is the parent cgroup of every container (the guard
	// lets only that one through): a setting of the toolbox's, passed on to
	// the bot and the guard.
	EnvCgroupParent = "TOOLBOX_CGROUP_PARENT"
)

func guardLabels() map[string]string {
	l := ownLabels()
	l[stack.LabelService] = "guard"
	l[GuardLabel] = "1"
	return l
}

// guardSpec is the guard's container: the bot's image running
// `toolbox docker-guard`, with the engine's socket, on no network.
func guardSpec(socket socketInfo, image, cgroupParent string) docker.ContainerSpec {
	spec := docker.ContainerSpec{
		Name: GuardContainer, Image: image, Cmd: []string{"docker-guard"}, Labels: guardLabels(),
		Network: "none",
		Env: map[string]string{
			EnvGuardListen:  GuardListen,
			EnvGuardEngine:  guardEngineSocket,
			EnvGuardProtect: imageRepository(image),
		},
		Mounts: []docker.Mount{
			{Volume: guardVolume, Target: "/tmp"},
			{HostPath: socket.path, Target: guardEngineSocket},
		},
		GroupAdd: []string{strconv.Itoa(socket.gid)},
		// The figures and their sources: deploy/catalog/toolbox.go.
		MemoryLimit: catalog.Toolbox(catalog.ToolboxGuard).Limit, MemoryReservation: catalog.Toolbox(catalog.ToolboxGuard).Reservation,
		Health: &docker.Health{
			Test: []string{"CMD", BotBinary, "docker-guard", "health"}, Interval: 5 * time.Second,
			Timeout: 3 * time.Second, StartPeriod: 5 * time.Second, Retries: 3,
		},
	}
	if cgroupParent != "" {
		spec.Env[EnvCgroupParent] = cgroupParent
	}
	return spec
}

// imageRepository is ref's repository in familiar form ("toolbox").
func imageRepository(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarName(named)
}

// ensureGuard runs the guard and waits until it answers.
func ensureGuard(ctx context.Context, e *docker.Engine, cfg Config, image string, say func(string, ...any)) error {
	socket, err := engineSocket(ctx, e)
	if err != nil {
		return err
	}
	vl := ownLabels()
	vl[GuardLabel] = "1"
	if err := e.EnsureVolume(ctx, guardVolume, vl); err != nil {
		return err
	}
	res, err := e.EnsureContainer(ctx, guardSpec(socket, image, cfg.SSH.CgroupParent))
	if err != nil {
		return err
	}
	if res.Action != docker.ActionUnchanged {
		say("docker guard: %s", res.Action)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return e.WaitHealthy(wctx, GuardContainer)
}
