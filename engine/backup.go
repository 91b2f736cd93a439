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
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/backup"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/stack"
)

// DefaultLocalVolume holds the restic repository until an off-machine one is
// set: it does not survive losing the machine, and people are told so.
const DefaultLocalVolume = "toolbox-backups"

// localRepository is where the local repository's volume is mounted in runs.
const localRepository = "/repository"

// The settings the backup verbs change, under which Save keeps them.
const (
	SettingRepository = "backup/repository" // restic's repository URL
	SettingKeep       = "backup/keep"       // the retention, as backup.ParsePolicy reads it
)

// BackupConfig says where the backups go and what goes with every run.
type BackupConfig struct {
	ResticImage string
	// Repository is restic's repository URL; "" is the local volume. It is
	// the environment's default: Saved.Repository wins over it.
	Repository string
	// LocalVolume is the local repository's volume ("" is DefaultLocalVolume).
	LocalVolume string
	// Env holds the backend's settings and credentials (OS_*, AWS_*).
	Env map[string]string
	// Password returns the repository's password (kept in the state).
	Password func() (string, error)
	// Keep is the retention applied after each app's run (zero: none). It
	// is the environment's default: Saved.Keep wins over it.
	Keep backup.Policy
	// State writes a hot copy of the toolbox's state: it goes in every run,
	// so that the repository alone is enough to rebuild.
	State func(w io.Writer) (int64, error)
	// Saved is what the verbs set before (main reads it from the state at
	// start); its zero fields are not set.
	Saved BackupSaved
	// Save keeps a setting the verbs change, under SettingRepository or
	// SettingKeep, across restarts ("" when it goes back to the
	// environment's); nil keeps changes in memory only.
	Save func(key, value string) error
}

// BackupSaved are the settings the verbs set, which win over the
// environment's.
type BackupSaved struct {
	Repository string        // "": not set
	Keep       backup.Policy // zero: not set
}

// Backups keeps the apps' backups in a restic repository, running restic as
// one-shot containers on the engine, next to the data.
type Backups struct {
	engine *Engine
	cfg    BackupConfig

	mu    sync.Mutex  // guards saved: read at each run, changed by the verbs
	saved BackupSaved // what the verbs set

	switchMu sync.Mutex // held while the repository is changed: one change at a time

	initMu   sync.Mutex // held while the repository is first opened or initialised
	ready    bool       // readyURL was opened (or initialised) and the image is there
	readyURL string
}

var _ commands.Backups = (*Backups)(nil)

// NewBackups returns the backups of the apps of e.
func NewBackups(e *Engine, cfg BackupConfig) *Backups {
	if cfg.LocalVolume == "" {
		cfg.LocalVolume = DefaultLocalVolume
	}
	return &Backups{engine: e, cfg: cfg, saved: cfg.Saved}
}

// current returns the repository URL ("" the local volume) and the
// retention the next run uses: the verbs' when set, else the environment's.
func (b *Backups) current() (url string, keep backup.Policy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	url, keep = b.cfg.Repository, b.cfg.Keep
	if b.saved.Repository != "" {
		url = b.saved.Repository
	}
	if !b.saved.Keep.IsZero() {
		keep = b.saved.Keep
	}
	return url, keep
}

