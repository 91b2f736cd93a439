package bot

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/state"
)

const formType = "application/x-www-form-urlencoded"

func TestCommandEndpoint(t *testing.T) {
	valid := commandForm("ann", "status")
	tooManyFields := with(valid, "f0", "x")
	for i := range maxFormFields {
		tooManyFields.Set(fmt.Sprintf("f%d", i), "x")
	}
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		auth        string // the Authorization header, if any
		wantStatus  int
		wantText    string // a piece of the reply text, for 200
		wantBody    string // a piece of the body, for errors; "" with wantEmpty
		wantEmpty   bool
	}{
		{name: "GET", method: http.MethodGet, contentType: formType, body: valid.Encode(), wantStatus: http.StatusMethodNotAllowed, wantBody: "use POST"},
		{name: "PUT", method: http.MethodPut, contentType: formType, body: valid.Encode(), wantStatus: http.StatusMethodNotAllowed},
		{name: "JSON content type", contentType: "application/json", body: `{"text":"status"}`, wantStatus: http.StatusUnsupportedMediaType, wantBody: "content type must be " + formType},
		{name: "no content type", body: valid.Encode(), wantStatus: http.StatusUnsupportedMediaType},
		{name: "malformed content type", contentType: "application/x-www-form-urlencoded; =", body: valid.Encode(), wantStatus: http.StatusUnsupportedMediaType},
		{name: "multipart form", contentType: "multipart/form-data; boundary=x", body: valid.Encode(), wantStatus: http.StatusUnsupportedMediaType},
		{name: "body over 1 MB", contentType: formType, body: valid.Encode() + "&pad=" + strings.Repeat("a", MaxBodyBytes), wantStatus: http.StatusRequestEntityTooLarge, wantBody: "request body too large"},
		{name: "malformed form", contentType: formType, body: valid.Encode() + "&bad=%zz", wantStatus: http.StatusBadRequest, wantBody: "malformed form"},
		{name: "too many fields", contentType: formType, body: tooManyFields.Encode(), wantStatus: http.StatusBadRequest, wantBody: "malformed form"},
		{name: "missing token", contentType: formType, body: without(valid, "token").Encode(), wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "empty token", contentType: formType, body: with(valid, "token", "").Encode(), wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "wrong token", contentType: formType, body: with(valid, "token", "guess").Encode(), wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "token with a suffix", contentType: formType, body: with(valid, "token", testCommandToken+"x").Encode(), wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "header token differs from the form's", contentType: formType, body: valid.Encode(), auth: "Token other", wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "header with another scheme", contentType: formType, body: valid.Encode(), auth: "Bearer " + testCommandToken, wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "header without a token", contentType: formType, body: valid.Encode(), auth: "Token", wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "header only", contentType: formType, body: without(valid, "token").Encode(), auth: "Token " + testCommandToken, wantStatus: http.StatusUnauthorized, wantEmpty: true},
		{name: "another team", contentType: formType, body: with(valid, "team_id", "team2").Encode(), wantStatus: http.StatusForbidden, wantBody: "this toolbox serves another team"},
		{name: "no team", contentType: formType, body: without(valid, "team_id").Encode(), wantStatus: http.StatusForbidden},
		{name: "missing user_id", contentType: formType, body: without(valid, "user_id").Encode(), wantStatus: http.StatusBadRequest, wantBody: "user_id and channel_id are required"},
		{name: "missing channel_id", contentType: formType, body: without(valid, "channel_id").Encode(), wantStatus: http.StatusBadRequest, wantBody: "user_id and channel_id are required"},
		{name: "valid", contentType: formType, body: valid.Encode(), wantStatus: http.StatusOK, wantText: "No apps yet."},
		{name: "valid with the header token", contentType: formType, body: valid.Encode(), auth: "Token " + testCommandToken, wantStatus: http.StatusOK, wantText: "No apps yet."},
		{name: "header scheme in lower case", contentType: formType, body: valid.Encode(), auth: "token " + testCommandToken, wantStatus: http.StatusOK, wantText: "No apps yet."},
		{name: "content type with a charset", contentType: formType + "; charset=utf-8", body: valid.Encode(), wantStatus: http.StatusOK, wantText: "No apps yet."},
		{name: "empty text", contentType: formType, body: with(valid, "text", "").Encode(), wantStatus: http.StatusOK, wantText: "**/toolbox** runs the collective's tools from this chat."},
		{name: "no text field", contentType: formType, body: without(valid, "text").Encode(), wantStatus: http.StatusOK, wantText: "| `/toolbox status` |"},
		{name: "10 KB text", contentType: formType, body: with(valid, "text", strings.Repeat("x", 10<<10)).Encode(), wantStatus: http.StatusOK, wantText: "The command text is too long (10240 bytes; at most 4096)."},
		{name: "invalid UTF-8", contentType: formType, body: with(valid, "text", "status \xff").Encode(), wantStatus: http.StatusOK, wantText: "The command text is not valid UTF-8."},
		{name: "unknown verb", contentType: formType, body: with(valid, "text", "stauts").Encode(), wantStatus: http.StatusOK, wantText: "Did you mean `status`?"},
		{name: "help for an empty verb", contentType: formType, body: with(valid, "text", "help ''").Encode(), wantStatus: http.StatusOK, wantText: "There is no verb `''`."},
		{name: "admin verb by a member", contentType: formType, body: with(valid, "text", "audit").Encode(), wantStatus: http.StatusOK, wantText: "Only toolbox admins may run `audit`"},
		{
			name: "missing optional fields", contentType: formType,
			body:       without(valid, "user_name", "channel_name", "team_domain", "command", "response_url", "trigger_id").Encode(),
			wantStatus: http.StatusOK, wantText: "No apps yet.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBotEnv(t)
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, CommandPath, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			before := e.auditCount(t)
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)

			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body.String())
			}
			wantAudit := 0
			if tt.wantStatus == http.StatusOK {
				wantAudit = 1
			}
			if n := e.auditCount(t) - before; n != wantAudit {
				t.Errorf("wrote %d audit records, want %d", n, wantAudit)
			}
			if strings.Contains(rec.Body.String(), testCommandToken) {
				t.Errorf("the reply shows the command token: %q", rec.Body.String())
			}
			if tt.wantStatus != http.StatusOK {
				body := rec.Body.String()
				if tt.wantEmpty && body != "" {
					t.Errorf("body = %q, want none", body)
				}
				if !strings.Contains(body, tt.wantBody) {
					t.Errorf("body = %q, want it to contain %q", body, tt.wantBody)
				}
				if tt.wantStatus == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != http.MethodPost {
					t.Errorf("Allow = %q, want POST", rec.Header().Get("Allow"))
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			var resp model.CommandResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("reply is not JSON: %v: %q", err, rec.Body.String())
			}
			if resp.ResponseType != model.CommandResponseTypeEphemeral || !strings.Contains(resp.Text, tt.wantText) {
				t.Errorf("reply = %+v, want an ephemeral text containing %q", resp, tt.wantText)
			}
		})
	}
}

