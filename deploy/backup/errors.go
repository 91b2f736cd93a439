package backup

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// The kinds of failure a caller tells people apart. Each is wrapped, with
// restic's own last words, by an *ExitError.
var (
	// ErrNoRepository: there is no restic repository at the URL (restic's
	// exit code 10).
	ErrNoRepository = errors.New("there is no restic repository there")
	// ErrWrongPassword: the password opens none of the repository's keys
	// (exit code 12, "wrong password or no key found").
	ErrWrongPassword = errors.New("the repository's password is wrong")
	// ErrUnreachable: the repository's storage could not be reached or read
	// (network, credentials of the backend, permissions).
	ErrUnreachable = errors.New("the repository's storage cannot be reached")
	// ErrLocked: another restic holds a lock that this command conflicts
	// with (exit code 11): a prune or check under way, or a stale lock that
	// Unlock removes.
	ErrLocked = errors.New("the repository is locked by another restic")
	// ErrPartial: restic made the snapshot but could not read some files
	// (exit code 3); Backup returns the Summary with it.
	ErrPartial = errors.New("some files could not be read")
)

// ExitError is a restic run that ended with a non-zero exit code.
type ExitError struct {
	Command string // restic's command: "backup", "cat config"
	Code    int    // restic's exit code
	// Message is restic's last word on stderr: the message of its JSON
	// exit_error (on one line), else its "Fatal:" line, else its last line.
	Message string
	// Problems are the first errors restic reported about single items
	// ("/volumes/x/file: open ...: permission denied").
	Problems []string
	Kind     error // one of the sentinels above, or nil
}

func (e *ExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "backup: restic %s: ", e.Command)
	if e.Kind != nil {
		b.WriteString(e.Kind.Error())
	} else {
		fmt.Fprintf(&b, "exit code %d", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Problems) > 0 {
		b.WriteString(" (" + strings.Join(e.Problems, "; ") + ")")
	}
	return b.String()
}

// Unwrap returns the kind, so that errors.Is(err, ErrLocked) works.
func (e *ExitError) Unwrap() error { return e.Kind }

// kindOf maps restic's exit code, and for older versions its words, to a
// sentinel.
func kindOf(code int, message string, retried bool) error {
	switch code {
	case 3:
		return ErrPartial
	case 10:
		return ErrNoRepository
	case 11:
		return ErrLocked
	case 12:
		return ErrWrongPassword
	}
	m := strings.ToLower(message)
	switch {
	case strings.Contains(m, "wrong password or no key found"):
		return ErrWrongPassword
	case strings.Contains(m, "repository is already locked"):
		return ErrLocked
	case strings.Contains(m, "repository does not exist"):
		return ErrNoRepository
	case retried && code == 1, strings.Contains(m, "dial tcp"), strings.Contains(m, "no such host"),
		strings.Contains(m, "connection refused"), strings.Contains(m, "i/o timeout"),
		strings.Contains(m, "network is unreachable"):
		return ErrUnreachable
	}
	return nil
}

// maxProblems is how many item errors an ExitError keeps.
const maxProblems = 5

// tailSize is how much of restic's stderr is kept.
const tailSize = 16 << 10

// stderrWatcher keeps the tail of restic's stderr and reads what matters in
// it: the JSON exit_error, item errors, and backend errors restic retries.
type stderrWatcher struct {
	mu       sync.Mutex
	partial  []byte // an unfinished line
	last     string // the last non-empty line that is not JSON
	exit     string // the exit_error's message
	fatal    string // the first line that starts with "Fatal:"
	problems []string
	nprob    int
	retry    string // the last "retrying after" line
	onRetry  func(line string)
}

func (w *stderrWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) > tailSize {
				w.partial = w.partial[len(w.partial)-tailSize:]
			}
			break
		}
		line := append(w.partial, p[:i]...)
		w.partial = nil
		w.line(line)
		p = p[i+1:]
	}
	return n, nil
}

func (w *stderrWatcher) line(line []byte) {
	line = bytes.TrimSpace(line)
	// restic erases its terminal status line with an escape sequence.
	line = bytes.TrimPrefix(line, []byte("\x1b[2K"))
	if len(line) == 0 {
		return
	}
	if line[0] == '{' {
		var m struct {
			MessageType string `json:"message_type"`
			Message     string `json:"message"`
			Error       struct {
				Message string `json:"message"`
			} `json:"error"`
			Item string `json:"item"`
		}
		if json.Unmarshal(line, &m) == nil && m.MessageType != "" {
			switch m.MessageType {
			case "exit_error":
				w.exit = oneLine(m.Message)
			case "error":
				w.nprob++
				if len(w.problems) < maxProblems {
					p := m.Error.Message
					if m.Item != "" && !strings.Contains(p, m.Item) {
						p = m.Item + ": " + p
					}
					w.problems = append(w.problems, p)
				}
			}
			return
		}
	}
	s := string(line)
	if strings.Contains(s, "returned error, retrying after") {
		w.retry = s
		if w.onRetry != nil {
			w.onRetry(s)
		}
	}
	if w.fatal == "" && strings.HasPrefix(s, "Fatal:") {
		w.fatal = s
	}
	w.last = s
}

// oneLine joins restic's multi-line message into one line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// exitError builds the error for a run of command that ended with code.
func (w *stderrWatcher) exitError(command string, code int) *ExitError {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(w.partial)
		w.partial = nil
	}
	msg := w.exit
	if msg == "" {
		msg = w.fatal
	}
	if msg == "" {
		msg = w.last
	}
	probs := w.problems
	if w.nprob > len(probs) {
		probs = append(slices.Clone(probs), fmt.Sprintf("and %d more", w.nprob-len(probs)))
	}
	return &ExitError{Command: command, Code: code, Message: msg, Problems: probs,
		Kind: kindOf(code, msg, w.retry != "")}
}
