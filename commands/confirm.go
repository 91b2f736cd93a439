package commands

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/toolbox-collective/toolbox/state"
)

// prompt is what a confirmation button is bound to. It travels, signed, in the
// button's context: Mattermost keeps that context on the server side and hands
// it back on a click.
type prompt struct {
	Verb      string   `json:"v"`
	Args      []string `json:"a"`
	UserID    string   `json:"u"`
	ChannelID string   `json:"c"`
	Expires   int64    `json:"e"` // unix seconds
	Nonce     string   `json:"n"`
	Step      int      `json:"s"` // 1 for the first confirmation, 2 for the second...
}

type confirmer struct{ key []byte }

var errBadToken = errors.New("confirmation token is malformed or its signature does not match")

func (c *confirmer) sign(p prompt) (string, error) {
	payload, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(c.mac(payload)), nil
}

func (c *confirmer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("toolbox-confirm-v1\x00"))
	m.Write(payload)
	return m.Sum(nil)
}

func (c *confirmer) verify(token string) (prompt, error) {
	enc := base64.RawURLEncoding
	body, sig, ok := strings.Cut(token, ".")
	if !ok || len(token) > 8192 {
		return prompt{}, errBadToken
	}
	payload, err1 := enc.DecodeString(body)
	mac, err2 := enc.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, c.mac(payload)) {
		return prompt{}, errBadToken
	}
	var p prompt
	if err := json.Unmarshal(payload, &p); err != nil {
		return prompt{}, errBadToken
	}
	return p, nil
}

