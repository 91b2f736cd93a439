package state

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

func TestPrune(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	const old, recent = 500, 50
	for i := range old {
		st := JobSucceeded
		if i == 6 {
			st = JobRunning // job 7: old, but active
		}
		if _, err := s.CreateJob(Job{Verb: "selftest", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1500 { // more than one transaction's worth
		if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("old ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.FlushAudit()
	c.Add(100 * 24 * time.Hour)
	for range recent {
		if _, err := s.CreateJob(Job{Verb: "backup", Status: JobFailed}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("new ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	s.FlushAudit()

	if p, err := s.Prune(Retention{}); err != nil || p != (Pruned{}) {
		t.Errorf("Prune(zero retention) = %+v, %v; want nothing deleted", p, err)
	}
	c.Add(24 * time.Hour)
	p, err := s.Prune(Retention{JobsMaxAge: DefaultJobsMaxAge, JobsKeep: DefaultJobsKeep, AuditMaxAge: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	// The 200 newest are 351..550; of the older ones only the active job 7 stays.
	if want := (Pruned{Jobs: 349, Audit: 1500}); p != want {
		t.Errorf("Prune = %+v, want %+v", p, want)
	}
	jobs, _ := s.RecentJobs(1000)
	if len(jobs) != 201 || jobs[0].ID != 550 || jobs[199].ID != 351 || jobs[200].ID != 7 {
		t.Errorf("jobs left: %d, newest %d, want 201 (550..351 and 7)", len(jobs), jobs[0].ID)
	}
	if active, _ := s.ActiveJobs(); !slices.Equal(ids(active), []uint64{7}) {
		t.Errorf("ActiveJobs after Prune = %v, want [7]", ids(active))
	}
	recs, _ := s.RecentAudit(100_000)
	if len(recs) != 10 || recs[9].Text != "new 0" {
		t.Errorf("audit left: %d records, want the 10 new ones", len(recs))
	}
	if j, err := s.CreateJob(Job{Verb: "next"}); err != nil || j.ID != 551 {
		t.Errorf("next job = %d, %v; want 551 (IDs never reused)", j.ID, err)
	}

	// Fewer jobs than the minimum kept: none goes, however old.
	s2 := openTest(t, Options{Now: c.Now})
	for range 5 {
		if _, err := s2.CreateJob(Job{Verb: "x", Status: JobSucceeded}); err != nil {
			t.Fatal(err)
		}
	}
	c.Add(1000 * 24 * time.Hour)
	if p, err := s2.Prune(Retention{JobsMaxAge: time.Hour, JobsKeep: 200}); err != nil || p.Jobs != 0 {
		t.Errorf("Prune of 5 jobs keeping 200 = %+v, %v; want none", p, err)
	}
	if p, err := s2.Prune(Retention{JobsMaxAge: time.Hour, JobsKeep: 0}); err != nil || p.Jobs != 5 {
		t.Errorf("Prune keeping 0 = %+v, %v; want all 5", p, err)
	}
}
