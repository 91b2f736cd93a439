package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// VolumesDir is where Backup mounts each volume, read-only:
	// VolumesDir/<volume>, the path the snapshot keeps.
	VolumesDir = "/volumes"
	// RestoreDir is where Restore mounts the volume it writes into.
	RestoreDir = "/restore"
	// DefaultHost is the host name snapshots get when BackupSpec.Host is
	// empty (a one-shot container's own is random).
	DefaultHost = "toolbox"
	// progressEvery is how often at most Backup calls its progress function
	// (restic prints its status 60 times a second).
	progressEvery = 500 * time.Millisecond
)

// VolumePath is the path of a volume's files in its snapshots.
func VolumePath(volume string) string { return VolumesDir + "/" + volume }

// BackupSpec says what one backup saves: Volumes, or one Stdin stream.
type BackupSpec struct {
	// Volumes are Docker volumes, each mounted read-only at
	// VolumePath(name) and saved under that path.
	Volumes []string
	// SavedAs renames volumes in the snapshot: volume v is mounted and saved
	// at VolumePath(SavedAs[v]) when set, so that an app's snapshots keep one
	// path whichever generation of its volumes is live.
	SavedAs map[string]string
	// Stdin, instead of Volumes, is one stream (a database dump that the
	// caller feeds through a pipe from the app's container), saved as
	// "/"+StdinFilename. A read error other than io.EOF fails the backup
	// and leaves no snapshot. (restic 0.18's --stdin-from-command would run
	// the dump in restic's own container; here it runs in the app's.)
	Stdin         io.Reader
	StdinFilename string // "wordpress.sql"
	// Tags are saved as key=value tags: app=wordpress version=6.8 job=42.
	Tags map[string]string
	// Host is the snapshot's host name; "" is DefaultHost.
	Host string
	// Time is the snapshot's time; zero is now. For imports and tests.
	// restic runs in UTC: its days, for a Policy, are UTC days.
	Time time.Time
}

// Progress is restic's status during a backup.
type Progress struct {
	PercentDone  float64 // 0 to 1; stays 0 for a stream, whose size is unknown
	TotalFiles   uint64
	FilesDone    uint64
	TotalBytes   uint64
	BytesDone    uint64
	Elapsed      time.Duration
	Remaining    time.Duration // 0 when restic cannot tell
	ErrorCount   uint64
	CurrentFiles []string
}

// Summary is what a backup did. Snapshots of restic 0.17 and later keep it.
type Summary struct {
	SnapshotID          string
	FilesNew            uint64
	FilesChanged        uint64
	FilesUnmodified     uint64
	DirsNew             uint64
	DirsChanged         uint64
	DirsUnmodified      uint64
	DataBlobs           uint64
	TreeBlobs           uint64
	DataAdded           uint64 // bytes new to the repository, before compression
	DataAddedPacked     uint64 // the same, as stored
	TotalFilesProcessed uint64
	TotalBytesProcessed uint64
	Start, End          time.Time
	Duration            time.Duration
}

// resticSummary is restic's summary, in backup's output and in snapshots.
type resticSummary struct {
	SnapshotID          string    `json:"snapshot_id"`
	FilesNew            uint64    `json:"files_new"`
	FilesChanged        uint64    `json:"files_changed"`
	FilesUnmodified     uint64    `json:"files_unmodified"`
	DirsNew             uint64    `json:"dirs_new"`
	DirsChanged         uint64    `json:"dirs_changed"`
	DirsUnmodified      uint64    `json:"dirs_unmodified"`
	DataBlobs           uint64    `json:"data_blobs"`
	TreeBlobs           uint64    `json:"tree_blobs"`
	DataAdded           uint64    `json:"data_added"`
	DataAddedPacked     uint64    `json:"data_added_packed"`
	TotalFilesProcessed uint64    `json:"total_files_processed"`
	TotalBytesProcessed uint64    `json:"total_bytes_processed"`
	TotalDuration       float64   `json:"total_duration"`
	BackupStart         time.Time `json:"backup_start"`
	BackupEnd           time.Time `json:"backup_end"`
}

