package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// The control socket lets `toolbox do` and `toolbox state backup` reach a
// running server, which holds bbolt's file lock. It is a unix socket with
// mode 0600 beside the state: only the machine's operator can use it.

func controlSocket(cfg config) string { return cfg.StatePath + ".sock" }

func listenControl(path string) (net.Listener, error) {
	if serverRunning(path) {
		return nil, fmt.Errorf("another toolbox is serving this state (%s answers)", path)
	}
	_ = os.Remove(path) // a stale socket from a crash
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

type doRequest struct {
	Text string `json:"text"`
	Yes  bool   `json:"yes"`
}

type doReply struct {
	Text string `json:"text"`
	// Failed is set when the command (or the job it started) failed.
	Failed bool `json:"failed,omitempty"`
}

// bootstrapReply carries the bootstrap's outcome to `toolbox mattermost
// bootstrap` (and `toolbox up`) over the 0600 socket: the only way the first
// admin's password leaves the server, once.
type bootstrapReply struct {
	Changes       []string `json:"changes"`
	AdminUsername string   `json:"admin_username"`
	AdminPassword string   `json:"admin_password,omitempty"`
	Error         string   `json:"error,omitempty"`
}

func (s *server) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /do", func(w http.ResponseWriter, r *http.Request) {
		var req doRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, bot.MaxBodyBytes)).Decode(&req); err != nil {
			http.Error(w, "malformed request", http.StatusBadRequest)
			return
		}
		// Jobs started from the terminal report in the toolbox channel, if any.
		caller := commands.Caller{UserName: "operator", Terminal: true}
		if ch := s.channelID.Load(); ch != nil {
			caller.ChannelID = *ch
		}
		writeJSON(w, runAndWait(r.Context(), s.router, s.st, commands.Request{Caller: caller, Text: req.Text, Confirmed: req.Yes}))
	})
	mux.HandleFunc("POST /bootstrap", func(w http.ResponseWriter, r *http.Request) {
		res, err := bootstrapMattermost(r.Context(), s.cfg, s.st)
		if err == nil {
			var cs chatSettings
			if cs, err = loadChatSettings(s.cfg, s.st); err == nil {
				s.activate(cs)
			}
		}
		reply := bootstrapReply{Changes: res.Changes, AdminUsername: res.AdminUsername, AdminPassword: res.AdminPassword.Reveal()}
		if err != nil {
			s.log.Error("bootstrap failed", "err", err)
			reply.Error = err.Error()
		}
		writeJSON(w, reply)
	})
	mux.HandleFunc("GET /state/backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if _, err := s.st.Backup(w); err != nil {
			s.log.Error("state backup through the control socket failed", "err", err)
			panic(http.ErrAbortHandler) // cut the stream: the client must not take it for whole
		}
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// runAndWait runs a command as the operator and, when it starts a job, waits
// for the job's outcome: a terminal wants the result, not a promise.
func runAndWait(ctx context.Context, router *commands.Router, st *state.Store, req commands.Request) doReply {
	reply := router.Handle(ctx, req)
	if reply.JobID == 0 {
		return doReply{Text: reply.Text, Failed: reply.Failed}
	}
	if err := router.Jobs().Await(ctx, reply.JobID); err != nil {
		return doReply{Text: reply.Text}
	}
	job, err := st.Job(reply.JobID)
	if err != nil {
		return doReply{Text: reply.Text, Failed: true}
	}
	if job.Error != "" {
		return doReply{Text: fmt.Sprintf("job #%d %s: %s", job.ID, job.Status, job.Error), Failed: true}
	}
	return doReply{Text: job.Result}
}

func controlClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// serverRunning says whether a server answers on the control socket.
func serverRunning(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// doCommand runs one command as the operator: through the running server when
// there is one, else on the state directly, waiting for the jobs it starts.
func doCommand(ctx context.Context, cfg config, log *slog.Logger, args []string, stdin io.Reader, stdout io.Writer) error {
	yes := false
	if len(args) > 0 && (args[0] == "--yes" || args[0] == "-y") {
		yes, args = true, args[1:]
	}
	if len(args) != 1 {
		return errors.New(`usage: toolbox do [--yes] "<command text>"`)
	}
	text := args[0]
	if sock := controlSocket(cfg); serverRunning(sock) {
		body, _ := json.Marshal(doRequest{Text: text, Yes: yes})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://toolbox/do", strings.NewReader(string(body)))
		if err != nil {
			return err
		}
		resp, err := controlClient(sock).Do(req)
		if err != nil {
			return fmt.Errorf("the running toolbox did not answer: %w", err)
		}
		defer resp.Body.Close()
		var reply doReply
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
			return fmt.Errorf("the running toolbox answered %s", resp.Status)
		}
		fmt.Fprintln(stdout, reply.Text)
		if reply.Failed {
			return errors.New("the command failed")
		}
		return nil
	}

	st, err := state.Open(cfg.StatePath, state.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	var (
		dir   commands.Directory
		check func(context.Context) (string, error)
	)
	if cs, err := loadChatSettings(cfg, st); err == nil {
		mm := bot.NewClient(cs.siteURL, cs.botToken, cs.botURL)
		dir, check = mm, mm.Check
	}
	m := newMachine(cfg)
	defer m.Close()
	router, err := newRouter(ctx, cfg, log, st, m, &terminalChat{w: stdout}, dir, check)
	if err != nil {
		return err
	}
	// No server runs on this state: a job still marked running died with its process.
	if _, err := router.Jobs().Recover(ctx); err != nil {
		return err
	}
	if !yes && router.NeedsConfirmation(text) {
		fmt.Fprintf(stdout, "%q asks for confirmation. Type yes to go on: ", text)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed; nothing was done")
		}
		yes = true
	}
	reply := router.Handle(ctx, commands.Request{Caller: commands.Caller{UserName: "operator", Terminal: true}, Text: text, Confirmed: yes})
	fmt.Fprintln(stdout, reply.Text)
	router.Jobs().Wait() // the terminal chat prints its progress and result
	failed := reply.Failed
	if reply.JobID != 0 {
		job, err := st.Job(reply.JobID)
		failed = err != nil || job.Status != state.JobSucceeded
	}
	if failed {
		return errors.New("the command failed")
	}
	return nil
}

// terminalChat prints what the bot would post.
type terminalChat struct {
	w io.Writer
	n int
}

func (t *terminalChat) Post(_ context.Context, _ string, text string) (string, error) {
	t.n++
	fmt.Fprintln(t.w, text)
	return fmt.Sprint(t.n), nil
}

func (t *terminalChat) Edit(_ context.Context, _ string, text string) error {
	fmt.Fprintln(t.w, text)
	return nil
}

func (t *terminalChat) AskConfirmation(context.Context, string, string, string) (string, error) {
	return "", errors.New("confirmations are answered with --yes on the terminal")
}

func stateBackup(cfg config, path string, stdout io.Writer) error {
	var (
		n   int64
		err error
	)
	if sock := controlSocket(cfg); serverRunning(sock) {
		n, err = backupThroughServer(sock, path)
	} else {
		var st *state.Store
		if st, err = state.Open(cfg.StatePath, state.Options{}); err != nil {
			return err
		}
		n, err = st.BackupFile(path)
		if cerr := st.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d bytes of state to %s\n", n, path)
	return nil
}

func backupThroughServer(sock, path string) (int64, error) {
	resp, err := controlClient(sock).Get("http://toolbox/state/backup")
	if err != nil {
		return 0, fmt.Errorf("the running toolbox did not answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the running toolbox answered %s", resp.Status)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A cut-off stream would leave a torn file: check it is a whole state.
		var st *state.Store
		if st, err = state.Open(tmp, state.Options{}); err == nil {
			err = errors.Join(st.Check(), st.Close())
		}
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("state backup: %w", err)
	}
	return n, os.Rename(tmp, path)
}
