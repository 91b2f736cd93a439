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

// subcommand is one verb of the command line: its synopsis and help, shown by
// `toolbox help` and by its own --help, and what it runs.
type subcommand struct {
	name     string
	synopsis string // the arguments, after "toolbox <name>"
	help     string // what it does, one or more lines
	run      func(ctx context.Context, p *program, args []string) error
}

// program is what every subcommand may use: the configuration, read once,
// and the process's streams.
type program struct {
	cfg            config
	log            *slog.Logger
	stdin          io.Reader
	stdout, stderr io.Writer
}

// subcommands are the command line, in the order `toolbox help` lists them.
func subcommands() []subcommand {
	return []subcommand{
		{"up", "[--build-images]", "deploy the proxy, the bot and Mattermost on the local Docker engine, and set them up;\n" +
			"--build-images builds here the images no registry gives; a machine without swap gets a swap file\n" +
			"(/swapfile, as large as the memory up to 4 GiB; TOOLBOX_SWAP=off or a size)", func(ctx context.Context, p *program, args []string) error {
			return upCommand(ctx, p, "up", args)
		}},
		{"images", "build [--env] [--replace] [name...]", "build the images up and the tests need from Go modules and Debian's packages\n" +
			"(names: " + strings.Join(images.Names(), ", ") + "; --env prints where the tests find them)", func(ctx context.Context, p *program, args []string) error {
			return imagesCommand(ctx, p.cfg, args, p.stdout, p.stderr)
		}},
		{"down", "[--yes] [--purge]", "remove them (and the apps); --purge deletes their data too", downCommand},
		{"serve", "", "run the bot's HTTP server (Mattermost calls it)", func(ctx context.Context, p *program, _ []string) error {
			return serve(ctx, p.cfg, p.log)
		}},
		{"healthcheck", "", "exit 0 when the server of this configuration answers (the bot container's health check)", func(ctx context.Context, p *program, _ []string) error {
			return healthcheck(ctx, p.cfg)
		}},
		{"do", `[--yes] "<text>"`, "run a /toolbox command from this terminal, as the operator", func(ctx context.Context, p *program, args []string) error {
			return doCommand(ctx, p.cfg, p.log, args, p.stdin, p.stdout)
		}},
		{"mattermost", "bootstrap | forget-admin-password", "bootstrap: set up the admin, team, channel, bot and /toolbox command;\n" +
			"forget-admin-password: delete the first admin's password from the state once it was shown (up does it)", func(ctx context.Context, p *program, args []string) error {
			switch {
			case len(args) == 1 && args[0] == "bootstrap":
				return bootstrapCommand(ctx, p.cfg, p.log, p.stdout)
			case len(args) == 1 && args[0] == "forget-admin-password":
				return forgetAdminPassword(ctx, p.cfg, p.stdout)
			}
			return errors.New("usage: toolbox mattermost bootstrap | toolbox mattermost forget-admin-password")
		}},
		{"backup", "key", "show the backup repository's password (here only, never in the chat)", func(ctx context.Context, p *program, args []string) error {
			if len(args) != 1 || args[0] != "key" {
				return errors.New("usage: toolbox backup key")
			}
			return doCommand(ctx, p.cfg, p.log, []string{"backup key"}, p.stdin, p.stdout)
		}},
		{"recover", "[--build-images]", "on a new machine, up from the backups alone: the state, Mattermost and every app\n" +
			"with its data (TOOLBOX_BACKUP_PASSWORD and the repository's settings needed)", func(ctx context.Context, p *program, args []string) error {
			return upCommand(ctx, p, "recover", args)
		}},
		{"state", "backup FILE | recover | rotate-key", "backup FILE: write a consistent copy of the state to FILE (its secrets stay sealed);\n" +
			"recover: fetch the newest state and its key from the backup repository, when there is none here;\n" +
			"rotate-key: seal the state's secrets with a new key (the key file beside the state)", func(ctx context.Context, p *program, args []string) error {
			switch {
			case len(args) == 2 && args[0] == "backup":
				return stateBackup(ctx, p.cfg, args[1], p.stdout)
			case len(args) == 1 && args[0] == "recover":
				return stateRecover(ctx, p.cfg, p.stdout)
			case len(args) == 1 && args[0] == "rotate-key":
				return stateRotateKey(ctx, p.cfg, p.stdout)
			}
			return errors.New("usage: toolbox state backup FILE | toolbox state recover | toolbox state rotate-key")
		}},
		{"proxy", "init|ca", "prepare Caddy's config, or print its local CA (TOOLBOX_PROXY_ADMIN)", func(ctx context.Context, p *program, args []string) error {
			if len(args) != 1 || (args[0] != "init" && args[0] != "ca") {
				return errors.New("usage: toolbox proxy init|ca")
			}
			return proxyCommand(ctx, p.cfg, args[0], p.stdout)
		}},
		{"docker-guard", "[health]", "serve the filtered Docker API the bot uses, on TOOLBOX_GUARD_LISTEN, forwarding to the engine's\n" +
			"socket TOOLBOX_GUARD_ENGINE only what the toolbox does (up runs it in its own container);\n" +
			"health: ask the running guard for the engine's _ping", nil}, // run starts it: it reads none of the bot's configuration
		{"version", "", "print the version", func(_ context.Context, p *program, _ []string) error {
			fmt.Fprintln(p.stdout, "toolbox", version)
			return nil
		}},
		{"help", "[command]", "print this help, or a command's", nil}, // run handles it: it needs no configuration
	}
}

