package commands

import (
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("reply differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestHelpOverviewGolden(t *testing.T) {
	e := newEnv(t, envOptions{})
	got := e.handle(caller("ann"), "help").Text
	golden(t, "help.golden", got)
	for _, text := range []string{"", "   ", "HELP", "\t\n"} {
		if again := e.handle(caller("ann"), text).Text; again != got {
			t.Errorf("Handle(%q) = %q, want the help overview", text, again)
		}
	}
}

func TestHandleReplies(t *testing.T) {
	tests := []struct {
		name        string
		caller      Caller
		text        string
		isAdmin     func(context.Context, string) (bool, error)
		want        string   // the whole reply, when set
		wantParts   []string // pieces of the reply
		wantOutcome string
		wantAudit   string // the audit text, when not the text itself
	}{
		{
			name: "help for a verb", caller: caller("ann"), text: "help status",
			want:        "`/toolbox status`: show the apps and the jobs running now.\nWho may run it: everyone.",
			wantOutcome: "ok",
		},
		{
			name: "help for a two-word verb", caller: caller("ann"), text: "help admins remove",
			want: "`/toolbox admins remove <@user>`: take someone off the toolbox admins list (Mattermost system admins only).\n" +
				"Who may run it: toolbox admins. It asks for a confirmation first.",
			wantOutcome: "ok",
		},
		{
			name: "help for a job verb", caller: caller("ann"), text: "help selftest",
			wantParts:   []string{"`/toolbox selftest`", "It runs as a job: I answer at once and post the result when it is done."},
			wantOutcome: "ok",
		},
		{
			name: "help for a group", caller: caller("ann"), text: "help admins",
			wantParts: []string{
				"`/toolbox admins add <@user>`: let someone run the admin verbs (Mattermost system admins only).",
				"\n\n`/toolbox admins list`: show who may run the admin verbs.",
				"\n\n`/toolbox admins remove <@user>`: take someone off the toolbox admins list (Mattermost system admins only).",
			},
			wantOutcome: "ok",
		},
		{
			name: "help is case-insensitive", caller: caller("ann"), text: "Help STATUS",
			wantParts: []string{"`/toolbox status`: show the apps"}, wantOutcome: "ok",
		},
		{
			name: "help for an unknown verb suggests one", caller: caller("ann"), text: "help stauts",
			want:        "There is no verb `stauts`. Did you mean `status`? Type `/toolbox help` for the list.",
			wantOutcome: "error",
		},
		{
			name: "help for an empty verb", caller: caller("ann"), text: "help ''",
			want:        "There is no verb `''`. Type `/toolbox help` for the list.",
			wantOutcome: "error",
		},
		{
			name: "help for two empty words", caller: caller("ann"), text: `help "" ""`,
			want:        "There is no verb `''`. Type `/toolbox help` for the list.",
			wantOutcome: "error",
		},
		{
			name: "unknown verb with a typo", caller: caller("ann"), text: "stauts",
			want:        "I don't know `stauts`. Did you mean `status`? Type `/toolbox help` for the list.",
			wantOutcome: "error",
		},
		{
			name: "unknown verb that starts a known one", caller: caller("ann"), text: "self",
			want:        "I don't know `self`. Did you mean `selftest`? Type `/toolbox help` for the list.",
			wantOutcome: "error",
		},
		{
			name: "unknown verb far from any", caller: caller("ann"), text: "xyzzy plugh",
			want:        "I don't know `xyzzy`. Type `/toolbox help` for the list.",
			wantOutcome: "error",
			wantAudit:   "xyzzy …",
		},
		{
			name: "unknown verb that is very long", caller: caller("ann"), text: strings.Repeat("z", 100),
			want:        "I don't know `" + strings.Repeat("z", 40) + "…`. Type `/toolbox help` for the list.",
			wantOutcome: "error",
		},
		{
			name: "group without a subverb", caller: caller("ann"), text: "admins",
			want:        "`admins` needs one of: `add`, `list`, `remove`. Try `/toolbox help admins`.",
			wantOutcome: "error",
		},
		{
			name: "group with an unknown subverb", caller: caller("ann"), text: "admins promote @bob",
			want:        "`admins` needs one of: `add`, `list`, `remove`. Try `/toolbox help admins`.",
			wantOutcome: "error",
			wantAudit:   "admins …",
		},
		{
			name: "too many arguments", caller: caller("ann"), text: "status now",
			want: "Usage: `/toolbox status`", wantOutcome: "error",
		},
		{
			name: "too few arguments", caller: caller("ann"), text: "admins add",
			want: "Usage: `/toolbox admins add <@user>`", wantOutcome: "error",
		},
		{
			name: "too many arguments to an optional one", caller: caller("ann"), text: "audit 1 2",
			want: "Usage: `/toolbox audit [n]`", wantOutcome: "error",
		},
		{
			name: "unclosed quote", caller: caller("ann"), text: `admins add "bob`,
			want: "A quote is not closed.", wantOutcome: "error",
			// A text that does not parse may carry a secret: only its first word is kept.
			wantAudit: "admins …",
		},
		{
			name: "admin verb refused to a member", caller: caller("ann"), text: "audit",
			want:        "Only toolbox admins may run `audit`: Mattermost system admins and the people `/toolbox admins list` shows. Ask one of them.",
			wantOutcome: "refused",
		},
		{
			name: "admin verb for a system admin", caller: caller("root"), text: "admins list",
			isAdmin:     func(_ context.Context, id string) (bool, error) { return id == "id-root", nil },
			want:        "Toolbox admins are the Mattermost system admins. No one else is on the list.",
			wantOutcome: "ok",
		},
		{
			name: "permissions cannot be checked", caller: caller("ann"), text: "audit",
			isAdmin: func(context.Context, string) (bool, error) {
				return false, errors.New("mattermost: connection refused")
			},
			want:        "I could not check your permissions with Mattermost. Try again in a moment.",
			wantOutcome: "error",
		},
		{
			name: "the terminal operator is an admin", caller: Caller{UserName: "operator", Terminal: true}, text: "admins list",
			want:        "Toolbox admins are the Mattermost system admins. No one else is on the list.",
			wantOutcome: "ok",
		},
		{
			name: "version", caller: caller("ann"), text: "version",
			want: "toolbox test (" + runtime.Version() + ")", wantOutcome: "ok",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			e.dir.IsSystemAdminFn = tt.isAdmin
			before := e.auditCount(t)
			got := e.handle(tt.caller, tt.text)
			if tt.want != "" && got.Text != tt.want {
				t.Errorf("Handle(%q).Text = %q, want %q", tt.text, got.Text, tt.want)
			}
			if !contains(got.Text, tt.wantParts...) {
				t.Errorf("Handle(%q).Text = %q, want it to contain %q", tt.text, got.Text, tt.wantParts)
			}
			if n := e.auditCount(t) - before; n != 1 {
				t.Fatalf("Handle(%q) wrote %d audit records, want 1", tt.text, n)
			}
			rec := e.lastAudit(t)
			wantKind := "command"
			if tt.caller.Terminal {
				wantKind = "terminal"
			}
			wantAudit := tt.wantAudit
			if wantAudit == "" {
				wantAudit = truncate(tt.text, 512)
			}
			if rec.Outcome != tt.wantOutcome || rec.Kind != wantKind || rec.Text != wantAudit ||
				rec.UserID != tt.caller.UserID || rec.UserName != tt.caller.UserName || rec.ChannelName != tt.caller.ChannelName {
				t.Errorf("audit record = %+v, want outcome %q, kind %q, text %q and the caller", rec, tt.wantOutcome, wantKind, wantAudit)
			}
			if !rec.Time.Equal(e.clock.Now()) {
				t.Errorf("audit record time = %v, want the injected now %v", rec.Time, e.clock.Now())
			}
		})
	}
}

