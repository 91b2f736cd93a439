package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Snapshot is one of restic's snapshots.
type Snapshot struct {
	ID      string
	ShortID string
	Time    time.Time
	Host    string
	Paths   []string
	// Tags are the snapshot's key=value tags (app, version, job); a tag
	// without '=' is a key with the value "".
	Tags           map[string]string
	Parent         string
	ProgramVersion string   // "restic 0.18.1"
	Summary        *Summary // nil for snapshots made before restic 0.17
}

type resticSnapshot struct {
	ID             string         `json:"id"`
	ShortID        string         `json:"short_id"`
	Time           time.Time      `json:"time"`
	Hostname       string         `json:"hostname"`
	Paths          []string       `json:"paths"`
	Tags           []string       `json:"tags"`
	Parent         string         `json:"parent"`
	ProgramVersion string         `json:"program_version"`
	Summary        *resticSummary `json:"summary"`
}

func (s resticSnapshot) snapshot() Snapshot {
	out := Snapshot{ID: s.ID, ShortID: s.ShortID, Time: s.Time, Host: s.Hostname, Paths: s.Paths,
		Tags: parseTags(s.Tags), Parent: s.Parent, ProgramVersion: s.ProgramVersion}
	if out.ShortID == "" && len(s.ID) >= 8 {
		out.ShortID = s.ID[:8]
	}
	if s.Summary != nil {
		sum := s.Summary.summary()
		sum.SnapshotID = s.ID
		out.Summary = &sum
	}
	return out
}

func parseTags(tags []string) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		k, v, _ := strings.Cut(t, "=")
		m[k] = v
	}
	return m
}

// tagFilter renders key=value filters as one --tag argument: a snapshot
// must have them all.
func tagFilter(tags []string) ([]string, error) {
	for _, t := range tags {
		if t == "" || strings.ContainsAny(t, ",\n\x00") {
			return nil, fmt.Errorf("backup: tag filter %q: want key=value without a comma", t)
		}
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return []string{"--tag", strings.Join(tags, ",")}, nil
}

// Snapshots lists the snapshots that have all of tags ("app=wordpress"),
// oldest first.
func (r *Repository) Snapshots(ctx context.Context, tags ...string) ([]Snapshot, error) {
	args, err := tagFilter(tags)
	if err != nil {
		return nil, err
	}
	out, err := r.run(ctx, call{command: []string{"snapshots"}, json: true, args: args})
	if err != nil {
		return nil, err
	}
	var list []resticSnapshot
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("backup: restic snapshots: %w in %.200q", err, out)
	}
	snaps := make([]Snapshot, 0, len(list))
	for _, s := range list {
		snaps = append(snaps, s.snapshot())
	}
	return snaps, nil
}

// ForgetGroup is restic's decision for one group of snapshots: those of a
// host with the same paths.
type ForgetGroup struct {
	Host   string
	Paths  []string
	Keep   []Snapshot
	Remove []Snapshot
	// Reasons are why restic keeps each snapshot, by ID: "daily snapshot",
	// "monthly snapshot".
	Reasons map[string][]string
}

// Forget removes the snapshots that have all of tags and that policy does
// not keep, and with prune the data that only they used. The policy applies
// to each group of snapshots of one host and the same paths: a volume's
// backups and a database's dumps are counted apart. Tags do not group: every
// backup has its own job tag, and an upgrade a new version tag, which would
// make every snapshot a group of its own that the policy always keeps.
// ForgetIDs forgets the snapshots with these IDs (their data goes at the
// next prune).
func (r *Repository) ForgetIDs(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		if id == "latest" {
			return errors.New("backup: forget: want snapshot IDs, not latest")
		}
		if err := validSnapshotID(id); err != nil {
			return err
		}
	}
	_, err := r.run(ctx, call{command: []string{"forget"}, json: true, args: append([]string{"--"}, ids...)})
	return err
}

