package state

import (
	"bytes"
	"encoding/json"
	"errors"
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
// CreateJob returns. A job a user asked for is started with StartJob, which
// writes its audit record in the same transaction.
func (s *Store) CreateJob(j Job) (Job, error) {
	if j.Created.IsZero() {
		j.Created = s.stamp()
	}
	if j.Status == "" {
		j.Status = JobQueued
	}
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		j, err = createJob(tx, j)
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("state: create job %s: %w", j.Verb, err)
	}
	return j, nil
}

// createJob gives j the next ID, stores it and indexes it if active.
func createJob(tx *bbolt.Tx, j Job) (Job, error) {
	b := tx.Bucket([]byte(bucketJobs))
	id, err := b.NextSequence()
	if err != nil {
		return Job{}, err
	}
	j.ID = id
	return j, putJob(tx, j)
}

// putJob stores j and keeps the active index in step with its status.
func putJob(tx *bbolt.Tx, j Job) error {
	if err := put(tx.Bucket([]byte(bucketJobs)), itob(j.ID), j); err != nil {
		return err
	}
	active := tx.Bucket([]byte(bucketJobsActive))
	if j.Status.active() {
		return active.Put(itob(j.ID), nil)
	}
	return active.Delete(itob(j.ID))
}

// UpdateJob reads job id, calls fn to change it and writes it back, in one
// durable transaction. fn cannot change the ID. If fn returns an error,
// nothing is written and UpdateJob returns that error as is. A missing job is
// ErrNotFound.
func (s *Store) UpdateJob(id uint64, fn func(*Job) error) (Job, error) {
	var j Job
	var fnErr error
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketJobs))
		var err error
		if j, err = get[Job](b, itob(id)); err != nil {
			return err
		}
		if fnErr = fn(&j); fnErr != nil {
			return fnErr
		}
		j.ID = id
		return putJob(tx, j)
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
	err := s.view(func(tx *bbolt.Tx) error {
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
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		jobs, err = newest[Job](tx.Bucket([]byte(bucketJobs)), n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: recent jobs: %w", err)
	}
	return jobs, nil
}

// ActiveJobs returns the queued and running jobs, oldest first. It reads the
// index of active jobs, not the whole history.
func (s *Store) ActiveJobs() ([]Job, error) {
	var jobs []Job
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		jobs, err = activeJobs(tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: active jobs: %w", err)
	}
	return jobs, nil
}

func activeJobs(tx *bbolt.Tx) ([]Job, error) {
	b := tx.Bucket([]byte(bucketJobs))
	jobs := []Job{}
	err := tx.Bucket([]byte(bucketJobsActive)).ForEach(func(k, _ []byte) error {
		j, err := get[Job](b, k)
		if errors.Is(err, ErrNotFound) {
			return nil // indexed, then removed by retention: not active
		}
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

// buildActiveIndex fills the index of active jobs from the whole history:
// once, when Open finds a file without one.
func buildActiveIndex(tx *bbolt.Tx) error {
	active := tx.Bucket([]byte(bucketJobsActive))
	return tx.Bucket([]byte(bucketJobs)).ForEach(func(k, v []byte) error {
		var j struct {
			Status JobStatus `json:"status"`
		}
		if err := json.Unmarshal(v, &j); err != nil {
			return fmt.Errorf("job %d: %w", btoi(k), err)
		}
		if j.Status.active() {
			return active.Put(bytes.Clone(k), nil)
		}
		return nil
	})
}

// InterruptRunning marks every queued or running job interrupted, with
// Finished=now and Error=reason, and returns them, oldest first. Call it at
// start-up: no job survives its process.
func (s *Store) InterruptRunning(reason string) ([]Job, error) {
	var jobs []Job
	err := s.update(func(tx *bbolt.Tx) error {
		var err error
		if jobs, err = activeJobs(tx); err != nil { // collect first: no writes while a cursor walks
			return err
		}
		now := s.stamp()
		for i := range jobs {
			jobs[i].Status = JobInterrupted
			jobs[i].Finished = now
			jobs[i].Error = reason
			if err := putJob(tx, jobs[i]); err != nil {
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
