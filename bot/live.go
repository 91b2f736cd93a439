package bot

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// Settings are what the bot needs from the bootstrap to talk to Mattermost.
type Settings struct {
	SiteURL, BotURL, TeamID, ChannelID string
	BotToken, CommandToken             state.Secret
}

// SettingsStore is where the bootstrap left its settings.
type SettingsStore interface {
	Settings(keys ...string) (map[string]string, error)
	Secret(name string) (state.Secret, error)
}

// ErrNotBootstrapped says the state holds no bootstrap yet.
var ErrNotBootstrapped = errors.New("mattermost is not set up for this state: run `toolbox mattermost bootstrap` first (with TOOLBOX_MATTERMOST_URL and TOOLBOX_BOT_URL)")

// LoadSettings reads the bootstrap's settings; siteURL and botURL, when not
// empty, replace the recorded addresses (the configuration wins).
func LoadSettings(st SettingsStore, siteURL, botURL string) (Settings, error) {
	set, err := st.Settings(SettingSiteURL, SettingBotURL, SettingTeamID, SettingChannelID)
	if err != nil {
		return Settings{}, err
	}
	s := Settings{SiteURL: set[SettingSiteURL], BotURL: set[SettingBotURL], TeamID: set[SettingTeamID], ChannelID: set[SettingChannelID]}
	if siteURL != "" {
		s.SiteURL = siteURL
	}
	if botURL != "" {
		s.BotURL = botURL
	}
	if s.BotToken, err = st.Secret(SecretBotToken); err != nil && !errors.Is(err, state.ErrNotFound) {
		return s, err
	}
	if s.CommandToken, err = st.Secret(SecretCommandToken); err != nil && !errors.Is(err, state.ErrNotFound) {
		return s, err
	}
	if s.SiteURL == "" || s.TeamID == "" || s.BotToken == "" || s.CommandToken == "" || s.BotURL == "" {
		return s, ErrNotBootstrapped
	}
	return s, nil
}

// WaitAndBootstrap waits for Mattermost to answer (three minutes at most),
// then sets it up.
func WaitAndBootstrap(ctx context.Context, cfg BootstrapConfig, st BootstrapStore) (BootstrapResult, error) {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := WaitReady(wctx, cfg.SiteURL); err != nil {
		return BootstrapResult{}, err
	}
	return Bootstrap(ctx, cfg, st)
}

// Live is the bot of a running server, which starts before Mattermost is set
// up (so that `toolbox up` can deploy Mattermost through it, then bootstrap
// it): until Connect, Mattermost's calls get 503, posts fail and nobody is a
// system admin.
type Live struct {
	Router Router
	Log    *slog.Logger

	mu        sync.Mutex // serialises Connect
	client    atomic.Pointer[Client]
	handler   atomic.Pointer[Handler]
	channelID atomic.Pointer[string]
}

var (
	_ commands.Chat      = (*Live)(nil)
	_ commands.Directory = (*Live)(nil)
	_ commands.Whisperer = (*Live)(nil)
)

var errNoChat = errors.New("mattermost is not set up yet")

// Connect starts talking to Mattermost with the bootstrap's settings.
func (l *Live) Connect(s Settings) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.client.Store(NewClient(s.SiteURL, s.BotToken, s.BotURL))
	l.channelID.Store(&s.ChannelID)
	l.handler.Store(&Handler{Router: l.Router, CommandToken: s.CommandToken, TeamID: s.TeamID, Log: l.Log})
	l.Log.Info("connected to mattermost", "url", s.SiteURL)
}

// ChannelID is the toolbox channel, "" before Connect.
func (l *Live) ChannelID() string {
	if ch := l.channelID.Load(); ch != nil {
		return *ch
	}
	return ""
}

func (l *Live) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.handler.Load(); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == HealthPath {
		_, _ = w.Write([]byte("ok: waiting for the mattermost bootstrap\n"))
		return
	}
	http.Error(w, "the toolbox is not connected to Mattermost yet", http.StatusServiceUnavailable)
}

func (l *Live) Post(ctx context.Context, channelID, text string) (string, error) {
	if c := l.client.Load(); c != nil {
		return c.Post(ctx, channelID, text)
	}
	return "", errNoChat
}

func (l *Live) Edit(ctx context.Context, postID, text string) error {
	if c := l.client.Load(); c != nil {
		return c.Edit(ctx, postID, text)
	}
	return errNoChat
}

func (l *Live) AskConfirmation(ctx context.Context, channelID, text, token string) (string, error) {
	if c := l.client.Load(); c != nil {
		return c.AskConfirmation(ctx, channelID, text, token)
	}
	return "", errNoChat
}

func (l *Live) IsSystemAdmin(ctx context.Context, userID string) (bool, error) {
	if c := l.client.Load(); c != nil {
		return c.IsSystemAdmin(ctx, userID)
	}
	return false, nil
}

func (l *Live) UserByName(ctx context.Context, name string) (commands.User, error) {
	if c := l.client.Load(); c != nil {
		return c.UserByName(ctx, name)
	}
	return commands.User{}, commands.Errorf(commands.Unavailable, "Mattermost is not set up yet, so I cannot look up @%s.", name)
}

func (l *Live) Whisper(ctx context.Context, responseURL, text string) error {
	if c := l.client.Load(); c != nil {
		return c.Whisper(ctx, responseURL, text)
	}
	return errNoChat
}

// Check is selftest's Mattermost line.
func (l *Live) Check(ctx context.Context) (string, error) {
	if c := l.client.Load(); c != nil {
		return c.Check(ctx)
	}
	return "", errNoChat
}
