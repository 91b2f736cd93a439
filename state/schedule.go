package state

import (
	"errors"
	"fmt"
	"time"
)

// lastRunPrefix keys the scheduler's record of each job's last run.
const lastRunPrefix = "schedule.last-run."

// LastRun is when the scheduled job name last ran (the occurrence it ran
// for); the zero time when it never did.
func (s *Store) LastRun(name string) (time.Time, error) {
	v, err := s.Setting(lastRunPrefix + name)
	if errors.Is(err, ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("state: last run of %s: %w", name, err)
	}
	return t, nil
}

// SetLastRun records that the scheduled job name ran for the occurrence t.
func (s *Store) SetLastRun(name string, t time.Time) error {
	return s.SetSetting(lastRunPrefix+name, t.UTC().Format(time.RFC3339Nano))
}
