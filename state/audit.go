package state

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
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

// ErrAuditBacklog: the audit log cannot be written (a full disk...) and its
// queue is full, so the record was not accepted.
var ErrAuditBacklog = errors.New("the audit log cannot be written and its queue is full")

const (
	// auditQueueSize bounds the items waiting for the writer; a full queue
	// makes AppendAudit wait (a burst slows down instead of losing lines),
	// or fail with ErrAuditBacklog while commits fail.
	auditQueueSize = 1024
	// auditBatchMax bounds one commit's records.
	auditBatchMax = 1024
	// auditLinger is how long the writer gathers records before a commit
	// that nobody waits for.
	auditLinger = 2 * time.Millisecond
	// A failed commit is retried after auditRetryMin, doubling up to
	// auditRetryMax, for as long as the store is open.
	auditRetryMin = 10 * time.Millisecond
	auditRetryMax = time.Second
	// auditCloseGrace is how long Close keeps retrying a failing commit
	// before it gives up and reports the records it could not write.
	auditCloseGrace = 3 * time.Second
	// auditSendPoll is how often a sender blocked on a full queue checks
	// whether the writer is failing (then it returns ErrAuditBacklog).
	auditSendPoll = 50 * time.Millisecond
)

// The audit writer is the single goroutine that writes the audit log, and
// jobs started with StartJob, in queue order. Records appended with
// AppendAudit and outcomes set with SetAuditOutcome are group-committed:
// gathered for up to auditLinger, then written in one transaction and one
// fsync, and nobody waits for them. AppendAuditDurable and StartJob end the
// gathering at once and return after the commit that holds them, so they
// also make durable everything queued before them.
//
// A failed commit is never dropped: its group-committed items stay at the
// head of the queue and are retried with a growing delay (auditRetryMin up to
// auditRetryMax) until the disk takes them; the waiting durable items of
// that commit are answered with the error and not written (their callers
// must not act). While commits fail, the queue keeps filling; once it is
// full, AppendAudit returns ErrAuditBacklog instead of accepting the record.
//
// Worst case on kill -9 (or power loss): only group-committed items
// accepted after the last commit that reached the disk began can be lost:
// the batch being committed (gathered over at most auditLinger) and what was
// queued meanwhile, never more than auditQueueSize+auditBatchMax (2048)
// items, and always a suffix of the log, never a hole. At a person's pace
// that is the last few milliseconds; under a flood that keeps the queue
// full, it is the queue. While the disk refuses writes, it is everything
// accepted since (AuditBacklog tells how many). Nothing returned by
// AppendAuditDurable or StartJob is lost, nor anything queued before them.
// TestAuditKill9 checks this with SIGKILL.
type auditWriter struct {
	queue chan *auditItem
	done  chan struct{}
	stop  chan struct{} // closed by Close: cuts a retry delay short

	// closing guards the queue: senders hold it for reading, Close for
	// writing, so nothing is sent on the queue once it is closed.
	closing sync.RWMutex
	closed  bool

	mu      sync.Mutex
	failErr error // the last commit's error while commits fail, else nil
	backlog int   // items the writer holds back for a retry
	lost    error // set when Close gave up on a failing disk
}

type auditOp int

const (
	opAppend   auditOp = iota // a record, group-committed
	opDurable                 // a record, waited for
	opStartJob                // a job and its record, waited for
	opOutcome                 // an outcome for an existing record, group-committed
	opFlush                   // a marker: answered once everything before it was tried
)

// auditItem is one thing for the writer to do. reply (buffered) gets the
// answer of a waited-for item.
type auditItem struct {
	op      auditOp
	rec     AuditRecord
	job     Job
	id      uint64 // opOutcome: the record to change
	outcome string
	reply   chan auditReply
	// claim settles a waited-for item's fate once: the writer takes it
	// (itemTaken) or its waiter, tired of a failing disk, abandons it
	// (itemAbandoned), so an abandoned item is never written later.
	claim atomic.Int32

	result auditReply // filled by the commit that holds the item
}

const (
	itemQueued int32 = iota
	itemTaken
	itemAbandoned
)

type auditReply struct {
	recID uint64
	job   Job
	err   error
}

func (it *auditItem) waited() bool { return it.reply != nil }

func (s *Store) startAuditWriter() {
	s.audit = &auditWriter{
		queue: make(chan *auditItem, auditQueueSize),
		done:  make(chan struct{}),
		stop:  make(chan struct{}),
	}
	go s.writeAudit()
}

