package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Values long and odd enough that finding them in a file's bytes is no chance.
var knownSecrets = map[string]Secret{
	"mattermost.bot-token":      "bot-token-7f3c9a1e5d2b4086-unmistakable",
	"mattermost.admin-password": "admin-password-Qx81Lm2Zp0Vw-unmistakable",
	"app/wiki/DB_PASSWORD":      "wiki-db-password-3b5f8c0e9a7d-unmistakable",
}

// leaks returns the known secrets (and the key, in any form) found in data.
func leaks(data []byte, key []byte) []string {
	var found []string
	for name, v := range knownSecrets {
		if bytes.Contains(data, []byte(v.Reveal())) {
			found = append(found, name)
		}
	}
	if key != nil && (bytes.Contains(data, key) || bytes.Contains(data, []byte(EncodeKey(key)))) {
		found = append(found, "the state key")
	}
	return found
}

func setKnownSecrets(t *testing.T, s *Store) {
	t.Helper()
	for name, v := range knownSecrets {
		if err := s.SetSecret(name, v); err != nil {
			t.Fatal(err)
		}
	}
}

func checkKnownSecrets(t *testing.T, s *Store) {
	t.Helper()
	for name, want := range knownSecrets {
		if got, err := s.Secret(name); err != nil || got != want {
			t.Errorf("Secret(%q) = %v, %v; want it back", name, err, got == want)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// A copy of the state file, and each kind of backup of it, reveals no
// secret; the key file beside it is mode 0600.
func TestSecretsEncryptedAtRest(t *testing.T) {
	s := openTest(t, Options{})
	setKnownSecrets(t, s)
	if _, err := s.EnsureSecret("app/wiki/KEY", func() (Secret, error) { return "ensured-secret-5e1f0b7a-unmistakable", nil }); err != nil {
		t.Fatal(err)
	}
	checkKnownSecrets(t, s)
	s.FlushAudit()

	if got := leaks(readFile(t, s.Path()), s.key); len(got) > 0 {
		t.Errorf("the state file reveals %v", got)
	}
	if bytes.Contains(readFile(t, s.Path()), []byte("ensured-secret-5e1f0b7a")) {
		t.Error("the state file reveals the ensured secret")
	}
	var buf bytes.Buffer
	if _, err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	if got := leaks(buf.Bytes(), s.key); len(got) > 0 {
		t.Errorf("Backup's copy reveals %v", got)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if _, err := s.BackupFile(copyPath); err != nil {
		t.Fatal(err)
	}
	if got := leaks(readFile(t, copyPath), s.key); len(got) > 0 {
		t.Errorf("BackupFile's copy (toolbox state backup) reveals %v", got)
	}

	fi, err := os.Stat(KeyPath(s.Path()))
	if err != nil {
		t.Fatalf("no key file beside the state: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", fi.Mode().Perm())
	}
	if k, err := ParseKey(string(readFile(t, KeyPath(s.Path())))); err != nil || !bytes.Equal(k, s.key) {
		t.Errorf("key file holds %v, %v; want the key in use", k, err)
	}

	// The copy opens only with the key; without it, for a check, it
	// refuses its secrets.
	c, err := Open(copyPath, Options{WithoutKey: true})
	if err != nil {
		t.Fatalf("Open(copy, WithoutKey): %v", err)
	}
	if err := c.Check(); err != nil {
		t.Error(err)
	}
	if _, err := c.Secret("mattermost.bot-token"); !errors.Is(err, ErrKey) {
		t.Errorf("Secret without the key = %v, want ErrKey", err)
	}
	if err := c.SetSecret("x", "y"); !errors.Is(err, ErrKey) {
		t.Errorf("SetSecret without the key = %v, want ErrKey", err)
	}
	closeChecked(t, c)
	if _, err := os.Stat(KeyPath(copyPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("opening a copy without its key made a key file: %v", err)
	}
}

// A sealed value moved under another name does not open.
func TestSecretSwapRefused(t *testing.T) {
	s := openTest(t, Options{})
	setKnownSecrets(t, s)
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSecrets))
		return b.Put([]byte("app/wiki/DB_PASSWORD"), bytes.Clone(b.Get([]byte("mattermost.admin-password"))))
	}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Secret("app/wiki/DB_PASSWORD"); err == nil {
		t.Errorf("a value moved from another name opened: %q", v.Reveal())
	}
}

// writeVersion1 makes a file as a version-1 toolbox left it: secrets in
// clear, no index of active jobs, no key.
func writeVersion1(t *testing.T, path string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{bucketMeta, bucketJobs, bucketAudit, bucketAdmins, bucketSettings, bucketSecrets, bucketNonces, bucketApps} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := put(tx.Bucket([]byte(bucketMeta)), []byte(keySchema), 1); err != nil {
			return err
		}
		for name, v := range knownSecrets {
			rec, _ := json.Marshal(map[string]any{"value": v.Reveal(), "set": time.Now()})
			if err := tx.Bucket([]byte(bucketSecrets)).Put([]byte(name), rec); err != nil {
				return err
			}
		}
		jobs := tx.Bucket([]byte(bucketJobs))
		for i, st := range []JobStatus{JobSucceeded, JobRunning, JobFailed} {
			id, _ := jobs.NextSequence()
			if err := put(jobs, itob(id), Job{ID: id, Verb: fmt.Sprint("v", i), Status: st}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMigrateVersion1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	writeVersion1(t, path)
	if got := leaks(readFile(t, path), nil); len(got) != len(knownSecrets) {
		t.Fatalf("the version-1 file shows %v in clear, want all of them (else this test proves nothing)", got)
	}
	s := openTestPath(t, path)
	checkKnownSecrets(t, s)
	if got := leaks(readFile(t, path), s.key); len(got) > 0 {
		t.Errorf("after the migration the file still reveals %v", got)
	}
	if active, _ := s.ActiveJobs(); len(active) != 1 || active[0].ID != 2 {
		t.Errorf("ActiveJobs after the migration = %v, want [2]", ids(active))
	}
	if j, err := s.CreateJob(Job{Verb: "next"}); err != nil || j.ID != 4 {
		t.Errorf("CreateJob after the migration = %d, %v; want id 4 (sequences kept)", j.ID, err)
	}
	var version int
	var scrub bool
	_ = s.db.View(func(tx *bbolt.Tx) error {
		version, _ = get[int](tx.Bucket([]byte(bucketMeta)), []byte(keySchema))
		scrub, _ = get[bool](tx.Bucket([]byte(bucketMeta)), []byte(keyScrub))
		return nil
	})
	if version != SchemaVersion || scrub {
		t.Errorf("after the migration: schema %d, scrub pending %v; want %d, false", version, scrub, SchemaVersion)
	}
}

// A wrong or missing key is refused with what to set, and changes nothing.
func TestWrongKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	setKnownSecrets(t, s)
	key := s.key
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	unchanged := func(t *testing.T) {
		t.Helper()
		if !bytes.Equal(before, readFile(t, path)) {
			t.Error("a refused Open changed the file")
		}
	}

	other, _ := newKey()
	_, err = Open(path, Options{Key: other})
	if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), EnvKey) {
		t.Errorf("Open with another key = %v, want ErrKey naming %s", err, EnvKey)
	}
	unchanged(t)

	if err := os.WriteFile(KeyPath(path), []byte(EncodeKey(other)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), KeyPath(path)) {
		t.Errorf("Open with another key file = %v, want ErrKey naming the key file", err)
	}
	unchanged(t)

	if err := os.Remove(KeyPath(path)); err != nil {
		t.Fatal(err)
	}
	_, err = Open(path, Options{})
	if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "missing") || !strings.Contains(err.Error(), EnvKey) {
		t.Errorf("Open without the key file = %v, want ErrKey saying it is missing and naming %s", err, EnvKey)
	}
	if _, err := os.Stat(KeyPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Open made a key file: %v", err)
	}
	unchanged(t)

	if err := os.WriteFile(KeyPath(path), []byte("not base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); err == nil || !strings.Contains(err.Error(), "base64") {
		t.Errorf("Open with a garbled key file = %v, want it said", err)
	}
	unchanged(t)

	// The right key, from the environment: everything is there.
	s = openTestPathOpts(t, path, Options{Key: key})
	checkKnownSecrets(t, s)
}

func openTestPathOpts(t *testing.T, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeChecked(t, s) })
	return s
}