func (s resticSummary) summary() Summary {
	d := seconds(s.TotalDuration)
	if d == 0 && !s.BackupStart.IsZero() {
		d = s.BackupEnd.Sub(s.BackupStart)
	}
	return Summary{SnapshotID: s.SnapshotID, FilesNew: s.FilesNew, FilesChanged: s.FilesChanged,
		FilesUnmodified: s.FilesUnmodified, DirsNew: s.DirsNew, DirsChanged: s.DirsChanged,
		DirsUnmodified: s.DirsUnmodified, DataBlobs: s.DataBlobs, TreeBlobs: s.TreeBlobs,
		DataAdded: s.DataAdded, DataAddedPacked: s.DataAddedPacked,
		TotalFilesProcessed: s.TotalFilesProcessed, TotalBytesProcessed: s.TotalBytesProcessed,
		Start: s.BackupStart, End: s.BackupEnd, Duration: d}
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// validVolume is Docker's rule for volume names.
func validVolume(name string) bool {
	if len(name) < 2 {
		return false
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("_.-", c)) {
			return false
		}
	}
	return true
}

// tagArgs renders tags as sorted --tag key=value arguments.
func tagArgs(tags map[string]string) ([]string, error) {
	var args []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v := tags[k]
		if k == "" || strings.ContainsAny(k, "=,") || strings.ContainsAny(k+v, ",\n\x00") {
			return nil, fmt.Errorf("backup: tag %q=%q: a key is not empty, and neither holds a comma or (the key) '='", k, v)
		}
		args = append(args, "--tag", k+"="+v)
	}
	return args, nil
}

// Backup makes one snapshot of spec's volumes or stream, calling progress
// (if not nil) with restic's status twice a second at most and once at the
// end, from one goroutine at a time. A backup that restic finished but where it could not read some
// files returns its Summary and an *ExitError wrapping ErrPartial.
func (r *Repository) Backup(ctx context.Context, spec BackupSpec, progress func(Progress)) (Summary, error) {
	args, err := tagArgs(spec.Tags)
	if err != nil {
		return Summary{}, err
	}
	host := spec.Host
	if host == "" {
		host = DefaultHost
	}
	args = append(args, "--host", host)
	if !spec.Time.IsZero() {
		args = append(args, "--time", spec.Time.UTC().Format(time.DateTime))
	}
	c := call{command: []string{"backup"}, json: true}
	var stdin *watchedReader
	switch {
	case spec.Stdin != nil && len(spec.Volumes) > 0:
		return Summary{}, errors.New("backup: a backup saves volumes or a stream, not both")
	case spec.Stdin != nil:
		name := spec.StdinFilename
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00\n") {
			return Summary{}, fmt.Errorf("backup: stdin file name %q: want a plain file name (wordpress.sql)", name)
		}
		stdin = &watchedReader{r: spec.Stdin}
		c.stdin = stdin
		args = append(args, "--stdin", "--stdin-filename", name)
	case len(spec.Volumes) > 0:
		args = append(args, "--")
		for _, v := range slices.Sorted(slices.Values(spec.Volumes)) {
			as := v
			if spec.SavedAs[v] != "" {
				as = spec.SavedAs[v]
			}
			if !validVolume(v) || !validVolume(as) {
				return Summary{}, fmt.Errorf("backup: volume name %q (saved as %q) is not a Docker volume's", v, as)
			}
			c.mounts = append(c.mounts, Mount{Volume: v, Target: VolumePath(as), ReadOnly: true})
			args = append(args, VolumePath(as))
		}
	default:
		return Summary{}, errors.New("backup: nothing to back up: no volumes and no stream")
	}
	c.args = args

	var (
		mu       sync.Mutex
		summary  *resticSummary
		last     *Progress // the latest status, not yet given to progress
		reported time.Time
	)
	c.stdout = &lineWriter{line: func(line []byte) {
		var m struct {
			MessageType string `json:"message_type"`
		}
		if json.Unmarshal(line, &m) != nil {
			return
		}
		switch m.MessageType {
		case "status":
			var s struct {
				PercentDone      float64  `json:"percent_done"`
				TotalFiles       uint64   `json:"total_files"`
				FilesDone        uint64   `json:"files_done"`
				TotalBytes       uint64   `json:"total_bytes"`
				BytesDone        uint64   `json:"bytes_done"`
				SecondsElapsed   float64  `json:"seconds_elapsed"`
				SecondsRemaining float64  `json:"seconds_remaining"`
				ErrorCount       uint64   `json:"error_count"`
				CurrentFiles     []string `json:"current_files"`
			}
			if progress == nil || json.Unmarshal(line, &s) != nil {
				return
			}
			p := Progress{PercentDone: s.PercentDone, TotalFiles: s.TotalFiles, FilesDone: s.FilesDone,
				TotalBytes: s.TotalBytes, BytesDone: s.BytesDone, Elapsed: seconds(s.SecondsElapsed),
				Remaining: seconds(s.SecondsRemaining), ErrorCount: s.ErrorCount, CurrentFiles: s.CurrentFiles}
			mu.Lock()
			defer mu.Unlock()
			if now := time.Now(); now.Sub(reported) >= progressEvery {
				reported, last = now, nil
				progress(p)
			} else {
				last = &p
			}
		case "summary":
			var s resticSummary
			if json.Unmarshal(line, &s) == nil {
				mu.Lock()
				summary = &s
				mu.Unlock()
			}
		}
	}}
	_, err = r.run(ctx, c)
	mu.Lock()
	defer mu.Unlock()
	if last != nil {
		progress(*last) // the final status
	}
	var sum Summary
	if summary != nil {
		sum = summary.summary()
	}
	if stdin != nil {
		if rerr := stdin.failure(); rerr != nil {
			// The runner let restic save a truncated stream: take it back.
			if sum.SnapshotID != "" {
				if _, ferr := r.run(ctx, call{command: []string{"forget"}, json: true, args: []string{"--", sum.SnapshotID}}); ferr != nil {
					return Summary{}, fmt.Errorf("backup: reading the stream: %w (and forgetting the truncated snapshot %s: %v)", rerr, sum.SnapshotID, ferr)
				}
			}
			return Summary{}, fmt.Errorf("backup: reading the stream: %w", rerr)
		}
	}
	if err != nil {
		var e *ExitError
		if errors.As(err, &e) && e.Kind == ErrPartial && sum.SnapshotID != "" {
			return sum, err
		}
		return Summary{}, err
	}
	if sum.SnapshotID == "" {
		return Summary{}, errors.New("backup: restic backup ended without a summary")
	}
	if stdin != nil && sum.TotalBytesProcessed != stdin.read() {
		// restic saw an end of the stream before its end (its input closed
		// early): the snapshot is truncated.
		_, ferr := r.run(ctx, call{command: []string{"forget"}, json: true, args: []string{"--", sum.SnapshotID}})
		return Summary{}, errors.Join(fmt.Errorf("backup: restic saved %d bytes of a %d-byte stream", sum.TotalBytesProcessed, stdin.read()), ferr)
	}
	if stdin != nil {
		// Only now is the stream known whole: a stream snapshot without the
		// tag (cut by a crash of the caller, whose end restic took for the
		// end of the data) is never listed nor restored by
		// Snapshots(ctx, CompleteTag). restic reads volumes itself, so
		// their snapshots are whole when restic ends well.
		id, err := r.tag(ctx, sum.SnapshotID, CompleteTag)
		if err != nil {
			return Summary{}, err
		}
		sum.SnapshotID = id
	}
	return sum, nil
}

