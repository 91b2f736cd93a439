package commands

import (
	"context"
	"errors"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
)

// Backups keeps the apps' backups in a restic repository.
type Backups interface {
	// Backup makes one run of app: each dump streamed from its service, then
	// its data volumes, then the toolbox's own state, each a snapshot tagged
	// with the app, its catalog version and the job.
	Backup(ctx context.Context, req BackupRequest, progress func(string)) ([]Snapshot, error)
	// Snapshots lists the snapshots of app ("" for all), oldest first.
	Snapshots(ctx context.Context, app string) ([]Snapshot, error)
	// Restore restores one run of an app into a new generation of its
	// volumes, starts it as a scratch copy beside the live app, loads its
	// dumps and checks them, and, with req.Swap, swaps it in; without, it
	// throws the copy away (a drill). When anything fails, the live app is
	// as it was and the new generation is removed.
	Restore(ctx context.Context, req RestoreRequest, progress func(string)) (Restored, error)
	// DropGeneration removes d.Generation's volumes of d.Project, which no
	// container may use any more (an undo window's end).
	DropGeneration(ctx context.Context, d Deployment) error
	// Key is the repository's password, for the operator's terminal only.
	Key() (string, error)
	// Where says where the repository is, for people, and whether it is on
	// this very machine (then it does not survive losing it).
	Where() (where string, onThisMachine bool)

	// Settings says where the backups go and what is kept of them, as the
	// next run will use them.
	Settings() BackupSettings
	// SetRetention reads keep as people write it ("daily 7 weekly 4
	// monthly 6"), or "" for the environment's (TOOLBOX_BACKUP_KEEP), and
	// applies it from the next run on, kept across restarts. It returns the
	// retention now. A keep that does not read is an *Error of kind Invalid.
	SetRetention(keep string) (string, error)
	// UseRepository checks that restic can reach the repository at url ("",
	// the environment's: TOOLBOX_BACKUP_REPOSITORY, else the local volume)
	// and open it with the toolbox's password, or create it there, and only
	// then makes it the repository of the next runs, kept across restarts.
	// When it fails, nothing changed. The old repository's backups stay
	// where they are.
	UseRepository(ctx context.Context, url string, progress func(string)) (RepositoryChange, error)
	// Check runs restic check on the repository: its structure, and subset
	// of its data read back ("5%"). When restic found damage, the report's
	// Errors are not 0 and the error is restic's account of it.
	Check(ctx context.Context, subset string, progress func(string)) (CheckReport, error)
}

// BackupSettings are the backups' settings as the verbs show them.
type BackupSettings struct {
	Where string // as Where says
	Local bool   // the repository is on this machine
	// RepositorySet: set with `backup repository`, else the environment's.
	RepositorySet bool
	Keep          string // the retention after each app's run, "daily 7 weekly 4 monthly 6"; "" none
	KeepSet       bool   // set with `backup keep`, else the environment's
}

// RepositoryChange says what UseRepository did.
type RepositoryChange struct {
	From, To           string // the repositories for people, as Where says
	FromLocal, ToLocal bool
	Created            bool // there was no repository at To: it was created
	Unchanged          bool // To is the repository in use already
}

// CheckReport is what restic check found.
type CheckReport struct {
	Where       string        // the repository checked, as Where says
	Subset      string        // the part of the data read back: "5%"
	Errors      int           // 0: the repository is sound
	BrokenPacks int           // pack files restic says to repair
	RepairIndex bool          // restic suggests `repair index`
	Prune       bool          // restic suggests `prune` (unused data, no damage)
	Took        time.Duration // how long restic ran
}

// BackupRequest is one app to back up.
type BackupRequest struct {
	App, Version string
	Job          uint64
	Dumps        []catalog.Dump
	Volumes      []string // the app's data volumes, by their catalog names
	Generation   string   // of the app's volumes (state.App.Generation)
}

// RestoreRequest is one app to restore (or to drill).
type RestoreRequest struct {
	Live Deployment // the app as it runs, with the generation of its volumes
	// Snapshot picks the run to restore: "latest" (the newest whole run) or
	// the ID of one of its snapshots.
	Snapshot string
	Into     string // the generation the restored volumes take
	Dumps    []catalog.Dump
	Volumes  []string // the app's data volumes, by their catalog names
	Swap     bool     // false: a drill
	// BeforeSwap, when set, is called once the copy passed its checks and
	// before the live app is touched; an error stops the restore there.
	BeforeSwap func() error
}

// ErrNotAsItWas marks a restore that failed after the live app was touched
// and could not be put back as it was.
var ErrNotAsItWas = errors.New("the app could not be put back as it was")

// Restored says what a restore (or a drill) did.
type Restored struct {
	Job     uint64    // of the run restored
	Version string    // the app's version when it was backed up
	Time    time.Time // when it was backed up
	Size    int64     // bytes restored: volumes and dumps
	Checks  []string  // what the checks counted: "wordpress.sql: 412 posts"
	Took    time.Duration
	// Replaced says whether the app ran before the swap (a recovery on an
	// empty machine replaces nothing, so there is nothing to undo).
	Replaced bool
}

// Snapshot is one restic snapshot of an app.
type Snapshot struct {
	ID       string // short id
	App      string
	Version  string
	Job      uint64
	What     string // the dump's file or "volumes" or "state"
	Time     time.Time
	Added    int64 // bytes this snapshot added to the repository
	Size     int64 // bytes it covers
	Duration time.Duration
}