func TestKeyFromEnvironment(t *testing.T) {
	key, _ := newKey()
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s := openTestPathOpts(t, path, Options{Key: key})
	setKnownSecrets(t, s)
	if _, err := os.Stat(KeyPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key from the environment made a key file: %v", err)
	}
	if _, err := s.RotateKey(); !errors.Is(err, ErrKeyFromEnv) {
		t.Errorf("RotateKey with the key from the environment = %v, want ErrKeyFromEnv", err)
	}
	checkKnownSecrets(t, s)
	if _, err := Open(filepath.Join(t.TempDir(), "x.db"), Options{Key: key[:16]}); !errors.Is(err, ErrKey) {
		t.Errorf("Open with a 16-byte key = %v, want ErrKey", err)
	}
}

func TestRotateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	setKnownSecrets(t, s)
	old, oldID := s.key, s.KeyID()
	id, err := s.RotateKey()
	if err != nil {
		t.Fatalf("RotateKey: %v", err)
	}
	if id == oldID || id != s.KeyID() || bytes.Equal(old, s.key) {
		t.Errorf("RotateKey = %q (was %q, now %q): want a new key in use", id, oldID, s.KeyID())
	}
	checkKnownSecrets(t, s)
	if k, _ := readKeyFile(KeyPath(path)); !bytes.Equal(k, s.key) {
		t.Error("the key file does not hold the new key")
	}
	if _, err := os.Stat(keyPathNew(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left behind: %v", keyPathNew(path), err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{Key: old}); !errors.Is(err, ErrKey) {
		t.Errorf("Open with the old key = %v, want ErrKey", err)
	}
	s = openTestPath(t, path)
	checkKnownSecrets(t, s)
}

