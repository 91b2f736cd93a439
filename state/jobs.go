package state

import (
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// JobStatus is where a job is in its life.
type JobStatus string

// Job statuses. A job goes queued -> running -> succeeded or failed; a job
// that was queued or running when the program stopped becomes interrupted.
const (
	JobQueued      JobStatus = "queued"
	JobRunning     JobStatus = "running"
	JobSucceeded   JobStatus = "succeeded"
	JobFailed      JobStatus = "failed"
	JobInterrupted JobStatus = "interrupted"
)

// Done reports whether the job has ended, well or not.
func (st JobStatus) Done() bool {
	switch st {
	case JobSucceeded, JobFailed, JobInterrupted:
		return true
	}
	return false
}

// active reports whether the job is waiting or running.
func (st JobStatus) active() bool { return st == JobQueued || st == JobRunning }

// Job is a long-running command (add, backup, restore...).
type Job struct {
	ID        uint64    `json:"id"`
	Verb      string    `json:"verb"`
	Args      []string  `json:"args,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	UserName  string    `json:"user_name,omitempty"`
	ChannelID string    `json:"channel_id,omitempty"`
	PostID    string    `json:"post_id,omitempty"` // the bot post that shows progress
	Status    JobStatus `json:"status"`
	Progress  string    `json:"progress,omitempty"`
	Result    string    `json:"result,omitempty"`
	Error     string    `json:"error,omitempty"`
	Created   time.Time `json:"created,omitzero"`
	Started   time.Time `json:"started,omitzero"`
	Finished  time.Time `json:"finished,omitzero"`
}

// Duration is Finished-Started for a job that started and finished, else 0.
func (j Job) Duration() time.Duration {
	if j.Started.IsZero() || j.Finished.IsZero() {
		return 0
	}
	return j.Finished.Sub(j.Started)
}

// CreateJob stores a new job and returns it with its ID (1, 2, 3...), Created
// (now, if zero) and Status (queued, if empty) set. The write is durable when
// CreateJob returns.
func (s *Store) CreateJob(j Job) (Job, error) {
	if j.Created.IsZero() {
		j.Created = s.stamp()
	}
	if j.Status == "" {
		j.Status = JobQueued
	}
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketJobs))
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		j.ID = id
		return put(b, itob(id), j)
	})
	if err != nil {
		return Job{}, fmt.Errorf("state: create job %s: %w", j.Verb, err)
	}
	return j, nil
}

// UpdateJob reads job id, calls fn to change it and writes it back, in one
// durable transaction. fn cannot change the ID. If fn returns an error,
// nothing is written and UpdateJob returns that error as is. A missing job is
// ErrNotFound.
func (s *Store) UpdateJob(id uint64, fn func(*Job) error) (Job, error) {
	var j Job
	var fnErr error
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketJobs))
		var err error
		if j, err = get[Job](b, itob(id)); err != nil {
			return err
		}
		if fnErr = fn(&j); fnErr != nil {
			return fnErr
		}
		j.ID = id
		return put(b, itob(id), j)
	})
	if fnErr != nil {
		return Job{}, fnErr
	}
	if err != nil {
		return Job{}, fmt.Errorf("state: update job %d: %w", id, err)
	}
	return j, nil
}

// Job returns job id, or ErrNotFound.
func (s *Store) Job(id uint64) (Job, error) {
	var j Job
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		j, err = get[Job](tx.Bucket([]byte(bucketJobs)), itob(id))
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("state: job %d: %w", id, err)
	}
	return j, nil
}

// RecentJobs returns up to n jobs, newest first. n <= 0 returns none.
func (s *Store) RecentJobs(n int) ([]Job, error) {
	var jobs []Job
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		jobs, err = newest[Job](tx.Bucket([]byte(bucketJobs)), n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: recent jobs: %w", err)
	}
	return jobs, nil
}

// ActiveJobs returns the queued and running jobs, oldest first.
// It reads every job; the list is expected to stay in the thousands.
func (s *Store) ActiveJobs() ([]Job, error) {
	var jobs []Job
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		jobs, err = activeJobs(tx.Bucket([]byte(bucketJobs)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: active jobs: %w", err)
	}
	return jobs, nil
}

func activeJobs(b *bbolt.Bucket) ([]Job, error) {
	jobs := []Job{}
	err := b.ForEach(func(k, v []byte) error {
		j, err := decode[Job](v)
		if err != nil {
			return fmt.Errorf("job %d: %w", btoi(k), err)
		}
		if j.Status.active() {
			jobs = append(jobs, j)
		}
		return nil
	})
	return jobs, err
}

// InterruptRunning marks every queued or running job interrupted, with
// Finished=now and Error=reason, and returns them, oldest first. Call it at
// start-up: no job survives its process.
func (s *Store) InterruptRunning(reason string) ([]Job, error) {
	var jobs []Job
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketJobs))
		var err error
		if jobs, err = activeJobs(b); err != nil { // collect first: no writes while a cursor walks
			return err
		}
		now := s.stamp()
		for i := range jobs {
			jobs[i].Status = JobInterrupted
			jobs[i].Finished = now
			jobs[i].Error = reason
			if err := put(b, itob(jobs[i].ID), jobs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: interrupt running jobs: %w", err)
	}
	return jobs, nil
}
