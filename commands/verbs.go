package commands

import "context"

// Role says who may run a verb.
type Role int

const (
	Anyone   Role = iota // every member of the team
	Admin                // Mattermost system admins and the toolbox admins list
	Operator             // the machine's operator, on its terminal only (`toolbox do`): never in chat
)

func (r Role) String() string {
	switch r {
	case Admin:
		return "toolbox admins"
	case Operator:
		return "the operator, on the machine's terminal"
	}
	return "everyone"
}

// Caller is who typed a command, and where.
type Caller struct {
	UserID, UserName       string
	ChannelID, ChannelName string
	TeamID                 string
	// Terminal is the local operator using `toolbox do`: an admin, with no chat.
	Terminal bool
	// ResponseURL is where the chat takes later replies for this caller's
	// eyes only (a slash command's response_url); "" elsewhere.
	ResponseURL string
}

func (c Caller) mention() string {
	if c.Terminal {
		return "the operator"
	}
	return "@" + c.UserName
}

// Invocation is one run of a verb.
type Invocation struct {
	Caller Caller
	Args   []string
	// Progress reports a step of a job; it is a no-op for quick verbs.
	Progress func(format string, args ...any)
	// JobID is the job running the verb (0 for quick verbs).
	JobID uint64
}

// Verb is one entry of the command table: it carries its own usage and help.
type Verb struct {
	Name    string // one or two words: "status", "admins add"
	Args    string // usage after the name: "<user>"
	Summary string // one line for `help`
	Help    string // more for `help <verb>`
	Role    Role
	// Confirmations is how many times the caller must click Confirm first (0: none);
	// ConfirmationsFor, when set, decides it from the arguments instead.
	Confirmations    int
	ConfirmationsFor func(args []string) int
	// Validate, when set, checks the arguments before any confirmation or job,
	// so that a mistake is answered at once.
	Validate func(ctx context.Context, args []string) error
	// Redact, when set, hides secret arguments in the audit log and the logs.
	Redact func(args []string) []string
	// Job verbs answer at once and run in the background.
	Job bool
	// Apps, when set, names the apps a job of this verb touches: it holds
	// them from its acceptance to its end, and is refused while another job
	// holds one of them.
	Apps func(args []string) []string
	// Admit, when set, takes what a job of this verb needs when it is
	// accepted (an add's memory) or refuses it; release gives it back when
	// the job ends.
	Admit func(ctx context.Context, args []string) (release func(), err error)
	// Single, when set, lets one job of this verb run at a time; it names
	// the job in the refusal of a second ("A self-test").
	Single string
	// Permit, when set, refuses c what its Role allows in general (the chat
	// app's removal from the chat, say); it runs before any confirmation.
	Permit func(ctx context.Context, c Caller, args []string) error
	// Changes, when set, says whether a quick verb changes state with these
	// arguments: its audit record is then on disk before it runs (see
	// changing). A job's record is written with the job.
	Changes func(args []string) bool
	// MinArgs and MaxArgs bound len(Args); MaxArgs < 0 means no bound.
	MinArgs, MaxArgs int
	Run              func(ctx context.Context, inv Invocation) (string, error)
	// Describe says in one line, for the confirmation prompt, what will happen.
	Describe func(args []string) string
}

func (v *Verb) confirmations(args []string) int {
	if v.ConfirmationsFor != nil {
		return v.ConfirmationsFor(args)
	}
	return v.Confirmations
}

// changes says whether running v with args changes state (see Verb.Changes).
func (v *Verb) changes(args []string) bool {
	return !v.Job && v.Changes != nil && v.Changes(args)
}

// always is Verb.Changes for the verbs that change state whatever their arguments.
func always([]string) bool { return true }

// withArgs is Verb.Changes for the verbs that show a setting without
// arguments and change it with some.
func withArgs(args []string) bool { return len(args) > 0 }

// changing is Verb.Changes of the built-in quick verbs that change state,
// in one place.
func changing() map[string]func([]string) bool {
	return map[string]func([]string) bool{
		"admins add": always, "admins remove": always, "set": always,
		"backup keep": withArgs, "backup schedule": withArgs,
	}
}

func (v *Verb) usage() string {
	if v.Args == "" {
		return "/toolbox " + v.Name
	}
	return "/toolbox " + v.Name + " " + v.Args
}

// Request is a command as it reaches the router.
type Request struct {
	Caller Caller
	Text   string
	// Confirmed skips the confirmation prompt (the terminal operator said yes).
	Confirmed bool
}

// Reply is what the caller sees at once.
type Reply struct {
	Text string
	// JobID is set when the command started a job.
	JobID uint64
	// Failed is set when the command was refused or failed.
	Failed bool
}

// builtins is the command table of the chat foundation; later capabilities
// pass their verbs to NewRouter.
func (r *Router) builtins() []*Verb {
	selftest := r.selftestVerb()
	selftest.Single = "A self-test" // open to everyone: one at a time, whoever starts it
	verbs := []*Verb{
		r.helpVerb(),
		r.statusVerb(),
		r.jobsVerb(),
		r.auditVerb(),
		r.adminsAddVerb(),
		r.adminsRemoveVerb(),
		r.adminsListVerb(),
		selftest,
		r.versionVerb(),
	}
	if a := r.deps.Apps; a != nil {
		a.scrubEngine() // before any verb can reach the engine or the backups
		a.scrubBackups()
		verbs = append(verbs, a.catalogVerb(r), a.addVerb(r), a.removeVerb(r), a.restartVerb(),
			a.upgradeVerb(r), a.logsVerb(), a.setVerb())
		if a.Backups != nil {
			verbs = append(verbs, a.backupNowVerb(r), a.backupsVerb(), a.backupKeyVerb(), a.restoreVerb(r), a.restoreUndoVerb(r), a.drillNowVerb(r), a.recoverVerb(r),
				a.backupKeepVerb(r), a.backupRepositoryVerb(r), a.backupCheckVerb())
			if a.Schedules != nil {
				verbs = append(verbs, a.backupScheduleVerb(r, a.Schedules))
			}
		}
	}
	marks := changing()
	for _, v := range verbs {
		if v.Changes == nil {
			v.Changes = marks[v.Name]
		}
	}
	return verbs
}
