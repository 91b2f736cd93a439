package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

const redacted = "[redacted]"

// Secret is a password or a credential. It prints, logs and marshals as
// "[redacted]"; Reveal is the only way to the clear value.
type Secret string

// Reveal returns the clear value.
func (s Secret) Reveal() string { return string(s) }

// String is redacted.
func (Secret) String() string { return redacted }

// GoString is redacted.
func (Secret) GoString() string { return redacted }

// Format is redacted for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue is redacted.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON is redacted.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText is redacted.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Repository is one restic repository and the way to run restic on it. It
// holds no connection: every method is one restic run (Init, Backup of
// stdin with a truncated stream: two), safe for concurrent use as far as
// restic's locks allow.
type Repository struct {
	// URL is restic's repository string: a path inside the run
	// ("/repository", with the volume in Mounts), "s3:host/bucket/path",
	// "swift:container:/path", "sftp:user@host:/path", "rest:https://...".
	// It is passed as RESTIC_REPOSITORY.
	URL string
	// Password is the repository's password (RESTIC_PASSWORD).
	Password Secret
	// Env holds the backend's settings and credentials (AWS_*, OS_*, B2_*
	// ...), passed in the environment only.
	Env map[string]Secret
	// Mounts are mounted into every run: a local repository's volume, the
	// cache's volume.
	Mounts []Mount
	// CacheDir is restic's cache folder inside the run (a volume of
	// Mounts); "" runs restic with --no-cache.
	CacheDir string
	// Runner runs restic.
	Runner Runner
}

// String names the repository with the credentials of its URL redacted.
func (r Repository) String() string { return redactURL(r.URL) }

// LogValue shows the URL without its credentials and the names of Env.
func (r Repository) LogValue() slog.Value {
	keys := make([]string, 0, len(r.Env))
	for k := range r.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return slog.GroupValue(slog.String("url", redactURL(r.URL)), slog.Any("env", keys))
}

// redactURL hides the user information of a URL inside restic's
// repository string ("rest:https://user:pass@host/").
func redactURL(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	host := rest
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		host = rest[:j]
	}
	at := strings.LastIndexByte(host, '@')
	if at < 0 {
		return s
	}
	return s[:i+3] + redacted + rest[at:]
}

// reserved are the variables Repository sets itself, or that would make
// restic read its password elsewhere.
var reserved = []string{"RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD",
	"RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND", "RESTIC_CACHE_DIR", "TZ"}

func (r *Repository) validate() error {
	var problems []string
	if r.URL == "" {
		problems = append(problems, "no URL")
	}
	if r.Password == "" {
		problems = append(problems, "no password")
	}
	if r.Runner == nil {
		problems = append(problems, "no runner")
	}
	for k := range r.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			problems = append(problems, fmt.Sprintf("environment variable name %q", k))
		case containsString(reserved, k):
			problems = append(problems, fmt.Sprintf("%s is set from the Repository's fields, not from Env", k))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("backup: repository %s: %s", r, strings.Join(problems, "; "))
	}
	return nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// call is one restic run as the methods describe it.
type call struct {
	command []string // "cat", "config"
	args    []string
	json    bool // add --json
	mounts  []Mount
	stdin   io.Reader
	stdout  io.Writer         // nil: collected and returned
	env     map[string]string // restic's own settings (RESTIC_PROGRESS_FPS)
	// giveUpOnRetry ends the run at restic's first retried backend error:
	// for checks, which must answer soon.
	giveUpOnRetry bool
}

// run runs c and returns its collected stdout. A non-zero exit is an
// *ExitError.
func (r *Repository) run(ctx context.Context, c call) ([]byte, error) {
	name := strings.Join(c.command, " ")
	if err := r.validate(); err != nil {
		return nil, err
	}
	args := append([]string(nil), c.command...)
	if c.json {
		args = append(args, "--json")
	}
	if r.CacheDir != "" {
		args = append(args, "--cache-dir", r.CacheDir)
	} else {
		args = append(args, "--no-cache")
	}
	args = append(args, c.args...)
	env := make(map[string]string, len(r.Env)+2)
	for k, v := range r.Env {
		env[k] = v.Reveal()
	}
	for k, v := range c.env {
		env[k] = v
	}
	env["TZ"] = "UTC" // restic's days and weeks, for --time and the policy
	env["RESTIC_REPOSITORY"] = r.URL
	env["RESTIC_PASSWORD"] = r.Password.Reveal()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gaveUp := false
	stderr := &stderrWatcher{}
	if c.giveUpOnRetry {
		stderr.onRetry = func(string) { gaveUp = true; cancel() }
	}
	var out bytes.Buffer
	stdout := c.stdout
	if stdout == nil {
		stdout = &out
	}
	mounts := append(append([]Mount(nil), r.Mounts...), c.mounts...)
	code, err := r.Runner.Run(ctx, Run{Args: args, Env: env, Mounts: mounts, Stdin: c.stdin, Stdout: stdout, Stderr: stderr})
	stderr.mu.Lock()
	gave := gaveUp
	stderr.mu.Unlock()
	switch {
	case gave:
		e := stderr.exitError(name, code)
		e.Kind, e.Message = ErrUnreachable, retriedError(stderr.retry)
		return nil, e
	case err != nil:
		return nil, fmt.Errorf("backup: restic %s: %w", name, err)
	case code != 0:
		return out.Bytes(), stderr.exitError(name, code)
	}
	return out.Bytes(), nil
}

