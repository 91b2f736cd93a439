package commands

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// runs records the calls of the test verbs.
type runs struct {
	mu    sync.Mutex
	calls []string
}

func (r *runs) record(name string, inv Invocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, strings.TrimSpace(name+" "+strings.Join(inv.Args, " ")+" by "+inv.Caller.UserName))
}

func (r *runs) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// confirmVerbs are test-only verbs that ask for confirmation.
func confirmVerbs(r *runs) []*Verb {
	return []*Verb{
		{
			Name: "wipe", Args: "<app>", MinArgs: 1, MaxArgs: 1, Role: Admin, Confirmations: 1,
			Summary:  "wipe an app's data",
			Describe: func(args []string) string { return "the data of " + args[0] + " will be lost." },
			Run: func(_ context.Context, inv Invocation) (string, error) {
				r.record("wipe", inv)
				return "wiped " + inv.Args[0], nil
			},
		},
		{
			Name: "nuke", MaxArgs: -1, Role: Admin, Confirmations: 2,
			Summary: "remove everything",
			Run: func(_ context.Context, inv Invocation) (string, error) {
				r.record("nuke", inv)
				return "nuked", nil
			},
		},
		{
			Name: "jam", MaxArgs: 0, Role: Admin, Confirmations: 1,
			Summary: "fail after a confirmation",
			Run: func(_ context.Context, inv Invocation) (string, error) {
				r.record("jam", inv)
				return "", Errorf(Conflict, "The printer is jammed.")
			},
		},
		{
			Name: "sweep", MaxArgs: 0, Role: Admin, Confirmations: 1, Job: true,
			Summary: "a confirmed job",
			Run: func(_ context.Context, inv Invocation) (string, error) {
				r.record("sweep", inv)
				return "swept", nil
			},
		},
	}
}

type confirmEnv struct {
	*env
	runs *runs
}

func newConfirmEnv(t *testing.T, opts envOptions) *confirmEnv {
	t.Helper()
	r := &runs{}
	opts.extra = append(opts.extra, confirmVerbs(r)...)
	return &confirmEnv{env: newEnv(t, opts), runs: r}
}

// ask runs text as c and returns the token of the prompt it posted.
func (e *confirmEnv) ask(t *testing.T, c Caller, text string) string {
	t.Helper()
	before := len(e.chat.Prompts())
	if got, want := e.handle(c, text).Text, "This needs a confirmation: use the buttons on the message I just posted."; got != want {
		t.Fatalf("Handle(%q) = %q, want %q", text, got, want)
	}
	prompts := e.chat.Prompts()
	if len(prompts) != before+1 {
		t.Fatalf("Handle(%q) posted %d prompts, want 1", text, len(prompts)-before)
	}
	return prompts[len(prompts)-1].Token
}

func (e *confirmEnv) click(t *testing.T, c Caller, confirm bool, token string) ClickResult {
	t.Helper()
	before := e.auditCount(t)
	res := e.router.HandleClick(context.Background(), Click{Caller: c, PostID: "prompt-post", Confirm: confirm, Token: token})
	if n := e.auditCount(t) - before; n != 1 {
		t.Errorf("HandleClick wrote %d audit records, want 1", n)
	}
	rec := e.lastAudit(t)
	action := "cancel"
	if confirm {
		action = "confirm"
	}
	if rec.Kind != "click" || rec.Text != action+" on post prompt-post" || rec.UserID != c.UserID {
		t.Errorf("click audit record = %+v, want kind click, text %q, user %s", rec, action+" on post prompt-post", c.UserID)
	}
	return res
}

func decodePrompt(t *testing.T, token string) prompt {
	t.Helper()
	body, _, _ := strings.Cut(token, ".")
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var p prompt
	if err := json.Unmarshal(payload, &p); err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return p
}

// tamper changes the signed payload of token and keeps its signature.
func tamper(t *testing.T, token string, change func(*prompt)) string {
	t.Helper()
	p := decodePrompt(t, token)
	change(&p)
	payload, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	_, sig, _ := strings.Cut(token, ".")
	return base64.RawURLEncoding.EncodeToString(payload) + "." + sig
}

