package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/toolbox-collective/toolbox/engine"
	"github.com/toolbox-collective/toolbox/state"
)

// stateRecover is `toolbox state recover`: on a machine whose state is
// missing, it fetches the newest one from the backup repository, with the
// password the operator gives (TOOLBOX_BACKUP_PASSWORD). A state that is
// there is kept, so that running it again changes nothing.
func stateRecover(ctx context.Context, cfg config, stdout io.Writer) error {
	if _, err := os.Stat(cfg.StatePath); err == nil {
		fmt.Fprintf(stdout, "the toolbox's state is here already (%s): kept\n", cfg.StatePath)
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if cfg.BackupPassword == "" {
		return errors.New("TOOLBOX_BACKUP_PASSWORD is needed to recover: the backup repository's password, as `toolbox backup key` showed it")
	}
	backups := engine.NewBackups(newEngine(cfg), engine.BackupConfig{
		ResticImage: cfg.ResticImage, Repository: cfg.BackupRepository, LocalVolume: cfg.BackupVolume, Env: revealAll(cfg.BackupEnv),
		Password: func() (string, error) { return cfg.BackupPassword.Reveal(), nil },
	})
	tmp, err := os.CreateTemp(filepath.Dir(cfg.StatePath), ".recovering-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a success, renamed away
	when, err := backups.LatestState(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch the state from the backup repository: %w", err)
	}
	apps, err := installRecoveredState(cfg, tmp.Name())
	if err != nil {
		return err
	}
	where, _ := backups.Where()
	fmt.Fprintf(stdout, "recovered the toolbox's state of %s (%d apps) from %s\n", when.Local().Format("2006-01-02 15:04"), apps, where)
	return nil
}

// installRecoveredState puts the state fetched from the backup repository
// (the file fetched) in place of none, with its key, and returns how many
// apps it records.
func installRecoveredState(cfg config, fetched string) (int, error) {
	// The repository's copy carries its key (state.BackupWithKey): it goes
	// back into the key file, out of the state file. An older copy has none
	// (its secrets are in clear, sealed when it opens) and gets a new key.
	key, err := state.TakeBundledKey(fetched)
	if err != nil {
		return 0, err
	}
	switch {
	case cfg.StateKey != nil:
		if key != nil && !bytes.Equal(key, cfg.StateKey) {
			return 0, fmt.Errorf("the state in the backup repository is encrypted with another key than %s: unset it (the key comes back with the state), or set it to the key of that state", state.EnvKey)
		}
		key = cfg.StateKey
	case key == nil:
		if key, err = state.NewKey(); err != nil {
			return 0, err
		}
		fallthrough
	default:
		if err := state.WriteKeyFile(state.KeyPath(cfg.StatePath), key); err != nil {
			return 0, err
		}
	}
	// Only a state that opens takes the place of none.
	st, err := state.Open(fetched, state.Options{Key: key})
	if err != nil {
		return 0, fmt.Errorf("the state fetched from the backup repository does not open: %w", err)
	}
	apps, err := st.Apps()
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if err := os.Rename(fetched, cfg.StatePath); err != nil {
		return 0, err
	}
	return len(apps), nil
}
