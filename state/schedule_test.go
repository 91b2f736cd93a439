package state

import (
	"path/filepath"
	"testing"
	"time"
)

func TestLastRun(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.LastRun("backup"); err != nil || !got.IsZero() {
		t.Fatalf("LastRun of a job that never ran = %v, %v; want the zero time", got, err)
	}
	want := time.Date(2026, 12, 1, 3, 0, 0, 0, time.FixedZone("CET", 3600))
	if err := s.SetLastRun("backup", want); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LastRun("backup"); err != nil || !got.Equal(want) {
		t.Errorf("LastRun = %v, %v; want %v", got, err, want)
	}
}
