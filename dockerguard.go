package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/dockerguard"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/host"
)

// dockerGuardCommand runs the guard, or checks it (health). It reads its
// own few settings, not the bot's configuration: the guard's container has
// none of it.
func dockerGuardCommand(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	listen := getenv(host.EnvGuardListen)
	if listen == "" {
		listen = host.GuardListen
	}
	engineSocket := getenv(host.EnvGuardEngine)
	if engineSocket == "" {
		engineSocket = "/var/run/docker.sock"
	}
	switch {
	case len(args) == 1 && args[0] == "health":
		return guardHealth(ctx, listen)
	case len(args) > 0:
		return fmt.Errorf("unknown argument %q; usage: toolbox docker-guard [health]", args[0])
	}
	policy, err := guardPolicy(getenv(host.EnvGuardProtect), getenv(host.EnvCgroupParent))
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	// A socket left by a guard that was killed is in the way.
	if fi, err := os.Lstat(listen); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		_ = os.Remove(listen)
	}
	ln, err := net.Listen("unix", listen)
	if err != nil {
		return fmt.Errorf("docker guard: listen on %s: %w", listen, err)
	}
	if err := os.Chmod(listen, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("docker guard: %w", err)
	}
	log.Info("docker guard listening", "socket", listen, "engine", engineSocket)
	return dockerguard.New(engineSocket, policy, log).Serve(ctx, ln, 10*time.Second)
}

// guardHealth asks the guard for the engine's _ping.
func guardHealth(ctx context.Context, socket string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("docker guard: %w", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("docker guard: the engine's _ping answered %s", res.Status)
	}
	return nil
}

// guardPolicy is what the guard lets the bot do: the toolbox's labels,
// and the engine's socket only for the launchers of the embedded catalog,
// exactly as the catalog describes them.
func guardPolicy(botRepository, cgroupParent string) (dockerguard.Policy, error) {
	apps, err := catalog.All()
	if err != nil {
		return dockerguard.Policy{}, err
	}
	protected := []string{"toolbox", stack.LauncherImage}
	if botRepository != "" {
		protected = append(protected, botRepository)
	}
	pinned := []string{stack.LauncherImage}
	var grants []dockerguard.SocketGrant
	for _, a := range apps {
		if a.Build == nil {
			continue
		}
		l := stack.Launcher(*a.Build)
		image, err := builtImage(a, l.Output)
		if err != nil {
			return dockerguard.Policy{}, err
		}
		volumes, err := launcherVolumes(a, l.Service)
		if err != nil {
			return dockerguard.Policy{}, err
		}
		run := stack.LauncherRunFor(l, image)
		grants = append(grants, dockerguard.SocketGrant{
			Image: run.Image, Entrypoint: run.Entrypoint, Cmd: run.Cmd, Env: run.Env,
			Target: run.Socket, ConfigPath: run.ConfigPath,
			CheckConfig: func(container string, b []byte) error {
				return stack.CheckLauncherConfig(l, volumes, container, b)
			},
		})
		// The launcher runs its base image to read its configuration: an
		// image under that name would steer the launcher's own `docker run`.
		protected = append(protected, l.BaseImage)
		pinned = append(pinned, l.BaseImage)
	}
	return dockerguard.Policy{
		ManagedLabel: stack.LabelManaged, ManagedValue: "1",
		ProtectedLabel: host.GuardLabel, ProtectedValue: "1",
		ProtectedRepositories: protected, PinnedPulls: pinned,
		EngineSocket: stack.LauncherSocket, SocketGrants: grants,
		CgroupParent: cgroupParent,
	}, nil
}

// builtImage is the image of app that its launcher's output is tagged as.
func builtImage(a catalog.App, output string) (string, error) {
	for _, ref := range a.Images() {
		if n, err := reference.ParseNormalizedNamed(ref); err == nil && reference.FamiliarName(n) == output {
			return ref, nil
		}
	}
	return "", errors.New("catalog: " + a.Name + ": no image is named after its launcher's output " + output)
}

// launcherVolumes are the volumes of app a's service built by its launcher.
// Volumes are named in the Compose file itself, so placeholder values of
// the app's variables load them as any install does.
func launcherVolumes(a catalog.App, service string) (map[string]string, error) {
	vars := map[string]string{catalog.VarDomain: a.Name + ".example.org", catalog.VarApp: a.Name}
	for _, s := range a.Secrets {
		vars[s.Name] = strings.Repeat("x", max(s.Length, 1))
	}
	for _, s := range a.Settings {
		vars[s.Name] = cmp.Or(s.Default, "placeholder")
	}
	p, err := a.Project(context.Background(), vars)
	if err != nil {
		return nil, err
	}
	svc, ok := p.Services[service]
	if !ok {
		return nil, errors.New("catalog: " + a.Name + ": no service " + service + " for its launcher")
	}
	return stack.LauncherVolumes(svc), nil
}
