package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/backup"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
)

// DefaultLocalVolume holds the restic repository until an off-machine one is
// set: it does not survive losing the machine, and people are told so.
const DefaultLocalVolume = "toolbox-backups"

// localRepository is where the local repository's volume is mounted in runs.
const localRepository = "/repository"

// BackupConfig says where the backups go and what goes with every run.
type BackupConfig struct {
	ResticImage string
	// Repository is restic's repository URL; "" is the local volume.
	Repository string
	// LocalVolume is the local repository's volume ("" is DefaultLocalVolume).
	LocalVolume string
	// Env holds the backend's settings and credentials (OS_*, AWS_*).
	Env map[string]string
	// Password returns the repository's password (kept in the state).
	Password func() (string, error)
	// Keep is the retention applied after each app's run (zero: none).
	Keep backup.Policy
	// State writes a hot copy of the toolbox's state: it goes in every run,
	// so that the repository alone is enough to rebuild.
	State func(w io.Writer) (int64, error)
}

// Backups keeps the apps' backups in a restic repository, running restic as
// one-shot containers on the engine, next to the data.
type Backups struct {
	engine *Engine
	cfg    BackupConfig

	initMu sync.Mutex // held while the repository is first opened or initialised
	ready  bool
}

var _ commands.Backups = (*Backups)(nil)

// NewBackups returns the backups of the apps of e.
func NewBackups(e *Engine, cfg BackupConfig) *Backups {
	if cfg.LocalVolume == "" {
		cfg.LocalVolume = DefaultLocalVolume
	}
	return &Backups{engine: e, cfg: cfg}
}

// runner runs restic in one-shot containers of the restic image.
type runner struct {
	d      *docker.Engine
	image  string
	labels map[string]string
	remote bool
	// name is the runs' container name: one per app's backup, so that a
	// second backup of an app while one runs is refused (docker.ErrBusy) and
	// a crash's leftover is replaced by the next run; "" draws a new one.
	name string
}