func (r *Repository) Forget(ctx context.Context, policy Policy, tags []string, prune bool) ([]ForgetGroup, error) {
	if policy.IsZero() {
		return nil, errors.New("backup: forget: the policy keeps nothing: say what to keep (daily 7 weekly 4 monthly 6)")
	}
	if err := policy.validate(); err != nil {
		return nil, err
	}
	args, err := tagFilter(tags)
	if err != nil {
		return nil, err
	}
	args = append(args, policy.args()...)
	args = append(args, "--group-by", "host,paths")
	if prune {
		args = append(args, "--prune")
	}
	out, err := r.run(ctx, call{command: []string{"forget"}, json: true, args: args})
	if err != nil {
		return nil, err
	}
	// With --prune, prune's report may follow the JSON: read the first
	// value only.
	var groups []struct {
		Host    string           `json:"host"`
		Paths   []string         `json:"paths"`
		Keep    []resticSnapshot `json:"keep"`
		Remove  []resticSnapshot `json:"remove"`
		Reasons []struct {
			Snapshot resticSnapshot `json:"snapshot"`
			Matches  []string       `json:"matches"`
		} `json:"reasons"`
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	if err := dec.Decode(&groups); err != nil && err != io.EOF {
		return nil, fmt.Errorf("backup: restic forget: %w in %.200q", err, out)
	}
	res := make([]ForgetGroup, 0, len(groups))
	for _, g := range groups {
		fg := ForgetGroup{Host: g.Host, Paths: g.Paths, Reasons: map[string][]string{}}
		for _, s := range g.Keep {
			fg.Keep = append(fg.Keep, s.snapshot())
		}
		for _, s := range g.Remove {
			fg.Remove = append(fg.Remove, s.snapshot())
		}
		for _, why := range g.Reasons {
			fg.Reasons[why.Snapshot.ID] = why.Matches
		}
		res = append(res, fg)
	}
	return res, nil
}

func (p Policy) args() []string {
	var args []string
	for _, k := range []struct {
		flag string
		n    int
	}{{"--keep-last", p.Last}, {"--keep-daily", p.Daily}, {"--keep-weekly", p.Weekly},
		{"--keep-monthly", p.Monthly}, {"--keep-yearly", p.Yearly}} {
		if k.n > 0 {
			args = append(args, k.flag, strconv.Itoa(k.n))
		}
	}
	return args
}

// RestoreSpec says what Restore writes where.
type RestoreSpec struct {
	Snapshot string // an ID, a short ID or "latest"
	// From is the snapshot's folder to restore, VolumePath(name) for a
	// volume's backup; "" restores the whole snapshot.
	From string
	// Volume is the Docker volume written into, mounted at RestoreDir: it
	// gets From's contents.
	Volume string
	// Include restricts the restore to these paths of the snapshot (below
	// From, and relative to it when From is set); none restores all.
	Include []string
	// Delete removes the files of the volume that the snapshot does not
	// have, so that the volume ends up as it was.
	Delete bool
}

// RestoreProgress is restic's status during a restore. restic counts the
// files as it walks the snapshot, so the totals grow at first; it tells no
// time remaining (restic 0.18).
type RestoreProgress struct {
	PercentDone   float64 // 0 to 1 of TotalBytes
	TotalFiles    uint64  // files, folders and links to write, not the skipped ones
	FilesRestored uint64
	FilesSkipped  uint64 // already in the volume as in the snapshot
	FilesDeleted  uint64 // with RestoreSpec.Delete
	TotalBytes    uint64 // of the files to write
	BytesRestored uint64
	BytesSkipped  uint64
	Elapsed       time.Duration // in whole seconds, as restic counts
}

// RestoreSummary is what a restore did: restic's last status.
type RestoreSummary = RestoreProgress

// resticRestoreStatus is restic's status and summary lines of restore
// --json (internal/ui/restore/json.go); the summary has no percent_done.
type resticRestoreStatus struct {
	MessageType    string  `json:"message_type"`
	SecondsElapsed uint64  `json:"seconds_elapsed"`
	PercentDone    float64 `json:"percent_done"`
	TotalFiles     uint64  `json:"total_files"`
	FilesRestored  uint64  `json:"files_restored"`
	FilesSkipped   uint64  `json:"files_skipped"`
	FilesDeleted   uint64  `json:"files_deleted"`
	TotalBytes     uint64  `json:"total_bytes"`
	BytesRestored  uint64  `json:"bytes_restored"`
	BytesSkipped   uint64  `json:"bytes_skipped"`
}

func (s resticRestoreStatus) progress() RestoreProgress {
	return RestoreProgress{PercentDone: s.PercentDone, TotalFiles: s.TotalFiles, FilesRestored: s.FilesRestored,
		FilesSkipped: s.FilesSkipped, FilesDeleted: s.FilesDeleted, TotalBytes: s.TotalBytes,
		BytesRestored: s.BytesRestored, BytesSkipped: s.BytesSkipped,
		Elapsed: time.Duration(s.SecondsElapsed) * time.Second}
}

// Restore writes a snapshot's folder into a volume, calling progress (if
// not nil) with restic's status twice a second at most and, when restic
// finished, once more with its summary, from one goroutine at a time. A
// restore that restic finished with errors (some files not written)
// returns its summary with the error.
func (r *Repository) Restore(ctx context.Context, spec RestoreSpec, progress func(RestoreProgress)) (RestoreSummary, error) {
	if err := validSnapshotID(spec.Snapshot); err != nil {
		return RestoreSummary{}, err
	}
	if !validVolume(spec.Volume) {
		return RestoreSummary{}, fmt.Errorf("backup: restore: volume name %q is not a Docker volume's", spec.Volume)
	}
	src := spec.Snapshot
	if spec.From != "" {
		if !strings.HasPrefix(spec.From, "/") || strings.ContainsAny(spec.From, "\n\x00") {
			return RestoreSummary{}, fmt.Errorf("backup: restore: from %q: want an absolute path of the snapshot", spec.From)
		}
		src += ":" + spec.From
	}
	args := []string{"--target", RestoreDir}
	for _, inc := range spec.Include {
		if inc == "" || strings.ContainsAny(inc, "\n\x00") {
			return RestoreSummary{}, fmt.Errorf("backup: restore: include %q", inc)
		}
		args = append(args, "--include", inc)
	}
	if spec.Delete {
		args = append(args, "--delete")
	}
	args = append(args, "--", src)

	var (
		mu       sync.Mutex
		summary  *RestoreSummary
		last     *RestoreProgress // the latest status, not yet given to progress
		reported time.Time
	)
	stdout := &lineWriter{line: func(line []byte) {
		var s resticRestoreStatus
		if json.Unmarshal(line, &s) != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch s.MessageType {
		case "status":
			if progress == nil {
				return
			}
			p := s.progress()
			if now := time.Now(); now.Sub(reported) >= progressEvery {
				reported, last = now, nil
				progress(p)
			} else {
				last = &p
			}
		case "summary":
			sum := s.progress()
			sum.PercentDone = 1
			if sum.TotalBytes > 0 {
				sum.PercentDone = float64(sum.BytesRestored) / float64(sum.TotalBytes)
			}
			summary = &sum
		}
	}}
	_, err := r.run(ctx, call{command: []string{"restore"}, json: true, args: args, stdout: stdout,
		mounts: []Mount{{Volume: spec.Volume, Target: RestoreDir}}})
	mu.Lock()
	defer mu.Unlock()
	switch {
	case summary != nil && progress != nil:
		progress(*summary) // the final status
	case last != nil:
		progress(*last)
	}
	if summary == nil {
		if err == nil {
			err = errors.New("backup: restic restore ended without a summary")
		}
		return RestoreSummary{}, err
	}
	return *summary, err
}

// Dump writes one file of a snapshot to w: a stream saved by Backup is
// "/"+StdinFilename. restic dump reports no progress, in --json neither: a
// caller that wants some counts the bytes written to w.
func (r *Repository) Dump(ctx context.Context, snapshotID, file string, w io.Writer) error {
	if err := validSnapshotID(snapshotID); err != nil {
		return err
	}
	if !strings.HasPrefix(file, "/") || strings.ContainsAny(file, "\n\x00") {
		return fmt.Errorf("backup: dump: file %q: want an absolute path of the snapshot (/wordpress.sql)", file)
	}
	_, err := r.run(ctx, call{command: []string{"dump"}, args: []string{"--", snapshotID, file}, stdout: w})
	return err
}

// validSnapshotID accepts "latest" and hexadecimal IDs of 8 to 64 digits.
func validSnapshotID(id string) error {
	if id == "latest" {
		return nil
	}
	ok := len(id) >= 8 && len(id) <= 64
	for _, c := range id {
		ok = ok && (c >= '0' && c <= '9' || c >= 'a' && c <= 'f')
	}
	if !ok {
		return fmt.Errorf("backup: snapshot %q: want an ID (8 to 64 hexadecimal digits) or latest", id)
	}
	return nil
}
