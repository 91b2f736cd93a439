package bot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// FuzzCommandHandler posts arbitrary bodies to the slash-command endpoint of
// the real handler, router and store. form chooses the form content type
// (else JSON); auth puts a valid token, team, user and channel first in the
// body, so that most inputs reach the router.
func FuzzCommandHandler(f *testing.F) {
	for _, seed := range []struct {
		body       string
		form, auth bool
	}{
		{commandForm("ann", "status").Encode(), true, false},
		{commandForm("ann", "help admins").Encode(), true, false},
		{commandForm("ann", "admins remove @bob").Encode(), true, false},
		{without(commandForm("ann", "status"), "token").Encode(), true, false},
		{commandForm("ann", "status").Encode(), false, false},
		{"text=" + url.QueryEscape(`add "our site`), true, true},
		{"text=help+%27%27", true, true},
		{"text=%FF%FE", true, true},
		{"text=audit+5", true, true},
		{"", true, false},
		{"%zz", true, false},
	} {
		f.Add(seed.body, seed.form, seed.auth)
	}
	e := newBotEnv(f)
	if err := e.store.AddAdmin(state.Admin{UserID: "id-ann", UserName: "ann"}); err != nil {
		f.Fatal(err)
	}
	auth := url.Values{"token": {testCommandToken}, "team_id": {testTeamID}, "user_id": {"id-ann"}, "channel_id": {"chan1"}}.Encode() + "&"

	f.Fuzz(func(t *testing.T, body string, form, withAuth bool) {
		if withAuth {
			body = auth + body
		}
		req := httptest.NewRequest(http.MethodPost, CommandPath, strings.NewReader(body))
		if form {
			req.Header.Set("Content-Type", formType)
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			return
		default:
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		var resp model.CommandResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("200 with a body that is not a CommandResponse (%v): %q", err, rec.Body.String())
		}
		if resp.Text == "" || resp.ResponseType != model.CommandResponseTypeEphemeral {
			t.Fatalf("200 with an empty or public reply %+v for body %q", resp, body)
		}
	})
}

// FuzzActionHandler posts arbitrary JSON bodies to the button endpoint of the
// real handler, router and store: every field of Mattermost's integration
// action request, not only the token. A body holding TOKEN gets, in its
// place, one of a few real signed confirmation tokens (picked by which), so
// that mutations reach the checks behind the signature. Invariants: no
// panic; only the expected statuses; a 200 is a well-formed answer, audited
// once, whose update (if any) removes the buttons; anything else is not
// audited; the confirmed verb runs only for the prompt's user and channel,
// at most once per token.
func FuzzActionHandler(f *testing.F) {
	st, err := state.Open(filepath.Join(f.TempDir(), "toolbox.db"), state.Options{})
	if err != nil {
		f.Fatal(err)
	}
	var mu sync.Mutex
	var runs []commands.Caller
	confirmed := &commands.Verb{
		Name: "fuzz", Args: "<word>", MinArgs: 1, MaxArgs: 1, Confirmations: 1,
		Summary: "a verb that asks for a confirmation",
		Run: func(_ context.Context, inv commands.Invocation) (string, error) {
			mu.Lock()
			defer mu.Unlock()
			runs = append(runs, inv.Caller)
			return "done", nil
		},
	}
	chat := &fakeChat{}
	root, cancel := context.WithCancel(context.Background())
	router, err := commands.NewRouter(root, commands.Deps{Store: st, Chat: chat, Directory: &fakeDirectory{}, Version: "test", ConfirmKey: testConfirmKey}, confirmed)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		_ = router.Jobs().Shutdown(ctx)
		cancel()
		_ = st.Close()
	})
	h := &Handler{Router: router, CommandToken: state.Secret(testCommandToken), TeamID: testTeamID}
	const tokens = 4
	for i := range tokens {
		reply := router.Handle(context.Background(), commands.Request{
			Caller: commands.Caller{UserID: "id-ann", UserName: "ann", ChannelID: "chan1", TeamID: testTeamID}, Text: fmt.Sprintf("fuzz w%d", i),
		})
		if !strings.Contains(reply.Text, "confirmation") {
			f.Fatalf("fuzz w%d = %q, want a confirmation prompt", i, reply.Text)
		}
	}
	prompts := chat.Prompts()
	if len(prompts) != tokens {
		f.Fatalf("%d prompts, want %d", len(prompts), tokens)
	}
	audits := func(t *testing.T) int {
		recs, err := st.RecentAudit(1 << 20)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}

	seed := func(user, channel, team, action string) string {
		b, _ := json.Marshal(model.PostActionIntegrationRequest{
			UserId: user, UserName: "ann", ChannelId: channel, ChannelName: "toolbox", TeamId: team, PostId: "post1",
			TriggerId: "trigger", Type: "button", DataSource: "", Context: map[string]any{contextToken: "TOKEN", contextAction: action},
		})
		return string(b)
	}
	for _, s := range []string{
		seed("id-ann", "chan1", testTeamID, "confirm"),
		seed("id-ann", "chan1", testTeamID, "cancel"),
		seed("id-bob", "chan1", testTeamID, "confirm"),
		seed("id-ann", "chan2", testTeamID, "confirm"),
		seed("id-ann", "chan1", "team2", "confirm"),
		seed("", "chan1", testTeamID, "confirm"),
		`{"user_id":"id-ann","team_id":"team1","channel_id":"chan1","context":{"token":"TOKEN","action":"confirm","extra":[1,{"a":null}]}}`,
		`{"user_id":"id-ann","team_id":"team1","context":{"token":["TOKEN"],"action":"confirm"}}`,
		`{"user_id":"id-ann","team_id":"team1","context":{"token":"TOKEN","action":"confirm"},"context":{"token":"x"}}`,
		`{"user_id":"id-ann","team_id":"team1","context":{"token":"TOKEN.x","action":"confirm"}}`,
		`{"user_id":1e999}`, `null`, `[]`, `{"context":null}`, `{"selected_option":"` + strings.Repeat("é", 100) + `"}`, "\xff",
	} {
		for which := range uint8(tokens) {
			f.Add(s, which)
		}
	}

	f.Fuzz(func(t *testing.T, body string, which uint8) {
		body = strings.ReplaceAll(body, "TOKEN", prompts[int(which)%tokens].Token)
		before := audits(t)
		req := httptest.NewRequest(http.MethodPost, ActionPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		added := audits(t) - before
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge:
			if added != 0 {
				t.Fatalf("status %d wrote %d audit records for body %q", rec.Code, added, body)
			}
			return
		default:
			t.Fatalf("status %d for body %q", rec.Code, body)
		}
		if added != 1 {
			t.Fatalf("a click wrote %d audit records, want 1, for body %q", added, body)
		}
		var resp model.PostActionIntegrationResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("200 with a body that is not an action response (%v): %q", err, rec.Body.String())
		}
		if resp.Update == nil && resp.EphemeralText == "" {
			t.Fatalf("200 that says nothing: %q for body %q", rec.Body.String(), body)
		}
		if resp.Update != nil && len(resp.Update.GetProps()) != 0 {
			t.Fatalf("an update that keeps the buttons: %+v", resp.Update)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(runs) > tokens {
			t.Fatalf("the confirmed verb ran %d times with %d tokens", len(runs), tokens)
		}
		for _, c := range runs {
			if c.UserID != "id-ann" || c.ChannelID != "chan1" {
				t.Fatalf("the confirmed verb ran for %+v, not the prompt's user and channel", c)
			}
		}
	})
}