// The two places a rotation can stop: before its commit (a new key file
// beside the old), after it (the secrets under the new key, the rename not
// done). Both open, with the key on disk.
func TestRotateKeyInterrupted(t *testing.T) {
	t.Run("before the commit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "toolbox.db")
		s, _ := Open(path, Options{})
		setKnownSecrets(t, s)
		s.Close()
		next, _ := newKey()
		if err := WriteKeyFile(keyPathNew(path), next); err != nil {
			t.Fatal(err)
		}
		s = openTestPath(t, path)
		checkKnownSecrets(t, s)
		if _, err := os.Stat(keyPathNew(path)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the unused new key is still there: %v", err)
		}
	})
	t.Run("after the commit", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "toolbox.db")
		s, _ := Open(path, Options{})
		setKnownSecrets(t, s)
		old := s.key
		if _, err := s.RotateKey(); err != nil {
			t.Fatal(err)
		}
		next := s.key
		s.Close()
		// Undo the rename: the new key back under its temporary name.
		if err := os.Rename(KeyPath(path), keyPathNew(path)); err != nil {
			t.Fatal(err)
		}
		if err := WriteKeyFile(KeyPath(path), old); err != nil {
			t.Fatal(err)
		}
		s = openTestPath(t, path)
		checkKnownSecrets(t, s)
		if k, _ := readKeyFile(KeyPath(path)); !bytes.Equal(k, next) {
			t.Error("Open did not finish the rename of the new key")
		}
	})
}

const rotateChildEnv = "TOOLBOX_STATE_ROTATE_CHILD"

