package commands

import (
	"context"
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
}

// Restored says what a restore (or a drill) did.
type Restored struct {
	Job     uint64    // of the run restored
	Version string    // the app's version when it was backed up
	Time    time.Time // when it was backed up
	Size    int64     // bytes restored: volumes and dumps
	Checks  []string  // what the checks counted: "wordpress.sql: 412 posts"
	Took    time.Duration
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