func TestConfirmationPrompt(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	token := e.ask(t, caller("ann"), "wipe blog")
	prompts := e.chat.Prompts()
	want := "@ann asked for `/toolbox wipe blog`: the data of blog will be lost.\nConfirm before 12:10 UTC. Only @ann can confirm."
	if prompts[0].Text != want || prompts[0].ChannelID != "chan1" {
		t.Errorf("prompt = %+v, want %q in chan1", prompts[0], want)
	}
	p := decodePrompt(t, token)
	if p.Verb != "wipe" || !slices.Equal(p.Args, []string{"blog"}) || p.UserID != "id-ann" || p.ChannelID != "chan1" ||
		p.Step != 1 || p.Nonce == "" || p.Expires != e.clock.Now().Add(10*time.Minute).Unix() {
		t.Errorf("prompt payload = %+v, want wipe [blog] by id-ann in chan1, step 1, expiring in 10 minutes", p)
	}
	if rec := e.lastAudit(t); rec.Outcome != "asked for confirmation" {
		t.Errorf("audit outcome = %q, want %q", rec.Outcome, "asked for confirmation")
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Errorf("the verb ran before a confirmation: %q", got)
	}
	if again := e.ask(t, caller("ann"), "wipe blog"); decodePrompt(t, again).Nonce == p.Nonce {
		t.Errorf("two prompts share the nonce %q", p.Nonce)
	}
}

func TestConfirmationByTheAsker(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	e.addAdmin(t, "bob")
	token := e.ask(t, caller("ann"), "wipe blog")

	// Someone else, even an admin, cannot confirm, and their click uses nothing up.
	res := e.click(t, caller("bob"), true, token)
	if want := (ClickResult{Ephemeral: "Only the person who asked can confirm this."}); res != want {
		t.Errorf("confirm by bob = %+v, want %+v", res, want)
	}
	if rec := e.lastAudit(t); rec.Outcome != "refused: Only the person who asked can confirm this." {
		t.Errorf("audit outcome of bob's click = %q", rec.Outcome)
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Fatalf("the verb ran on bob's click: %q", got)
	}

	res = e.click(t, caller("ann"), true, token)
	if want := (ClickResult{Update: "`/toolbox wipe blog`: confirmed by @ann at 12:00 UTC.\nwiped blog"}); res != want {
		t.Errorf("confirm by ann = %+v, want %+v", res, want)
	}
	if rec := e.lastAudit(t); rec.Outcome != "confirmed, ok" {
		t.Errorf("audit outcome of ann's click = %q, want %q", rec.Outcome, "confirmed, ok")
	}
	if got, want := e.runs.list(), []string{"wipe blog by ann"}; !slices.Equal(got, want) {
		t.Errorf("runs = %q, want %q", got, want)
	}

	// The same button again, by anyone allowed to, is already answered.
	for _, c := range []Caller{caller("ann"), caller("bob")} {
		confirm := c.UserName == "ann"
		res = e.click(t, c, confirm, token)
		if want := (ClickResult{Ephemeral: "This confirmation was already answered."}); res != want {
			t.Errorf("replayed click by %s = %+v, want %+v", c.UserName, res, want)
		}
	}
	if got := e.runs.list(); len(got) != 1 {
		t.Errorf("runs after replays = %q, want one", got)
	}
}

