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
	st, err := state.Open(cfg.StatePath, cfg.stateOptions())
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
		if st, err = state.Open(cfg.StatePath, cfg.stateOptions()); err != nil {
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
	key := "TOOLBOX_STATE_KEY"
	if cfg.StateKey == nil {
		key = state.KeyPath(cfg.StatePath)
	}
	fmt.Fprintf(stdout, "wrote %d bytes of state to %s\nIts secrets are sealed: the copy opens only with the state's key (%s). Keep the key apart from the copy, and both.\n", n, path, key)
	return nil
}

// stateRotateKey is `toolbox state rotate-key`: through the running server,
// which holds the state's lock, or on the state directly.
func stateRotateKey(ctx context.Context, cfg config, stdout io.Writer) error {
	var (
		id  string
		err error
	)
	if sock := controlSocket(cfg); control.Running(sock) {
		id, err = control.NewClient(sock).RotateKey(ctx)
	} else {
		var st *state.Store
		if st, err = state.Open(cfg.StatePath, cfg.stateOptions()); err != nil {
			return err
		}
		id, err = st.RotateKey()
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "the state's secrets are sealed with a new key (id %s), in %s; the old key opens them no more, and the next backup carries the new one\n",
		id, state.KeyPath(cfg.StatePath))
	return nil
}

// forgetAdminPassword is `toolbox mattermost forget-admin-password`, which up
// runs once it has shown the first admin's password.
func forgetAdminPassword(ctx context.Context, cfg config, stdout io.Writer) error {
	var err error
	if sock := controlSocket(cfg); control.Running(sock) {
		err = control.NewClient(sock).ForgetAdminPassword(ctx)
	} else {
		var st *state.Store
		if st, err = state.Open(cfg.StatePath, cfg.stateOptions()); err != nil {
			return err
		}
		err = st.DeleteSecret(bot.SecretAdminPassword)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "the first admin's password is no longer kept: a later bootstrap that needs it asks for TOOLBOX_MM_ADMIN_PASSWORD\n")
	return nil
}
