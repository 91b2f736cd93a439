package bot

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/commands"
)

// TestWhisper sends a private reply through a slash command's response URL.
// The server stands in for Mattermost's /hooks/commands endpoint, which the
// real server only opens while a command it sent is pending (the e2e tests
// go through it).
func TestWhisper(t *testing.T) {
	const hook = "/hooks/commands/abcdefghijklmnopqrstuvwxyz"
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type")+" "+string(body))
		mu.Unlock()
		if r.URL.Path != hook {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c := NewClient(srv.URL, "bot-token", "http://bot.invalid")
	ctx := context.Background()

	// The public address in the URL is replaced by the bot's way to Mattermost.
	if err := c.Whisper(ctx, "https://chat.example.org"+hook, "details: /var/lib/x"); err != nil {
		t.Fatalf("Whisper: %v", err)
	}
	mu.Lock()
	if len(got) != 1 || !strings.HasPrefix(got[0], "POST "+hook+" application/json ") {
		t.Fatalf("requests = %q, want one JSON POST to %s", got, hook)
	}
	var resp model.CommandResponse
	if err := json.Unmarshal([]byte(strings.SplitN(got[0], " ", 4)[3]), &resp); err != nil || resp.ResponseType != model.CommandResponseTypeEphemeral || resp.Text != "details: /var/lib/x" {
		t.Errorf("body = %q (%v), want an ephemeral response with the text", got[0], err)
	}
	got = nil
	mu.Unlock()

	for _, bad := range []string{
		"", "::", "https://chat.example.org/api/v4/users", "https://chat.example.org" + hook + "?x=1",
		"https://chat.example.org/hooks/commands/abc/../../../api/v4/posts", "https://chat.example.org/hooks/commands/ABCDEFGHIJKLMNOPQRSTUVWXYZ",
	} {
		if err := c.Whisper(ctx, bad, "x"); err == nil || !strings.Contains(err.Error(), "is not a slash command's response URL") {
			t.Errorf("Whisper(%q) = %v, want it refused", bad, err)
		}
	}
	if err := c.Whisper(ctx, "https://chat.example.org/hooks/commands/zzzzzzzzzzzzzzzzzzzzzzzzzz", "x"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("Whisper to an unknown hook = %v, want the 404", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Errorf("requests = %q, want only the one to the unknown hook", got)
	}
}

// urlRouter is a Router that keeps the response URL of each command.
type urlRouter struct{ urls chan string }

func (r urlRouter) Handle(_ context.Context, req commands.Request) commands.Reply {
	r.urls <- req.Caller.ResponseURL
	return commands.Reply{Text: "ok"}
}

func (urlRouter) HandleClick(context.Context, commands.Click) commands.ClickResult {
	return commands.ClickResult{}
}

func TestCommandPassesTheResponseURL(t *testing.T) {
	caller := make(chan string, 1)
	h := &Handler{Router: urlRouter{caller}, CommandToken: testCommandToken, TeamID: testTeamID}
	req := httptest.NewRequest(http.MethodPost, CommandPath, strings.NewReader(commandForm("ann", "status").Encode()))
	req.Header.Set("Content-Type", formType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if got, want := <-caller, "http://mattermost.invalid/hooks/commands/abc"; got != want {
		t.Errorf("Caller.ResponseURL = %q, want %q", got, want)
	}
}