func (r runner) Run(ctx context.Context, run backup.Run) (int, error) {
	mounts := make([]docker.Mount, len(run.Mounts))
	for i, m := range run.Mounts {
		mounts[i] = docker.Mount{Volume: m.Volume, Target: m.Target, ReadOnly: m.ReadOnly}
	}
	network := "none" // a local repository needs no network at all
	if r.remote {
		network = ""
	}
	name := r.name
	if name == "" {
		name = "tb-restic-" + randomHex(5)
	}
	return r.d.Run(ctx, docker.RunSpec{
		Name: name, Image: r.image, Cmd: run.Args, Env: run.Env, Labels: r.labels,
		Mounts: mounts, Network: network, Stdin: run.Stdin, Stdout: run.Stdout, Stderr: run.Stderr,
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// repository returns the repository with restic run in containers named
// runName ("" for fresh names). With create, the first call initialises it
// (and the local volume) when it does not exist yet; reads never create one.
func (b *Backups) repository(ctx context.Context, runName string, create bool) (*backup.Repository, error) {
	s, err := b.engine.connect(ctx)
	if err != nil {
		return nil, err
	}
	password, err := b.cfg.Password()
	if err != nil {
		return nil, err
	}
	labels := map[string]string{stack.LabelManaged: "1", stack.LabelApp: "toolbox"}
	for k, v := range b.engine.cfg.Labels {
		labels[k] = v
	}
	repo := &backup.Repository{
		URL: b.cfg.Repository, Password: backup.Secret(password), Env: map[string]backup.Secret{},
		Runner: runner{d: s.Engine, image: b.cfg.ResticImage, labels: labels, remote: b.cfg.Repository != "", name: runName},
	}
	for k, v := range b.cfg.Env {
		repo.Env[k] = backup.Secret(v)
	}
	if repo.URL == "" {
		volLabels := maps.Clone(labels)
		volLabels[stack.LabelApp] = stack.BackupsApp
		if err := s.Engine.EnsureVolume(ctx, b.cfg.LocalVolume, volLabels); err != nil {
			return nil, err
		}
		repo.URL = localRepository
		repo.Mounts = []backup.Mount{{Volume: b.cfg.LocalVolume, Target: localRepository}}
	}
	b.initMu.Lock()
	defer b.initMu.Unlock()
	if b.ready {
		return repo, nil
	}
	// Said once here rather than as an image missing inside a run: with no
	// registry, the error is docker.ErrRegistryUnreachable.
	if err := s.Engine.PullImage(ctx, b.cfg.ResticImage, nil); err != nil {
		return nil, err
	}
	if create {
		_, err = repo.Init(ctx)
	} else {
		_, err = repo.Open(ctx)
	}
	if err != nil {
		return nil, err
	}
	b.ready = true
	return repo, nil
}

// Backup makes one run of an app: each dump streamed from its service's
// container into restic, then its data volumes, then the toolbox's state.
func (b *Backups) Backup(ctx context.Context, req commands.BackupRequest, progress func(string)) ([]commands.Snapshot, error) {
	repo, err := b.repository(ctx, "tb-restic-backup-"+req.App, true)
	if err != nil {
		return nil, err
	}
	s, err := b.engine.connect(ctx)
	if err != nil {
		return nil, err
	}
	tags := map[string]string{"app": req.App, "version": req.Version, "job": strconv.FormatUint(req.Job, 10)}
	var snaps []commands.Snapshot
	// save backs up one thing; with feed, a stream that feed writes, on a
	// context of its own that ends with the save, and waited for.
	save := func(what string, spec backup.BackupSpec, feed func(w *io.PipeWriter, ctx context.Context)) error {
		spec.Tags = maps.Clone(tags)
		spec.Tags["what"] = what
		var fed sync.WaitGroup
		if feed != nil {
			pr, pw := io.Pipe()
			fctx, stop := context.WithCancel(ctx)
			fed.Go(func() { feed(pw, fctx) })
			defer func() {
				stop()
				pr.CloseWithError(io.ErrClosedPipe) // a feed still writing stops
				fed.Wait()
			}()
			spec.Stdin = pr
		}
		sum, err := repo.Backup(ctx, spec, func(p backup.Progress) { progress(progressLine(what, p)) })
		if err != nil {
			return fmt.Errorf("back up %s of %s: %w", what, req.App, err)
		}
		snaps = append(snaps, snapshotOf(req, what, sum))
		return nil
	}
	for _, d := range req.Dumps {
		progress("dumping " + d.File)
		if err := save(d.File, backup.BackupSpec{StdinFilename: d.File}, func(w *io.PipeWriter, dctx context.Context) {
			var stderr strings.Builder
			code, err := s.Engine.Exec(dctx, stack.ContainerName(req.App, d.Service), d.Command, w, &limitedWriter{w: &stderr, n: 4 << 10})
			if err == nil && code != 0 {
				err = fmt.Errorf("the dump %s exited with %d: %s", strings.Join(d.Command, " "), code, strings.TrimSpace(stderr.String()))
			}
			w.CloseWithError(err) // nil: EOF, the dump is whole
		}); err != nil {
			return snaps, err
		}
	}
	if len(req.Volumes) > 0 {
		// Saved under the first generation's names whichever is live: one
		// path per volume in all of the app's snapshots.
		vols := make([]string, len(req.Volumes))
		savedAs := map[string]string{}
		for i, v := range req.Volumes {
			vols[i] = stack.GenerationVolume(req.App, req.Generation, v)
			savedAs[vols[i]] = stack.VolumeName(req.App, v)
		}
		if err := save("volumes", backup.BackupSpec{Volumes: vols, SavedAs: savedAs}, nil); err != nil {
			return snaps, err
		}
	}
	if b.cfg.State != nil {
		// Copied first: streaming the state straight into restic would hold a
		// bbolt read transaction open for the whole upload.
		var state bytes.Buffer
		if _, err := b.cfg.State(&state); err != nil {
			return snaps, fmt.Errorf("copy the toolbox's state: %w", err)
		}
		if err := save("state", backup.BackupSpec{Stdin: &state, StdinFilename: "toolbox.db"}, nil); err != nil {
			return snaps, err
		}
	}
	if !b.cfg.Keep.IsZero() {
		progress("applying the retention: keep " + b.cfg.Keep.String())
		// Whole stream snapshots and volume snapshots, each group by its path;
		// a stream cut short is never one the policy keeps in place of a whole one.
		for _, tags := range [][]string{{"app=" + req.App, backup.CompleteTag}, {"app=" + req.App, "what=volumes"}} {
			if _, err := repo.Forget(ctx, b.cfg.Keep, tags, true); err != nil {
				return snaps, fmt.Errorf("the backup of %s was made, but applying the retention failed: %w", req.App, err)
			}
		}
	}
	return snaps, nil
}

func progressLine(what string, p backup.Progress) string {
	line := fmt.Sprintf("%s: %s done", what, size(p.BytesDone))
	if p.PercentDone > 0 {
		line = fmt.Sprintf("%s: %.0f%% of %s", what, 100*p.PercentDone, size(p.TotalBytes))
	}
	if p.Elapsed > 0 && p.BytesDone > 0 {
		line += fmt.Sprintf(", %s/s", size(uint64(float64(p.BytesDone)/p.Elapsed.Seconds())))
	}
	if p.Remaining > 0 {
		line += fmt.Sprintf(", %s left", p.Remaining.Round(time.Second))
	}
	return line
}

func size(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}

func snapshotOf(req commands.BackupRequest, what string, sum backup.Summary) commands.Snapshot {
	id := sum.SnapshotID
	if len(id) > 8 {
		id = id[:8]
	}
	return commands.Snapshot{ID: id, App: req.App, Version: req.Version, Job: req.Job, What: what, Time: sum.End,
		Added: int64(sum.DataAddedPacked), Size: int64(sum.TotalBytesProcessed), Duration: sum.Duration}
}

// Snapshots lists app's snapshots (all when app is "").
func (b *Backups) Snapshots(ctx context.Context, app string) ([]commands.Snapshot, error) {
	repo, err := b.repository(ctx, "", false)
	if errors.Is(err, backup.ErrNoRepository) {
		return nil, nil // no backup was ever made
	}
	if err != nil {
		return nil, err
	}
	var tags []string
	if app != "" {
		tags = []string{"app=" + app}
	}
	list, err := repo.Snapshots(ctx, tags...)
	if err != nil {
		return nil, err
	}
	out := make([]commands.Snapshot, 0, len(list))
	for _, s := range list {
		if s.Tags["what"] != "volumes" && s.Tags["complete"] != "1" {
			continue // a stream cut short (see backup.CompleteTag)
		}
		job, _ := strconv.ParseUint(s.Tags["job"], 10, 64)
		snap := commands.Snapshot{ID: s.ShortID, App: s.Tags["app"], Version: s.Tags["version"], Job: job, What: s.Tags["what"], Time: s.Time}
		if s.Summary != nil {
			snap.Added, snap.Size, snap.Duration = int64(s.Summary.DataAddedPacked), int64(s.Summary.TotalBytesProcessed), s.Summary.Duration
		}
		out = append(out, snap)
	}
	return out, nil
}

// Key is the repository's password.
func (b *Backups) Key() (string, error) { return b.cfg.Password() }

// Where names the repository for people.
func (b *Backups) Where() (string, bool) {
	if b.cfg.Repository == "" {
		return "the Docker volume " + b.cfg.LocalVolume + " on this machine", true
	}
	return (&backup.Repository{URL: b.cfg.Repository}).String(), false
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
