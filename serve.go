package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/control"
	"github.com/toolbox-collective/toolbox/engine"
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

// chatSwitch is the bot's Mattermost client once the bootstrap has made one;
// until then posts fail and nobody is a system admin.
type chatSwitch struct{ client atomic.Pointer[bot.Client] }

var (
	_ commands.Chat      = (*chatSwitch)(nil)
	_ commands.Directory = (*chatSwitch)(nil)
)

var errNoChat = errors.New("mattermost is not set up yet")

func (c *chatSwitch) Post(ctx context.Context, channelID, text string) (string, error) {
	if m := c.client.Load(); m != nil {
		return m.Post(ctx, channelID, text)
	}
	return "", errNoChat
}

func (c *chatSwitch) Edit(ctx context.Context, postID, text string) error {
	if m := c.client.Load(); m != nil {
		return m.Edit(ctx, postID, text)
	}
	return errNoChat
}

func (c *chatSwitch) AskConfirmation(ctx context.Context, channelID, text, token string) (string, error) {
	if m := c.client.Load(); m != nil {
		return m.AskConfirmation(ctx, channelID, text, token)
	}
	return "", errNoChat
}

func (c *chatSwitch) IsSystemAdmin(ctx context.Context, userID string) (bool, error) {
	if m := c.client.Load(); m != nil {
		return m.IsSystemAdmin(ctx, userID)
	}
	return false, nil
}

func (c *chatSwitch) UserByName(ctx context.Context, name string) (commands.User, error) {
	if m := c.client.Load(); m != nil {
		return m.UserByName(ctx, name)
	}
	return commands.User{}, commands.Errorf(commands.Unavailable, "Mattermost is not set up yet, so I cannot look up @%s.", name)
}

func (c *chatSwitch) check(ctx context.Context) (string, error) {
	if m := c.client.Load(); m != nil {
		return m.Check(ctx)
	}
	return "", errNoChat
}

// newRouter wires the verbs to the state, the machine, the chat and the checks.
func newRouter(root context.Context, cfg config, log *slog.Logger, st *state.Store, m *engine.Engine, chat commands.Chat, dir commands.Directory, chatCheck func(context.Context) (string, error)) (*commands.Router, error) {
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
	if chatCheck != nil {
		checks = append(checks, commands.Check{Name: "mattermost", Run: chatCheck})
	}
	checks = append(checks, commands.Check{Name: "docker", Run: m.Check})
	apps, err := newAppDeps(cfg, st, m)
	if err != nil {
		return nil, err
	}
	return commands.NewRouter(root, commands.Deps{
		Store: st, Chat: chat, Directory: dir, Checks: checks, Log: log, Version: version, Apps: apps,
		ConfirmKey: []byte(key.Reveal()), ConfirmTTL: cfg.ConfirmTTL, ErrorKinds: errorKinds(),
	})
}

// server is the running bot. It starts even before Mattermost is set up (so
// that `toolbox up` can deploy Mattermost through it, then bootstrap it);
// until then it answers Mattermost's calls with 503.
type server struct {
	cfg    config
	log    *slog.Logger
	st     *state.Store
	router *commands.Router
	chat   *chatSwitch

	mu        sync.Mutex // serialises activation
	handler   atomic.Pointer[bot.Handler]
	channelID atomic.Pointer[string]
}

// activate connects the bot to Mattermost with the bootstrap's settings.
func (s *server) activate(cs chatSettings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chat.client.Store(bot.NewClient(cs.siteURL, cs.botToken, cs.botURL))
	s.channelID.Store(&cs.channelID)
	s.handler.Store(&bot.Handler{Router: s.router, CommandToken: cs.commandToken, TeamID: cs.teamID, Log: s.log})
	s.log.Info("connected to mattermost", "url", cs.siteURL)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.handler.Load(); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == bot.HealthPath {
		_, _ = w.Write([]byte("ok: waiting for the mattermost bootstrap\n"))
		return
	}
	http.Error(w, "the toolbox is not connected to Mattermost yet", http.StatusServiceUnavailable)
}

func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	st, err := state.Open(cfg.StatePath, state.Options{})
	if err != nil {
		return err
	}
	defer st.Close() // bbolt last, after HTTP and jobs
	m := newEngine(cfg)
	defer m.Close()
	// Jobs run on their own root: a SIGTERM first drains, and cancels them only
	// when their grace time is over.
	jobsRoot, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	s := &server{cfg: cfg, log: log, st: st, chat: &chatSwitch{}}
	if s.router, err = newRouter(jobsRoot, cfg, log, st, m, s.chat, s.chat, s.chat.check); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	ctl, err := control.Listen(controlSocket(cfg))
	if err != nil {
		ln.Close()
		return err
	}
	switch cs, err := loadChatSettings(cfg, st); {
	case err == nil:
		s.activate(cs)
	case errors.Is(err, errNotBootstrapped):
		log.Warn("not connected to mattermost: waiting for `toolbox mattermost bootstrap`")
	default:
		ln.Close()
		ctl.Close()
		return err
	}
	// Once, before serving: jobs a previous run left running died with it.
	if interrupted, err := s.router.Jobs().Recover(ctx); err != nil {
		log.Error("job recovery failed", "err", err)
	} else if len(interrupted) > 0 {
		log.Warn("jobs interrupted by the previous stop", "count", len(interrupted))
	}
	srv := bot.NewServer(s)
	ctlSrv := &http.Server{Handler: (&control.Server{
		Router: s.router, Store: st, Bootstrap: s.bootstrap, Log: log,
		ChannelID: func() string {
			if ch := s.channelID.Load(); ch != nil {
				return *ch
			}
			return ""
		},
	}).Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- ctlSrv.Serve(ctl) }()
	log.Info("toolbox serving", "addr", ln.Addr().String(), "version", version)

	select {
	case err := <-errc:
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	// Drain: keep answering, politely refusing new work, while running jobs
	// finish; HTTP stays up meanwhile so Mattermost gets a polite answer.
	log.Info("draining", "grace", cfg.ShutdownGrace)
	s.router.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	if err := s.router.Jobs().Shutdown(graceCtx); err != nil {
		log.Warn("jobs stopped before finishing", "err", err)
	}
	cancel()
	httpCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ctlSrv.Shutdown(httpCtx)
	if err := srv.Shutdown(httpCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// bootstrap sets Mattermost up, then connects the bot to it.
func (s *server) bootstrap(ctx context.Context) (bot.BootstrapResult, error) {
	res, err := bootstrapMattermost(ctx, s.cfg, s.st)
	if err != nil {
		return res, err
	}
	cs, err := loadChatSettings(s.cfg, s.st)
	if err != nil {
		return res, err
	}
	s.activate(cs)
	return res, nil
}

// healthcheck asks the local server whether it answers: the bot container's
// health check (its image has no curl).
func healthcheck(ctx context.Context, cfg config) error {
	_, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+bot.HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}
