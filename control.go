package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/control"
	"github.com/toolbox-collective/toolbox/state"
)

func controlSocket(cfg config) string { return control.SocketPath(cfg.StatePath) }

// doCommand runs one command as the operator: through the running server when
// there is one, else on the state directly.
func doCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	yes := false
	if len(args) > 0 && (args[0] == "--yes" || args[0] == "-y") {
		yes, args = true, args[1:]
	}
	if len(args) != 1 {
		return errors.New(`usage: toolbox do [--yes] "<command text>"`)
	}
	text := args[0]
	if sock := controlSocket(cfg); control.Running(sock) {
		reply, err := control.NewClient(sock).Do(ctx, text, yes)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, reply.Text)
		if reply.Failed {
			return control.ErrFailed
		}
		return nil
	}
	st, err := state.Open(cfg.StatePath, state.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	var (
		dir   commands.Directory
		check func(context.Context) (string, error)
	)
	if s, err := bot.LoadSettings(st, cfg.MattermostURL, cfg.BotURL); err == nil {
		mm := bot.NewClient(s.SiteURL, s.BotToken, s.BotURL)
		dir, check = mm, mm.Check
	}
	m := newEngine(cfg)
	defer m.Close()
	router, err := newRouter(ctx, cfg, log, st, m, &control.TerminalChat{W: stdout}, dir, check)
	if err != nil {
		return err
	}
	return control.RunHere(ctx, router, st, text, yes, stdin, stdout)
}

func stateBackup(ctx context.Context, cfg config, path string, stdout io.Writer) error {
	var (
		n   int64
		err error
	)
	if sock := controlSocket(cfg); control.Running(sock) {
		n, err = control.NewClient(sock).BackupState(ctx, path)
	} else {
		var st *state.Store
		if st, err = state.Open(cfg.StatePath, state.Options{}); err != nil {
			return err
		}
		n, err = st.BackupFile(path)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d bytes of state to %s\n", n, path)
	return nil
}
