package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/host"
)

// TestGuardPolicy: the guard grants the engine's socket to Discourse's
// launcher only, at its pinned commit, and keeps the bot's, the launcher's
// and the launcher's base image's names from local images.
func TestGuardPolicy(t *testing.T) {
	p, err := guardPolicy("registry.example.org/toolbox-bot", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SocketGrants) != 1 {
		t.Fatalf("grants = %d, want 1 (Discourse's launcher)", len(p.SocketGrants))
	}
	g := p.SocketGrants[0]
	app, _ := catalog.Get("discourse")
	if g.Image != stack.LauncherImage || g.Env["REF"] != app.Build.Ref || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(g.Env["REF"]) ||
		!strings.HasPrefix(g.Env["IMAGE"], app.Build.Output+":") || g.Target != stack.LauncherSocket {
		t.Errorf("the launcher's grant = image %q env %v target %q", g.Image, g.Env, g.Target)
	}
	for _, want := range []string{"toolbox", "registry.example.org/toolbox-bot", stack.LauncherImage, app.Build.BaseImage} {
		found := false
		for _, r := range p.ProtectedRepositories {
			found = found || r == want
		}
		if !found {
			t.Errorf("protected repositories %v lack %q", p.ProtectedRepositories, want)
		}
	}
	// The grant's check knows the app's own volumes: an install's app.yml
	// passes for its build container, not for another app's.
	vars := map[string]string{catalog.VarDomain: "forum.example.org", catalog.VarApp: "forum"}
	for _, s := range app.Secrets {
		vars[s.Name] = strings.Repeat("x", s.Length)
	}
	for _, s := range app.Settings {
		vars[s.Name] = "value"
	}
	proj, err := app.Project(context.Background(), vars)
	if err != nil {
		t.Fatal(err)
	}
	appYML, err := stack.LauncherConfig("forum", stack.Launcher(*app.Build), proj.Services[app.Build.Service])
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CheckConfig(stack.ContainerName("forum", "build"), appYML); err != nil {
		t.Errorf("the app.yml of the install forum: %v", err)
	}
	if err := g.CheckConfig(stack.ContainerName("wiki", "build"), appYML); err == nil {
		t.Error("the app.yml of the install forum was accepted for the build of wiki")
	}
	if p.ManagedLabel != stack.LabelManaged || p.ProtectedLabel != host.GuardLabel {
		t.Errorf("labels: managed %q, protected %q", p.ManagedLabel, p.ProtectedLabel)
	}
}

// TestDockerGuardCommand runs `toolbox docker-guard` on a socket of its
// own in front of the machine's engine, checks it with `docker-guard
// health`, drives the engine through it, and stops it as SIGTERM would.
func TestDockerGuardCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"docker-guard", "--help"}, func(string) string { return "" }, nil, &out, io.Discard); err != nil || !strings.Contains(out.String(), "Usage: toolbox docker-guard [health]") {
		t.Errorf("docker-guard --help: %v, %q", err, out.String())
	}
	if _, err := os.Stat("/var/run/docker.sock"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test needs the Docker engine's socket /var/run/docker.sock")
		}
		t.Skip("no Docker engine")
	}
	socket := filepath.Join(t.TempDir(), "guard.sock")
	env := map[string]string{host.EnvGuardListen: socket}
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"docker-guard"}, getenv, nil, io.Discard, io.Discard) }()
	var err error
	for range 100 {
		if err = run(context.Background(), []string{"docker-guard", "health"}, getenv, nil, io.Discard, io.Discard); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("docker-guard health: %v", err)
	}
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the guard's socket: %v, %v; want mode 0600", fi.Mode(), err)
	}
	e, err := docker.Connect(context.Background(), docker.Config{Host: "unix://" + socket})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Volumes(context.Background(), map[string]string{stack.LabelManaged: "1"}); err != nil {
		t.Errorf("a list through the guard: %v", err)
	}
	if err := e.EnsureVolume(context.Background(), "tb-guard-unlabelled-test", nil); err == nil || !strings.Contains(err.Error(), "refused by the toolbox's docker guard") {
		_ = e.RemoveVolume(context.Background(), "tb-guard-unlabelled-test")
		t.Errorf("an unlabelled volume through the guard: %v, want refused", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("docker-guard stopped with %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("docker-guard did not stop")
	}
}
