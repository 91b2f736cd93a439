package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/backup"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/stack"
)

// run is one backup run of an app: the snapshots one job made.
type run struct {
	job     uint64
	version string
	time    time.Time
	volumes *backup.Snapshot
	dumps   map[string]*backup.Snapshot // by file
}

func (r run) size() int64 {
	var n int64
	for _, s := range append(slices.Collect(maps.Values(r.dumps)), r.volumes) {
		if s != nil && s.Summary != nil {
			n += int64(s.Summary.TotalBytesProcessed)
		}
	}
	return n
}

// missing says what of req a run lacks ("" when it is whole).
func (r run) missing(req commands.RestoreRequest) string {
	var lacks []string
	if len(req.Volumes) > 0 && r.volumes == nil {
		lacks = append(lacks, "its data volumes")
	}
	for _, d := range req.Dumps {
		if r.dumps[d.File] == nil {
			lacks = append(lacks, "the dump "+d.File)
		}
	}
	return strings.Join(lacks, " and ")
}

// findRun finds the run req asks for among app's snapshots: the newest
// whole one for "latest", else the one the snapshot ID belongs to.
func findRun(list []backup.Snapshot, req commands.RestoreRequest) (run, error) {
	app := req.Live.App
	runs := map[string]*run{}
	var picked string
	for i := range list {
		s := &list[i]
		what := s.Tags["what"]
		if what == "state" || what != "volumes" && s.Tags["complete"] != "1" {
			continue // the toolbox's state, or a stream cut short
		}
		job := s.Tags["job"]
		r := runs[job]
		if r == nil {
			n, _ := strconv.ParseUint(job, 10, 64)
			r = &run{job: n, version: s.Tags["version"], dumps: map[string]*backup.Snapshot{}}
			runs[job] = r
		}
		if s.Time.After(r.time) {
			r.time = s.Time
		}
		if what == "volumes" {
			r.volumes = s
		} else {
			r.dumps[what] = s
		}
		if req.Snapshot != "latest" && (strings.HasPrefix(s.ID, req.Snapshot) || s.ShortID == req.Snapshot) {
			picked = job
		}
	}
	if req.Snapshot != "latest" {
		r := runs[picked]
		if r == nil {
			return run{}, commands.Errorf(commands.NotFound, "There is no snapshot `%s` of %s. `/toolbox backups %s` lists them.", req.Snapshot, app, app)
		}
		if lacks := r.missing(req); lacks != "" {
			return run{}, commands.Errorf(commands.Invalid, "The backup of %s made %s lacks %s: it cannot be restored whole. `/toolbox backups %s` lists the others.",
				app, r.time.Format("2006-01-02 15:04"), lacks, app)
		}
		return *r, nil
	}
	var best *run
	for _, r := range runs {
		if r.missing(req) == "" && (best == nil || r.time.After(best.time)) {
			best = r
		}
	}
	if best == nil {
		return run{}, commands.Errorf(commands.NotFound, "There is no whole backup of %s to restore. `/toolbox backup now %s` makes one.", app, app)
	}
	return *best, nil
}