// save keeps value under key, then sets it with set: a change that could
// not be kept is not made.
func (b *Backups) save(key, value string, set func(*BackupSaved)) error {
	if b.cfg.Save != nil {
		if err := b.cfg.Save(key, value); err != nil {
			return fmt.Errorf("keep the setting %s: %w", key, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	set(&b.saved)
	return nil
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
		// Counted by the capacity guard while it runs (deploy/catalog/toolbox.go).
		MemoryReservation: catalog.Toolbox(catalog.ToolboxBackup).Reservation,
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// repository returns the repository the runs use now, with restic run in
// containers named runName ("" for fresh names). With create, the first
// call initialises it (and the local volume) when it does not exist yet;
// reads never create one. The first call for each repository (after a
// change, again) pulls the image and opens it.
func (b *Backups) repository(ctx context.Context, runName string, create bool) (*backup.Repository, error) {
	url, _ := b.current()
	repo, err := b.repositoryAt(ctx, url, runName)
	if err != nil {
		return nil, err
	}
	b.initMu.Lock()
	defer b.initMu.Unlock()
	if b.ready && b.readyURL == url {
		return repo, nil
	}
	if err := b.pullImage(ctx); err != nil {
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
	b.ready, b.readyURL = true, url
	return repo, nil
}

// repositoryAt returns the repository at url ("" the local volume, which it
// creates when missing), with restic run in containers named runName.
func (b *Backups) repositoryAt(ctx context.Context, url, runName string) (*backup.Repository, error) {
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
		URL: url, Password: backup.Secret(password), Env: map[string]backup.Secret{},
		Runner: runner{d: s.Engine, image: b.cfg.ResticImage, labels: labels, remote: url != "", name: runName},
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
	return repo, nil
}

// pullImage makes sure the restic image is there. Said once here rather
// than as an image missing inside a run: with no registry, the error is
// docker.ErrRegistryUnreachable.
func (b *Backups) pullImage(ctx context.Context) error {
	s, err := b.engine.connect(ctx)
	if err != nil {
		return err
	}
	return s.Engine.PullImage(ctx, b.cfg.ResticImage, nil)
}

// Backup makes one run of an app: each dump streamed from its service's
// container into restic, then its data volumes, then the toolbox's state.
func (b *Backups) Backup(ctx context.Context, req commands.BackupRequest, progress func(string)) ([]commands.Snapshot, error) {
	_, keep := b.current() // read once: a change applies from the next run on
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
			// The dump itself is as long as the data; what it says on stderr is not.
			stderr := &capture{budget: newReadBudget(maxCommandStderrRead), keep: 4 << 10, last: true}
			code, err := s.Engine.Exec(dctx, stack.ContainerName(req.App, d.Service), d.Command, w, stderr)
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
		// The engine would make a missing volume, empty, when restic mounts it:
		// an empty backup of an app that is not there must not become its latest.
		have, err := s.Engine.Volumes(ctx, map[string]string{stack.LabelManaged: "1", stack.LabelApp: req.App})
		if err != nil {
			return snaps, err
		}
		for _, v := range vols {
			if !slices.Contains(have, v) {
				return snaps, fmt.Errorf("back up %s: its volume %s does not exist on this engine", req.App, v)
			}
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
	// Streams an earlier run left cut short (it was killed) are never
	// restored: forgotten here, their data pruned below. Runs of one app
	// never overlap, so none of these is still being written.
	if all, err := repo.Snapshots(ctx, "app="+req.App); err == nil {
		var cut []string
		for _, sn := range all {
			if sn.Tags["what"] != "volumes" && sn.Tags["complete"] != "1" {
				cut = append(cut, sn.ID)
			}
		}
		if err := repo.ForgetIDs(ctx, cut...); err != nil {
			return snaps, fmt.Errorf("the backup of %s was made, but forgetting the streams cut short before failed: %w", req.App, err)
		}
	}
	if !keep.IsZero() {
		progress("applying the retention: keep " + keep.String())
		// Whole stream snapshots and volume snapshots, each group by its path;
		// a stream cut short is never one the policy keeps in place of a whole one.
		for _, tags := range [][]string{{"app=" + req.App, backup.CompleteTag}, {"app=" + req.App, "what=volumes"}} {
			if _, err := repo.Forget(ctx, keep, tags, true); err != nil {
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
	url, _ := b.current()
	return b.where(url)
}

// where names the repository at url for people, its credentials redacted.
func (b *Backups) where(url string) (string, bool) {
	if url == "" {
		return "the Docker volume " + b.cfg.LocalVolume + " on this machine", true
	}
	return (&backup.Repository{URL: url}).String(), false
}

// Settings says what the next run uses.
func (b *Backups) Settings() commands.BackupSettings {
	url, keep := b.current()
	where, local := b.where(url)
	b.mu.Lock()
	defer b.mu.Unlock()
	return commands.BackupSettings{Where: where, Local: local, RepositorySet: b.saved.Repository != "",
		Keep: keep.String(), KeepSet: !b.saved.Keep.IsZero()}
}

// SetRetention reads keep and applies it from the next run on.
func (b *Backups) SetRetention(keep string) (string, error) {
	var p backup.Policy
	if keep != "" {
		var err error
		if p, err = backup.ParsePolicy(keep); err != nil {
			return "", &commands.Error{Kind: commands.Invalid, Err: err,
				Message: "I cannot read that retention: " + strings.TrimPrefix(err.Error(), "backup: policy: ") + "."}
		}
	}
	if err := b.save(SettingKeep, p.String(), func(s *BackupSaved) { s.Keep = p }); err != nil {
		return "", err
	}
	_, now := b.current()
	return now.String(), nil
}

// UseRepository opens (or creates) the repository at url, and only then
// makes it the one of the next runs.
func (b *Backups) UseRepository(ctx context.Context, url string, progress func(string)) (commands.RepositoryChange, error) {
	b.switchMu.Lock()
	defer b.switchMu.Unlock()
	from, _ := b.current()
	to := url
	if to == "" {
		to = b.cfg.Repository
	}
	var ch commands.RepositoryChange
	ch.From, ch.FromLocal = b.where(from)
	ch.To, ch.ToLocal = b.where(to)
	progress("reaching " + ch.To)
	repo, err := b.repositoryAt(ctx, to, "")
	if err != nil {
		return ch, err
	}
	if err := b.pullImage(ctx); err != nil {
		return ch, err
	}
	// Open first: it gives up at the first backend error restic would
	// retry, so an unreachable repository answers soon.
	_, err = repo.Open(ctx)
	if errors.Is(err, backup.ErrNoRepository) {
		progress("no repository there yet: creating one with the toolbox's password")
		ch.Created, err = repo.Init(ctx)
	}
	if err != nil {
		return ch, resticFailed(ch.To, err)
	}
	ch.Unchanged = to == from
	if err := b.save(SettingRepository, url, func(s *BackupSaved) { s.Repository = url }); err != nil {
		return ch, err
	}
	b.initMu.Lock()
	b.ready, b.readyURL = true, to
	b.initMu.Unlock()
	return ch, nil
}

// resticFailed says, for people, why restic could not use the repository at
// where: the sentinels of deploy/backup reach them through the router's
// table; restic's own last words otherwise.
func resticFailed(where string, err error) error {
	var e *backup.ExitError
	if !errors.As(err, &e) || e.Message == "" {
		return err
	}
	msg := strings.TrimPrefix(e.Message, "Fatal: ")
	switch {
	case strings.Contains(msg, "parsing repository location failed"), strings.Contains(msg, "invalid backend"):
		// Open calls every failure to open "unreachable"; this one is the URL's.
		return &commands.Error{Kind: commands.Invalid, Err: err, Message: fmt.Sprintf("restic cannot read the repository URL `%s`: %s", where, msg)}
	case e.Kind == nil:
		return &commands.Error{Kind: commands.Unavailable, Err: err, Message: fmt.Sprintf("restic could not use %s: %s", where, msg)}
	}
	return err
}

// Check runs restic check, reading subset of the data back.
func (b *Backups) Check(ctx context.Context, subset string, progress func(string)) (commands.CheckReport, error) {
	url, _ := b.current()
	rep := commands.CheckReport{Subset: subset}
	rep.Where, _ = b.where(url)
	repo, err := b.repository(ctx, "", false)
	if errors.Is(err, backup.ErrNoRepository) {
		return rep, commands.Errorf(commands.NotFound, "There are no backups in %s yet, so nothing to check. `/toolbox backup now` makes one.", rep.Where)
	}
	if err != nil {
		return rep, err
	}
	progress(fmt.Sprintf("checking the repository's structure, and reading %s of its data back", subset))
	start := time.Now()
	res, err := repo.Check(ctx, subset)
	rep.Took = time.Since(start)
	rep.Errors, rep.BrokenPacks, rep.RepairIndex, rep.Prune = res.Errors, len(res.BrokenPacks), res.SuggestRepairIndex, res.SuggestPrune
	return rep, err // with Errors > 0, err is restic's report of the damage
}
