// Package commands holds the verbs of /toolbox: the table they live in, who may
// run them, how they are parsed, confirmed, audited and run as jobs. It speaks to
// the outside through the small interfaces declared in deps.go.
//
// It may import deploy/catalog (the catalog is data) and state, and no
// adapter: the engine, the proxy and the chat reach it through those
// interfaces, wired by main.
package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/toolbox-collective/toolbox/state"
)

// Router finds the verb for a text, checks who may run it, and runs it.
type Router struct {
	verbs    map[string]*Verb
	order    []*Verb
	deps     Deps
	jobs     *Jobs
	confirm  *confirmer
	rep      *reporter
	draining atomic.Bool
}

// NewRouter builds the router and its job runner. root is the application's
// context: jobs run on it, not on the request's.
func NewRouter(root context.Context, deps Deps, extra ...*Verb) (*Router, error) {
	if deps.Store == nil {
		return nil, errors.New("commands: a store is required")
	}
	if len(deps.ConfirmKey) < 32 {
		return nil, errors.New("commands: the confirmation key must have at least 32 bytes")
	}
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.ConfirmTTL == 0 {
		deps.ConfirmTTL = 10 * time.Minute
	}
	r := &Router{verbs: map[string]*Verb{}, deps: deps, rep: newReporter(deps.ErrorKinds)}
	locks := newAppLocks()
	if deps.Apps != nil {
		locks = deps.Apps.lockTable()
	}
	r.jobs = newJobs(root, deps, r.rep, locks)
	r.confirm = &confirmer{key: deps.ConfirmKey}
	for _, v := range append(r.builtins(), extra...) {
		if _, dup := r.verbs[v.Name]; dup {
			return nil, fmt.Errorf("commands: verb %q defined twice", v.Name)
		}
		r.verbs[v.Name] = v
		r.order = append(r.order, v)
	}
	sort.Slice(r.order, func(i, j int) bool { return r.order[i].Name < r.order[j].Name })
	return r, nil
}

// Jobs returns the router's job runner (for start-up recovery and shutdown).
func (r *Router) Jobs() *Jobs { return r.jobs }

// Drain makes the router refuse new commands politely; running jobs go on.
func (r *Router) Drain() { r.draining.Store(true); r.jobs.drain() }

// Handle runs one command and records it in the audit log: a command that
// changes state, on disk before it acts.
func (r *Router) Handle(ctx context.Context, req Request) Reply {
	start := r.deps.Now()
	trail := r.newTrail(req.Caller, kindOf(req.Caller), r.redacted(req.Text), start)
	reply, outcome, err := r.handle(ctx, req, trail)
	if err != nil {
		rep := r.rep.report(ctx, r.deps.Log, "command failed", err, "text", r.redacted(req.Text), "user", req.Caller.UserName)
		reply = Reply{Text: rep.Text, Failed: true}
		if outcome == "" { // a refusal may name itself ("refused: draining")
			outcome = "error"
		}
		if rep.Kind == Forbidden {
			outcome = "refused"
		}
		if rep.Ref != "" {
			outcome = "error " + rep.Ref
		}
	}
	r.finishAudit(trail, outcome)
	return reply
}

// redacted is text with the secret arguments of its verb hidden.
// A text that does not parse, or names no verb, keeps only its first word:
// it may be a mistyped command carrying a password.
func (r *Router) redacted(text string) string {
	words, err := Split(text)
	if err != nil || len(words) == 0 {
		first, rest, _ := strings.Cut(strings.TrimSpace(text), " ")
		if rest != "" {
			first += " …"
		}
		return truncate(first, 40)
	}
	v, args, err := r.lookup(words)
	switch {
	case err != nil && len(words) > 1:
		return truncate(words[0], 40) + " …"
	case err != nil || v.Redact == nil:
		return urlPasswords.ReplaceAllString(text, "${1}[redacted]@")
	}
	return strings.TrimSpace(v.Name + " " + quoteArgs(v.Redact(args)))
}

// urlPasswords finds the password of a URL's user information
// (scheme://user:password@host), which anyone may paste after any verb. It
// runs to the last @ of the word: a password may hold / and @ (S3 secret
// keys often hold /).
var urlPasswords = regexp.MustCompile(`(://[^/\s:@]*:)\S*@`)

