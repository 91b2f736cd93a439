package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/control"
	"github.com/toolbox-collective/toolbox/state"
)

func bootstrapConfig(cfg config) bot.BootstrapConfig {
	return bot.BootstrapConfig{
		SiteURL: cfg.MattermostURL, BotURL: cfg.BotURL,
		TeamName: cfg.TeamName, ChannelName: cfg.ChannelName,
		AdminUsername: cfg.AdminUser, AdminPassword: cfg.AdminPassword,
	}
}

// bootstrapCommand sets Mattermost up: through the running server, which
// holds the state and connects right after, or on the state directly.
func bootstrapCommand(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	if cfg.MattermostURL == "" || cfg.BotURL == "" {
		return errors.New("set TOOLBOX_MATTERMOST_URL (Mattermost, as the toolbox reaches it) and TOOLBOX_BOT_URL (the bot, as Mattermost reaches it)")
	}
	var res bot.BootstrapResult
	if sock := controlSocket(cfg); control.Running(sock) {
		r, err := control.NewClient(sock).Bootstrap(ctx)
		if err != nil {
			return err
		}
		res = r
	} else {
		st, err := state.Open(cfg.StatePath, cfg.stateOptions())
		if err != nil {
			return err
		}
		defer st.Close()
		if res, err = bot.WaitAndBootstrap(ctx, bootstrapConfig(cfg), st); err != nil {
			return err
		}
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(stdout, "Mattermost at %s is already set up; nothing changed.\n", cfg.MattermostURL)
	}
	for _, c := range res.Changes {
		fmt.Fprintln(stdout, "-", c)
	}
	if res.AdminPassword != "" {
		// Shown once, on the operator's terminal only.
		fmt.Fprintf(stdout, "\nFirst admin: %s\nPassword:    %s\nKeep it somewhere safe: it is not shown again.\n", res.AdminUsername, res.AdminPassword.Reveal())
	}
	log.Info("mattermost bootstrap done", "changes", len(res.Changes))
	return nil
}
