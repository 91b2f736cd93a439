package bot

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"

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