func kindOf(c Caller) string {
	if c.Terminal {
		return state.AuditTerminal
	}
	return state.AuditCommand
}

// auditTrail is the audit record of one command or click, as it goes: written
// durably before the command acts if it changes state (with its job, for a
// job), else once, group-committed, when its outcome is known.
type auditTrail struct {
	rec     state.AuditRecord
	id      uint64 // the record's ID once written (0: not yet)
	written string // the outcome written with it
}

func (r *Router) newTrail(c Caller, kind, text string, start time.Time) *auditTrail {
	return &auditTrail{rec: state.AuditRecord{
		Time: start, UserID: c.UserID, UserName: c.UserName, ChannelID: c.ChannelID,
		ChannelName: c.ChannelName, Kind: kind, Text: truncate(text, 512),
	}}
}

// auditBefore writes the trail's record durably, before the command acts:
// if it cannot, the command must not run.
func (r *Router) auditBefore(t *auditTrail) error {
	rec := t.rec
	rec.Outcome = "running"
	id, err := r.deps.Store.AppendAuditDurable(rec)
	if err != nil {
		return &Error{Kind: Unavailable, Message: "I could not write the audit log, so I did nothing. Try again in a moment.", Err: err}
	}
	t.id, t.written = id, rec.Outcome
	return nil
}

// finishAudit records the outcome: the whole record if none was written
// yet, else its outcome if it changed.
func (r *Router) finishAudit(t *auditTrail, outcome string) {
	var err error
	switch {
	case t.id == 0:
		rec := t.rec
		rec.Outcome = outcome
		err = r.deps.Store.AppendAudit(rec)
	case outcome != t.written:
		err = r.deps.Store.SetAuditOutcome(t.id, outcome)
	}
	if err != nil {
		r.deps.Log.Error("audit record lost", "err", err, "text", t.rec.Text, "user", t.rec.UserName, "outcome", outcome)
	}
}

func (r *Router) handle(ctx context.Context, req Request, trail *auditTrail) (Reply, string, error) {
	if r.draining.Load() {
		return Reply{}, "refused: draining", Errorf(Unavailable, "The toolbox is restarting. Try again in a minute.")
	}
	words, err := Split(req.Text)
	if err != nil {
		return Reply{}, "", err
	}
	if len(words) == 0 {
		return Reply{Text: r.overview()}, "ok", nil
	}
	v, args, err := r.lookup(words)
	if err != nil {
		return Reply{}, "", err
	}
	if len(args) < v.MinArgs || (v.MaxArgs >= 0 && len(args) > v.MaxArgs) {
		return Reply{}, "", Errorf(Invalid, "Usage: `%s`", v.usage())
	}
	if err := r.permitted(ctx, req.Caller, v, args); err != nil {
		return Reply{}, "", err
	}
	if v.Validate != nil {
		if err := v.Validate(ctx, args); err != nil {
			return Reply{}, "", err
		}
	}
	if v.confirmations(args) > 0 && !req.Confirmed {
		if v.Job { // no prompt for a job that would be refused
			if err := r.jobs.admissible(req.Caller, v, args); err != nil {
				return Reply{}, "", err
			}
		}
		return r.askConfirmation(ctx, req.Caller, v, args, 1)
	}
	return r.run(ctx, req.Caller, v, args, trail)
}

// run starts v as a job or runs it at once, its audit record on disk first
// when it changes state.
func (r *Router) run(ctx context.Context, c Caller, v *Verb, args []string, trail *auditTrail) (Reply, string, error) {
	if v.Job {
		job, err := r.jobs.start(ctx, c, v, args, trail)
		if KindOf(err) == Conflict { // a limit, or a busy app: said, not failed
			return Reply{}, "refused", err
		}
		if err != nil {
			return Reply{}, "", err
		}
		text := fmt.Sprintf("Started job #%d (`%s`). Progress and the result will appear in this channel.", job.ID, v.Name)
		return Reply{Text: text, JobID: job.ID}, fmt.Sprintf("started job #%d", job.ID), nil
	}
	if v.changes(args) {
		if err := r.auditBefore(trail); err != nil {
			return Reply{}, "", err
		}
	}
	out, err := r.jobs.runSafely(ctx, v, Invocation{Caller: c, Args: args, Progress: func(string, ...any) {}})
	if err != nil {
		return Reply{}, "", err
	}
	return Reply{Text: out}, "ok", nil
}

