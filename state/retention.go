package state

import (
	"encoding/json"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Retention says how long jobs and audit records are kept. A zero age keeps
// them forever.
type Retention struct {
	// JobsMaxAge: a finished job created longer ago goes...
	JobsMaxAge time.Duration
	// JobsKeep: ...unless it is one of the newest JobsKeep jobs.
	JobsKeep int
	// AuditMaxAge: an audit record older than this goes.
	AuditMaxAge time.Duration
}

// The default retention: jobs 90 days, and at least the last 200; the audit
// log a year.
const (
	DefaultJobsMaxAge  = 90 * 24 * time.Hour
	DefaultJobsKeep    = 200
	DefaultAuditMaxAge = 365 * 24 * time.Hour
)

// pruneBatch bounds the deletions of one transaction, so that pruning a long
// history never holds one big write transaction (nor the audit writer waiting
// behind it).
const pruneBatch = 1000

// Pruned counts what Prune deleted.
type Pruned struct {
	Jobs, Audit int
}

// Prune deletes the jobs and audit records past r, oldest first, in
// transactions of at most pruneBatch deletions. A queued or running job is
// never deleted.
func (s *Store) Prune(r Retention) (Pruned, error) {
	var p Pruned
	now := s.stamp()
	if r.JobsMaxAge > 0 {
		n, err := s.pruneJobs(now.Add(-r.JobsMaxAge), max(r.JobsKeep, 0))
		p.Jobs = n
		if err != nil {
			return p, fmt.Errorf("state: prune jobs: %w", err)
		}
	}
	if r.AuditMaxAge > 0 {
		n, err := s.pruneAudit(now.Add(-r.AuditMaxAge))
		p.Audit = n
		if err != nil {
			return p, fmt.Errorf("state: prune audit: %w", err)
		}
	}
	return p, nil
}

func (s *Store) pruneJobs(cutoff time.Time, keep int) (int, error) {
	// Jobs from the keep-th newest on stay whatever their age.
	var boundary uint64
	if err := s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bucketJobs)).Cursor()
		if keep == 0 {
			boundary = ^uint64(0)
			return nil
		}
		k, _ := c.Last()
		for i := 1; i < keep && k != nil; i++ {
			k, _ = c.Prev()
		}
		boundary = btoi(k) // 0 when there are fewer than keep: none goes
		return nil
	}); err != nil {
		return 0, err
	}
	total := 0
	var from uint64 // resume after the jobs already looked at
	for {
		var doomed [][]byte
		done := false
		err := s.update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte(bucketJobs))
			c := b.Cursor()
			k, v := c.Seek(itob(from))
			for ; k != nil && len(doomed) < pruneBatch; k, v = c.Next() {
				id := btoi(k)
				if id >= boundary {
					done = true
					break
				}
				var j struct {
					Status  JobStatus `json:"status"`
					Created time.Time `json:"created"`
				}
				if err := json.Unmarshal(v, &j); err != nil {
					return fmt.Errorf("job %d: %w", id, err)
				}
				if !j.Created.Before(cutoff) {
					done = true // IDs grow with time: the rest is newer
					break
				}
				from = id + 1
				if j.Status.active() {
					continue
				}
				doomed = append(doomed, itob(id))
			}
			if k == nil {
				done = true
			}
			for _, k := range doomed { // after the walk: no deletes under a cursor
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(doomed)
		if done {
			return total, nil
		}
	}
}

func (s *Store) pruneAudit(cutoff time.Time) (int, error) {
	total := 0
	for {
		var doomed [][]byte
		done := false
		err := s.update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte(bucketAudit))
			c := b.Cursor()
			k, v := c.First()
			for ; k != nil && len(doomed) < pruneBatch; k, v = c.Next() {
				var rec struct {
					Time time.Time `json:"time"`
				}
				if err := json.Unmarshal(v, &rec); err != nil {
					return fmt.Errorf("audit record %d: %w", btoi(k), err)
				}
				if !rec.Time.Before(cutoff) {
					done = true // IDs grow with time: the rest is newer
					break
				}
				doomed = append(doomed, itob(btoi(k)))
			}
			if k == nil {
				done = true
			}
			for _, k := range doomed {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(doomed)
		if done {
			return total, nil
		}
	}
}
