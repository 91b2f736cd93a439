package state

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	bbolt "go.etcd.io/bbolt"
)

// AppendAudit uses bbolt's Batch: concurrent calls share one commit and its
// fsync, but a call waits up to MaxBatchDelay (10ms) for company. CreateJob
// uses Update: one commit per call. Compare them in one run:
//
//	go test -run '^$' -bench . ./state/
//
// "writers" is the number of goroutines writing at once.

type runner = func(func(*bbolt.Tx) error) error

func BenchmarkAppendAudit(b *testing.B) {
	for _, writers := range []int{1, 16, 128} {
		for _, mode := range []struct {
			name string
			run  func(*Store) runner
		}{
			{"batch", func(s *Store) runner { return s.db.Batch }},
			{"update", func(s *Store) runner { return s.db.Update }},
		} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode.name, writers), func(b *testing.B) {
				s := openBench(b)
				run := mode.run(s)
				parallel(b, writers, func() error {
					return s.appendAudit(AuditRecord{Kind: AuditCommand, Text: "/toolbox status", Outcome: "ok"}, run)
				})
			})
		}
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
