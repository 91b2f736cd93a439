package bot

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/state"
)

// fakeMattermost answers the calls a bootstrap makes with the bot's token
// (who am I, the team, the channel) and records every path asked; anything
// else is 401, as an admin's login without a password would be.
type fakeMattermost struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
	token string // the bot token it accepts
}

func newFakeMattermost(t *testing.T) *fakeMattermost {
	f := &fakeMattermost{token: "bot-token-1"}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.paths = append(f.paths, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if !strings.EqualFold(r.Header.Get("Authorization"), "Bearer "+f.token) { // Client4 writes BEARER
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(model.AppError{Id: "api.context.session_expired.app_error", StatusCode: 401})
			return
		}
		var v any
		switch r.URL.Path {
		case "/api/v4/users/me":
			v = model.User{Id: "bot1", Username: "toolbox"}
		case "/api/v4/teams/team1":
			v = model.Team{Id: "team1", Name: "collective"}
		case "/api/v4/channels/chan1":
			v = model.Channel{Id: "chan1", Name: "toolbox", TeamId: "team1"}
		default:
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_ = json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeMattermost) asked(path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.paths {
		if strings.HasSuffix(p, path) {
			return true
		}
	}
	return false
}

// recordedState is a state an earlier bootstrap of mm left, whose first
// admin's password up has since forgotten.
func recordedState(t *testing.T, mm string) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "toolbox.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for k, v := range map[string]string{
		SettingSiteURL: mm, SettingBotURL: "http://bot:8080", SettingTeamID: "team1",
		SettingChannelID: "chan1", SettingBotUserID: "bot1", SettingAdminUsername: "admin",
	} {
		if err := st.SetSetting(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]state.Secret{SecretBotToken: "bot-token-1", SecretCommandToken: "cmd-token-1"} {
		if err := st.SetSecret(k, v); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func TestBootstrapWithoutTheAdminPassword(t *testing.T) {
	t.Run("set up as recorded", func(t *testing.T) {
		mm := newFakeMattermost(t)
		st := recordedState(t, mm.URL)
		res, err := Bootstrap(context.Background(), BootstrapConfig{SiteURL: mm.URL, BotURL: "http://bot:8080"}, st)
		if err != nil {
			t.Fatalf("Bootstrap = %v, want nothing to do", err)
		}
		if len(res.Changes) != 0 || res.AdminPassword != "" || res.ChannelID != "chan1" || res.BotUserID != "bot1" {
			t.Errorf("Bootstrap = %+v, want no change, no password, the recorded ids", res)
		}
		if mm.asked("/users/login") {
			t.Error("the bootstrap tried to log in as the admin")
		}
		if _, err := st.Secret(SecretAdminPassword); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("the bootstrap made an admin password again: %v", err)
		}
	})
	for _, tt := range []struct {
		name   string
		change func(*fakeMattermost, *BootstrapConfig)
		why    string
	}{
		{"the bot's token is refused", func(f *fakeMattermost, _ *BootstrapConfig) { f.token = "another" }, "token no longer logs it in"},
		{"another bot address", func(_ *fakeMattermost, c *BootstrapConfig) { c.BotURL = "http://elsewhere:8080" }, "addresses"},
		{"another channel", func(_ *fakeMattermost, c *BootstrapConfig) { c.ChannelName = "ops" }, "channel ops"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mm := newFakeMattermost(t)
			st := recordedState(t, mm.URL)
			cfg := BootstrapConfig{SiteURL: mm.URL, BotURL: "http://bot:8080"}
			tt.change(mm, &cfg)
			_, err := Bootstrap(context.Background(), cfg, st)
			if !errors.Is(err, ErrAdminPasswordGone) || !strings.Contains(err.Error(), "TOOLBOX_MM_ADMIN_PASSWORD") || !strings.Contains(err.Error(), tt.why) {
				t.Errorf("Bootstrap = %v, want ErrAdminPasswordGone saying %q and what to set", err, tt.why)
			}
			if mm.asked("/users/login") {
				t.Error("the bootstrap tried to log in as the admin with a password it does not have")
			}
		})
	}
	t.Run("never bootstrapped", func(t *testing.T) {
		mm := newFakeMattermost(t)
		st, err := state.Open(filepath.Join(t.TempDir(), "toolbox.db"), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_, err = Bootstrap(context.Background(), BootstrapConfig{SiteURL: mm.URL, BotURL: "http://bot:8080"}, st)
		if errors.Is(err, ErrAdminPasswordGone) || !mm.asked("/users/login") {
			t.Errorf("a first bootstrap = %v (login asked: %v), want it to go on to create the first admin", err, mm.asked("/users/login"))
		}
		if _, err := st.Secret(SecretAdminPassword); err != nil {
			t.Errorf("a first bootstrap keeps the new admin's password before creating it: %v", err)
		}
	})
}
