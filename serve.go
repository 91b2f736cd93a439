package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

const confirmKeySecret = "confirm.hmac-key"

// chatSettings is what serve needs from the bootstrap.
type chatSettings struct {
	siteURL, botURL, teamID, channelID string
	botToken, commandToken             state.Secret
}

func loadChatSettings(cfg config, st *state.Store) (chatSettings, error) {
	set, err := st.Settings(bot.SettingSiteURL, bot.SettingBotURL, bot.SettingTeamID, bot.SettingChannelID)
	if err != nil {
		return chatSettings{}, err
	}
	cs := chatSettings{siteURL: set[bot.SettingSiteURL], botURL: set[bot.SettingBotURL], teamID: set[bot.SettingTeamID], channelID: set[bot.SettingChannelID]}
	if cfg.MattermostURL != "" {
		cs.siteURL = cfg.MattermostURL
	}
	if cfg.BotURL != "" {
		cs.botURL = cfg.BotURL
	}
	if cs.botToken, err = st.Secret(bot.SecretBotToken); err != nil && !errors.Is(err, state.ErrNotFound) {
		return cs, err
	}
	if cs.commandToken, err = st.Secret(bot.SecretCommandToken); err != nil && !errors.Is(err, state.ErrNotFound) {
		return cs, err
	}
	if cs.siteURL == "" || cs.teamID == "" || cs.botToken == "" || cs.commandToken == "" || cs.botURL == "" {
		return cs, errNotBootstrapped
	}
	return cs, nil
}

var errNotBootstrapped = errors.New("mattermost is not set up for this state: run `toolbox mattermost bootstrap` first (with TOOLBOX_MATTERMOST_URL and TOOLBOX_BOT_URL)")

// newRouter wires the verbs to the state, the chat and the checks.
func newRouter(root context.Context, cfg config, log *slog.Logger, st *state.Store, m *machine, chat commands.Chat, dir commands.Directory, mm *bot.Client) (*commands.Router, error) {
	key, err := st.EnsureSecret(confirmKeySecret, func() (state.Secret, error) { return state.NewRandomSecret(32) })
	if err != nil {
		return nil, err
	}
	checks := []commands.Check{
		{Name: "state", Run: func(context.Context) (string, error) {
			took, err := st.CheckWritable()
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("%s is writable (a write took %s)", st.Path(), took.Round(time.Microsecond)), nil
		}},
	}
	if mm != nil {
		checks = append(checks, commands.Check{Name: "mattermost", Run: mm.Check})
	}
	checks = append(checks, commands.Check{Name: "docker", Run: func(ctx context.Context) (string, error) {
		e, err := m.connect(ctx)
		if err != nil {
			return "", err
		}
		info, err := e.Info(ctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("engine %s (API %s) at %s: %d CPUs, %.1f GiB", info.ServerVersion, info.APIVersion, e.Host(), info.NCPU, float64(info.MemTotal)/(1<<30)), nil
	}})
	apps, err := newAppDeps(cfg, st, m)
	if err != nil {
		return nil, err
	}
	return commands.NewRouter(root, commands.Deps{
		Store: st, Chat: chat, Directory: dir, Checks: checks, Log: log, Version: version, Apps: apps,
		ConfirmKey: []byte(key.Reveal()), ConfirmTTL: cfg.ConfirmTTL,
	})
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	st, err := state.Open(cfg.StatePath, state.Options{})
	if err != nil {
		return err
	}
	defer st.Close() // bbolt last, after HTTP and jobs
	cs, err := loadChatSettings(cfg, st)
	if err != nil {
		return err
	}
	mm := bot.NewClient(cs.siteURL, cs.botToken, cs.botURL)
	// Jobs run on their own root: a SIGTERM first drains, and cancels them only
	// when their grace time is over.
	jobsRoot, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	m := newMachine(cfg)
	defer m.Close()
	router, err := newRouter(jobsRoot, cfg, log, st, m, mm, mm, mm)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	ctl, err := listenControl(controlSocket(cfg))
	if err != nil {
		ln.Close()
		return err
	}
	if interrupted, err := router.Jobs().Recover(ctx); err != nil {
		log.Error("job recovery failed", "err", err)
	} else if len(interrupted) > 0 {
		log.Warn("jobs interrupted by the previous stop", "count", len(interrupted))
	}
	handler := &bot.Handler{Router: router, CommandToken: cs.commandToken, TeamID: cs.teamID, Log: log}
	srv := bot.NewServer(handler)
	ctlSrv := &http.Server{Handler: controlHandler(router, st, cs.channelID, log), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- ctlSrv.Serve(ctl) }()
	log.Info("toolbox serving", "addr", ln.Addr().String(), "mattermost", cs.siteURL, "version", version)

	select {
	case err := <-errc:
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	// Drain: keep answering, politely refusing new work, while running jobs finish.
	log.Info("draining", "grace", cfg.ShutdownGrace)
	router.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	if err := router.Jobs().Shutdown(graceCtx); err != nil {
		log.Warn("jobs stopped before finishing", "err", err)
	}
	cancel()
	httpCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ctlSrv.Shutdown(httpCtx)
	if err := srv.Shutdown(httpCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	_ = os.Remove(controlSocket(cfg))
	log.Info("stopped")
	return nil
}