// rotateChild rotates the key of the database at path until it is killed.
func rotateChild(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready")
	for {
		if _, err := s.RotateKey(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("rotated")
	}
}

// TestRotateKeyKill9 kills a process that rotates the key over and over at
// random points: the file always opens with the key on disk, every secret
// intact.
func TestRotateKeyKill9(t *testing.T) {
	runs := 15
	if testing.Short() {
		runs = 3
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	setKnownSecrets(t, s)
	s.Close()
	rotations := 0
	for run := range runs {
		after := time.Duration(5+rand.IntN(150)) * time.Millisecond
		killChildAfter(t, exe, []string{rotateChildEnv + "=" + path}, after, func(string) { rotations++ })
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("run %d: Open after kill -9 during a rotation: %v", run, err)
		}
		checkKnownSecrets(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			t.Fatalf("run %d failed", run)
		}
	}
	t.Logf("%d kills during %d rotations: every time the state opened with its secrets", runs, rotations)
}

// The copy for the backup repository carries its key; taking it out leaves
// a file that reveals nothing and opens with that key.
func TestBackupWithKey(t *testing.T) {
	s := openTest(t, Options{})
	setKnownSecrets(t, s)
	path := filepath.Join(t.TempDir(), "toolbox.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BackupWithKey(f); err != nil {
		t.Fatalf("BackupWithKey: %v", err)
	}
	f.Close()
	if !bytes.Contains(readFile(t, path), []byte(EncodeKey(s.key))) {
		t.Error("the repository's copy does not carry its key")
	}
	key, err := TakeBundledKey(path)
	if err != nil || !bytes.Equal(key, s.key) {
		t.Fatalf("TakeBundledKey = %v, %v; want the key", key, err)
	}
	if got := leaks(readFile(t, path), s.key); len(got) > 0 {
		t.Errorf("after taking the key, the copy reveals %v", got)
	}
	c := openTestPathOpts(t, path, Options{Key: key})
	checkKnownSecrets(t, c)

	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(s.Path()), "*bundle*")); len(left) > 0 {
		t.Errorf("BackupWithKey left %v", left)
	}
	// One a kill left behind goes at the next open.
	stale := filepath.Join(filepath.Dir(path), bundlePrefix(path)+"123")
	if err := os.WriteFile(stale, []byte("a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = openTestPathOpts(t, path, Options{Key: key})
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a stale bundle survived Open: %v", err)
	}

	// A copy without a key (Backup's) has none to take.
	plain := filepath.Join(t.TempDir(), "plain.db")
	if _, err := s.BackupFile(plain); err != nil {
		t.Fatal(err)
	}
	if key, err := TakeBundledKey(plain); key != nil || err != nil {
		t.Errorf("TakeBundledKey(plain copy) = %v, %v; want nil, nil", key, err)
	}
}

func TestParseKey(t *testing.T) {
	key, _ := newKey()
	for _, in := range []string{EncodeKey(key), EncodeKey(key) + "\n", "  " + strings.TrimRight(EncodeKey(key), "=")} {
		if got, err := ParseKey(in); err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseKey(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "short", EncodeKey(key[:16]), EncodeKey(append(key, 1))} {
		if _, err := ParseKey(in); err == nil {
			t.Errorf("ParseKey(%q) succeeded", in)
		}
	}
}

func FuzzParseKey(f *testing.F) {
	key, _ := newKey()
	f.Add(EncodeKey(key))
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		k, err := ParseKey(in)
		if err != nil {
			return
		}
		if len(k) != KeySize {
			t.Fatalf("ParseKey(%q) = %d bytes", in, len(k))
		}
		if again, err := ParseKey(EncodeKey(k)); err != nil || !bytes.Equal(again, k) {
			t.Fatalf("round trip of %q: %v", in, err)
		}
	})
}

// Readers and writers of secrets during rotations always see whole values.
func TestRotateKeyConcurrent(t *testing.T) {
	s := openTest(t, Options{})
	setKnownSecrets(t, s)
	stop := make(chan struct{})
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if i%2 == 0 {
					for name, want := range knownSecrets {
						if got, err := s.Secret(name); err != nil || got != want {
							errs <- fmt.Errorf("Secret(%q) during a rotation: %v", name, err)
							return
						}
					}
				} else if err := s.SetSecret(fmt.Sprint("app/x/K", i), Secret(fmt.Sprint("v", n))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 10 {
		if _, err := s.RotateKey(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkKnownSecrets(t, s)
}