// retriedError is the error part of restic's "Load(<config/>) returned
// error, retrying after 1.2s: dial tcp ...".
func retriedError(line string) string {
	if _, after, ok := strings.Cut(line, "returned error, retrying after "); ok {
		if _, e, ok := strings.Cut(after, ": "); ok {
			return e
		}
	}
	return line
}

// Info is what Open learns of a repository.
type Info struct {
	ID      string // the repository's ID
	Version int    // its format version (2 since restic 0.14)
}

// Open checks that the repository exists, that the password opens it and
// that no exclusive lock (a prune under way, or a stale lock) stands in the
// way, and returns its ID. It fails with ErrNoRepository, ErrWrongPassword,
// ErrLocked or ErrUnreachable (at the first backend error restic would
// retry: Open answers soon). It writes nothing but restic's own lock.
func (r *Repository) Open(ctx context.Context) (Info, error) {
	out, err := r.run(ctx, call{command: []string{"cat", "config"}, json: true, giveUpOnRetry: true})
	var e *ExitError
	if errors.As(err, &e) && e.Kind == nil {
		e.Kind = ErrUnreachable
	}
	if err != nil {
		return Info{}, err
	}
	var cfg struct {
		Version int    `json:"version"`
		ID      string `json:"id"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil || cfg.ID == "" {
		return Info{}, fmt.Errorf("backup: restic cat config: unexpected output %.200q", out)
	}
	return Info{ID: cfg.ID, Version: cfg.Version}, nil
}

// Init creates the repository, or finds it there: created says which. An
// existing repository must open with the password (Open's errors).
func (r *Repository) Init(ctx context.Context) (created bool, err error) {
	_, err = r.run(ctx, call{command: []string{"init"}, json: true})
	var e *ExitError
	if errors.As(err, &e) && e.Kind == nil && alreadyInitialized(e.Message) {
		_, err := r.Open(ctx)
		return false, err
	}
	return err == nil, err
}

// alreadyInitialized is restic's init refusing an existing repository:
// "config file already exists" (local, sftp, rest), "repository master key
// and config already initialized" (others).
func alreadyInitialized(msg string) bool {
	return strings.Contains(msg, "config file already exists") ||
		strings.Contains(msg, "already initialized")
}

// Unlock removes stale locks (of restic processes that died); live ones
// stay.
func (r *Repository) Unlock(ctx context.Context) error {
	_, err := r.run(ctx, call{command: []string{"unlock"}, json: true})
	return err
}

// CheckResult is what restic check found.
type CheckResult struct {
	Errors             int      // 0 when the repository is sound
	BrokenPacks        []string // pack files to repair
	SuggestRepairIndex bool
	SuggestPrune       bool
}

// Check verifies the repository's structure and, with readDataSubset
// ("5%", "1/10", "500M"; "" for none), reads that part of the data back. A
// damaged repository is an *ExitError with the result's findings in
// restic's message.
func (r *Repository) Check(ctx context.Context, readDataSubset string) (CheckResult, error) {
	var args []string
	if readDataSubset != "" {
		if err := validSubset(readDataSubset); err != nil {
			return CheckResult{}, err
		}
		args = append(args, "--read-data-subset", readDataSubset)
	}
	out, err := r.run(ctx, call{command: []string{"check"}, json: true, args: args})
	var res CheckResult
	for line := range bytes.Lines(out) {
		var m struct {
			MessageType        string   `json:"message_type"`
			NumErrors          int      `json:"num_errors"`
			BrokenPacks        []string `json:"broken_packs"`
			SuggestRepairIndex bool     `json:"suggest_repair_index"`
			SuggestPrune       bool     `json:"suggest_prune"`
		}
		if json.Unmarshal(line, &m) == nil && m.MessageType == "summary" {
			res = CheckResult{Errors: m.NumErrors, BrokenPacks: m.BrokenPacks,
				SuggestRepairIndex: m.SuggestRepairIndex, SuggestPrune: m.SuggestPrune}
		}
	}
	return res, err
}

// validSubset accepts restic's forms of --read-data-subset: "n/t", "x%"
// and a size ("500M").
func validSubset(s string) error {
	ok := s != "" && !strings.HasPrefix(s, "-") && !strings.ContainsAny(s, " \t\n,")
	if ok {
		if p, found := strings.CutSuffix(s, "%"); found {
			ok = isDecimal(p)
		} else if n, t, found := strings.Cut(s, "/"); found {
			ok = isDecimal(n) && isDecimal(t) && !strings.Contains(n+t, ".")
		} else {
			num := strings.TrimRight(s, "kKmMgGtT")
			ok = isDecimal(num) && len(s)-len(num) <= 1
		}
	}
	if !ok {
		return fmt.Errorf("backup: check: read-data subset %q: want a percentage (5%%), a fraction (1/10) or a size (500M)", s)
	}
	return nil
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	dot := false
	for _, c := range s {
		switch {
		case c == '.' && !dot:
			dot = true
		case c < '0' || c > '9':
			return false
		}
	}
	return s != "."
}
