package backup

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRestoreProgress restores a backed-up folder with the real restic and
// checks the progress it reported, then restores it again over itself.
func TestRestoreProgress(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	repo, l := initRepo(t)
	data := l.volume("wp_data")
	files := map[string]int{"wp-config.php": 3000, "uploads/2026/01/photo.jpg": 24 << 20, "uploads/2026/01/small.png": 10, "empty": 0}
	writeTree(t, data, files)
	var total uint64
	for _, n := range files {
		total += uint64(n)
	}
	// Files, and the folders below the restored one: uploads, uploads/2026,
	// uploads/2026/01.
	entries := uint64(len(files) + 3)
	if _, err := repo.Backup(ctx, BackupSpec{Volumes: []string{"wp_data"}}, nil); err != nil {
		t.Fatal(err)
	}

	var seen []RestoreProgress
	start := time.Now()
	sum, err := repo.Restore(ctx, RestoreSpec{Snapshot: "latest", From: VolumePath("wp_data"), Volume: "wp_restored"},
		func(p RestoreProgress) { seen = append(seen, p) })
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := checksums(t, l.volume("wp_restored")), checksums(t, data); !maps.Equal(got, want) {
		t.Errorf("restored %v, want %v", got, want)
	}
	want := RestoreSummary{PercentDone: 1, TotalFiles: entries, FilesRestored: entries, TotalBytes: total, BytesRestored: total,
		Elapsed: sum.Elapsed.Truncate(time.Second)}
	if sum != want || sum.Elapsed > took {
		t.Errorf("Restore = %+v, want %+v in at most %v", sum, want, took)
	}
	if len(seen) == 0 {
		t.Fatal("no progress seen")
	}
	if last := seen[len(seen)-1]; last != sum {
		t.Errorf("last progress = %+v, want the summary %+v", last, sum)
	}
	// Twice a second at most, and the summary: restic prints 60 a second.
	if most := int(took/progressEvery) + 2; len(seen) > most {
		t.Errorf("%d progress calls in %v, want %d at most", len(seen), took, most)
	}
	// restic counts the files as it walks the snapshot: the totals grow.
	for i, p := range seen[:len(seen)-1] {
		if p.TotalBytes > total || p.BytesRestored > p.TotalBytes || p.PercentDone < 0 || p.PercentDone > 1 {
			t.Errorf("progress %d = %+v, want at most %d bytes of at most %d", i, p, p.TotalBytes, total)
		}
	}

	// Again over the restored copy, one file changed and one added: restic
	// skips what is there already and deletes what the snapshot lacks.
	restored := l.volume("wp_restored")
	if err := os.WriteFile(filepath.Join(restored, "wp-config.php"), []byte("<?php // changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(restored, "stray.txt"), []byte("not in the snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := repo.Restore(ctx, RestoreSpec{Snapshot: "latest", From: VolumePath("wp_data"), Volume: "wp_restored", Delete: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.TotalBytes != uint64(files["wp-config.php"]) || again.BytesRestored != again.TotalBytes ||
		again.BytesSkipped != total-again.TotalBytes || again.FilesSkipped == 0 || again.FilesDeleted != 1 || again.PercentDone != 1 {
		t.Errorf("second Restore = %+v, want wp-config.php written, the other files skipped and stray.txt deleted", again)
	}
	if got, want := checksums(t, restored), checksums(t, data); !maps.Equal(got, want) {
		t.Errorf("restored again %v, want %v", got, want)
	}
}

// TestRestoreProgressLines feeds restic's lines through a fake: the first
// status goes out at once, those that follow within progressEvery wait
// (unless the machine stalls that long: wantSeen is the calls of a machine
// that does not), and the summary is the last call.
func TestRestoreProgressLines(t *testing.T) {
	const (
		status1 = `{"message_type":"status","percent_done":0.25,"total_files":3,"files_restored":1,"total_bytes":400,"bytes_restored":100}`
		status2 = `{"message_type":"status","seconds_elapsed":2,"percent_done":0.5,"total_files":3,"files_restored":1,"total_bytes":400,"bytes_restored":200}`
		summary = `{"message_type":"summary","seconds_elapsed":3,"total_files":3,"files_restored":3,"files_skipped":1,"total_bytes":400,"bytes_restored":400,"bytes_skipped":7}`
	)
	for _, tt := range []struct {
		name     string
		code     int
		out      string
		wantSeen []RestoreProgress
		wantSum  RestoreSummary
		wantErr  bool
	}{{
		name: "finished",
		out:  strings.Join([]string{status1, status2, summary, ""}, "\n"),
		wantSeen: []RestoreProgress{
			{PercentDone: 0.25, TotalFiles: 3, FilesRestored: 1, TotalBytes: 400, BytesRestored: 100},
			{PercentDone: 1, TotalFiles: 3, FilesRestored: 3, FilesSkipped: 1, TotalBytes: 400, BytesRestored: 400, BytesSkipped: 7, Elapsed: 3 * time.Second},
		},
		wantSum: RestoreSummary{PercentDone: 1, TotalFiles: 3, FilesRestored: 3, FilesSkipped: 1, TotalBytes: 400, BytesRestored: 400, BytesSkipped: 7, Elapsed: 3 * time.Second},
	}, {
		name: "nothing to write",
		out:  `{"message_type":"status","percent_done":0}` + "\n" + `{"message_type":"summary","total_files":1,"files_restored":1,"files_skipped":2,"bytes_skipped":50}` + "\n",
		wantSeen: []RestoreProgress{
			{},
			{PercentDone: 1, TotalFiles: 1, FilesRestored: 1, FilesSkipped: 2, BytesSkipped: 50},
		},
		wantSum: RestoreSummary{PercentDone: 1, TotalFiles: 1, FilesRestored: 1, FilesSkipped: 2, BytesSkipped: 50},
	}, {
		name: "some files failed",
		code: 1,
		out:  strings.Join([]string{status1, `{"message_type":"summary","seconds_elapsed":1,"total_files":3,"files_restored":2,"total_bytes":400,"bytes_restored":100}`, ""}, "\n"),
		wantSeen: []RestoreProgress{
			{PercentDone: 0.25, TotalFiles: 3, FilesRestored: 1, TotalBytes: 400, BytesRestored: 100},
			{PercentDone: 0.25, TotalFiles: 3, FilesRestored: 2, TotalBytes: 400, BytesRestored: 100, Elapsed: time.Second},
		},
		wantSum: RestoreSummary{PercentDone: 0.25, TotalFiles: 3, FilesRestored: 2, TotalBytes: 400, BytesRestored: 100, Elapsed: time.Second},
		wantErr: true,
	}, {
		name:     "no summary",
		code:     1,
		out:      status1 + "\n" + status2 + "\n",
		wantSeen: []RestoreProgress{{PercentDone: 0.25, TotalFiles: 3, FilesRestored: 1, TotalBytes: 400, BytesRestored: 100}, {PercentDone: 0.5, TotalFiles: 3, FilesRestored: 1, TotalBytes: 400, BytesRestored: 200, Elapsed: 2 * time.Second}},
		wantErr:  true,
	}} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeRunner{run: func(Run) (int, string, string) {
				if tt.code != 0 {
					return tt.code, tt.out, `{"message_type":"exit_error","code":1,"message":"Fatal: There were 1 errors"}` + "\n"
				}
				return 0, tt.out, ""
			}}
			var seen []RestoreProgress
			sum, err := fakeRepo(f).Restore(t.Context(), RestoreSpec{Snapshot: "latest", From: "/volumes/wp_data", Volume: "wp_data", Delete: true},
				func(p RestoreProgress) { seen = append(seen, p) })
			var e *ExitError
			if gotErr := err != nil; gotErr != tt.wantErr || (err != nil && !errors.As(err, &e)) {
				t.Errorf("Restore error = %v, want error %v (an *ExitError)", err, tt.wantErr)
			}
			if sum != tt.wantSum {
				t.Errorf("Restore = %+v, want %+v", sum, tt.wantSum)
			}
			stalled := len(seen) > len(tt.wantSeen) && len(seen) <= strings.Count(tt.out, "\n") &&
				seen[0] == tt.wantSeen[0] && seen[len(seen)-1] == tt.wantSeen[len(tt.wantSeen)-1]
			if !slices.Equal(seen, tt.wantSeen) && !stalled {
				t.Errorf("progress = %+v, want %+v", seen, tt.wantSeen)
			}
			wantArgs := []string{"restore", "--json", "--no-cache", "--target", RestoreDir, "--delete", "--", "latest:/volumes/wp_data"}
			if len(f.runs) != 1 || !slices.Equal(f.runs[0].Args, wantArgs) {
				t.Errorf("runs = %q, want one with %q", argsOf(f.runs), wantArgs)
			}
		})
	}
}

// TestRestoreWithoutSummary: a restic that ends well but prints no summary
// (another version's output) is an error, not an empty success.
func TestRestoreWithoutSummary(t *testing.T) {
	f := &fakeRunner{run: func(Run) (int, string, string) { return 0, "", "" }}
	if _, err := fakeRepo(f).Restore(t.Context(), RestoreSpec{Snapshot: "latest", Volume: "wp_data"}, nil); err == nil {
		t.Error("Restore without restic's summary = nil error")
	}
}
