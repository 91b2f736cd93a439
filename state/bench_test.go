package state

import (
	"fmt"
	"testing"

	bbolt "go.etcd.io/bbolt"
)

// The writers: AppendAudit uses bbolt's Batch (concurrent calls share one
// commit and its fsync), CreateJob uses Update (one commit each). Run both
// in one go to compare:
//
//	go test -run '^$' -bench . -benchtime 2s ./state/
//
// Parallelism 8 means 8*GOMAXPROCS goroutines, as when many people click.

func BenchmarkAppendAudit(b *testing.B) {
	for _, bm := range []struct {
		name string
		run  func(*Store) func(func(*bbolt.Tx) error) error
	}{
		{"batch", func(s *Store) func(func(*bbolt.Tx) error) error { return s.db.Batch }},
		{"update", func(s *Store) func(func(*bbolt.Tx) error) error { return s.db.Update }},
	} {
		b.Run(bm.name, func(b *testing.B) {
			s := openBench(b)
			run := bm.run(s)
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.appendAudit(AuditRecord{Kind: AuditCommand, Text: "/toolbox status", Outcome: "ok"}, run); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
	b.Run("batch-alone", func(b *testing.B) {
		// One writer at a time: each call waits for MaxBatchDelay.
		s := openBench(b)
		for b.Loop() {
			if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: "/toolbox status"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCreateJob(b *testing.B) {
	s := openBench(b)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CreateJob(Job{Verb: "add", Args: []string{"wordpress", "blog"}, UserID: "u1"}); err != nil {
				b.Error(err)
			}
		}
	})
}

func openBench(b *testing.B) *Store {
	b.Helper()
	s, err := Open(fmt.Sprintf("%s/bench.db", b.TempDir()), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
