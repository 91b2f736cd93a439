package commands

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// testKey signs confirmation buttons in tests.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// clock is an injected time that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type chatPost struct{ ID, ChannelID, Text string }

type chatEdit struct{ PostID, Text string }

type chatPrompt struct{ ID, ChannelID, Text, Token string }

// fakeChat records what the bot posts. The function fields, when set, decide
// the answer (to inject errors); every call signals changed.
type fakeChat struct {
	PostFn            func(ctx context.Context, channelID, text string) (string, error)
	EditFn            func(ctx context.Context, postID, text string) error
	AskConfirmationFn func(ctx context.Context, channelID, text, token string) (string, error)

	mu      sync.Mutex
	n       int
	posts   []chatPost
	edits   []chatEdit
	prompts []chatPrompt
	// whispers are the texts sent to one person, by response URL.
	whispers map[string][]string
	changed  chan struct{}
}

var _ Whisperer = (*fakeChat)(nil)

func (c *fakeChat) Whisper(_ context.Context, responseURL, text string) error {
	c.mu.Lock()
	if c.whispers == nil {
		c.whispers = map[string][]string{}
	}
	c.whispers[responseURL] = append(c.whispers[responseURL], text)
	c.mu.Unlock()
	c.signal()
	return nil
}

func (c *fakeChat) Whispers(responseURL string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.whispers[responseURL]...)
}

var _ Chat = (*fakeChat)(nil)

func newFakeChat() *fakeChat { return &fakeChat{changed: make(chan struct{}, 1)} }

func (c *fakeChat) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *fakeChat) nextID(prefix string) string {
	c.n++
	return fmt.Sprintf("%s%d", prefix, c.n)
}

func (c *fakeChat) Post(ctx context.Context, channelID, text string) (string, error) {
	defer c.signal()
	if c.PostFn != nil {
		return c.PostFn(ctx, channelID, text)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := chatPost{ID: c.nextID("post"), ChannelID: channelID, Text: text}
	c.posts = append(c.posts, p)
	return p.ID, nil
}

func (c *fakeChat) Edit(ctx context.Context, postID, text string) error {
	defer c.signal()
	if c.EditFn != nil {
		return c.EditFn(ctx, postID, text)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.edits = append(c.edits, chatEdit{PostID: postID, Text: text})
	return nil
}

func (c *fakeChat) AskConfirmation(ctx context.Context, channelID, text, token string) (string, error) {
	defer c.signal()
	if c.AskConfirmationFn != nil {
		return c.AskConfirmationFn(ctx, channelID, text, token)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := chatPrompt{ID: c.nextID("prompt"), ChannelID: channelID, Text: text, Token: token}
	c.prompts = append(c.prompts, p)
	return p.ID, nil
}

func (c *fakeChat) Posts() []chatPost {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]chatPost(nil), c.posts...)
}

// Shown is what the channel shows: each post with its last edit.
func (c *fakeChat) Shown() []chatPost {
	c.mu.Lock()
	defer c.mu.Unlock()
	shown := append([]chatPost(nil), c.posts...)
	for _, e := range c.edits {
		for i := range shown {
			if shown[i].ID == e.PostID {
				shown[i].Text = e.Text
			}
		}
	}
	return shown
}

func (c *fakeChat) Edits() []chatEdit {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]chatEdit(nil), c.edits...)
}

func (c *fakeChat) Prompts() []chatPrompt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]chatPrompt(nil), c.prompts...)
}

// waitFor blocks until cond holds, woken by each call to the chat; it fails
// the test after a generous deadline instead of hanging.
func (c *fakeChat) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-c.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s; posts %+v, edits %+v", what, c.Posts(), c.Edits())
		}
	}
}

// fakeDirectory answers from its function fields; nil fields say "not an admin"
// and "no such user".
type fakeDirectory struct {
	IsSystemAdminFn func(ctx context.Context, userID string) (bool, error)
	UserByNameFn    func(ctx context.Context, name string) (User, error)
}

var _ Directory = (*fakeDirectory)(nil)

func (d *fakeDirectory) IsSystemAdmin(ctx context.Context, userID string) (bool, error) {
	if d.IsSystemAdminFn == nil {
		return false, nil
	}
	return d.IsSystemAdminFn(ctx, userID)
}

func (d *fakeDirectory) UserByName(ctx context.Context, name string) (User, error) {
	if d.UserByNameFn == nil {
		return User{}, Errorf(NotFound, "There is no user @%s here.", name)
	}
	return d.UserByNameFn(ctx, name)
}

// syncBuffer is a log destination that tests read while jobs write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a router on a real store in a temporary directory.
type env struct {
	router *Router
	store  *state.Store
	chat   *fakeChat
	dir    *fakeDirectory
	clock  *clock
	log    *syncBuffer
}

