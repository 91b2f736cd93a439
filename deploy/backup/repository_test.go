package backup

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInitOpenAndTheirErrors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	repo, l := newRepo(t)
	if _, err := repo.Open(ctx); !errors.Is(err, ErrNoRepository) {
		t.Fatalf("Open before Init = %v, want ErrNoRepository", err)
	}
	created, err := repo.Init(ctx)
	if err != nil || !created {
		t.Fatalf("Init = %v, %v, want true, nil", created, err)
	}
	created, err = repo.Init(ctx)
	if err != nil || created {
		t.Fatalf("second Init = %v, %v, want false, nil", created, err)
	}
	info, err := repo.Open(ctx)
	if err != nil || len(info.ID) != 64 || info.Version != 2 {
		t.Fatalf("Open = %+v, %v", info, err)
	}

	wrong := *repo
	wrong.Password = "not the password"
	_, err = wrong.Open(ctx)
	if !errors.Is(err, ErrWrongPassword) || !strings.Contains(err.Error(), "wrong password or no key found") {
		t.Errorf("Open with a wrong password = %v, want ErrWrongPassword with restic's words", err)
	}
	if _, err := wrong.Init(ctx); !errors.Is(err, ErrWrongPassword) {
		t.Errorf("Init of an existing repository with a wrong password = %v, want ErrWrongPassword", err)
	}

	missing := *repo
	missing.URL = "/repository/elsewhere"
	if _, err := missing.Open(ctx); !errors.Is(err, ErrNoRepository) || !strings.Contains(err.Error(), "repository does not exist") {
		t.Errorf("Open of a missing repository = %v, want ErrNoRepository with restic's words", err)
	}

	away := *repo
	away.URL = "rest:http://user:s3cret@127.0.0.1:1/"
	away.Mounts = nil
	start := time.Now()
	_, err = away.Open(ctx)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("Open of an unreachable repository = %v, want ErrUnreachable with the cause", err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("Open of an unreachable repository took %v: it should give up at restic's first retry", took)
	}
	if strings.Contains(err.Error(), "s3cret") || strings.Contains(away.String(), "s3cret") {
		t.Errorf("the URL's password shows: %v / %s", err, away.String())
	}

	for _, run := range l.Runs() {
		if run.Env["RESTIC_PASSWORD"] == "" || run.Env["RESTIC_REPOSITORY"] == "" {
			t.Errorf("run %v: no repository or password in the environment", run.Args)
		}
		for _, a := range run.Args {
			if strings.Contains(a, run.Env["RESTIC_PASSWORD"]) {
				t.Errorf("run %v: the password is in the arguments", run.Args)
			}
		}
	}
}

