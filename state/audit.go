package state

import (
	"errors"
	"fmt"
	"sync"
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

// auditQueueSize bounds the records waiting for their commit; a full queue
// makes AppendAudit wait, so a burst slows down instead of losing lines.
const auditQueueSize = 4096

// auditLinger is how long the writer gathers records before a commit.
const auditLinger = 2 * time.Millisecond

// auditWriter group-commits the audit log: every record queued while one
// commit runs goes into the next, in one transaction and one fsync. A reply
// then never waits for the disk because of its audit line; what starts a job
// or changes state is written durably by its own transaction, before the
// reply.
type auditWriter struct {
	queue chan auditItem
	done  chan struct{}

	// closing guards the queue: senders hold it for reading, Close for
	// writing, so nothing is sent on the queue once it is closed.
	closing sync.RWMutex
	closed  bool

	mu      sync.Mutex
	lastErr error // the last failed commit, reported by the next AppendAudit
}

// auditItem is a record, or a flush marker closed once everything queued
// before it is committed.
type auditItem struct {
	rec     AuditRecord
	flushed chan struct{}
}

func (s *Store) startAuditWriter() {
	s.audit = &auditWriter{queue: make(chan auditItem, auditQueueSize), done: make(chan struct{})}
	go s.writeAudit()
}

func (s *Store) writeAudit() {
	defer close(s.audit.done)
	for first := range s.audit.queue {
		batch := []auditItem{first}
		// Linger briefly so a burst shares one commit and one fsync; nobody
		// waits for it but a flush.
		linger := time.NewTimer(auditLinger)
	more:
		for len(batch) < auditQueueSize && first.flushed == nil {
			select {
			case it, ok := <-s.audit.queue:
				if !ok {
					break more
				}
				batch = append(batch, it)
				if it.flushed != nil {
					break more
				}
			case <-linger.C:
				break more
			}
		}
		linger.Stop()
		err := s.db.Update(func(tx *bbolt.Tx) error {
			b := tx.Bucket([]byte(bucketAudit))
			for _, it := range batch {
				if it.flushed != nil {
					continue
				}
				id, err := b.NextSequence()
				if err != nil {
					return err
				}
				rec := it.rec
				rec.ID = id
				if err := put(b, itob(id), rec); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			s.audit.mu.Lock()
			s.audit.lastErr = fmt.Errorf("state: %d audit records lost: %w", len(batch), err)
			s.audit.mu.Unlock()
		}
		for _, it := range batch {
			if it.flushed != nil {
				close(it.flushed)
			}
		}
	}
}

// AppendAudit queues r for the audit log, with the next ID and Time=now if
// zero. It returns at once: records are group-committed within
// milliseconds, and RecentAudit and Close wait for them. An error reports a
// commit of earlier records that failed.
func (s *Store) AppendAudit(r AuditRecord) error {
	if r.Time.IsZero() {
		r.Time = s.stamp()
	}
	s.audit.mu.Lock()
	err := s.audit.lastErr
	s.audit.lastErr = nil
	s.audit.mu.Unlock()
	s.audit.closing.RLock()
	defer s.audit.closing.RUnlock()
	if s.audit.closed {
		return errClosed
	}
	s.audit.queue <- auditItem{rec: r}
	return err
}

var errClosed = errors.New("state: the store is closed")

// FlushAudit waits until every record queued before the call is committed.
func (s *Store) FlushAudit() {
	flushed := make(chan struct{})
	s.audit.closing.RLock()
	if s.audit.closed {
		s.audit.closing.RUnlock()
		return
	}
	s.audit.queue <- auditItem{flushed: flushed}
	s.audit.closing.RUnlock()
	<-flushed
}

func (s *Store) stopAuditWriter() error {
	s.audit.closing.Lock()
	if s.audit.closed {
		s.audit.closing.Unlock()
		return nil
	}
	s.audit.closed = true
	close(s.audit.queue)
	s.audit.closing.Unlock()
	<-s.audit.done
	s.audit.mu.Lock()
	defer s.audit.mu.Unlock()
	return s.audit.lastErr
}

// RecentAudit returns up to n audit records, newest first, including every
// record appended before the call. n <= 0 returns none.
func (s *Store) RecentAudit(n int) ([]AuditRecord, error) {
	s.FlushAudit()
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