func TestHandleInternalErrorGivesAReference(t *testing.T) {
	boom := errors.New("disk on fire")
	e := newEnv(t, envOptions{extra: []*Verb{{
		Name: "broken", MaxArgs: 0, Summary: "always fails inside",
		Run: func(context.Context, Invocation) (string, error) { return "", boom },
	}}})
	got := e.handle(caller("ann"), "broken").Text
	if !strings.HasPrefix(got, "Something went wrong on the toolbox's side (reference ") || strings.Contains(got, "disk on fire") {
		t.Fatalf("Handle(broken) = %q, want the internal-error sentence without the cause", got)
	}
	ref := strings.TrimSuffix(strings.SplitN(strings.SplitN(got, "reference ", 2)[1], ")", 2)[0], ")")
	if rec := e.lastAudit(t); rec.Outcome != "error "+ref {
		t.Errorf("audit outcome = %q, want %q", rec.Outcome, "error "+ref)
	}
	if log := e.log.String(); !contains(log, "ref="+ref, "disk on fire") {
		t.Errorf("log lacks the reference %s and the cause:\n%s", ref, log)
	}
}

func TestHandleAuditsEveryCommandOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	texts := []string{
		"", "help", "help admins", "help nope", "status", "jobs", "audit 5", "audit x", "admins list",
		"admins", "nope", `"unterminated`, "status \\", "caf\xc3", strings.Repeat("a", MaxTextBytes+1),
		"admins add @nobody", "admins remove @nobody", "version", "help ''",
	}
	for _, text := range texts {
		before := e.auditCount(t)
		e.handle(caller("ann"), text)
		if n := e.auditCount(t) - before; n != 1 {
			t.Errorf("Handle(%.40q) wrote %d audit records, want 1", text, n)
		}
	}
	if rec := e.lastAudit(t); rec.Text != "help ''" {
		t.Errorf("last audit text = %q, want %q", rec.Text, "help ''")
	}
	// A long text is kept, cut, in the audit log.
	e.handle(caller("ann"), "set wiki SMTP_PASSWORD two words")
	if rec := e.lastAudit(t); strings.Contains(rec.Text, "two") {
		t.Errorf("a set with too many words kept its value in the audit log: %q", rec.Text)
	}
	e.handle(caller("ann"), "sett wiki SMTP_PASSWORD hunter2")
	if rec := e.lastAudit(t); strings.Contains(rec.Text, "hunter2") {
		t.Errorf("a mistyped verb kept its arguments in the audit log: %q", rec.Text)
	}
	e.handle(caller("ann"), "status "+strings.Repeat("x", 1000))
	if rec := e.lastAudit(t); len(rec.Text) > 512+len("…") || !strings.HasSuffix(rec.Text, "…") {
		t.Errorf("audit text of a 1 KB command = %d bytes %q…, want it cut at 512 bytes", len(rec.Text), rec.Text[:20])
	}
}