// Restore restores a run of an app into the generation req.Into of its
// volumes, as a scratch copy on a network of its own, loads and checks its
// dumps, waits until every service is healthy, and only then, with
// req.Swap, moves the live app onto those volumes. The live app's volumes
// are never written: a failure anywhere leaves it as it was.
func (b *Backups) Restore(ctx context.Context, req commands.RestoreRequest, progress func(string)) (commands.Restored, error) {
	start := time.Now()
	app, p := req.Live.App, req.Live.Project
	if req.Into == req.Live.Generation {
		return commands.Restored{}, fmt.Errorf("restore %s: into the generation it runs on (%q)", app, req.Into)
	}
	repo, err := b.repository(ctx, "tb-restic-restore-"+app, false) // one name per app: a killed run's leftover is replaced, not left holding the volumes
	if errors.Is(err, backup.ErrNoRepository) {
		return commands.Restored{}, commands.Errorf(commands.NotFound, "There are no backups yet, so nothing to restore %s from. `/toolbox backup now %s` makes one.", app, app)
	}
	if err != nil {
		return commands.Restored{}, err
	}
	s, err := b.engine.connect(ctx)
	if err != nil {
		return commands.Restored{}, err
	}
	list, err := repo.Snapshots(ctx, "app="+app)
	if err != nil {
		return commands.Restored{}, err
	}
	r, err := findRun(list, req)
	if err != nil {
		return commands.Restored{}, err
	}
	progress(fmt.Sprintf("restoring the backup of %s made %s (version %s)", app, r.time.Local().Format("2006-01-02 15:04"), r.version))

	purpose := "drill"
	if req.Swap {
		purpose = "restore"
	}
	at := stack.Placement{Generation: req.Into, Copy: stack.CopyName(app, purpose)}
	volumes := slices.Sorted(maps.Keys(p.Volumes))
	clearCopy := func(ctx context.Context) error {
		return errors.Join(s.RemoveContainers(ctx, at.Copy), s.RemoveGeneration(ctx, app, req.Into, volumes))
	}
	// What an interrupted restore or drill left goes first.
	if err := clearCopy(ctx); err != nil {
		return commands.Restored{}, fmt.Errorf("clear what an earlier restore of %s left: %w", app, err)
	}
	swapped := false
	defer func() {
		if swapped {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := clearCopy(cctx); err != nil {
			progress("could not remove the scratch copy: " + err.Error())
		}
	}()

	for _, v := range req.Volumes {
		name, err := s.EnsureVolume(ctx, app, req.Into, v)
		if err != nil {
			return commands.Restored{}, err
		}
		from := backup.VolumePath(stack.VolumeName(app, v))
		if !slices.Contains(r.volumes.Paths, from) {
			progress(fmt.Sprintf("the volume %s was not in that backup: it starts empty", v))
			continue
		}
		progress("restoring the volume " + v)
		if _, err := repo.Restore(ctx, backup.RestoreSpec{Snapshot: r.volumes.ID, From: from, Volume: name}, func(rp backup.RestoreProgress) {
			progress(restoreLine(v, rp))
		}); err != nil {
			return commands.Restored{}, fmt.Errorf("restore the volume %s of %s: %w", v, app, err)
		}
	}
	var checks []string
	if len(req.Dumps) > 0 {
		// The databases start alone, so that the dumps load before the app
		// creates a schema of its own.
		var dbs []string
		for _, d := range req.Dumps {
			dbs = append(dbs, d.Service)
		}
		progress("starting the database of the copy")
		if err := s.Deploy(ctx, app, at, withServices(p, dbs), "", progress); err != nil {
			return commands.Restored{}, fmt.Errorf("start the restored copy's database: %w", err)
		}
		for _, d := range req.Dumps {
			progress("loading " + d.File)
			if err := b.load(ctx, repo, stack.ContainerName(at.Copy, d.Service), r.dumps[d.File].ID, d); err != nil {
				return commands.Restored{}, err
			}
			line, err := b.check(ctx, stack.ContainerName(at.Copy, d.Service), d)
			if err != nil {
				return commands.Restored{}, err
			}
			checks = append(checks, line)
			progress(line)
		}
	}
	progress("starting the restored copy")
	if err := s.Deploy(ctx, app, at, p, req.Live.Entry.Service, progress); err != nil {
		return commands.Restored{}, fmt.Errorf("the restored copy of %s did not start: %w", app, err)
	}
	done := commands.Restored{Job: r.job, Version: r.version, Time: r.time, Size: r.size(), Checks: checks}
	if !req.Swap {
		done.Took = time.Since(start)
		return done, nil // the deferred clearCopy throws the copy away
	}

	running, err := s.Containers(ctx, app)
	if err != nil {
		return commands.Restored{}, err
	}
	if req.BeforeSwap != nil {
		if err := req.BeforeSwap(); err != nil {
			return commands.Restored{}, err
		}
	}
	done.Replaced = len(running) > 0
	progress("the copy is healthy: moving " + app + " onto the restored data")
	if err := s.RemoveContainers(ctx, at.Copy); err != nil {
		return commands.Restored{}, err
	}
	swapped = true // from here on, the restored volumes may be live
	live := stack.Placement{Generation: req.Into}
	if err := s.Deploy(ctx, app, live, p, req.Live.Entry.Service, progress); err != nil {
		progress(app + " did not start on the restored data: back to its previous data")
		back := s.Deploy(context.WithoutCancel(ctx), app, stack.Placement{Generation: req.Live.Generation}, p, req.Live.Entry.Service, progress)
		if back != nil {
			return commands.Restored{}, fmt.Errorf("%s did not start on the restored data (%w), and going back to its previous data failed: %w: %w", app, err, back, commands.ErrNotAsItWas)
		}
		if rerr := s.RemoveGeneration(context.WithoutCancel(ctx), app, req.Into, volumes); rerr != nil {
			progress("the restored volumes could not be removed: " + rerr.Error())
		}
		return commands.Restored{}, fmt.Errorf("%s did not start on the restored data: %w", app, err)
	}
	done.Took = time.Since(start)
	return done, nil
}

func restoreLine(what string, p backup.RestoreProgress) string {
	line := fmt.Sprintf("restoring %s: %.0f%% of %s", what, 100*p.PercentDone, size(p.TotalBytes))
	if secs := p.Elapsed.Seconds(); secs > 0 && p.BytesRestored > 0 {
		rate := float64(p.BytesRestored) / secs
		line += fmt.Sprintf(", %s/s", size(uint64(rate)))
		if left := p.TotalBytes - min(p.BytesRestored, p.TotalBytes); left > 0 {
			line += fmt.Sprintf(", %s left", (time.Duration(float64(left)/rate) * time.Second).Round(time.Second))
		}
	}
	return line
}

// load streams a dump from the repository into its service's container.
func (b *Backups) load(ctx context.Context, repo *backup.Repository, container, snapshot string, d catalog.Dump) error {
	s, err := b.engine.connect(ctx)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dumped := make(chan error, 1)
	go func() {
		err := repo.Dump(ctx, snapshot, "/"+d.File, pw)
		pw.CloseWithError(err) // nil: EOF, the whole dump was read
		dumped <- err
	}()
	// What a load prints on stdout is discarded as it comes (psql says a
	// line per statement: as long as the dump); its stderr is bounded.
	stderr := &capture{budget: newReadBudget(maxCommandStderrRead), keep: 4 << 10, last: true}
	code, err := s.Engine.ExecInput(ctx, container, d.Restore, pr, io.Discard, stderr)
	pr.CloseWithError(io.ErrClosedPipe) // a dump still writing stops
	cancel()
	derr := <-dumped
	switch {
	case err != nil:
		return fmt.Errorf("load %s: %w", d.File, err)
	case code != 0:
		return fmt.Errorf("loading %s exited with %d: %s", d.File, code, lastLines(stderr.String(), 5))
	case derr != nil && !errors.Is(derr, context.Canceled):
		return fmt.Errorf("read %s from the repository: %w", d.File, derr)
	}
	return nil
}

// check runs a dump's check in the restored copy: it must answer a count.
func (b *Backups) check(ctx context.Context, container string, d catalog.Dump) (string, error) {
	if len(d.Check) == 0 {
		return d.File + ": loaded", nil
	}
	s, err := b.engine.connect(ctx)
	if err != nil {
		return "", err
	}
	// A count is a line: what a check prints beyond a little is not read.
	budget := newReadBudget(maxCheckRead)
	stdout, stderr := &capture{budget: budget, keep: 1 << 10}, &capture{budget: budget, keep: 4 << 10, last: true}
	code, err := s.Engine.Exec(ctx, container, d.Check, stdout, stderr)
	if err != nil {
		return "", fmt.Errorf("check %s: %w", d.File, err)
	}
	if code != 0 {
		return "", fmt.Errorf("the restored %s does not answer its check (exit %d): %s", d.File, code, cmp.Or(lastLines(stderr.String(), 5), strings.TrimSpace(stdout.String())))
	}
	n, err := d.ParseCheck([]byte(stdout.String()))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %d %s", d.File, n, cmp.Or(d.CheckNoun, "rows")), nil
}

// withServices is p with only the named services and what they depend on.
func withServices(p *types.Project, names []string) *types.Project {
	keep := map[string]bool{}
	var add func(string)
	add = func(n string) {
		if keep[n] {
			return
		}
		keep[n] = true
		for dep := range p.Services[n].DependsOn {
			add(dep)
		}
	}
	for _, n := range names {
		add(n)
	}
	sub := *p
	sub.Services = types.Services{}
	for n, svc := range p.Services {
		if keep[n] {
			sub.Services[n] = svc
		}
	}
	return &sub
}

// DropGeneration removes d.Generation's volumes of d.Project.
func (b *Backups) DropGeneration(ctx context.Context, d commands.Deployment) error {
	s, err := b.engine.connect(ctx)
	if err != nil {
		return err
	}
	return s.RemoveGeneration(ctx, d.App, d.Generation, slices.Sorted(maps.Keys(d.Project.Volumes)))
}

// LatestState writes the toolbox's state from the newest run that saved it
// to w, and says when that run was: how a new machine starts from the
// repository alone.
func (b *Backups) LatestState(ctx context.Context, w io.Writer) (time.Time, error) {
	repo, err := b.repository(ctx, "", false)
	if err != nil {
		return time.Time{}, err
	}
	list, err := repo.Snapshots(ctx, "what=state", backup.CompleteTag)
	if err != nil {
		return time.Time{}, err
	}
	if len(list) == 0 {
		return time.Time{}, fmt.Errorf("the repository %s holds no state of a toolbox", repo)
	}
	latest := slices.MaxFunc(list, func(a, b backup.Snapshot) int { return a.Time.Compare(b.Time) })
	return latest.Time, repo.Dump(ctx, latest.ID, "/toolbox.db", w)
}

// SweepCopies removes the scratch copies (containers and networks) and the
// drills' volumes that a toolbox stopped in the middle of a restore or a
// drill left behind, and names them. A restore's new volumes are its
// app's; the next restore of that app removes them first.
func (e *Engine) SweepCopies(ctx context.Context) ([]string, error) {
	s, err := e.connect(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.Engine.Containers(ctx, map[string]string{stack.LabelManaged: "1"})
	if err != nil {
		return nil, err
	}
	copies := map[string]bool{}
	for _, c := range cs {
		name := c.Labels[stack.LabelApp]
		if i := strings.LastIndexByte(name, '.'); i > 0 && slices.Contains(stack.CopyPurposes, name[i+1:]) {
			copies[name] = true
		}
	}
	var swept []string
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(copies)) {
		if err := s.RemoveContainers(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		swept = append(swept, name)
	}
	vols, err := s.Engine.Volumes(ctx, map[string]string{stack.LabelManaged: "1"})
	if err != nil {
		return swept, errors.Join(append(errs, err)...)
	}
	for _, v := range vols {
		if strings.HasSuffix(v, ".drill") {
			if err := s.Engine.RemoveVolume(ctx, v); err != nil {
				errs = append(errs, err)
				continue
			}
			swept = append(swept, v)
		}
	}
	return swept, errors.Join(errs...)
}