func (s *Store) writeAudit() {
	w := s.audit
	defer close(w.done)
	var pending []*auditItem // group-committed items kept from a failed commit
	open := true
	delay := auditRetryMin
	var closedAt time.Time // when Close was seen while commits failed
	for {
		batch := pending
		if len(batch) == 0 {
			first, ok := <-w.queue
			if !ok {
				return
			}
			if !first.take() {
				continue
			}
			batch = append(batch, first)
		}
		retrying := len(pending) > 0
		batch, open = w.gather(batch, open, !retrying)
		err := s.commitAudit(batch)
		if err == nil {
			for _, it := range batch {
				if it.waited() {
					it.reply <- it.result
				}
			}
			pending = nil
			delay = auditRetryMin
			w.setFailing(nil, 0)
			continue
		}

		// Keep what nobody waits for; answer the rest with the error.
		pending = pending[:0:0]
		for _, it := range batch {
			if it.waited() {
				it.reply <- auditReply{err: err}
			} else {
				pending = append(pending, it)
			}
		}
		w.setFailing(err, len(pending))
		select {
		case <-w.stop:
			if closedAt.IsZero() {
				closedAt = time.Now()
			}
			if time.Since(closedAt) > auditCloseGrace {
				w.giveUp(len(pending), err)
				return
			}
			time.Sleep(auditRetryMin) // closing: retry often until the grace ends
		case <-time.After(delay):
			delay = min(2*delay, auditRetryMax)
		}
	}
}

// giveUp ends the writer on a disk that still refuses writes after Close's
// grace: it answers every waiter left in the (closed) queue and records what
// was not written, for Close to report.
func (w *auditWriter) giveUp(held int, err error) {
	for it := range w.queue {
		if !it.take() {
			continue
		}
		if it.waited() {
			it.reply <- auditReply{err: err}
		} else {
			held++
		}
	}
	w.mu.Lock()
	w.lost = fmt.Errorf("state: %d audit records not written: %w", held, err)
	w.mu.Unlock()
}

// gather adds queued items to batch: everything already queued, and, if
// linger and nobody waits yet, whatever arrives within auditLinger. Once a
// waited-for item is in the batch it stops lingering but still takes what is
// already queued, so that durable records queued during one commit share
// the next (one fsync for all of them, not one each). It stops at
// auditBatchMax, or when the queue is closed (open=false).
func (w *auditWriter) gather(batch []*auditItem, open, linger bool) ([]*auditItem, bool) {
	if !open || len(batch) >= auditBatchMax {
		return batch, open
	}
	closed := make(chan time.Time)
	close(closed)
	timeout := (<-chan time.Time)(closed)
	if linger && !slices.ContainsFunc(batch, (*auditItem).waited) {
		t := time.NewTimer(auditLinger)
		defer t.Stop()
		timeout = t.C
	}
	for len(batch) < auditBatchMax {
		var it *auditItem
		ok := true
		select {
		case it, ok = <-w.queue:
		default:
			select {
			case it, ok = <-w.queue:
			case <-timeout:
				return batch, true
			}
		}
		if !ok {
			return batch, false
		}
		if !it.take() {
			continue
		}
		batch = append(batch, it)
		if it.waited() {
			timeout = closed
		}
	}
	return batch, true
}

// take claims it for a commit; false means its waiter abandoned it.
func (it *auditItem) take() bool {
	return !it.waited() || it.claim.CompareAndSwap(itemQueued, itemTaken)
}