type envOptions struct {
	noChat, noDirectory bool
	extra               []*Verb
	ttl                 time.Duration
	apps                func(*state.Store) *AppDeps // the app verbs, with their fakes
	errorKinds          []ErrorKind
	limits              Limits
	checks              []Check
	store               func(*state.Store) Store // wraps the real store, to watch or fail it
}

func newEnv(t *testing.T, opts envOptions) *env {
	t.Helper()
	e := &env{chat: newFakeChat(), dir: &fakeDirectory{}, clock: newClock(), log: &syncBuffer{}}
	st, err := state.Open(filepath.Join(t.TempDir(), "toolbox.db"), state.Options{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("state.Open: %v", err)
	}
	e.store = st
	root, cancel := context.WithCancel(context.Background())
	deps := Deps{
		Store: st, Log: slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})), Now: e.clock.Now, Version: "test",
		ConfirmKey: testKey, ConfirmTTL: opts.ttl, ErrorKinds: opts.errorKinds, Limits: opts.limits, Checks: opts.checks,
	}
	if opts.store != nil {
		deps.Store = opts.store(st)
	}
	if !opts.noChat {
		deps.Chat = e.chat
	}
	if !opts.noDirectory {
		deps.Directory = e.dir
	}
	if opts.apps != nil {
		deps.Apps = opts.apps(st)
	}
	e.router, err = NewRouter(root, deps, opts.extra...)
	if err != nil {
		t.Fatalf("NewRouter: %v", err)
	}
	t.Cleanup(func() {
		ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		if err := e.router.Jobs().Shutdown(ctx); err != nil {
			t.Errorf("Jobs.Shutdown: %v", err)
		}
		cancel()
		if err := st.Close(); err != nil {
			t.Errorf("state close: %v", err)
		}
	})
	return e
}

// caller is a chat user in the test channel.
func caller(name string) Caller {
	return Caller{UserID: "id-" + name, UserName: name, ChannelID: "chan1", ChannelName: "toolbox", TeamID: "team1"}
}

func (e *env) addAdmin(t *testing.T, name string) {
	t.Helper()
	if err := e.store.AddAdmin(state.Admin{UserID: "id-" + name, UserName: name}); err != nil {
		t.Fatalf("AddAdmin(%s): %v", name, err)
	}
}

func (e *env) handle(c Caller, text string) Reply {
	return e.router.Handle(context.Background(), Request{Caller: c, Text: text})
}

// auditCount is the number of audit records so far.
func (e *env) auditCount(t *testing.T) int {
	t.Helper()
	recs, err := e.store.RecentAudit(1 << 20)
	if err != nil {
		t.Fatalf("RecentAudit: %v", err)
	}
	return len(recs)
}

// lastAudit is the newest audit record.
func (e *env) lastAudit(t *testing.T) state.AuditRecord {
	t.Helper()
	recs, err := e.store.RecentAudit(1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("RecentAudit(1) = %v, %v; want one record", recs, err)
	}
	return recs[0]
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// message is what the router's reporter tells people of err, with no table of
// adapter sentinels, and the reference it logs for an internal error.
func message(err error) (text, ref string) {
	rep := newReporter(nil).report(context.Background(), slog.New(slog.DiscardHandler), "test", err)
	return rep.Text, rep.Ref
}

// callLog records the calls of the fakes of the engine and the proxy, in the
// order they happen, as "verb arg arg".
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, fmt.Sprintf(format, args...))
}

