package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/toolbox-collective/toolbox/state"
)

const recoveredSecret = "recovered-secret-6c2e91fd-unmistakable"

// repositoryCopy writes what the backup repository keeps of a state (its
// BackupWithKey copy) into dir, as recover fetches it, and returns the path
// and the key.
func repositoryCopy(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "live.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetSecret("app/wiki/DB", recoveredSecret); err != nil {
		t.Fatal(err)
	}
	if err := st.PutApp(state.App{Name: "wiki", Catalog: "mediawiki"}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := st.BackupWithKey(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, ".recovering-1")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := state.ParseKey(string(readOrFail(t, state.KeyPath(st.Path()))))
	if err != nil {
		t.Fatal(err)
	}
	return path, key
}

func readOrFail(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The state and its key come back from the repository's copy: the key into
// the key file, out of the state file, which then reveals nothing.
func TestInstallRecoveredState(t *testing.T) {
	dir := t.TempDir()
	fetched, key := repositoryCopy(t, dir)
	cfg := config{StatePath: filepath.Join(dir, "toolbox.db")}
	apps, err := installRecoveredState(cfg, fetched)
	if err != nil || apps != 1 {
		t.Fatalf("installRecoveredState = %d, %v; want 1 app", apps, err)
	}
	if got, err := state.ParseKey(string(readOrFail(t, state.KeyPath(cfg.StatePath)))); err != nil || !bytes.Equal(got, key) {
		t.Errorf("the key file after recovery holds %v, %v; want the state's key", got, err)
	}
	raw := readOrFail(t, cfg.StatePath)
	if bytes.Contains(raw, []byte(recoveredSecret)) || bytes.Contains(raw, []byte(state.EncodeKey(key))) || bytes.Contains(raw, key) {
		t.Error("the recovered state file reveals its secret or its key")
	}
	st, err := state.Open(cfg.StatePath, cfg.stateOptions())
	if err != nil {
		t.Fatalf("the recovered state does not open with its key file: %v", err)
	}
	defer st.Close()
	if v, err := st.Secret("app/wiki/DB"); err != nil || v.Reveal() != recoveredSecret {
		t.Errorf("the recovered secret: %v", err)
	}
}

func TestInstallRecoveredStateWithAnotherKey(t *testing.T) {
	dir := t.TempDir()
	fetched, _ := repositoryCopy(t, dir)
	other, _ := state.NewKey()
	cfg := config{StatePath: filepath.Join(dir, "toolbox.db"), StateKey: other}
	_, err := installRecoveredState(cfg, fetched)
	if err == nil || !strings.Contains(err.Error(), state.EnvKey) {
		t.Errorf("recovery with another TOOLBOX_STATE_KEY = %v, want it refused by name", err)
	}
	if _, err := os.Stat(cfg.StatePath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused recovery put a state in place: %v", err)
	}
}