// lookup finds the longest verb name that prefixes words.
func (r *Router) lookup(words []string) (*Verb, []string, error) {
	first := strings.ToLower(words[0])
	if len(words) > 1 {
		if v, ok := r.verbs[first+" "+strings.ToLower(words[1])]; ok {
			return v, words[2:], nil
		}
	}
	if v, ok := r.verbs[first]; ok {
		return v, words[1:], nil
	}
	if group := r.group(first); len(group) > 0 {
		return nil, nil, Errorf(Invalid, "%s needs one of: %s. Try `/toolbox help %s`.", code(first), joinNames(group, first), first)
	}
	msg := fmt.Sprintf("I don't know %s.", code(truncate(words[0], 40)))
	if s := r.suggest(first); s != "" {
		msg += fmt.Sprintf(" Did you mean `%s`?", s)
	}
	return nil, nil, Errorf(Invalid, "%s Type `/toolbox help` for the list.", msg)
}

// group returns the verbs named "<prefix> something".
func (r *Router) group(prefix string) []*Verb {
	var out []*Verb
	for _, v := range r.order {
		if strings.HasPrefix(v.Name, prefix+" ") {
			out = append(out, v)
		}
	}
	return out
}

func joinNames(vs []*Verb, prefix string) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = "`" + strings.TrimPrefix(v.Name, prefix+" ") + "`"
	}
	return strings.Join(names, ", ")
}

// suggest returns the verb closest to word, if close enough to be a typo.
func (r *Router) suggest(word string) string {
	best, bestDist := "", 3
	seen := map[string]bool{}
	for _, v := range r.order {
		head := strings.SplitN(v.Name, " ", 2)[0]
		if seen[head] {
			continue
		}
		seen[head] = true
		d := distance(word, head)
		if strings.HasPrefix(head, word) && len(word) >= 2 {
			d = 1
		}
		if d < bestDist {
			best, bestDist = head, d
		}
	}
	return best
}

// distance is the Levenshtein distance, bounded for speed on long input.
func distance(a, b string) int {
	if len(a) > 64 {
		return 64
	}
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// permitted checks that c may run v with args: when a command is typed,
// and again when its confirmation is clicked (permissions may have changed
// in between).
func (r *Router) permitted(ctx context.Context, c Caller, v *Verb, args []string) error {
	if err := r.authorize(ctx, c, v); err != nil {
		return err
	}
	if v.Permit != nil {
		return v.Permit(ctx, c, args)
	}
	return nil
}

// authorize checks that c may run v.
func (r *Router) authorize(ctx context.Context, c Caller, v *Verb) error {
	if v.Role == Anyone || c.Terminal {
		return nil
	}
	if v.Role == Operator {
		return Errorf(Forbidden, "`%s` answers only on the machine's terminal, never in the chat: run `toolbox %s` there.", v.Name, v.Name)
	}
	ok, err := r.isAdmin(ctx, c.UserID)
	if err != nil {
		return err
	}
	if !ok {
		return Errorf(Forbidden, "Only toolbox admins may run `%s`: Mattermost system admins and the people `/toolbox admins list` shows. Ask one of them.", v.Name)
	}
	return nil
}

func (r *Router) isAdmin(ctx context.Context, userID string) (bool, error) {
	ok, err := r.deps.Store.IsAdmin(userID)
	if err != nil || ok {
		return ok, err
	}
	if r.deps.Directory == nil {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ok, err = r.deps.Directory.IsSystemAdmin(ctx, userID)
	if err != nil {
		return false, &Error{Kind: Unavailable, Message: "I could not check your permissions with Mattermost. Try again in a moment.", Err: err}
	}
	return ok, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// cut on a rune boundary
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// NeedsConfirmation says whether text names a verb that asks for confirmation.
func (r *Router) NeedsConfirmation(text string) bool {
	words, err := Split(text)
	if err != nil || len(words) == 0 {
		return false
	}
	v, args, err := r.lookup(words)
	return err == nil && v.confirmations(args) > 0
}