func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// askConfirmation posts the prompt with buttons, as the bot, in the caller's channel.
func (r *Router) askConfirmation(ctx context.Context, c Caller, v *Verb, args []string, step int) (Reply, string, error) {
	if c.Terminal {
		return Reply{}, "", Errorf(Invalid, "`%s` asks for confirmation: run it again with --yes.", v.Name)
	}
	if r.deps.Chat == nil {
		return Reply{}, "", Errorf(Unavailable, "`%s` needs a confirmation in the chat, and no chat is configured.", v.Name)
	}
	expires := r.deps.Now().Add(r.deps.ConfirmTTL)
	token, err := r.confirm.sign(prompt{
		Verb: v.Name, Args: args, UserID: c.UserID, ChannelID: c.ChannelID,
		Expires: expires.Unix(), Nonce: newNonce(), Step: step,
	})
	if err != nil {
		return Reply{}, "", err
	}
	what := code("/toolbox " + strings.TrimSpace(v.Name+" "+quoteArgs(args)))
	if v.Describe != nil {
		what += ": " + v.Describe(args)
	}
	text := fmt.Sprintf("%s asked for %s\nConfirm before %s UTC. Only %s can confirm.", c.mention(), what, expires.UTC().Format("15:04"), c.mention())
	if n := v.confirmations(args); n > 1 {
		text = fmt.Sprintf("**Confirmation %d of %d.** %s", step, n, text)
	}
	if _, err := r.deps.Chat.AskConfirmation(ctx, c.ChannelID, text, token); err != nil {
		return Reply{}, "", &Error{Kind: Unavailable, Message: "I could not post the confirmation in this channel. Is the toolbox bot a member of it?", Err: err}
	}
	return Reply{Text: "This needs a confirmation: use the buttons on the message I just posted."}, "asked for confirmation", nil
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.IndexFunc(a, needsQuote) >= 0 {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}

// needsQuote reports whether Split would not keep r in a bare word: any
// Unicode space separates words, quotes and backslashes are syntax.
func needsQuote(r rune) bool {
	return unicode.IsSpace(r) || r == '\'' || r == '"' || r == '\\'
}

// Click is a press on a confirmation button.
type Click struct {
	Caller Caller
	PostID string
	// Confirm is true for Confirm, false for Cancel.
	Confirm bool
	Token   string
}

// ClickResult is the answer to a click: Update replaces the prompt's text
// (removing its buttons) when not empty; Ephemeral is shown to the clicker only.
type ClickResult struct {
	Update    string
	Ephemeral string
}

// HandleClick checks a click on a confirmation button and, if it holds, runs the verb.
func (r *Router) HandleClick(ctx context.Context, click Click) ClickResult {
	start := r.deps.Now()
	action := "cancel"
	if click.Confirm {
		action = "confirm"
	}
	trail := r.newTrail(click.Caller, state.AuditClick, action+" on post "+click.PostID, start)
	res, outcome, err := r.handleClick(ctx, click, trail)
	if err != nil {
		rep := r.rep.report(ctx, r.deps.Log, "click failed", err, "user", click.Caller.UserName, "post", click.PostID)
		res.Ephemeral = rep.Text
		outcome = "refused: " + firstLine(rep.Text)
		if rep.Ref != "" {
			outcome = "error " + rep.Ref
		}
	}
	r.finishAudit(trail, outcome)
	return res
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return truncate(line, 120)
}

func (r *Router) handleClick(ctx context.Context, click Click, trail *auditTrail) (ClickResult, string, error) {
	p, err := r.confirm.verify(click.Token)
	if err != nil {
		return ClickResult{}, "", &Error{Kind: Forbidden, Message: "This button is not valid.", Err: err}
	}
	if r.draining.Load() {
		return ClickResult{}, "", Errorf(Unavailable, "The toolbox is restarting. Try again in a minute.")
	}
	v, ok := r.verbs[p.Verb]
	if !ok || v.confirmations(p.Args) == 0 || p.Step < 1 || p.Step > v.confirmations(p.Args) {
		return ClickResult{}, "", Errorf(Forbidden, "This button is not valid.")
	}
	if click.Caller.ChannelID != p.ChannelID {
		return ClickResult{}, "", Errorf(Forbidden, "This button belongs to another channel.")
	}
	now := r.deps.Now()
	expires := time.Unix(p.Expires, 0)
	if now.After(expires) {
		// The prompt is dead either way: say so on it, for everyone.
		return ClickResult{
			Update:    fmt.Sprintf("~~Confirmation for `%s`~~ expired at %s UTC. Run the command again if it is still wanted.", v.Name, expires.UTC().Format("15:04")),
			Ephemeral: "This confirmation has expired.",
		}, "refused: expired", nil
	}
	mine := click.Caller.UserID == p.UserID
	if click.Confirm && !mine {
		return ClickResult{}, "", Errorf(Forbidden, "Only the person who asked can confirm this.")
	}
	if !mine { // a cancel by someone else: admins may stop a risky request
		if err := r.authorize(ctx, click.Caller, &Verb{Name: v.Name, Role: Admin}); err != nil {
			return ClickResult{}, "", Errorf(Forbidden, "Only the person who asked, or a toolbox admin, can cancel this.")
		}
	}
	if click.Confirm {
		// Permissions may have changed since the prompt was posted.
		if err := r.permitted(ctx, click.Caller, v, p.Args); err != nil {
			return ClickResult{}, "", err
		}
	}
	first, err := r.deps.Store.UseNonce(p.Nonce, expires)
	if err != nil {
		return ClickResult{}, "", err
	}
	if !first {
		return ClickResult{}, "", Errorf(Conflict, "This confirmation was already answered.")
	}
	command := code("/toolbox " + strings.TrimSpace(v.Name+" "+quoteArgs(p.Args)))
	at := now.UTC().Format("15:04")
	who := click.Caller.mention()
	if !click.Confirm {
		return ClickResult{Update: fmt.Sprintf("%s: cancelled by %s at %s UTC.", command, who, at)}, "cancelled", nil
	}
	if total := v.confirmations(p.Args); p.Step < total {
		reply, _, err := r.askConfirmation(ctx, click.Caller, v, p.Args, p.Step+1)
		if err != nil {
			return ClickResult{}, "", err
		}
		return ClickResult{
			Update:    fmt.Sprintf("%s: confirmation %d of %d given by %s at %s UTC.", command, p.Step, total, who, at),
			Ephemeral: reply.Text,
		}, fmt.Sprintf("confirmed %d of %d", p.Step, total), nil
	}
	reply, outcome, err := r.run(ctx, click.Caller, v, p.Args, trail)
	update := fmt.Sprintf("%s: confirmed by %s at %s UTC.", command, who, at)
	if err != nil {
		rep := r.rep.report(ctx, r.deps.Log, "confirmed command failed", err, "verb", v.Name, "user", click.Caller.UserName)
		return ClickResult{Update: update + " It failed: " + rep.Text}, "confirmed, failed", nil
	}
	return ClickResult{Update: update + "\n" + reply.Text}, "confirmed, " + outcome, nil
}