// CompleteTag marks the stream snapshots whose backup ended and was checked
// whole; callers list and restore only those.
const CompleteTag = "complete=1"

// tag adds t to the snapshot id and returns the snapshot's new id (restic
// rewrites a snapshot to change its tags). It takes an exclusive lock, so it
// waits for the other backups' locks rather than failing beside them.
func (r *Repository) tag(ctx context.Context, id, t string) (string, error) {
	out, err := r.run(ctx, call{command: []string{"tag"}, json: true, args: []string{"--retry-lock", "5m", "--add", t, "--", id}})
	if err != nil {
		return "", fmt.Errorf("backup: tag the snapshot %s: %w", id, err)
	}
	// restic 0.18 prints one changed_snapshot line per snapshot it rewrote.
	for _, line := range bytes.Split(out, []byte("\n")) {
		var m struct {
			MessageType string `json:"message_type"`
			NewID       string `json:"new_snapshot_id"`
		}
		if json.Unmarshal(line, &m) == nil && m.NewID != "" {
			return m.NewID, nil
		}
	}
	return id, nil
}

// watchedReader remembers a read error other than io.EOF, and counts the
// bytes read.
type watchedReader struct {
	r   io.Reader
	mu  sync.Mutex
	err error
	n   uint64
}

func (w *watchedReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n += uint64(n)
	if err != nil && err != io.EOF && w.err == nil {
		w.err = err
	}
	return n, err
}

func (w *watchedReader) read() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

func (w *watchedReader) failure() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// maxLine bounds one line of restic's output; longer ones are dropped.
const maxLine = 4 << 20

// lineWriter calls line for each complete line written to it.
type lineWriter struct {
	mu   sync.Mutex
	buf  []byte
	skip bool // the current line is too long
	line func([]byte)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if !w.skip {
				w.buf = append(w.buf, p...)
				if len(w.buf) > maxLine {
					w.buf, w.skip = w.buf[:0], true
				}
			}
			break
		}
		if !w.skip {
			w.line(append(w.buf, p[:i]...))
		}
		w.buf, w.skip = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}
