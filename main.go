// Command toolbox is a chat-ops bot that runs a collective's tools from its
// Mattermost: see README.md.
//
// This package reads the configuration, wires the packages together and
// dispatches the command line; it is the only one that knows them all, and
// holds no logic of its own. Data flows chat -> bot -> commands -> deploy/*
// and state; control is the terminal's way in, beside bot; engine adapts
// deploy/stack to commands; host is the toolbox's own footprint on the engine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/toolbox-collective/toolbox/host"
	"github.com/toolbox-collective/toolbox/host/images"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "toolbox:", err)
		}
		os.Exit(1)
	}
}

func usage() string {
	return `toolbox runs a collective's tools from its Mattermost.

Usage:
  toolbox up [--build-images]        deploy the proxy, the bot and Mattermost on the local Docker engine, and set them up;
                                     --build-images builds here the images no registry gives
  toolbox images build [--env] [--replace] [name...]
                                     build the images up and the tests need from Go modules and Debian's packages
                                     (names: ` + strings.Join(images.Names(), ", ") + `; --env prints where the tests find them)
  toolbox down [--yes] [--purge]     remove them (and the apps); --purge deletes their data too
  toolbox serve                      run the bot's HTTP server (Mattermost calls it)
  toolbox do [--yes] "<text>"        run a /toolbox command from this terminal, as the operator
  toolbox mattermost bootstrap       set up the admin, team, channel, bot and /toolbox command
  toolbox backup key                 show the backup repository's password (here only, never in the chat)
  toolbox recover [--build-images]   on a new machine, up from the backups alone: the state, Mattermost and every app
                                     with its data (TOOLBOX_BACKUP_PASSWORD and the repository's settings needed)
  toolbox state backup FILE          write a consistent copy of the state to FILE
  toolbox state recover              fetch the newest state from the backup repository, when there is none here
  toolbox proxy init|ca              prepare Caddy's config, or print its local CA (TOOLBOX_PROXY_ADMIN)
  toolbox version                    print the version

Configuration is read from the environment; see README.md.
`
}

// run is the whole program, testable: main only adds the process around it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return flag.ErrHelp
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	switch args[0] {
	case "up", "recover":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		fs.SetOutput(stderr)
		build := fs.Bool("build-images", false, "build on this machine the images no registry can give")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		hc := cfg.host()
		hc.BuildImages, hc.Recover = *build, args[0] == "recover"
		if hc.Recover && cfg.BackupPassword == "" {
			return errors.New("toolbox recover needs TOOLBOX_BACKUP_PASSWORD, the backup repository's password (as `toolbox backup key` showed it), and the repository's settings (TOOLBOX_BACKUP_REPOSITORY and its credentials) when it is not on this machine")
		}
		return host.Up(ctx, hc, log, stdout)
	case "down":
		fs := flag.NewFlagSet("down", flag.ContinueOnError)
		fs.SetOutput(stderr)
		yes := fs.Bool("yes", false, "do not ask for confirmation")
		purge := fs.Bool("purge", false, "delete the data volumes too")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return host.Down(ctx, cfg.host(), stdin, stdout, *yes, *purge)
	case "images":
		return imagesCommand(ctx, cfg, args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheck(ctx, cfg)
	case "serve":
		return serve(ctx, cfg, log)
	case "do":
		return doCommand(ctx, cfg, log, args[1:], stdin, stdout)
	case "mattermost":
		if len(args) < 2 || args[1] != "bootstrap" {
			return errors.New("usage: toolbox mattermost bootstrap")
		}
		return bootstrapCommand(ctx, cfg, log, stdout)
	case "backup":
		if len(args) != 2 || args[1] != "key" {
			return errors.New("usage: toolbox backup key")
		}
		return doCommand(ctx, cfg, log, []string{"backup key"}, stdin, stdout)
	case "state":
		switch {
		case len(args) == 3 && args[1] == "backup":
			return stateBackup(ctx, cfg, args[2], stdout)
		case len(args) == 2 && args[1] == "recover":
			return stateRecover(ctx, cfg, stdout)
		}
		return errors.New("usage: toolbox state backup FILE | toolbox state recover")
	case "proxy":
		if len(args) != 2 || (args[1] != "init" && args[1] != "ca") {
			return errors.New("usage: toolbox proxy init|ca")
		}
		return proxyCommand(ctx, cfg, args[1], stdout)
	case "version":
		fmt.Fprintln(stdout, "toolbox", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage())
		return nil
	}
	fmt.Fprint(stderr, usage())
	return fmt.Errorf("unknown command %q", args[0])
}
