package state

import (
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Audit record kinds.
const (
	AuditCommand  = "command"
	AuditClick    = "click"
	AuditTerminal = "terminal"
)

// AuditRecord is one line of the audit log: a command, a button click...
type AuditRecord struct {
	ID          uint64    `json:"id"`
	Time        time.Time `json:"time,omitzero"`
	UserID      string    `json:"user_id,omitempty"`
	UserName    string    `json:"user_name,omitempty"`
	ChannelID   string    `json:"channel_id,omitempty"`
	ChannelName string    `json:"channel_name,omitempty"`
	Kind        string    `json:"kind"`              // AuditCommand, AuditClick, AuditTerminal
	Text        string    `json:"text,omitempty"`    // what was typed or clicked
	Outcome     string    `json:"outcome,omitempty"` // "ok", "refused", "error", "started job #3"...
	Detail      string    `json:"detail,omitempty"`
}

// AppendAudit adds r to the audit log with the next ID, and Time=now if zero.
// Concurrent calls share one commit (bbolt's Batch), so a lone call waits up
// to bbolt's MaxBatchDelay (10ms) before it is durable.
func (s *Store) AppendAudit(r AuditRecord) error {
	return s.appendAudit(r, s.db.Batch)
}

// appendAudit takes the transaction runner so the benchmark can compare
// Batch with Update.
func (s *Store) appendAudit(r AuditRecord, run func(func(*bbolt.Tx) error) error) error {
	if r.Time.IsZero() {
		r.Time = s.stamp()
	}
	err := run(func(tx *bbolt.Tx) error {
		// Batch may run this more than once; a failed attempt rolls back the
		// sequence too, so it stays idempotent.
		b := tx.Bucket([]byte(bucketAudit))
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		rec := r
		rec.ID = id
		return put(b, itob(id), rec)
	})
	if err != nil {
		return fmt.Errorf("state: append audit: %w", err)
	}
	return nil
}

// RecentAudit returns up to n audit records, newest first. n <= 0 returns none.
func (s *Store) RecentAudit(n int) ([]AuditRecord, error) {
	var recs []AuditRecord
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		recs, err = newest[AuditRecord](tx.Bucket([]byte(bucketAudit)), n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: recent audit: %w", err)
	}
	return recs, nil
}