// commitAudit writes batch in one transaction, filling each item's result.
func (s *Store) commitAudit(batch []*auditItem) error {
	return s.update(func(tx *bbolt.Tx) error {
		audit := tx.Bucket([]byte(bucketAudit))
		for _, it := range batch {
			switch it.op {
			case opAppend, opDurable:
				id, err := appendAudit(audit, it.rec)
				if err != nil {
					return err
				}
				it.result = auditReply{recID: id}
			case opStartJob:
				job, err := createJob(tx, it.job)
				if err != nil {
					return err
				}
				rec := it.rec
				if rec.Outcome == "" {
					rec.Outcome = fmt.Sprintf("started job #%d", job.ID)
				}
				id, err := appendAudit(audit, rec)
				if err != nil {
					return err
				}
				it.result = auditReply{recID: id, job: job}
			case opOutcome:
				rec, err := get[AuditRecord](audit, itob(it.id))
				if err != nil {
					// Gone (retention) or unreadable: nothing to change, and
					// one bad id must not hold the rest of the log back.
					continue
				}
				rec.Outcome = it.outcome
				if err := put(audit, itob(it.id), rec); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

func appendAudit(b *bbolt.Bucket, rec AuditRecord) (uint64, error) {
	id, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	rec.ID = id
	return id, put(b, itob(id), rec)
}

func (w *auditWriter) setFailing(err error, backlog int) {
	w.mu.Lock()
	w.failErr, w.backlog = err, backlog
	w.mu.Unlock()
}

func (w *auditWriter) failing() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failErr
}

var errClosed = errors.New("state: the store is closed")

// send queues it. A full queue makes it wait while the writer works, and
// fails with ErrAuditBacklog while the writer's commits fail.
func (w *auditWriter) send(it *auditItem) error {
	w.closing.RLock()
	defer w.closing.RUnlock()
	if w.closed {
		return errClosed
	}
	select {
	case w.queue <- it:
		return nil
	default:
	}
	poll := time.NewTicker(auditSendPoll)
	defer poll.Stop()
	for {
		if err := w.failing(); err != nil {
			w.mu.Lock()
			held := w.backlog + len(w.queue)
			w.mu.Unlock()
			return fmt.Errorf("state: audit: %w (%d records wait): %w", ErrAuditBacklog, held, err)
		}
		select {
		case w.queue <- it:
			return nil
		case <-poll.C:
		}
	}
}

// AppendAudit queues r for the audit log, with the next ID and Time=now if
// zero, and returns at once: records are group-committed within
// milliseconds (see auditWriter for what a kill -9 can lose), and
// RecentAudit and Close wait for them. For read-only verbs; a verb that
// changes state uses AppendAuditDurable or StartJob before it acts.
//
// A nil error means the record is accepted and will be written, retried for
// as long as the disk refuses it. An error means it was not accepted: the
// store is closed, or commits fail and the queue is full (ErrAuditBacklog).
func (s *Store) AppendAudit(r AuditRecord) error {
	if r.Time.IsZero() {
		r.Time = s.stamp()
	}
	return s.audit.send(&auditItem{op: opAppend, rec: r})
}

// AppendAuditDurable writes rec and returns only once it is on disk (fsync),
// after every record queued before it, with the record's ID. For verbs that
// change state, before they act: on an error, nothing of rec was written.
// Time is now if zero.
func (s *Store) AppendAuditDurable(rec AuditRecord) (uint64, error) {
	if rec.Time.IsZero() {
		rec.Time = s.stamp()
	}
	r, err := s.await(&auditItem{op: opDurable, rec: rec})
	if err != nil {
		return 0, fmt.Errorf("state: append audit durably: %w", err)
	}
	return r.recID, nil
}

// StartJob creates j and the audit record rec in one durable transaction
// (both or neither), after every audit record queued before it. If
// rec.Outcome is empty it becomes "started job #<id>". Returns the job with
// its ID, Created (now, if zero) and Status (queued, if empty), and the
// record's ID. rec.Time is now if zero.
func (s *Store) StartJob(j Job, rec AuditRecord) (Job, uint64, error) {
	now := s.stamp()
	if j.Created.IsZero() {
		j.Created = now
	}
	if j.Status == "" {
		j.Status = JobQueued
	}
	if rec.Time.IsZero() {
		rec.Time = now
	}
	r, err := s.await(&auditItem{op: opStartJob, job: j, rec: rec})
	if err != nil {
		return Job{}, 0, fmt.Errorf("state: start job %s: %w", j.Verb, err)
	}
	return r.job, r.recID, nil
}

// SetAuditOutcome records the final outcome of record id (group-committed,
// not waited for, like AppendAudit). A record that no longer exists is left
// alone.
func (s *Store) SetAuditOutcome(id uint64, outcome string) error {
	if id == 0 {
		return errors.New("state: set audit outcome: no record id")
	}
	return s.audit.send(&auditItem{op: opOutcome, id: id, outcome: outcome})
}

// await queues it and waits for its commit. While the writer's commits fail,
// it gives up on an item still queued (behind the records held for a retry)
// and returns the disk's error: the item is then never written.
func (s *Store) await(it *auditItem) (auditReply, error) {
	it.reply = make(chan auditReply, 1)
	if err := s.audit.send(it); err != nil {
		return auditReply{}, err
	}
	poll := time.NewTicker(auditSendPoll)
	defer poll.Stop()
	for {
		select {
		case r := <-it.reply:
			return r, r.err
		case <-poll.C:
			if err := s.audit.failing(); err != nil && it.claim.CompareAndSwap(itemQueued, itemAbandoned) {
				return auditReply{}, fmt.Errorf("the audit log cannot be written: %w", err)
			}
		}
	}
}

// FlushAudit waits until everything queued before the call was tried: it is
// committed, unless commits are failing (AuditBacklog tells).
func (s *Store) FlushAudit() {
	_, _ = s.await(&auditItem{op: opFlush})
}

// AuditBacklog reports the audit log's health: while commits fail, the
// records held back for a retry and the last commit's error; else 0, nil.
func (s *Store) AuditBacklog() (int, error) {
	w := s.audit
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failErr == nil {
		return 0, nil
	}
	return w.backlog + len(w.queue), fmt.Errorf("state: audit log: %w", w.failErr)
}

func (s *Store) stopAuditWriter() error {
	w := s.audit
	w.closing.Lock()
	if w.closed {
		w.closing.Unlock()
		return nil
	}
	w.closed = true
	close(w.queue)
	close(w.stop)
	w.closing.Unlock()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lost
}

// RecentAudit returns up to n audit records, newest first, including every
// record appended before the call (unless commits fail). n <= 0 returns
// none.
func (s *Store) RecentAudit(n int) ([]AuditRecord, error) {
	s.FlushAudit()
	var recs []AuditRecord
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		recs, err = newest[AuditRecord](tx.Bucket([]byte(bucketAudit)), n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: recent audit: %w", err)
	}
	return recs, nil
}
