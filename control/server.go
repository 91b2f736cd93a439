package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// Router is the part of commands.Router the socket drives.
type Router interface {
	Handle(ctx context.Context, req commands.Request) commands.Reply
	Jobs() *commands.Jobs
}

// Store is the part of the state the socket reads.
type Store interface {
	Job(id uint64) (state.Job, error)
	Backup(w io.Writer) (int64, error)
	// RotateKey and DeleteSecret change the state only the server may
	// open (it holds the file's lock).
	RotateKey() (string, error)
	DeleteSecret(name string) error
}

// Server answers the control socket for a running toolbox.
type Server struct {
	Router Router
	Store  Store
	// Bootstrap sets Mattermost up and connects the running bot to it.
	Bootstrap func(ctx context.Context) (bot.BootstrapResult, error)
	// ChannelID is the toolbox channel, where jobs started from the terminal
	// report ("" before the bootstrap).
	ChannelID func() string
	Log       *slog.Logger
}

// Handler serves the socket's calls.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /do", s.do)
	mux.HandleFunc("POST /bootstrap", s.bootstrap)
	mux.HandleFunc("GET /state/backup", s.backup)
	mux.HandleFunc("POST /state/rotate-key", s.rotateKey)
	mux.HandleFunc("POST /mattermost/forget-admin-password", s.forgetAdminPassword)
	return mux
}

func (s *Server) do(w http.ResponseWriter, r *http.Request) {
	var req doRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, bot.MaxBodyBytes)).Decode(&req); err != nil {
		http.Error(w, "malformed request", http.StatusBadRequest)
		return
	}
	caller := commands.Caller{UserName: "operator", Terminal: true}
	if s.ChannelID != nil {
		caller.ChannelID = s.ChannelID()
	}
	writeJSON(w, RunAndWait(r.Context(), s.Router, s.Store, commands.Request{Caller: caller, Text: req.Text, Confirmed: req.Yes}))
}

func (s *Server) bootstrap(w http.ResponseWriter, r *http.Request) {
	res, err := s.Bootstrap(r.Context())
	reply := bootstrapReply{Changes: res.Changes, AdminUsername: res.AdminUsername, AdminPassword: res.AdminPassword.Reveal()}
	if err != nil {
		s.Log.Error("bootstrap failed", "err", err)
		reply.Error = err.Error()
	}
	writeJSON(w, reply)
}

func (s *Server) backup(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := s.Store.Backup(w); err != nil {
		s.Log.Error("state backup through the control socket failed", "err", err)
		panic(http.ErrAbortHandler) // cut the stream: the client must not take it for whole
	}
}

func (s *Server) rotateKey(w http.ResponseWriter, _ *http.Request) {
	id, err := s.Store.RotateKey()
	reply := keyReply{KeyID: id}
	if err != nil {
		s.Log.Error("state key rotation failed", "err", err)
		reply.Error = err.Error()
	} else {
		s.Log.Info("state key rotated", "key_id", id)
	}
	writeJSON(w, reply)
}

func (s *Server) forgetAdminPassword(w http.ResponseWriter, _ *http.Request) {
	var reply keyReply
	if err := s.Store.DeleteSecret(bot.SecretAdminPassword); err != nil {
		s.Log.Error("forgetting the first admin's password failed", "err", err)
		reply.Error = err.Error()
	}
	writeJSON(w, reply)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// RunAndWait runs a command as the operator and, when it starts a job, waits
// for the job's outcome: a terminal wants the result, not a promise.
func RunAndWait(ctx context.Context, router Router, st Store, req commands.Request) Reply {
	reply := router.Handle(ctx, req)
	if reply.JobID == 0 {
		return Reply{Text: reply.Text, Failed: reply.Failed}
	}
	if err := router.Jobs().Await(ctx, reply.JobID); err != nil {
		return Reply{Text: reply.Text}
	}
	job, err := st.Job(reply.JobID)
	if err != nil {
		return Reply{Text: reply.Text, Failed: true}
	}
	if job.Error != "" {
		return Reply{Text: fmt.Sprintf("job #%d %s: %s", job.ID, job.Status, job.Error), Failed: true}
	}
	return Reply{Text: job.Result}
}
