package commands

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// hasCause reports whether err is an *Error carrying a cause the operators
// should see in the log even though people get only its message.
func hasCause(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Err != nil
}

// Message renders err for the chat. Internal errors get a short sentence and a
// reference that is also in the log line carrying the full chain.
func Message(err error) (text, ref string) {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Message, ""
	}
	ref = newRef()
	return fmt.Sprintf("Something went wrong on the toolbox's side (reference %s). The operators can find the details in its log.", ref), ref
}

func newRef() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