func TestCommandAuditRecord(t *testing.T) {
	e := newBotEnv(t)
	req := httptest.NewRequest(http.MethodPost, CommandPath, strings.NewReader(commandForm("ann", "help status").Encode()))
	req.Header.Set("Content-Type", formType)
	e.handler.ServeHTTP(httptest.NewRecorder(), req)
	recs, err := e.store.RecentAudit(1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("RecentAudit(1) = %v, %v", recs, err)
	}
	r := recs[0]
	if r.Kind != state.AuditCommand || r.Text != "help status" || r.UserID != "id-ann" || r.UserName != "ann" ||
		r.ChannelID != "chan1" || r.ChannelName != "toolbox" || r.Outcome != "ok" {
		t.Errorf("audit record = %+v, want ann's help status in ~toolbox, ok", r)
	}
}

func postAction(t *testing.T, h http.Handler, contentType, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, ActionPath, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func actionBody(t *testing.T, req model.PostActionIntegrationRequest) string {
	t.Helper()
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestActionEndpoint(t *testing.T) {
	click := func(ctx map[string]any) model.PostActionIntegrationRequest {
		return model.PostActionIntegrationRequest{
			UserId: "id-ann", UserName: "ann", ChannelId: "chan1", ChannelName: "toolbox", TeamId: testTeamID,
			PostId: "post1", Context: ctx,
		}
	}
	forged := click(map[string]any{contextToken: "eyJ2IjoiYWRtaW5zIHJlbW92ZSJ9.c2lnbmF0dXJl", contextAction: "confirm"})
	otherTeam := forged
	otherTeam.TeamId = "team2"
	noUser := forged
	noUser.UserId = ""
	noTeam := forged
	noTeam.TeamId = ""
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		wantStatus  int
		wantAudit   int
		wantEph     string
	}{
		{name: "GET", method: http.MethodGet, contentType: "application/json", body: "{}", wantStatus: http.StatusMethodNotAllowed},
		{name: "form content type", contentType: formType, body: "a=b", wantStatus: http.StatusUnsupportedMediaType},
		{name: "malformed JSON", contentType: "application/json", body: `{"user_id": "id-ann",`, wantStatus: http.StatusBadRequest},
		{name: "JSON of the wrong shape", contentType: "application/json", body: `["confirm"]`, wantStatus: http.StatusBadRequest},
		{name: "missing context", contentType: "application/json", body: actionBody(t, click(nil)), wantStatus: http.StatusBadRequest},
		{name: "context without a token", contentType: "application/json", body: actionBody(t, click(map[string]any{contextAction: "confirm"})), wantStatus: http.StatusBadRequest},
		{name: "token that is not a string", contentType: "application/json", body: actionBody(t, click(map[string]any{contextToken: 42, contextAction: "confirm"})), wantStatus: http.StatusBadRequest},
		{name: "unknown action", contentType: "application/json", body: actionBody(t, click(map[string]any{contextToken: "x.y", contextAction: "explode"})), wantStatus: http.StatusBadRequest},
		{name: "missing user", contentType: "application/json", body: actionBody(t, noUser), wantStatus: http.StatusBadRequest},
		{name: "another team", contentType: "application/json", body: actionBody(t, otherTeam), wantStatus: http.StatusForbidden},
		{name: "body over 1 MB", contentType: "application/json", body: `{"pad":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, wantStatus: http.StatusRequestEntityTooLarge},
		{name: "forged token", contentType: "application/json", body: actionBody(t, forged), wantStatus: http.StatusOK, wantAudit: 1, wantEph: "This button is not valid."},
		{name: "forged token without a team", contentType: "application/json", body: actionBody(t, noTeam), wantStatus: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newBotEnv(t)
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, ActionPath, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			before := e.auditCount(t)
			rec := httptest.NewRecorder()
			e.handler.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", rec.Code, tt.wantStatus, rec.Body.String())
			}
			if n := e.auditCount(t) - before; n != tt.wantAudit {
				t.Errorf("wrote %d audit records, want %d", n, tt.wantAudit)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			var resp model.PostActionIntegrationResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("reply is not JSON: %v: %q", err, rec.Body.String())
			}
			if resp.EphemeralText != tt.wantEph || resp.Update != nil {
				t.Errorf("reply = %+v, want ephemeral %q and no update", resp, tt.wantEph)
			}
		})
	}
}

// TestConfirmationThroughTheEndpoints runs a command that asks for
// confirmation, then clicks the button the way Mattermost sends it.
func TestConfirmationThroughTheEndpoints(t *testing.T) {
	e := newBotEnv(t)
	for _, id := range []string{"id-ann", "id-bob"} {
		if err := e.store.AddAdmin(state.Admin{UserID: id, UserName: strings.TrimPrefix(id, "id-")}); err != nil {
			t.Fatal(err)
		}
	}
	// Only a system admin may change the admins list.
	req := httptest.NewRequest(http.MethodPost, CommandPath, strings.NewReader(commandForm("root", "admins remove @bob").Encode()))
	req.Header.Set("Content-Type", formType)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), "This needs a confirmation") {
		t.Fatalf("admins remove = %d %q, want a confirmation", rec.Code, rec.Body.String())
	}
	prompts := e.chat.Prompts()
	if len(prompts) != 1 {
		t.Fatalf("prompts = %+v, want one", prompts)
	}
	click := model.PostActionIntegrationRequest{
		UserId: "id-root", UserName: "root", ChannelId: "chan1", ChannelName: "toolbox", TeamId: testTeamID, PostId: "post1",
		Context: map[string]any{contextToken: prompts[0].Token, contextAction: "confirm"},
	}
	rec = postAction(t, e.handler, "application/json", actionBody(t, click))
	if rec.Code != http.StatusOK {
		t.Fatalf("click status = %d %q", rec.Code, rec.Body.String())
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	var update struct {
		Message string         `json:"message"`
		Props   map[string]any `json:"props"`
	}
	if err := json.Unmarshal(raw["update"], &update); err != nil {
		t.Fatalf("update: %v in %s", err, rec.Body.String())
	}
	if !strings.Contains(update.Message, "confirmed by @root") || !strings.Contains(update.Message, "`@bob` is no longer a toolbox admin.") {
		t.Errorf("update message = %q, want confirmed and done", update.Message)
	}
	if update.Props == nil || len(update.Props) != 0 {
		t.Errorf("update props = %v, want an empty object so the buttons go", update.Props)
	}
	if ok, err := e.store.IsAdmin("id-bob"); err != nil || ok {
		t.Errorf("IsAdmin(bob) = %v, %v after the confirmation, want false", ok, err)
	}
	// Mattermost delivers the same click twice: the second is refused.
	rec = postAction(t, e.handler, "application/json", actionBody(t, click))
	var resp model.PostActionIntegrationResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || resp.EphemeralText != "This confirmation was already answered." {
		t.Errorf("second click = %q (%v), want already answered", rec.Body.String(), err)
	}
}

func TestOtherPaths(t *testing.T) {
	e := newBotEnv(t)
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, HealthPath, nil))
	if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
		t.Errorf("GET %s = %d %q, want 200 ok", HealthPath, rec.Code, rec.Body.String())
	}
	rec = httptest.NewRecorder()
	e.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/mm/other", strings.NewReader("")))
	if rec.Code != http.StatusNotFound {
		t.Errorf("POST /mm/other = %d, want 404", rec.Code)
	}
}

// TestSlowClientIsCutOff holds connections that send their headers and then
// trickle their bodies; the server's read timeout must end them while other
// requests are served.
func TestSlowClientIsCutOff(t *testing.T) {
	e := newBotEnv(t)
	srv := NewServer(e.handler)
	const readTimeout = 2 * time.Second
	srv.ReadTimeout = readTimeout
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-serveErr; err != http.ErrServerClosed {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	})
	addr := ln.Addr().String()

	type outcome struct {
		status string // the status line, or "" when the server just closed
		err    error
		after  time.Duration
	}
	const slowClients = 4
	results := make(chan outcome, slowClients)
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	for range slowClients {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		body := commandForm("ann", "status").Encode()
		_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: bot\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", CommandPath, formType, len(body)+10000)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // one byte every 20 ms: the body would take minutes
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte{body[i%len(body)]}); err != nil {
					return
				}
			}
		}()
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // only a safety net
			line, err := bufio.NewReader(conn).ReadString('\n')
			results <- outcome{status: strings.TrimSpace(line), err: err, after: time.Since(start)}
		}()
	}

	// Meanwhile a normal request is answered at once.
	resp, err := http.Post("http://"+addr+CommandPath, formType, strings.NewReader(commandForm("ann", "status").Encode()))
	if err != nil {
		t.Fatalf("a normal request while slow clients trickle: %v", err)
	}
	fast := time.Since(start)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "No apps yet.") {
		t.Errorf("normal request = %d %q, want 200 with the status", resp.StatusCode, body)
	}

	for range slowClients {
		got := <-results
		if got.status != "" && !strings.HasPrefix(got.status, "HTTP/1.1 400") {
			t.Errorf("slow client got %q, want a 400 or a closed connection", got.status)
		}
		if got.status == "" && (got.err == nil || isTimeout(got.err)) {
			t.Errorf("slow client: read error %v, want the server to close the connection", got.err)
		}
		if got.after < readTimeout || got.after > readTimeout+10*time.Second {
			t.Errorf("slow client cut off after %s, want soon after the read timeout of %s", got.after, readTimeout)
		}
		if got.after < fast {
			t.Errorf("a slow client was cut off (%s) before the normal request was answered (%s)", got.after, fast)
		}
	}
	if n := e.auditCount(t); n != 1 {
		t.Errorf("%d audit records, want 1: the slow clients never reached the router", n)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestNewServerTimeouts guards the timeouts that keep slow clients out.
func TestNewServerTimeouts(t *testing.T) {
	srv := NewServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("NewServer = %+v, want every timeout and the header bound set", srv)
	}
	if srv.WriteTimeout < 30*time.Second {
		t.Errorf("WriteTimeout = %s, shorter than Mattermost's wait of 30 s", srv.WriteTimeout)
	}
}
