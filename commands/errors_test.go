package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// Sentinels standing for the adapters' (commands does not import them).
var (
	errTaken   = errors.New("domain already routed")
	errInvalid = errors.New("invalid")
)

var testKinds = []ErrorKind{
	{Err: errTaken, Kind: Conflict, Message: "Another app already has this domain: choose another one."},
	{Err: errInvalid, Kind: Invalid, Message: "The proxy refused this name or domain."},
}

func TestReporterClassifies(t *testing.T) {
	rp := newReporter(testKinds)
	tests := []struct {
		name     string
		err      error
		kind     Kind
		text     string // "" for the internal sentence
		level    string // in the log line; "" for none
		noInText string
	}{
		{
			name: "plain user error", err: Errorf(Invalid, "Say it again."),
			kind: Invalid, text: "Say it again.", level: "DEBUG",
		},
		{
			name: "user error with a hidden cause", err: &Error{Kind: Unavailable, Message: "Mattermost does not answer.", Err: errors.New("dial tcp: refused")},
			kind: Unavailable, text: "Mattermost does not answer.", level: "WARN", noInText: "refused",
		},
		{
			name: "internal", err: errors.New("disk on fire"),
			kind: Internal, level: "ERROR", noInText: "fire",
		},
		{
			name: "adapter sentinel, wrapped", err: fmt.Errorf("proxy: route %q: %w", "blog.example.org", errTaken),
			kind: Conflict, text: "Another app already has this domain: choose another one.", level: "WARN", noInText: "proxy:",
		},
		{
			name: "adapter sentinel under a step that failed",
			err:  &Error{Kind: Unavailable, Message: "wordpress runs, but its route on blog.example.org could not be set.", Err: fmt.Errorf("proxy: %w", errInvalid)},
			kind: Invalid, text: "wordpress runs, but its route on blog.example.org could not be set. The proxy refused this name or domain.", level: "WARN",
		},
		{
			name: "step without a final period",
			err:  &Error{Kind: Internal, Message: "Removing the route of wiki failed", Err: errTaken},
			kind: Conflict, text: "Removing the route of wiki failed. Another app already has this domain: choose another one.", level: "WARN",
		},
		{
			name: "a precise kind is kept over the table",
			err:  &Error{Kind: Forbidden, Message: "No.", Err: errTaken},
			kind: Forbidden, text: "No.", level: "WARN",
		},
		{
			name: "state not found", err: fmt.Errorf("state: job 7: %w", state.ErrNotFound),
			kind: NotFound, text: "What this names does not exist (any more).", level: "WARN",
		},
		{
			name: "state conflict", err: fmt.Errorf("state: %w", state.ErrConflict),
			kind: Conflict, text: "That exists already.", level: "WARN",
		},
		{
			name: "state locked", err: state.ErrLocked,
			kind: Unavailable, text: "The toolbox's state is locked by another process. Try again in a minute.", level: "WARN",
		},
		{
			name: "catalog unknown app", err: fmt.Errorf("catalog: %w %q", catalog.ErrUnknownApp, "nope"),
			kind: NotFound, text: "That app is not in the catalog. `/toolbox catalog` lists what is.", level: "WARN",
		},
		{
			name: "state schema", err: fmt.Errorf("open: %w", state.ErrSchema),
			kind: Unavailable, text: "The toolbox's state was written by another version of the toolbox. The operators need to upgrade it.", level: "WARN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log syncBuffer
			logger := slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			got := rp.report(context.Background(), logger, "it failed", tt.err, "user", "ann")
			if got.Kind != tt.kind {
				t.Errorf("report(%v).Kind = %v, want %v", tt.err, got.Kind, tt.kind)
			}
			if tt.text == "" {
				if got.Ref == "" || !strings.HasPrefix(got.Text, "Something went wrong on the toolbox's side (reference "+got.Ref+")") {
					t.Errorf("report(%v) = %+v, want the internal sentence with its reference", tt.err, got)
				}
			} else if got.Text != tt.text || got.Ref != "" {
				t.Errorf("report(%v) = %+v, want text %q and no reference", tt.err, got, tt.text)
			}
			if tt.noInText != "" && strings.Contains(got.Text, tt.noInText) {
				t.Errorf("report(%v).Text = %q shows the cause", tt.err, got.Text)
			}
			line := log.String()
			if !contains(line, "level="+tt.level, `msg="it failed"`, "user=ann", "kind=") || strings.Count(line, "\n") != 1 {
				t.Errorf("log = %q, want one line at %s with what, attrs and kind", line, tt.level)
			}
			if !strings.Contains(line, fmt.Sprintf("%q", tt.err.Error())) && !strings.Contains(line, "err="+tt.err.Error()) {
				t.Errorf("log = %q, want the whole chain %q", line, tt.err)
			}
			if got.Ref != "" && !strings.Contains(line, "ref="+got.Ref) {
				t.Errorf("log = %q, want reference %s", line, got.Ref)
			}
		})
	}
}

