package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/control"
	"github.com/toolbox-collective/toolbox/state"
)

func bootstrapCommand(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	if cfg.MattermostURL == "" || cfg.BotURL == "" {
		return errors.New("set TOOLBOX_MATTERMOST_URL (Mattermost, as the toolbox reaches it) and TOOLBOX_BOT_URL (the bot, as Mattermost reaches it)")
	}
	if sock := controlSocket(cfg); control.Running(sock) {
		// The running server holds the state: it bootstraps, then connects.
		res, err := control.NewClient(sock).Bootstrap(ctx)
		if err != nil {
			return err
		}
		printBootstrap(stdout, cfg, res)
		return nil
	}
	st, err := state.Open(cfg.StatePath, state.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := bootstrapMattermost(ctx, cfg, st)
	if err != nil {
		return err
	}
	printBootstrap(stdout, cfg, res)
	log.Info("mattermost bootstrap done", "changes", len(res.Changes))
	return nil
}

// bootstrapMattermost waits for Mattermost, then sets it up; `toolbox up` calls it too.
func bootstrapMattermost(ctx context.Context, cfg config, st *state.Store) (bot.BootstrapResult, error) {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := bot.WaitReady(wctx, cfg.MattermostURL); err != nil {
		return bot.BootstrapResult{}, err
	}
	return bot.Bootstrap(ctx, bot.BootstrapConfig{
		SiteURL: cfg.MattermostURL, BotURL: cfg.BotURL,
		TeamName: cfg.TeamName, ChannelName: cfg.ChannelName,
		AdminUsername: cfg.AdminUser, AdminPassword: cfg.AdminPassword,
	}, st)
}

func printBootstrap(w io.Writer, cfg config, res bot.BootstrapResult) {
	if len(res.Changes) == 0 {
		fmt.Fprintf(w, "Mattermost at %s is already set up; nothing changed.\n", cfg.MattermostURL)
	}
	for _, c := range res.Changes {
		fmt.Fprintln(w, "-", c)
	}
	if res.AdminPassword != "" {
		// Shown once, on the operator's terminal only; it is kept in the state file (mode 0600).
		fmt.Fprintf(w, "\nFirst admin: %s\nPassword:    %s\nKeep it somewhere safe: it is not shown again.\n", res.AdminUsername, res.AdminPassword.Reveal())
	}
}

