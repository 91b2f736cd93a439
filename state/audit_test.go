package state

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	bbolt "go.etcd.io/bbolt"
)

// copyOnDisk copies the live database file as the disk has it now and opens
// the copy: what a kill -9 at this instant would leave.
func copyOnDisk(t *testing.T, s *Store) *Store {
	t.Helper()
	src, err := os.Open(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(t.TempDir(), "copy.db")
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(path, Options{Key: s.key})
	if err != nil {
		t.Fatalf("Open(copy): %v", err)
	}
	t.Cleanup(func() { closeChecked(t, c) })
	return c
}

// rawAudit reads the audit bucket without flushing the writer.
func rawAudit(t *testing.T, s *Store) []AuditRecord {
	t.Helper()
	var recs []AuditRecord
	if err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		recs, err = newest[AuditRecord](tx.Bucket([]byte(bucketAudit)), 1<<30)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(recs)
	return recs
}

func texts(recs []AuditRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.Text)
	}
	return out
}

func TestStartJob(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	for i := range 20 {
		if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("status ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	job, recID, err := s.StartJob(Job{Verb: "add", Args: []string{"wordpress"}, UserID: "u1"},
		AuditRecord{Kind: AuditCommand, UserID: "u1", Text: "/toolbox add wordpress"})
	if err != nil {
		t.Fatalf("StartJob: %v", err)
	}
	if job.ID != 1 || job.Status != JobQueued || !job.Created.Equal(c.Now()) {
		t.Errorf("StartJob job = %+v, want id 1, queued, created now", job)
	}
	if recID != 21 {
		t.Errorf("StartJob record id = %d, want 21 (after the 20 queued before it)", recID)
	}

	// Without any flush, the file on disk already holds the 20 earlier
	// records, the job and its record.
	disk := copyOnDisk(t, s)
	recs := rawAudit(t, disk)
	if len(recs) != 21 {
		t.Fatalf("on disk after StartJob: %d records %q, want 21", len(recs), texts(recs))
	}
	if got := recs[20]; got.ID != recID || got.Outcome != "started job #1" || got.Text != "/toolbox add wordpress" || !got.Time.Equal(c.Now()) {
		t.Errorf("job's record on disk = %+v, want id %d, outcome %q", got, recID, "started job #1")
	}
	if got, err := disk.Job(1); err != nil || got.Verb != "add" || got.Status != JobQueued {
		t.Errorf("job on disk = %+v, %v; want the queued add", got, err)
	}
	if active, _ := disk.ActiveJobs(); !slices.Equal(ids(active), []uint64{1}) {
		t.Errorf("ActiveJobs on disk = %v, want [1]", ids(active))
	}

	// A given outcome is kept.
	job2, rec2, err := s.StartJob(Job{Verb: "selftest"}, AuditRecord{Kind: AuditCommand, Text: "/toolbox selftest", Outcome: "accepted"})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ = s.RecentAudit(1)
	if job2.ID != 2 || recs[0].ID != rec2 || recs[0].Outcome != "accepted" {
		t.Errorf("second StartJob = job %d, record %+v; want job 2, outcome accepted", job2.ID, recs[0])
	}
}

func TestAppendAuditDurable(t *testing.T) {
	s := openTest(t, Options{})
	if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: "before"}); err != nil {
		t.Fatal(err)
	}
	id, err := s.AppendAuditDurable(AuditRecord{Kind: AuditClick, Text: "remove wiki"})
	if err != nil {
		t.Fatalf("AppendAuditDurable: %v", err)
	}
	if id != 2 {
		t.Errorf("id = %d, want 2", id)
	}
	if got := texts(rawAudit(t, copyOnDisk(t, s))); !slices.Equal(got, []string{"before", "remove wiki"}) {
		t.Errorf("on disk = %q, want [before, remove wiki]", got)
	}

	if err := s.SetAuditOutcome(id, "removed"); err != nil {
		t.Fatalf("SetAuditOutcome: %v", err)
	}
	if err := s.SetAuditOutcome(999, "no such record"); err != nil {
		t.Fatalf("SetAuditOutcome(999): %v", err)
	}
	if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: "after"}); err != nil {
		t.Fatal(err)
	}
	recs, err := s.RecentAudit(10)
	if err != nil {
		t.Fatal(err)
	}
	// The unknown id did not hold back the record queued after it.
	if got := texts(recs); !slices.Equal(got, []string{"after", "remove wiki", "before"}) {
		t.Fatalf("RecentAudit = %q", got)
	}
	if recs[1].Outcome != "removed" {
		t.Errorf("outcome = %q, want removed", recs[1].Outcome)
	}
	if err := s.SetAuditOutcome(0, "x"); err == nil {
		t.Error("SetAuditOutcome(0) succeeded")
	}
}

