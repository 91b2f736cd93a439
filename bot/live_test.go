package bot

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/toolbox-collective/toolbox/state"
)

func TestLiveBeforeAndAfterConnect(t *testing.T) {
	st, err := state.Open(filepath.Join(t.TempDir(), "s.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := LoadSettings(st, "", ""); !errors.Is(err, ErrNotBootstrapped) {
		t.Fatalf("LoadSettings on a new state = %v, want ErrNotBootstrapped", err)
	}
	l := &Live{Log: slog.New(slog.DiscardHandler)}
	rec := httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mm/command", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("a command before Connect got %d, want 503", rec.Code)
	}
	rec = httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, HealthPath, nil))
	if rec.Code != http.StatusOK {
		t.Errorf("health before Connect got %d, want 200", rec.Code)
	}
	if _, err := l.Post(context.Background(), "c", "hello"); err == nil {
		t.Error("Post before Connect succeeded")
	}
	if admin, err := l.IsSystemAdmin(context.Background(), "u"); admin || err != nil {
		t.Errorf("IsSystemAdmin before Connect = %v, %v; want false, nil", admin, err)
	}

	for k, v := range map[string]string{SettingSiteURL: "http://mm", SettingBotURL: "http://bot", SettingTeamID: "t", SettingChannelID: "c"} {
		if err := st.SetSetting(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{SecretBotToken: "b", SecretCommandToken: "c"} {
		if err := st.SetSecret(k, state.Secret(v)); err != nil {
			t.Fatal(err)
		}
	}
	s, err := LoadSettings(st, "http://override", "")
	if err != nil || s.SiteURL != "http://override" || s.BotURL != "http://bot" || s.ChannelID != "c" {
		t.Fatalf("LoadSettings = %+v, %v; want the override and the recorded rest", s, err)
	}
	l.Connect(s)
	if l.ChannelID() != "c" {
		t.Errorf("ChannelID after Connect = %q", l.ChannelID())
	}
	rec = httptest.NewRecorder()
	l.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mm/command", nil))
	if rec.Code == http.StatusServiceUnavailable {
		t.Error("a command after Connect still got 503")
	}
}