func TestErrorKindsHook(t *testing.T) {
	fail := func(err error) func(context.Context, Invocation) (string, error) {
		return func(context.Context, Invocation) (string, error) { return "", err }
	}
	taken := fmt.Errorf("proxy: set route of wiki: %w", errTaken)
	e := newEnv(t, envOptions{errorKinds: testKinds, extra: []*Verb{
		{Name: "route", MaxArgs: 0, Summary: "fails in the proxy", Run: fail(taken)},
		{Name: "bug", MaxArgs: 0, Summary: "fails inside", Run: fail(errors.New("nil map"))},
		jobVerb("work", fail(&Error{Kind: Unavailable, Message: "wiki runs, but its route could not be set.", Err: fmt.Errorf("proxy: %w", errInvalid)})),
	}})

	if got, want := e.handle(caller("ann"), "route").Text, "Another app already has this domain: choose another one."; got != want {
		t.Errorf("route = %q, want %q", got, want)
	}
	if rec := e.lastAudit(t); rec.Outcome != "error" {
		t.Errorf("audit outcome = %q, want error (no reference for a mapped error)", rec.Outcome)
	}
	if log := e.log.String(); !contains(log, "level=WARN", "command failed", "proxy: set route of wiki: domain already routed") {
		t.Errorf("log lacks the cause at warn:\n%s", log)
	}
	if got := e.handle(caller("ann"), "bug").Text; !strings.HasPrefix(got, "Something went wrong") {
		t.Errorf("bug = %q, want the internal sentence: the table maps only its sentinels", got)
	}

	e.handle(caller("ann"), "work")
	want := "wiki runs, but its route could not be set. The proxy refused this name or domain."
	e.chat.waitFor(t, "the job's failure", e.postWith(":x: **job #1 `work` failed**", want))
	if j := e.job(t, 1); j.Error != want {
		t.Errorf("job error = %q, want %q", j.Error, want)
	}
}

func TestErrorKindsHookOnAConfirmedVerb(t *testing.T) {
	e := newEnv(t, envOptions{errorKinds: testKinds, extra: []*Verb{{
		Name: "unroute", MaxArgs: 0, Summary: "fails in the proxy", Confirmations: 1,
		Run: func(context.Context, Invocation) (string, error) { return "", fmt.Errorf("proxy: %w", errTaken) },
	}}})
	e.handle(caller("ann"), "unroute")
	prompts := e.chat.Prompts()
	if len(prompts) != 1 {
		t.Fatalf("prompts = %+v, want one", prompts)
	}
	res := e.router.HandleClick(context.Background(), Click{Caller: caller("ann"), PostID: prompts[0].ID, Confirm: true, Token: prompts[0].Token})
	if !strings.HasSuffix(res.Update, "It failed: Another app already has this domain: choose another one.") {
		t.Errorf("click = %+v, want the mapped message", res)
	}
	if log := e.log.String(); !contains(log, "level=WARN", "confirmed command failed", "proxy: domain already routed") {
		t.Errorf("log lacks the cause:\n%s", log)
	}
}