func TestConfirmationRefusesBadTokens(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	token := e.ask(t, caller("ann"), "wipe blog")
	p := decodePrompt(t, token)
	forged, err := (&confirmer{key: []byte("another key of at least 32 bytes!")}).sign(p)
	if err != nil {
		t.Fatal(err)
	}
	_, sig, _ := strings.Cut(token, ".")
	tests := []struct {
		name  string
		token string
	}{
		{"empty", ""},
		{"no signature", strings.Split(token, ".")[0]},
		{"not base64", "!!!.???"},
		{"signature of nothing", "." + sig},
		{"signed with another key", forged},
		{"verb changed", tamper(t, token, func(p *prompt) { p.Verb = "nuke" })},
		{"arguments changed", tamper(t, token, func(p *prompt) { p.Args = []string{"wiki"} })},
		{"user changed", tamper(t, token, func(p *prompt) { p.UserID = "id-mallory" })},
		{"expiry changed", tamper(t, token, func(p *prompt) { p.Expires += 3600 })},
		{"step changed", tamper(t, token, func(p *prompt) { p.Step = 2 })},
		{"signature truncated", token[:len(token)-2]},
		{"huge", strings.Repeat("a", 10000) + "." + sig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.click(t, caller("ann"), true, tt.token)
			if want := (ClickResult{Ephemeral: "This button is not valid."}); res != want {
				t.Errorf("click with a token %s = %+v, want %+v", tt.name, res, want)
			}
			if rec := e.lastAudit(t); rec.Outcome != "refused: This button is not valid." {
				t.Errorf("audit outcome = %q", rec.Outcome)
			}
		})
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Fatalf("a bad token ran the verb: %q", got)
	}
	// None of them used the real button up.
	if res := e.click(t, caller("ann"), true, token); !strings.Contains(res.Update, "confirmed by @ann") {
		t.Errorf("confirm after bad tokens = %+v, want it confirmed", res)
	}
}

func TestConfirmationExpires(t *testing.T) {
	e := newConfirmEnv(t, envOptions{ttl: 2 * time.Minute})
	e.addAdmin(t, "ann")
	token := e.ask(t, caller("ann"), "wipe blog")
	e.clock.Add(2*time.Minute + time.Second)
	res := e.click(t, caller("ann"), true, token)
	want := ClickResult{
		Update:    "~~Confirmation for `wipe`~~ expired at 12:02 UTC. Run the command again if it is still wanted.",
		Ephemeral: "This confirmation has expired.",
	}
	if res != want {
		t.Errorf("late confirm = %+v, want %+v", res, want)
	}
	if rec := e.lastAudit(t); rec.Outcome != "refused: expired" {
		t.Errorf("audit outcome = %q, want %q", rec.Outcome, "refused: expired")
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Errorf("an expired confirmation ran the verb: %q", got)
	}
}

func TestConfirmationFromAnotherChannel(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	token := e.ask(t, caller("ann"), "wipe blog")
	elsewhere := caller("ann")
	elsewhere.ChannelID, elsewhere.ChannelName = "chan2", "random"
	res := e.click(t, elsewhere, true, token)
	if want := (ClickResult{Ephemeral: "This button belongs to another channel."}); res != want {
		t.Errorf("confirm from chan2 = %+v, want %+v", res, want)
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Errorf("a click from another channel ran the verb: %q", got)
	}
}

func TestConfirmationCancel(t *testing.T) {
	tests := []struct {
		name   string
		who    Caller
		sysAdm bool   // who is a Mattermost system admin
		want   string // the prompt's new text; empty for a refusal
	}{
		{"by the asker", caller("ann"), false, "`/toolbox wipe blog`: cancelled by @ann at 12:00 UTC."},
		{"by a toolbox admin", caller("bob"), false, "`/toolbox wipe blog`: cancelled by @bob at 12:00 UTC."},
		{"by a system admin", caller("root"), true, "`/toolbox wipe blog`: cancelled by @root at 12:00 UTC."},
		{"refused to a member", caller("carl"), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newConfirmEnv(t, envOptions{})
			e.addAdmin(t, "ann")
			e.addAdmin(t, "bob")
			e.dir.IsSystemAdminFn = func(_ context.Context, id string) (bool, error) { return tt.sysAdm && id == tt.who.UserID, nil }
			token := e.ask(t, caller("ann"), "wipe blog")
			res := e.click(t, tt.who, false, token)
			if tt.want == "" {
				if want := (ClickResult{Ephemeral: "Only the person who asked, or a toolbox admin, can cancel this."}); res != want {
					t.Fatalf("cancel = %+v, want %+v", res, want)
				}
				// The refused cancel used nothing up: the asker still decides.
				if res := e.click(t, caller("ann"), true, token); !strings.Contains(res.Update, "confirmed by @ann") {
					t.Errorf("confirm after a refused cancel = %+v, want it confirmed", res)
				}
				return
			}
			if res != (ClickResult{Update: tt.want}) {
				t.Errorf("cancel = %+v, want Update %q", res, tt.want)
			}
			if rec := e.lastAudit(t); rec.Outcome != "cancelled" {
				t.Errorf("audit outcome = %q, want cancelled", rec.Outcome)
			}
			if res := e.click(t, caller("ann"), true, token); res.Ephemeral != "This confirmation was already answered." {
				t.Errorf("confirm after a cancel = %+v, want already answered", res)
			}
			if got := e.runs.list(); len(got) != 0 {
				t.Errorf("a cancelled verb ran: %q", got)
			}
		})
	}
}

