// Package backup is the restic layer of the toolbox's backups and restores:
// it knows restic's command line, its --json output and its exit codes, and
// runs restic through a Runner that the caller injects. In production a Run
// is a one-shot container of the restic image on the same Docker engine as
// the apps, next to their data, with the named volumes mounted; in tests it
// is a local restic process.
//
// A Repository is one restic repository (a URL, its password and the
// backend's credentials) with the operations the toolbox needs: Init and
// Open, Backup of volumes or of one stream (a database dump fed through a
// pipe), Snapshots, Forget with a Policy that people type ("daily 7 weekly 4
// monthly 6"), Check, Restore into a volume and Dump of one file. Secrets
// travel in a Run's environment, never in its arguments.
//
// It needs restic 0.17 or later (its exit codes 10, 11 and 12). It imports
// nothing of the project.
package backup

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sort"
)

// Run is one restic process: in production a one-shot container of the
// restic image on the engine, with the named volumes mounted; in tests a
// local process.
type Run struct {
	// Args are restic's arguments after the binary name.
	Args []string
	// Env holds RESTIC_REPOSITORY, RESTIC_PASSWORD and the backend's
	// credentials: secrets go here, never in Args.
	Env map[string]string
	// Mounts are the Docker volumes to mount (read-only for backups).
	Mounts []Mount
	// Stdin nil gives restic no standard input. Otherwise it is streamed in
	// and restic's standard input closed at the reader's io.EOF. Any other
	// read error must end the process without closing its input normally
	// (kill it): a truncated stream must not pass for a complete one.
	Stdin io.Reader
	// Stdout and Stderr receive restic's output, kept apart. Writes come
	// from one goroutine per stream; a write error may stop the run.
	Stdout, Stderr io.Writer
}

// LogValue shows the arguments, the mounts and the names of the environment
// variables, never their values.
func (r Run) LogValue() slog.Value {
	keys := make([]string, 0, len(r.Env))
	for k := range r.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	mounts := make([]string, 0, len(r.Mounts))
	for _, m := range r.Mounts {
		s := m.Volume + ":" + m.Target
		if m.ReadOnly {
			s += ":ro"
		}
		mounts = append(mounts, s)
	}
	return slog.GroupValue(
		slog.Any("args", slices.Clone(r.Args)),
		slog.Any("env", keys),
		slog.Any("mounts", mounts),
		slog.Bool("stdin", r.Stdin != nil),
	)
}

// Mount is a Docker volume mounted into a Run at Target.
type Mount struct {
	Volume   string
	Target   string
	ReadOnly bool
}

// Runner runs restic. exitCode is restic's exit code when the process ran
// and ended; err is for a run that could not be made or followed (the image
// is missing, the engine is down, ctx ended), and then exitCode is
// meaningless. When ctx ends the runner stops restic (SIGTERM first: restic
// removes its locks then) and returns.
type Runner interface {
	Run(ctx context.Context, r Run) (exitCode int, err error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, r Run) (int, error)

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, r Run) (int, error) { return f(ctx, r) }
