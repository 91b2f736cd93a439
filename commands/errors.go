package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// Kind classifies an error for the person who reads the reply.
type Kind int

const (
	Internal    Kind = iota // a bug or an outside failure we cannot explain: details go to the log only
	Invalid                 // the request itself is wrong
	NotFound                // what the request names does not exist
	Conflict                // the request clashes with what exists
	Forbidden               // the caller may not do this
	Unavailable             // a component is down or the toolbox is shutting down
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case Forbidden:
		return "forbidden"
	case Unavailable:
		return "unavailable"
	}
	return "internal"
}

// Error is an error whose Message is written for the people in the chat.
type Error struct {
	Kind    Kind
	Message string
	Err     error // the cause, logged but never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of kind k whose message is shown to people as is.
func Errorf(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err; errors that are not *Error are Internal.
// It does not know the ErrorKinds table: the router's reports do.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// ErrorKind maps a sentinel error of another package (the deploy adapters,
// which commands does not import) to what people are told: an error for which
// errors.Is(err, Err) holds reaches them as Kind with Message.
type ErrorKind struct {
	Err     error
	Kind    Kind
	Message string
}

// stateErrorKinds are the sentinels of the packages commands imports (the
// state and the catalog's data), mapped here. The state's other errors (empty
// names, a closed store) are bugs or shutdowns: internal.
func stateErrorKinds() []ErrorKind {
	return []ErrorKind{
		{Err: catalog.ErrUnknownApp, Kind: NotFound, Message: "That app is not in the catalog. `/toolbox catalog` lists what is."},
		{Err: state.ErrNotFound, Kind: NotFound, Message: "What this names does not exist (any more)."},
		{Err: state.ErrConflict, Kind: Conflict, Message: "That exists already."},
		{Err: state.ErrLocked, Kind: Unavailable, Message: "The toolbox's state is locked by another process. Try again in a minute."},
		{Err: state.ErrSchema, Kind: Unavailable, Message: "The toolbox's state was written by another version of the toolbox. The operators need to upgrade it."},
	}
}

// reporter is the one place that renders errors for people and logs them.
type reporter struct {
	kinds []ErrorKind // Deps.ErrorKinds first, then the state's
}

func newReporter(kinds []ErrorKind) *reporter {
	return &reporter{kinds: append(append([]ErrorKind(nil), kinds...), stateErrorKinds()...)}
}

// report is an error as people see it.
type report struct {
	Kind Kind
	Text string
	Ref  string // set for internal errors: it is in the reply and in the log line
}

// match finds the first entry of the table that err wraps.
func (rp *reporter) match(err error) (ErrorKind, bool) {
	for _, k := range rp.kinds {
		if k.Err != nil && errors.Is(err, k.Err) {
			return k, true
		}
	}
	return ErrorKind{}, false
}

// classify says what people see of err, and whether err hides a cause the
// operators should see in the log. Rules, first that applies:
//
//   - an *Error without a cause is shown as is (a plain user error);
//   - an *Error of kind Internal or Unavailable whose cause wraps a sentinel of
//     the table (a step that failed, for a reason the table knows) takes the
//     sentinel's kind, and its message followed by the sentinel's;
//   - any other *Error keeps its kind and message, its cause hidden;
//   - an error that wraps a sentinel of the table takes its kind and message;
//   - anything else is internal.
func (rp *reporter) classify(err error) (kind Kind, text string, hidden bool) {
	var e *Error
	app := errors.As(err, &e)
	k, known := rp.match(err)
	switch {
	case app && e.Err == nil:
		return e.Kind, e.Message, false
	case app && known && (e.Kind == Internal || e.Kind == Unavailable) && errors.Is(e.Err, k.Err):
		return k.Kind, sentences(e.Message, k.Message), true
	case app:
		return e.Kind, e.Message, true
	case known:
		return k.Kind, k.Message, true
	}
	return Internal, "", true
}

// sentences joins two messages for people.
func sentences(a, b string) string {
	a = strings.TrimSpace(a)
	if a == "" {
		return b
	}
	if !strings.ContainsAny(a[len(a)-1:], ".!?") {
		a += "."
	}
	return a + " " + b
}

// report renders err for people and logs it, with what and attrs, on log:
// internal errors at level error with a reference that is also in the text,
// errors with a hidden cause at warn, plain user errors at debug. The log line
// carries the whole chain (err.Error() of wrapped errors).
func (rp *reporter) report(ctx context.Context, log *slog.Logger, what string, err error, attrs ...any) report {
	kind, text, hidden := rp.classify(err)
	rep := report{Kind: kind, Text: text}
	attrs = append(attrs, "kind", kind.String(), "err", err)
	switch {
	case kind == Internal:
		rep.Ref = newRef()
		rep.Text = fmt.Sprintf("Something went wrong on the toolbox's side (reference %s). The operators can find the details in its log.", rep.Ref)
		log.ErrorContext(ctx, what, append([]any{"ref", rep.Ref}, attrs...)...)
	case hidden:
		log.WarnContext(ctx, what, attrs...)
	default:
		log.DebugContext(ctx, what, attrs...)
	}
	return rep
}

// render is what people would see of err, without logging it; for tests and
// for replies that quote an error inside a larger text.
func (rp *reporter) render(err error) (Kind, string) {
	kind, text, _ := rp.classify(err)
	if kind == Internal {
		text = "Something went wrong on the toolbox's side. The operators can find the details in its log."
	}
	return kind, text
}

func newRef() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