func TestConfirmationTwice(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	first := e.ask(t, caller("ann"), "nuke all")
	if p := e.chat.Prompts()[0].Text; !strings.HasPrefix(p, "**Confirmation 1 of 2.** @ann asked for `/toolbox nuke all`") {
		t.Errorf("first prompt = %q, want it numbered 1 of 2", p)
	}
	res := e.click(t, caller("ann"), true, first)
	want := ClickResult{
		Update:    "`/toolbox nuke all`: confirmation 1 of 2 given by @ann at 12:00 UTC.",
		Ephemeral: "This needs a confirmation: use the buttons on the message I just posted.",
	}
	if res != want {
		t.Errorf("first confirm = %+v, want %+v", res, want)
	}
	if rec := e.lastAudit(t); rec.Outcome != "confirmed 1 of 2" {
		t.Errorf("audit outcome = %q, want %q", rec.Outcome, "confirmed 1 of 2")
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Fatalf("the verb ran after one confirmation of two: %q", got)
	}
	prompts := e.chat.Prompts()
	if len(prompts) != 2 || !strings.HasPrefix(prompts[1].Text, "**Confirmation 2 of 2.**") {
		t.Fatalf("prompts = %+v, want a second one numbered 2 of 2", prompts)
	}
	second := prompts[1].Token
	if p := decodePrompt(t, second); p.Step != 2 || p.Nonce == decodePrompt(t, first).Nonce {
		t.Errorf("second prompt payload = %+v, want step 2 with a fresh nonce", p)
	}
	if res := e.click(t, caller("ann"), true, first); res.Ephemeral != "This confirmation was already answered." {
		t.Errorf("first button again = %+v, want already answered", res)
	}
	res = e.click(t, caller("ann"), true, second)
	if want := "`/toolbox nuke all`: confirmed by @ann at 12:00 UTC.\nnuked"; res.Update != want {
		t.Errorf("second confirm = %+v, want Update %q", res, want)
	}
	if got, want := e.runs.list(), []string{"nuke all by ann"}; !slices.Equal(got, want) {
		t.Errorf("runs = %q, want %q", got, want)
	}
}

func TestConfirmationRechecksPermissions(t *testing.T) {
	t.Run("removed from the toolbox admins", func(t *testing.T) {
		e := newConfirmEnv(t, envOptions{})
		e.addAdmin(t, "ann")
		token := e.ask(t, caller("ann"), "wipe blog")
		if err := e.store.RemoveAdmin("id-ann"); err != nil {
			t.Fatal(err)
		}
		res := e.click(t, caller("ann"), true, token)
		want := "Only toolbox admins may run `wipe`: Mattermost system admins and the people `/toolbox admins list` shows. Ask one of them."
		if res != (ClickResult{Ephemeral: want}) {
			t.Errorf("confirm after demotion = %+v, want Ephemeral %q", res, want)
		}
		if rec := e.lastAudit(t); !strings.HasPrefix(rec.Outcome, "refused: Only toolbox admins may run") {
			t.Errorf("audit outcome = %q, want a refusal", rec.Outcome)
		}
		if got := e.runs.list(); len(got) != 0 {
			t.Errorf("the verb ran for a demoted admin: %q", got)
		}
	})
	t.Run("no longer a system admin", func(t *testing.T) {
		e := newConfirmEnv(t, envOptions{})
		var mu sync.Mutex
		admin := true
		e.dir.IsSystemAdminFn = func(context.Context, string) (bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return admin, nil
		}
		token := e.ask(t, caller("ann"), "wipe blog")
		mu.Lock()
		admin = false
		mu.Unlock()
		if res := e.click(t, caller("ann"), true, token); !strings.HasPrefix(res.Ephemeral, "Only toolbox admins may run `wipe`") {
			t.Errorf("confirm after demotion = %+v, want a refusal", res)
		}
		if got := e.runs.list(); len(got) != 0 {
			t.Errorf("the verb ran for a demoted admin: %q", got)
		}
	})
}

