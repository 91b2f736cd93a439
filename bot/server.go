// Package bot is everything Mattermost: the slash-command and button endpoints,
// posting as the bot, and bootstrapping a server.
//
// It may import commands (the router it hands requests to, and the Chat and
// Directory it implements) and state; never deploy/*.
package bot

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// MaxBodyBytes bounds a request from Mattermost; a command's form is a few KB.
const MaxBodyBytes = 1 << 20

// Paths the bot serves; Mattermost is configured to call them.
const (
	CommandPath = "/mm/command"
	ActionPath  = "/mm/action"
	HealthPath  = "/healthz"
)

// Router is what the handler hands commands and clicks to.
type Router interface {
	Handle(ctx context.Context, req commands.Request) commands.Reply
	HandleClick(ctx context.Context, click commands.Click) commands.ClickResult
}

// Handler serves Mattermost's calls.
type Handler struct {
	Router       Router
	CommandToken state.Secret
	TeamID       string
	Log          *slog.Logger
	// RequestTimeout bounds the synchronous part of a command (Mattermost waits 30 s at most).
	RequestTimeout time.Duration
}

func (h *Handler) logger() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// ServeHTTP routes to the command, action and health endpoints.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case CommandPath:
		h.serveCommand(w, r)
	case ActionPath:
		h.serveAction(w, r)
	case HealthPath:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) timeout() time.Duration {
	if h.RequestTimeout > 0 {
		return h.RequestTimeout
	}
	return 20 * time.Second
}

// readBody reads a POST body of the given media type, bounded by MaxBodyBytes.
// It writes the error status itself and returns false when the request is unfit.
func readBody(w http.ResponseWriter, r *http.Request, mediaType string) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "use POST", http.StatusMethodNotAllowed)
		return nil, false
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != mediaType {
		http.Error(w, "content type must be "+mediaType, http.StatusUnsupportedMediaType)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	case err != nil:
		http.Error(w, "could not read the request body", http.StatusBadRequest)
		return nil, false
	}
	return body, true
}

func (h *Handler) tokenOK(form string, header string) bool {
	want := []byte(h.CommandToken.Reveal())
	if len(want) == 0 || subtle.ConstantTimeCompare([]byte(form), want) != 1 {
		return false
	}
	if header == "" {
		return true
	}
	scheme, tok, ok := strings.Cut(header, " ")
	return ok && strings.EqualFold(scheme, "Token") && subtle.ConstantTimeCompare([]byte(tok), want) == 1
}

func (h *Handler) serveCommand(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, "application/x-www-form-urlencoded")
	if !ok {
		return
	}
	form, err := parseForm(body)
	if err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	if !h.tokenOK(form.Get("token"), r.Header.Get("Authorization")) {
		h.logger().Warn("slash command with a missing or wrong token", "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if form.Get("team_id") != h.TeamID {
		h.logger().Warn("slash command from another team", "team", form.Get("team_id"))
		http.Error(w, "this toolbox serves another team", http.StatusForbidden)
		return
	}
	caller := commands.Caller{
		UserID: form.Get("user_id"), UserName: form.Get("user_name"),
		ChannelID: form.Get("channel_id"), ChannelName: form.Get("channel_name"), TeamID: form.Get("team_id"),
		ResponseURL: form.Get("response_url"),
	}
	if caller.UserID == "" || caller.ChannelID == "" {
		http.Error(w, "user_id and channel_id are required", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout())
	defer cancel()
	reply := h.Router.Handle(ctx, commands.Request{Caller: caller, Text: form.Get("text")})
	writeJSON(w, &model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: reply.Text})
}

// Context keys of the confirmation buttons.
const (
	contextToken  = "token"
	contextAction = "action"
)

func (h *Handler) serveAction(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, "application/json")
	if !ok {
		return
	}
	var req model.PostActionIntegrationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, "malformed JSON", http.StatusBadRequest)
		return
	}
	token, _ := req.Context[contextToken].(string)
	action, _ := req.Context[contextAction].(string)
	if token == "" || (action != "confirm" && action != "cancel") || req.UserId == "" {
		http.Error(w, "not a toolbox button", http.StatusBadRequest)
		return
	}
	if req.TeamId != h.TeamID {
		http.Error(w, "this toolbox serves another team", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout())
	defer cancel()
	res := h.Router.HandleClick(ctx, commands.Click{
		Caller: commands.Caller{UserID: req.UserId, UserName: req.UserName, ChannelID: req.ChannelId,
			ChannelName: req.ChannelName, TeamID: req.TeamId},
		PostID: req.PostId, Confirm: action == "confirm", Token: token,
	})
	resp := &model.PostActionIntegrationResponse{EphemeralText: res.Ephemeral}
	if res.Update != "" {
		// Empty props remove the buttons, so the prompt cannot be clicked again.
		resp.Update = &model.Post{Message: res.Update, Props: model.StringInterface{}}
	}
	writeJSON(w, resp)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// NewServer wraps h in an http.Server whose timeouts keep slow or stuck
// clients from holding connections.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}