// Durable writers share commits yet each gets its own id and job.
func TestStartJobConcurrent(t *testing.T) {
	s := openTest(t, Options{})
	const n = 40
	var wg sync.WaitGroup
	var mu sync.Mutex
	jobs := map[uint64]uint64{} // job id -> record id
	for i := range n {
		wg.Go(func() {
			if i%2 == 0 {
				if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: "status"}); err != nil {
					t.Error(err)
				}
			}
			j, rec, err := s.StartJob(Job{Verb: "backup"}, AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("backup ", i)})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			jobs[j.ID] = rec
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(jobs) != n {
		t.Fatalf("%d distinct jobs, want %d", len(jobs), n)
	}
	recs, _ := s.RecentAudit(1000)
	byID := map[uint64]AuditRecord{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	if len(recs) != n+n/2 {
		t.Errorf("%d records, want %d", len(recs), n+n/2)
	}
	for job, rec := range jobs {
		if got := byID[rec].Outcome; got != fmt.Sprintf("started job #%d", job) {
			t.Errorf("record %d outcome = %q, want started job #%d", rec, got, job)
		}
	}
}

func TestAuditAfterCloseDurable(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendAuditDurable(AuditRecord{Kind: AuditCommand}); !errors.Is(err, errClosed) {
		t.Errorf("AppendAuditDurable after Close = %v, want closed", err)
	}
	if _, _, err := s.StartJob(Job{Verb: "add"}, AuditRecord{Kind: AuditCommand}); !errors.Is(err, errClosed) {
		t.Errorf("StartJob after Close = %v, want closed", err)
	}
	if err := s.SetAuditOutcome(1, "x"); !errors.Is(err, errClosed) {
		t.Errorf("SetAuditOutcome after Close = %v, want closed", err)
	}
}

func TestActiveJobsIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		st := JobSucceeded
		if i%3 == 0 {
			st = JobRunning
		}
		if _, err := s.CreateJob(Job{Verb: "add", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.StartJob(Job{Verb: "backup"}, AuditRecord{Kind: AuditCommand}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateJob(4, func(j *Job) error { j.Status = JobFailed; return nil }); err != nil {
		t.Fatal(err)
	}
	want := []uint64{1, 7, 10, 11}
	if active, _ := s.ActiveJobs(); !slices.Equal(ids(active), want) {
		t.Errorf("ActiveJobs = %v, want %v", ids(active), want)
	}
	if got := countKeys(t, s, bucketJobsActive); got != len(want) {
		t.Errorf("index holds %d ids, want %d", got, len(want))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A file from before the index: Open builds it.
	rawUpdate(t, path, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte(bucketJobsActive)) })
	s = openTestPath(t, path)
	if active, _ := s.ActiveJobs(); !slices.Equal(ids(active), want) {
		t.Errorf("after rebuilding the index, ActiveJobs = %v, want %v", ids(active), want)
	}
	if _, err := s.InterruptRunning("restart"); err != nil {
		t.Fatal(err)
	}
	if got := countKeys(t, s, bucketJobsActive); got != 0 {
		t.Errorf("index holds %d ids after InterruptRunning, want 0", got)
	}
}

func openTestPath(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeChecked(t, s) })
	return s
}