func lookup(name string) (subcommand, bool) {
	for _, c := range subcommands() {
		if c.name == name {
			return c, true
		}
	}
	return subcommand{}, false
}

func usage() string {
	var b strings.Builder
	b.WriteString("toolbox runs a collective's tools from its Mattermost.\n\nUsage:\n")
	for _, c := range subcommands() {
		line := strings.TrimSpace("toolbox " + c.name + " " + c.synopsis)
		if len(line) > 38 {
			fmt.Fprintf(&b, "  %s\n", line)
			line = ""
		}
		for h := range strings.Lines(c.help) {
			fmt.Fprintf(&b, "  %-38s %s", line, strings.TrimSuffix(h, "\n")+"\n")
			line = ""
		}
	}
	b.WriteString("\nConfiguration is read from the environment; see README.md.\n")
	return b.String()
}

// commandUsage is one subcommand's --help.
func commandUsage(c subcommand) string {
	return fmt.Sprintf("Usage: %s\n\n%s\n\nConfiguration is read from the environment; see README.md.\n",
		strings.TrimSpace("toolbox "+c.name+" "+c.synopsis), c.help)
}

// asksHelp says whether args (a subcommand's) ask for its usage. It is read
// before the configuration, so that --help works before anything is set up,
// and does nothing else.
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// run is the whole program, testable: main only adds the process around it.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage())
		return flag.ErrHelp
	}
	name := args[0]
	if name == "-h" || name == "--help" || name == "-help" || name == "help" {
		if len(args) == 1 || name != "help" {
			fmt.Fprint(stdout, usage())
			return nil
		}
		about := args[1]
		if asksHelp(args[1:]) {
			about = "help"
		}
		c, ok := lookup(about)
		if !ok {
			fmt.Fprint(stderr, usage())
			return fmt.Errorf("unknown command %q", about)
		}
		fmt.Fprint(stdout, commandUsage(c))
		return nil
	}
	c, ok := lookup(name)
	if !ok {
		fmt.Fprint(stderr, usage())
		return fmt.Errorf("unknown command %q", name)
	}
	if asksHelp(args[1:]) {
		fmt.Fprint(stdout, commandUsage(c))
		return nil
	}
	if name == "docker-guard" {
		// Before the configuration: the guard's container has none of the bot's.
		return dockerGuardCommand(ctx, args[1:], getenv, stderr)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	p := &program{cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr,
		log: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))}
	return c.run(ctx, p, args[1:])
}

// upCommand is `toolbox up`, and `toolbox recover`, which is up from the backups.
func upCommand(ctx context.Context, p *program, name string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(p.stderr)
	build := fs.Bool("build-images", false, "build on this machine the images no registry can give")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hc := p.cfg.host()
	hc.BuildImages, hc.Recover = *build, name == "recover"
	if hc.Recover && p.cfg.BackupPassword == "" {
		return errors.New("toolbox recover needs TOOLBOX_BACKUP_PASSWORD, the backup repository's password (as `toolbox backup key` showed it), and the repository's settings (TOOLBOX_BACKUP_REPOSITORY and its credentials) when it is not on this machine")
	}
	return host.Up(ctx, hc, p.log, p.stdout)
}

func downCommand(ctx context.Context, p *program, args []string) error {
	fs := flag.NewFlagSet("down", flag.ContinueOnError)
	fs.SetOutput(p.stderr)
	yes := fs.Bool("yes", false, "do not ask for confirmation")
	purge := fs.Bool("purge", false, "delete the data volumes too")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return host.Down(ctx, p.cfg.host(), p.stdin, p.stdout, *yes, *purge)
}