func TestDrainRefusesPolitely(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.router.Drain()
	for _, text := range []string{"status", "help", ""} {
		before := e.auditCount(t)
		got := e.handle(caller("ann"), text)
		if want := "The toolbox is restarting. Try again in a minute."; got.Text != want {
			t.Errorf("while draining, Handle(%q) = %q, want %q", text, got.Text, want)
		}
		if n := e.auditCount(t) - before; n != 1 {
			t.Errorf("while draining, Handle(%q) wrote %d audit records, want 1", text, n)
		}
		if rec := e.lastAudit(t); rec.Outcome != "refused: draining" {
			t.Errorf("while draining, audit outcome = %q, want %q", rec.Outcome, "refused: draining")
		}
	}
}

// Issue 8: a member of the toolbox admins list (not a Mattermost system
// admin) could change the list, `admins add` asked no confirmation, and
// `admins remove @channel` made the bot post "@channel will no longer be able…".
func TestAdminsVerbs(t *testing.T) {
	e := &confirmEnv{env: newEnv(t, envOptions{})}
	e.addAdmin(t, "ann")
	e.dir.IsSystemAdminFn = func(_ context.Context, id string) (bool, error) { return id == "id-root", nil }
	e.dir.UserByNameFn = func(_ context.Context, name string) (User, error) {
		if name == "bob" {
			return User{ID: "id-bob", Name: "bob"}, nil
		}
		return User{}, Errorf(NotFound, "There is no user @%s here.", name)
	}
	root := caller("root")
	// On the list is not enough.
	for _, text := range []string{"admins add @bob", "admins remove @ann"} {
		if got, want := e.handle(caller("ann"), text).Text, "Only Mattermost system admins may change the toolbox admins list; being on it is not enough."; got != want {
			t.Errorf("Handle(%q) by a listed admin = %q, want %q", text, got, want)
		}
	}
	// A system admin confirms.
	token := e.ask(t, root, "admins add @bob")
	if p := e.chat.Prompts()[0]; !strings.Contains(p.Text, "`@bob` will be able to run the admin verbs") {
		t.Errorf("prompt = %q", p.Text)
	}
	if res := e.click(t, root, true, token); !strings.HasSuffix(res.Update, "\n@bob is now a toolbox admin.") {
		t.Errorf("confirmed admins add = %+v", res)
	}
	// Users are resolved before a prompt is posted: mistakes are answered at once.
	prompts := len(e.chat.Prompts())
	steps := []struct{ text, want string }{
		{"admins add BOB", "`@bob` is already a toolbox admin."},
		{"admins add @ghost", "There is no user `@ghost` here."},
		{"admins add 'not a name'", "`not a name` is not a user name."},
		{"admins remove @ghost", "There is no user `@ghost` here."},
		{"admins remove @channel", "There is no user `@channel` here."},
		{"admins remove @here", "There is no user `@here` here."},
	}
	for _, s := range steps {
		if got := e.handle(root, s.text).Text; got != s.want {
			t.Errorf("Handle(%q) = %q, want %q", s.text, got, s.want)
		}
	}
	if n := len(e.chat.Prompts()) - prompts; n != 0 {
		t.Errorf("%d prompts posted for mistakes", n)
	}
	for _, p := range e.chat.Prompts() {
		if strings.Contains(strings.ReplaceAll(p.Text, "`@", ""), "@channel") {
			t.Errorf("a prompt mentions @channel: %q", p.Text)
		}
	}
	got := e.handle(caller("bob"), "admins list").Text
	if !contains(got, "Toolbox admins are the Mattermost system admins, and:", "- `@bob`, added by `@root` on 2026-03-01") {
		t.Errorf("admins list = %q, want bob added by root", got)
	}
	token = e.ask(t, root, "admins remove @bob")
	if res := e.click(t, root, true, token); !strings.HasSuffix(res.Update, "\n`@bob` is no longer a toolbox admin.") {
		t.Errorf("confirmed admins remove = %+v", res)
	}
	// The terminal may, with --yes.
	term := Caller{UserName: "operator", Terminal: true}
	if got := e.router.Handle(context.Background(), Request{Caller: term, Text: "admins add @bob", Confirmed: true}).Text; got != "@bob is now a toolbox admin." {
		t.Errorf("admins add from the terminal = %q", got)
	}
}