// writeTree fills dir with files of random contents and returns their
// checksums by relative path.
func writeTree(t *testing.T, dir string, files map[string]int) {
	t.Helper()
	for name, size := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		_, _ = rand.Read(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checksums are a tree's files' SHA-256, by path relative to dir.
func checksums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h := sha256.Sum256(b)
		sums[rel] = hex.EncodeToString(h[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

func TestBackupRestoreDumpCheck(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	repo, l := initRepo(t)
	data := l.volume("wp_data")
	files := map[string]int{"wp-config.php": 3000, "uploads/2026/01/photo.jpg": 3 << 20, "uploads/2026/01/small.png": 10, "empty": 0}
	writeTree(t, data, files)
	total := 0
	for _, n := range files {
		total += n
	}

	var seen []Progress
	tags := map[string]string{"app": "wordpress", "version": "6.8", "job": "42"}
	first, err := repo.Backup(ctx, BackupSpec{Volumes: []string{"wp_data"}, Tags: tags}, func(p Progress) { seen = append(seen, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(first.SnapshotID) != 64 || first.FilesNew != uint64(len(files)) || first.TotalBytesProcessed != uint64(total) ||
		first.DataAdded < uint64(total) || first.Duration <= 0 {
		t.Errorf("first backup's summary = %+v, want %d new files, %d bytes", first, len(files), total)
	}
	if len(seen) == 0 {
		t.Error("no progress seen")
	} else if last := seen[len(seen)-1]; last.TotalFiles != uint64(len(files)) || last.TotalBytes != uint64(total) || last.PercentDone <= 0 {
		t.Errorf("last progress = %+v, want %d files of %d bytes in all", last, len(files), total)
	}
	var backupRun Run // the last backup run (a tag run follows it)
	for _, run := range l.Runs() {
		if slices.Contains(run.Args, "backup") {
			backupRun = run
		}
	}
	if want := []string{"--tag", "app=wordpress", "--tag", "job=42", "--tag", "version=6.8", "--host", "toolbox", "--", "/volumes/wp_data"}; !slices.Equal(backupRun.Args[len(backupRun.Args)-len(want):], want) {
		t.Errorf("backup's arguments = %q, want them to end with %q", backupRun.Args, want)
	}
	if !slices.Contains(backupRun.Mounts, Mount{Volume: "wp_data", Target: "/volumes/wp_data", ReadOnly: true}) {
		t.Errorf("backup's mounts = %+v, want wp_data read-only at /volumes/wp_data", backupRun.Mounts)
	}

	second, err := repo.Backup(ctx, BackupSpec{Volumes: []string{"wp_data"}, Tags: map[string]string{"app": "wordpress", "version": "6.8", "job": "43"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if second.DataAdded > 1024 || second.FilesUnmodified != uint64(len(files)) || second.FilesNew != 0 {
		t.Errorf("unchanged backup's summary = %+v, want ~0 bytes added and every file unmodified", second)
	}

	dump := make([]byte, 1<<20+17)
	_, _ = rand.Read(dump)
	pr, pw := io.Pipe()
	var feeder sync.WaitGroup
	feeder.Go(func() {
		for b := dump; len(b) > 0; {
			n := min(len(b), 64<<10)
			if _, err := pw.Write(b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
		_ = pw.Close()
	})
	stream, err := repo.Backup(ctx, BackupSpec{Stdin: pr, StdinFilename: "wordpress.sql", Tags: map[string]string{"app": "wordpress", "job": "44"}}, nil)
	feeder.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if stream.TotalBytesProcessed != uint64(len(dump)) || stream.FilesNew != 1 {
		t.Errorf("stream backup's summary = %+v, want 1 new file of %d bytes", stream, len(dump))
	}

	broken := io.MultiReader(bytes.NewReader(dump[:1000]), &failingReader{errors.New("the dump failed")})
	if _, err := repo.Backup(ctx, BackupSpec{Stdin: broken, StdinFilename: "wordpress.sql", Tags: map[string]string{"app": "wordpress", "job": "45"}}, nil); err == nil {
		t.Error("Backup of a stream that failed = nil error")
	}

	all, err := repo.Snapshots(ctx, "app=wordpress")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("Snapshots(app=wordpress) = %d snapshots, want 3 (none of the failed stream): %+v", len(all), all)
	}
	got, err := repo.Snapshots(ctx, "app=wordpress", "job=42")
	if err != nil || len(got) != 1 {
		t.Fatalf("Snapshots(app=wordpress, job=42) = %+v, %v, want 1", got, err)
	}
	s := got[0]
	if s.ID != first.SnapshotID || s.ShortID != s.ID[:8] || !maps.Equal(s.Tags, tags) || s.Host != DefaultHost ||
		!slices.Equal(s.Paths, []string{data}) || time.Since(s.Time) > time.Hour || s.Summary == nil ||
		s.Summary.FilesNew != uint64(len(files)) || s.Summary.TotalBytesProcessed != uint64(total) || s.ProgramVersion != "restic 0.18.1" {
		t.Errorf("snapshot = %+v (summary %+v), want the first backup's", s, s.Summary)
	}
	if none, err := repo.Snapshots(ctx, "app=mediawiki"); err != nil || len(none) != 0 {
		t.Errorf("Snapshots(app=mediawiki) = %v, %v, want none", none, err)
	}

	var out bytes.Buffer
	if err := repo.Dump(ctx, stream.SnapshotID, "/wordpress.sql", &out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), dump) {
		t.Errorf("Dump gave %d bytes, not the %d that went in", out.Len(), len(dump))
	}
	if err := repo.Dump(ctx, stream.SnapshotID, "/mediawiki.sql", io.Discard); err == nil {
		t.Error("Dump of a file the snapshot lacks = nil error")
	}

	if _, err := repo.Restore(ctx, RestoreSpec{Snapshot: first.SnapshotID, From: VolumePath("wp_data"), Volume: "wp_restored"}, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := checksums(t, l.volume("wp_restored")), checksums(t, data); !maps.Equal(got, want) {
		t.Errorf("restored %v, want %v", got, want)
	}
	if _, err := repo.Restore(ctx, RestoreSpec{Snapshot: first.SnapshotID, From: VolumePath("wp_data"), Volume: "wp_config_only", Include: []string{"/wp-config.php"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := checksums(t, l.volume("wp_config_only")); len(got) != 1 || got["wp-config.php"] != checksums(t, data)["wp-config.php"] {
		t.Errorf("restore of /wp-config.php only gave %v", got)
	}

	for _, subset := range []string{"", "5%", "100%", "1/3"} {
		res, err := repo.Check(ctx, subset)
		if err != nil || res.Errors != 0 {
			t.Errorf("Check(%q) = %+v, %v, want a sound repository", subset, res, err)
		}
	}
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

// TestForgetYearOfDailyBackups makes a year of daily volume backups (the
// snapshots' times faked with --time) and checks exactly what the policy
// keeps. Volumes, not streams: a stream's snapshot is retagged once whole,
// under an exclusive lock that eight parallel backups would starve.
func TestForgetYearOfDailyBackups(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	repo, l := initRepo(t)
	if err := os.WriteFile(filepath.Join(l.volume("wp_data"), "index.php"), []byte("<?php\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 1, 1, 3, 0, 0, 0, time.UTC)
	const days = 365
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	jobs := make(chan int)
	for range 8 { // restic mostly waits (200 ms for its lock check)
		wg.Go(func() {
			for day := range jobs {
				_, err := repo.Backup(ctx, BackupSpec{
					Volumes: []string{"wp_data"},
					Tags:    map[string]string{"app": "wordpress", "version": "6.8", "job": fmt.Sprint(day)},
					Time:    start.AddDate(0, 0, day),
				}, nil)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for day := range days {
		jobs <- day
	}
	close(jobs)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d backups failed, the first: %v", len(errs), errs[0])
	}
	// Another app's backup, older than any rule: the tag filter leaves it.
	other, err := repo.Backup(ctx, BackupSpec{Stdin: strings.NewReader("x"), StdinFilename: "wordpress.sql",
		Tags: map[string]string{"app": "mediawiki"}, Time: start.AddDate(-1, 0, 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}

	policy := Policy{Daily: 7, Weekly: 4, Monthly: 6}
	groups, err := repo.Forget(ctx, policy, []string{"app=wordpress"}, true)
	if err != nil {
		t.Fatal(err)
	}
	// 2025-12-31 is a Wednesday. daily 7: Dec 25 to 31. weekly 4, the last
	// snapshot of each ISO week: Dec 31 (week 2026-W01), Dec 28, 21 and 14.
	// monthly 6: the last of each month, Dec 31 back to Jul 31.
	want := []string{"2025-07-31", "2025-08-31", "2025-09-30", "2025-10-31", "2025-11-30", "2025-12-14", "2025-12-21",
		"2025-12-25", "2025-12-26", "2025-12-27", "2025-12-28", "2025-12-29", "2025-12-30", "2025-12-31"}
	if len(groups) != 1 {
		t.Fatalf("Forget = %d groups, want 1 (one host, one path): %+v", len(groups), groups)
	}
	g := groups[0]
	dates := func(snaps []Snapshot) []string {
		var d []string
		for _, s := range snaps {
			d = append(d, s.Time.UTC().Format(time.DateOnly))
		}
		slices.Sort(d)
		return d
	}
	if got := dates(g.Keep); !slices.Equal(got, want) {
		t.Errorf("kept %q, want %q", got, want)
	}
	if len(g.Remove) != days-len(want) {
		t.Errorf("removed %d, want %d", len(g.Remove), days-len(want))
	}
	for _, s := range g.Keep {
		if s.Time.Format(time.DateOnly) == "2025-12-31" {
			if why := g.Reasons[s.ID]; !slices.Equal(why, []string{"daily snapshot", "weekly snapshot", "monthly snapshot"}) {
				t.Errorf("reasons for 2025-12-31 = %q", why)
			}
		}
	}
	left, err := repo.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := dates(left); len(left) != len(want)+1 || !slices.ContainsFunc(left, func(s Snapshot) bool { return s.ID == other.SnapshotID }) {
		t.Errorf("left after forget: %q, want the kept ones and mediawiki's", got)
	}
	if res, err := repo.Check(ctx, ""); err != nil || res.Errors != 0 {
		t.Errorf("Check after prune = %+v, %v", res, err)
	}
}

// TestLocked holds a backup open (restic keeps its lock while it reads the
// stream) and checks that an exclusive command fails with ErrLocked.
func TestLocked(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	repo, l := initRepo(t)
	if _, err := repo.Backup(ctx, BackupSpec{Stdin: strings.NewReader("a"), StdinFilename: "a.sql"}, nil); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	var bg sync.WaitGroup
	var bgErr error
	bg.Go(func() {
		_, bgErr = repo.Backup(ctx, BackupSpec{Stdin: pr, StdinFilename: "b.sql"}, nil)
	})
	locks := filepath.Join(l.volume(repoVolume), "locks")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if entries, _ := os.ReadDir(locks); len(entries) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backup took no lock in 30s")
		}
	}
	_, err := repo.Forget(ctx, Policy{Last: 1}, nil, false)
	var e *ExitError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &e) || e.Code != 11 || !strings.Contains(e.Message, "locked") {
		t.Errorf("Forget while a backup runs = %v, want ErrLocked (exit 11) with restic's words", err)
	}
	if _, err := repo.Open(ctx); err != nil {
		t.Errorf("Open while a backup runs = %v, want nil (a shared lock does not stop it)", err)
	}
	_, _ = pw.Write([]byte("b"))
	_ = pw.Close()
	bg.Wait()
	if bgErr != nil {
		t.Fatal(bgErr)
	}
	if err := repo.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	groups, err := repo.Forget(ctx, Policy{Last: 1}, nil, false)
	if err != nil {
		t.Fatalf("Forget after the backup = %v", err)
	}
	if len(groups) != 2 {
		t.Errorf("Forget = %+v, want 2 groups (a.sql, b.sql)", groups)
	}
}

// TestStreamSnapshotsAreTaggedWhole: a stream's snapshot carries CompleteTag
// once its byte count is checked, so that one cut by a crash of the caller
// (restic took the cut for the end) is told apart.
func TestStreamSnapshotsAreTaggedWhole(t *testing.T) {
	t.Parallel()
	repo, _ := initRepo(t)
	ctx := t.Context()
	sum, err := repo.Backup(ctx, BackupSpec{Stdin: strings.NewReader("-- a whole dump\n"), StdinFilename: "db.sql", Tags: map[string]string{"app": "wiki"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := repo.Snapshots(ctx, "app=wiki", CompleteTag)
	if err != nil || len(whole) != 1 || whole[0].ID != sum.SnapshotID {
		t.Fatalf("Snapshots(app=wiki, %s) = %+v, %v; want the one backup, id %s", CompleteTag, whole, err, sum.SnapshotID)
	}
}
