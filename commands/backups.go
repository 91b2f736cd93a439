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
