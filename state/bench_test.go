package state

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// AppendAudit queues the record for a group commit; CreateJob commits with
// one Update (and its fsync) per call. Compare them in one run, the audit
// log measured until its records are committed (FlushAudit):
//
//	go test -run '^$' -bench . ./state/
//
// "writers" is the number of goroutines writing at once.

func BenchmarkAppendAudit(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openBench(b)
			parallel(b, writers, func() error {
				return s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: "/toolbox status", Outcome: "ok"})
			})
			s.FlushAudit()
		})
	}
}

func BenchmarkCreateJob(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s := openBench(b)
			parallel(b, writers, func() error {
				_, err := s.CreateJob(Job{Verb: "add", Args: []string{"wordpress", "blog"}, UserID: "u1"})
				return err
			})
		})
	}
}

// parallel calls fn b.N times from about writers goroutines.
func parallel(b *testing.B, writers int, fn func() error) {
	if writers == 1 {
		for b.Loop() {
			if err := fn(); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := fn(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// ActiveJobs with 51,000 jobs in the history, 3 of them active: "index"
// reads the active index (today's ActiveJobs), "scan" decodes every job (how
// ActiveJobs worked before the index). Report index/scan as a ratio:
//
//	go test -run '^$' -bench ActiveJobs ./state/
func BenchmarkActiveJobs(b *testing.B) {
	s := openBench(b)
	const total = 51_000
	err := s.db.Update(func(tx *bbolt.Tx) error {
		for i := range total {
			st := JobSucceeded
			if i%17_000 == 0 {
				st = JobRunning
			}
			if _, err := createJob(tx, Job{Verb: "selftest", UserID: "u1", Status: st, Result: "all checks passed", Created: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			if jobs, err := s.ActiveJobs(); err != nil || len(jobs) != 3 {
				b.Fatalf("ActiveJobs = %d, %v", len(jobs), err)
			}
		}
	})
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			var jobs []Job
			err := s.db.View(func(tx *bbolt.Tx) error {
				return tx.Bucket([]byte(bucketJobs)).ForEach(func(k, v []byte) error {
					j, err := decode[Job](v)
					if err == nil && j.Status.active() {
						jobs = append(jobs, j)
					}
					return err
				})
			})
			if err != nil || len(jobs) != 3 {
				b.Fatalf("scan = %d, %v", len(jobs), err)
			}
		}
	})
}