// list returns the calls so far, and how many.
func (l *callLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

// changes are the calls that change something (not Memory, Services, Logs).
func (l *callLog) changes() []string {
	var out []string
	for _, c := range l.list() {
		if verb, _, _ := strings.Cut(c, " "); verb != "memory" && verb != "services" && verb != "logs" {
			out = append(out, c)
		}
	}
	return out
}

// fakeEngine is an Engine whose answers each test sets: the fields for the
// simple ones, the function fields (when set) to fail or to watch. It records
// every call in calls, shared with the fakeProxy of the same test.
type fakeEngine struct {
	total    int64            // the machine's memory
	swap     int64            // and its swap
	reserved int64            // what other containers reserve
	running  map[string]int64 // what runs besides the deployed apps, by app (such as the toolbox's own)
	services map[string][]Service
	logs     string
	execErr  error // returned by the next Exec only

	DeployFn  func(app string) error
	RemoveFn  func(app string, purge bool) error
	RestartFn func(app string, progress func(string)) error

	calls    *callLog
	mu       sync.Mutex
	execs    []string
	deployed map[string]*types.Project
}

var _ Engine = (*fakeEngine)(nil)

func (m *fakeEngine) Deploy(_ context.Context, d Deployment, progress func(string)) (string, error) {
	app, p, entry := d.App, d.Project, d.Entry
	m.calls.add("deploy %s%s", app, genSuffix(d.Generation))
	if m.DeployFn != nil {
		if err := m.DeployFn(app); err != nil {
			return "", err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deployed[app] = p
	progress("app: created")
	return "tb-" + app + "-" + entry.Service + ":80", nil
}

// genSuffix shows a volume generation other than the first in the call log.
func genSuffix(gen string) string {
	if gen == "" {
		return ""
	}
	return " (volumes " + gen + ")"
}

func (m *fakeEngine) Build(_ context.Context, app string, _ catalog.Build, _ *types.Project, _ func(string)) error {
	m.calls.add("build %s", app)
	return nil
}

func (m *fakeEngine) Remove(_ context.Context, app string, purge bool) error {
	m.calls.add("remove %s purge=%t", app, purge)
	if m.RemoveFn != nil {
		if err := m.RemoveFn(app, purge); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.deployed, app) // its containers no longer reserve anything
	return nil
}

func (m *fakeEngine) Restart(_ context.Context, app string, progress func(string)) error {
	m.calls.add("restart %s", app)
	if m.RestartFn != nil {
		return m.RestartFn(app, progress)
	}
	progress(app + ": restarted")
	return nil
}

func (m *fakeEngine) Logs(_ context.Context, app, service string, n int) (string, error) {
	m.calls.add("logs %s %s %d", app, service, n)
	return m.logs, nil
}

// Memory counts, as the engine does, each deployed app's services by their
// reservation (else their limit), plus running and reserved.
func (m *fakeEngine) Memory(context.Context) (Machine, error) {
	m.calls.add("memory")
	m.mu.Lock()
	defer m.mu.Unlock()
	machine := Machine{Memory: m.total, Swap: m.swap, Running: map[string]int64{}}
	for app, n := range m.running {
		machine.Running[app] += n
	}
	if m.reserved > 0 {
		machine.Running["other containers"] += m.reserved
	}
	for app, p := range m.deployed {
		for _, s := range p.Services {
			n := int64(s.MemReservation)
			if n == 0 {
				n = int64(s.MemLimit)
			}
			machine.Running[app] += n
		}
	}
	return machine, nil
}

func (m *fakeEngine) Services(_ context.Context, app string) ([]Service, error) {
	m.calls.add("services %s", app)
	return m.services[app], nil
}

func (m *fakeEngine) Exec(_ context.Context, app, service string, cmd []string) (string, error) {
	m.calls.add("exec %s %s", app, service)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.execs = append(m.execs, service)
	err := m.execErr
	m.execErr = nil // fails once
	return "", err
}

// fakeProxy keeps routes in a map; RemoveRouteFn, when set, answers instead.
type fakeProxy struct {
	RemoveRouteFn func(app string) error

	calls  *callLog
	mu     sync.Mutex
	routes map[string]string
}

var _ Proxy = (*fakeProxy)(nil)

func (p *fakeProxy) SetRoute(_ context.Context, app, domain, upstream string) error {
	p.calls.add("set-route %s %s %s", app, domain, upstream)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.routes[app] = domain + " -> " + upstream
	return nil
}

func (p *fakeProxy) RemoveRoute(_ context.Context, app string) error {
	p.calls.add("remove-route %s", app)
	if p.RemoveRouteFn != nil {
		return p.RemoveRouteFn(app)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.routes, app)
	return nil
}

// route is the route of app, or "".
func (p *fakeProxy) route(app string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.routes[app]
}

// watchedStore is the real store that logs, in order, the writes of audit
// records and jobs and the admins' changes, in the call log of its test; its
// function fields, when set, answer instead.
type watchedStore struct {
	*state.Store
	calls                *callLog
	AppendAuditDurableFn func(r state.AuditRecord) (uint64, error)
}

var _ Store = (*watchedStore)(nil)

func (s *watchedStore) AppendAudit(r state.AuditRecord) error {
	s.calls.add("audit %s: %s", r.Text, r.Outcome)
	return s.Store.AppendAudit(r)
}

func (s *watchedStore) AppendAuditDurable(r state.AuditRecord) (uint64, error) {
	s.calls.add("durable audit %s: %s", r.Text, r.Outcome)
	if s.AppendAuditDurableFn != nil {
		return s.AppendAuditDurableFn(r)
	}
	return s.Store.AppendAuditDurable(r)
}

func (s *watchedStore) SetAuditOutcome(id uint64, outcome string) error {
	s.calls.add("audit outcome: %s", outcome)
	return s.Store.SetAuditOutcome(id, outcome)
}

func (s *watchedStore) StartJob(j state.Job, r state.AuditRecord) (state.Job, uint64, error) {
	s.calls.add("start job %s with audit %s", j.Verb, r.Text)
	return s.Store.StartJob(j, r)
}

func (s *watchedStore) AddAdmin(a state.Admin) error {
	s.calls.add("add admin %s", a.UserName)
	return s.Store.AddAdmin(a)
}

func (s *watchedStore) RemoveAdmin(id string) error {
	s.calls.add("remove admin %s", id)
	return s.Store.RemoveAdmin(id)
}
