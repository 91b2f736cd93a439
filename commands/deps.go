package commands

import (
	"context"
	"log/slog"
	"time"

	"github.com/toolbox-collective/toolbox/state"
)

// Deps are what the router needs from the rest of the program.
type Deps struct {
	Store     Store
	Chat      Chat      // may be nil: `toolbox do` without a Mattermost
	Directory Directory // may be nil likewise
	Checks    []Check   // what selftest checks
	Log       *slog.Logger
	Now       func() time.Time
	Version   string
	// Apps, when set, brings the verbs that deploy apps.
	Apps *AppDeps
	// ConfirmKey signs confirmation buttons; ConfirmTTL is how long they stay valid.
	ConfirmKey []byte
	ConfirmTTL time.Duration
	// Limits bound the jobs the chat can start (zero values: the defaults).
	Limits Limits
	// ErrorKinds tells how the sentinel errors of the adapters reach people:
	// an error that wraps ErrorKinds[i].Err (errors.Is) is shown as its Kind
	// and Message, its chain going to the log. The first match wins; the
	// state's sentinels are mapped by commands itself, after these.
	ErrorKinds []ErrorKind
}

// Store is the part of the state the verbs use.
type Store interface {
	// StartJob records a job and its audit record in one durable transaction.
	StartJob(j state.Job, rec state.AuditRecord) (state.Job, uint64, error)
	UpdateJob(id uint64, fn func(*state.Job) error) (state.Job, error)
	RecentJobs(n int) ([]state.Job, error)
	ActiveJobs() ([]state.Job, error)
	InterruptRunning(reason string) ([]state.Job, error)
	AppendAudit(r state.AuditRecord) error
	AppendAuditDurable(r state.AuditRecord) (uint64, error)
	SetAuditOutcome(id uint64, outcome string) error
	RecentAudit(n int) ([]state.AuditRecord, error)
	AddAdmin(a state.Admin) error
	RemoveAdmin(userID string) error
	Admins() ([]state.Admin, error)
	IsAdmin(userID string) (bool, error)
	UseNonce(nonce string, expires time.Time) (bool, error)
	Apps() ([]state.App, error)
}

// Chat posts as the bot in a channel.
type Chat interface {
	// Post creates a post and returns its id.
	Post(ctx context.Context, channelID, text string) (postID string, err error)
	// Edit replaces the text of a post the bot made.
	Edit(ctx context.Context, postID, text string) error
	// AskConfirmation posts text with Confirm and Cancel buttons that carry token.
	AskConfirmation(ctx context.Context, channelID, text, token string) (postID string, err error)
}

// Directory answers questions about the chat's users.
type Directory interface {
	IsSystemAdmin(ctx context.Context, userID string) (bool, error)
	// UserByName finds a user by user name (without the @).
	UserByName(ctx context.Context, name string) (User, error)
}

// User is a chat user.
type User struct{ ID, Name string }

// Check is one thing selftest verifies.
type Check struct {
	Name string
	// Run returns a short detail on success.
	Run func(ctx context.Context) (detail string, err error)
}
