package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of size (mount(8)'s syntax: "4m") on a fresh
// directory: a disk that really fills up.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		msg := fmt.Sprintf("mounting a tmpfs needs root (CAP_SYS_ADMIN): %v", err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	// The last partial chunk may have left a few bytes: take them too.
	for {
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// On a full disk, audit commits fail; the group-committed records stay
// queued and are written once space returns, in order; the durable calls
// fail and write nothing; a full queue refuses new records with an error.
func TestAuditFullDisk(t *testing.T) {
	dir := mountTmpfs(t, "16m")
	s, err := Open(filepath.Join(dir, "toolbox.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeChecked(t, s)
	if _, err := s.CreateJob(Job{Verb: "add", Status: JobSucceeded}); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	// Small enough for the whole backlog to fit once the filler goes.
	detail := strings.Repeat("x", 200)
	accepted := 0
	var refused error
	// Append until the queue is full and the writer, failing, refuses.
	for i := 0; refused == nil; i++ {
		if i > 100_000 {
			t.Fatal("100,000 records of 200 bytes accepted on a full 16 MiB disk")
		}
		err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("r", i), Detail: detail})
		switch {
		case err == nil:
			accepted++
		case errors.Is(err, ErrAuditBacklog):
			refused = err
		default:
			t.Fatalf("AppendAudit %d: %v", i, err)
		}
	}
	t.Logf("accepted %d records, then: %v", accepted, refused)
	if !strings.Contains(refused.Error(), "no space left on device") {
		t.Errorf("refusal %q does not say why", refused)
	}
	backlog, err := s.AuditBacklog()
	if err == nil || backlog == 0 {
		t.Fatalf("AuditBacklog on a full disk = %d, %v; want records held and the error", backlog, err)
	}
	onDisk := len(rawAudit(t, s))
	if onDisk >= accepted {
		t.Fatalf("%d of %d records on disk: the disk did not fill", onDisk, accepted)
	}

	// Durable calls are refused and leave nothing behind.
	if _, err := s.AppendAuditDurable(AuditRecord{Kind: AuditCommand, Text: "durable"}); err == nil {
		t.Error("AppendAuditDurable on a full disk succeeded")
	}
	if _, _, err := s.StartJob(Job{Verb: "backup"}, AuditRecord{Kind: AuditCommand, Text: "job"}); err == nil {
		t.Error("StartJob on a full disk succeeded")
	}

	// Space returns: every accepted record gets written, in order.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backlog to drain", func() bool { n, err := s.AuditBacklog(); return n == 0 && err == nil })
	recs, err := s.RecentAudit(1 << 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != accepted {
		t.Fatalf("after space returned, %d records, want the %d accepted", len(recs), accepted)
	}
	for i, r := range recs {
		if want := fmt.Sprint("r", accepted-1-i); r.Text != want || r.ID != uint64(accepted-i) {
			t.Fatalf("record %d = id %d %q, want id %d %q", i, r.ID, r.Text, accepted-i, want)
		}
	}
	if jobs, _ := s.RecentJobs(10); len(jobs) != 1 {
		t.Errorf("jobs = %v, want only the first (the refused StartJob wrote none)", ids(jobs))
	}
	if _, _, err := s.StartJob(Job{Verb: "backup"}, AuditRecord{Kind: AuditCommand, Text: "job"}); err != nil {
		t.Errorf("StartJob once space returned: %v", err)
	}
}

// Close on a disk that stays full gives up after its grace and says how many
// records it could not write.
func TestAuditCloseFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("waits auditCloseGrace")
	}
	dir := mountTmpfs(t, "1m")
	s, err := Open(filepath.Join(dir, "toolbox.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() { // before the unmount
		if !closed {
			_ = s.Close()
		}
	})
	fill(t, filepath.Join(dir, "filler"))
	detail := strings.Repeat("x", 900)
	for i := range 3000 {
		err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("r", i), Detail: detail})
		if errors.Is(err, ErrAuditBacklog) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "a failing commit", func() bool { _, err := s.AuditBacklog(); return err != nil })
	err = s.Close()
	closed = true
	if err == nil || !strings.Contains(err.Error(), "audit records not written") {
		t.Errorf("Close on a full disk = %v, want the records it could not write", err)
	}
}