func TestNeedsConfirmation(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		text string
		want bool
	}{
		{"admins remove @bob", true},
		{"ADMINS Remove @bob", true},
		{"admins add @bob", true},
		{"status", false},
		{"", false},
		{`"`, false},
		{"nope", false},
	}
	for _, tt := range tests {
		if got := e.router.NeedsConfirmation(tt.text); got != tt.want {
			t.Errorf("NeedsConfirmation(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
}

func TestNewRouterRefusesBadDeps(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name  string
		deps  Deps
		extra []*Verb
	}{
		{"no store", Deps{ConfirmKey: testKey}, nil},
		{"short key", Deps{Store: e.store, ConfirmKey: []byte("short")}, nil},
		{"verb defined twice", Deps{Store: e.store, ConfirmKey: testKey}, []*Verb{{Name: "status"}}},
	}
	for _, tt := range tests {
		if _, err := NewRouter(context.Background(), tt.deps, tt.extra...); err == nil {
			t.Errorf("NewRouter with %s: no error, want one", tt.name)
		}
	}
}

func TestRedactedHidesURLPasswords(t *testing.T) {
	r := newEnv(t, envOptions{}).router
	for text, want := range map[string]string{
		"status https://ann:hunter2@example.org/x": "status https://ann:[redacted]@example.org/x",
		"help s3://AKIA:wJalr/K7M@host/bucket":     "help s3://AKIA:[redacted]@host/bucket",
		"status https://u:p@ss@h/x":                "status https://u:[redacted]@h/x",
		"version sftp://u:p@h:22/a b://c:d@e":      "version sftp://u:[redacted]@h:22/a b://c:[redacted]@e",
		"status https://example.org":               "status https://example.org",
	} {
		if got := r.redacted(text); got != want {
			t.Errorf("redacted(%q) = %q, want %q", text, got, want)
		}
	}
}

// A click checks again everything the command was checked for: someone who
// was a system admin when asking and is no longer one when clicking cannot
// change the admins list (found by review: the click skipped Verb.Permit).
func TestClickChecksPermitAgain(t *testing.T) {
	e := &confirmEnv{env: newEnv(t, envOptions{})}
	e.addAdmin(t, "root")
	sysadmin := true
	e.dir.IsSystemAdminFn = func(_ context.Context, id string) (bool, error) { return id == "id-root" && sysadmin, nil }
	e.dir.UserByNameFn = func(_ context.Context, name string) (User, error) { return User{ID: "id-" + name, Name: name}, nil }
	token := e.ask(t, caller("root"), "admins add @bob")
	sysadmin = false // still on the toolbox admins list, no longer a system admin
	res := e.click(t, caller("root"), true, token)
	if !strings.Contains(res.Ephemeral, "Only Mattermost system admins") {
		t.Errorf("click after losing system admin = %+v, want the system-admin refusal", res)
	}
	if ok, _ := e.store.IsAdmin("id-bob"); ok {
		t.Error("bob became a toolbox admin through a click its asker may no longer make")
	}
}