func TestConfirmationFromTheTerminal(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	op := Caller{UserName: "operator", ChannelID: "chan1", Terminal: true}
	got := e.router.Handle(context.Background(), Request{Caller: op, Text: "wipe blog"}).Text
	if want := "`wipe` asks for confirmation: run it again with --yes."; got != want {
		t.Errorf("terminal wipe = %q, want %q", got, want)
	}
	if n := len(e.chat.Prompts()); n != 0 {
		t.Errorf("a terminal command posted %d prompts, want none", n)
	}
	got = e.router.Handle(context.Background(), Request{Caller: op, Text: "wipe blog", Confirmed: true}).Text
	if got != "wiped blog" {
		t.Errorf("terminal wipe --yes = %q, want %q", got, "wiped blog")
	}
	if rec := e.lastAudit(t); rec.Kind != "terminal" || rec.Outcome != "ok" {
		t.Errorf("audit record = %+v, want a terminal command with outcome ok", rec)
	}
}

func TestConfirmationWithoutAChat(t *testing.T) {
	e := newConfirmEnv(t, envOptions{noChat: true})
	e.addAdmin(t, "ann")
	if got, want := e.handle(caller("ann"), "wipe blog").Text, "`wipe` needs a confirmation in the chat, and no chat is configured."; got != want {
		t.Errorf("wipe without a chat = %q, want %q", got, want)
	}
}

func TestConfirmationPromptNotPosted(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	e.chat.AskConfirmationFn = func(context.Context, string, string, string) (string, error) {
		return "", errors.New("mattermost: 403 not a member of the channel")
	}
	got := e.handle(caller("ann"), "wipe blog").Text
	if want := "I could not post the confirmation in this channel. Is the toolbox bot a member of it?"; got != want {
		t.Errorf("wipe with a failing chat = %q, want %q", got, want)
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Errorf("the verb ran without a confirmation: %q", got)
	}
}

func TestConfirmedVerbFails(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	token := e.ask(t, caller("ann"), "jam")
	res := e.click(t, caller("ann"), true, token)
	if want := "`/toolbox jam`: confirmed by @ann at 12:00 UTC. It failed: The printer is jammed."; res != (ClickResult{Update: want}) {
		t.Errorf("confirm of a failing verb = %+v, want Update %q", res, want)
	}
	if rec := e.lastAudit(t); rec.Outcome != "confirmed, failed" {
		t.Errorf("audit outcome = %q, want %q", rec.Outcome, "confirmed, failed")
	}
}

func TestConfirmedJob(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	token := e.ask(t, caller("ann"), "sweep")
	res := e.click(t, caller("ann"), true, token)
	if !strings.HasPrefix(res.Update, "`/toolbox sweep`: confirmed by @ann at 12:00 UTC.\nStarted job #1 (`sweep`).") {
		t.Errorf("confirm of a job verb = %+v, want it started as job #1", res)
	}
	if rec := e.lastAudit(t); rec.Outcome != "confirmed, started job #1" {
		t.Errorf("audit outcome = %q", rec.Outcome)
	}
	e.chat.waitFor(t, "the job's result", func() bool {
		for _, p := range e.chat.Shown() {
			if strings.Contains(p.Text, "job #1 `sweep` succeeded") {
				return true
			}
		}
		return false
	})
}

func TestClickWhileDraining(t *testing.T) {
	e := newConfirmEnv(t, envOptions{})
	e.addAdmin(t, "ann")
	token := e.ask(t, caller("ann"), "wipe blog")
	e.router.Drain()
	if res := e.click(t, caller("ann"), true, token); res != (ClickResult{Ephemeral: "The toolbox is restarting. Try again in a minute."}) {
		t.Errorf("click while draining = %+v", res)
	}
	if got := e.runs.list(); len(got) != 0 {
		t.Errorf("the verb ran while draining: %q", got)
	}
}
