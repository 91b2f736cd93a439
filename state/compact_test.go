package state

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// sealedRun matches what keyring.seal writes (unpadded standard base64);
// a nonce, a tag and a few bytes make at least 40 characters.
var sealedRun = regexp.MustCompile(`[A-Za-z0-9+/]{40,}`)

// recoverSecrets is the attack: with key and the raw bytes of a state file
// (or of a copy), open every sealed-looking run under every known name, and
// return the clear values found, live or not.
func recoverSecrets(t *testing.T, raw []byte, key []byte, names []string) []string {
	t.Helper()
	k, err := newKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, run := range sealedRun.FindAll(raw, -1) {
		for _, name := range names {
			// A run may carry neighbouring bytes: try every start.
			for i := 0; i+40 <= len(run); i++ {
				if v, err := k.open(name, string(run[i:])); err == nil {
					found = append(found, v)
				}
			}
		}
	}
	return found
}

// fileAndBackup are the raw bytes of the live file and of a BackupFile copy
// (what `toolbox state backup` writes: it copies free pages too).
func fileAndBackup(t *testing.T, s *Store) map[string][]byte {
	t.Helper()
	copyPath := filepath.Join(t.TempDir(), "backup.db")
	if _, err := s.BackupFile(copyPath); err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{"the state file": readFile(t, s.Path()), "its backup": readFile(t, copyPath)}
}

func knownNames() []string {
	var names []string
	for name := range knownSecrets {
		names = append(names, name)
	}
	return names
}

// After a rotation, the old key opens nothing in the file or its backup:
// the values it sealed are not left in free pages (review finding 4).
func TestRotateKeyLeavesNothingForTheOldKey(t *testing.T) {
	s := openTest(t, Options{})
	setKnownSecrets(t, s)
	old := s.key
	for name, raw := range fileAndBackup(t, s) {
		if got := recoverSecrets(t, raw, old, knownNames()); len(got) < len(knownSecrets) {
			t.Fatalf("the attack finds only %d of %d secrets in %s before the rotation: it proves nothing", len(got), len(knownSecrets), name)
		}
	}
	if _, err := s.RotateKey(); err != nil {
		t.Fatal(err)
	}
	for name, raw := range fileAndBackup(t, s) {
		if got := recoverSecrets(t, raw, old, knownNames()); len(got) > 0 {
			t.Errorf("the old key opens %d values in %s after the rotation", len(got), name)
		}
		// The copy's own free pages may repeat live values (compact clears
		// the scrub mark in it after copying), never other ones.
		distinct := map[string]bool{}
		for _, v := range recoverSecrets(t, raw, s.key, knownNames()) {
			distinct[v] = true
		}
		if len(distinct) != len(knownSecrets) {
			t.Errorf("the new key opens %d distinct values in %s, want the %d live secrets", len(distinct), name, len(knownSecrets))
		}
	}
	checkKnownSecrets(t, s)
}

// A deleted secret cannot be opened from the file or its backup with the
// key beside it (review finding 5): DeleteSecret, as forget-admin-password
// uses it, and DeleteSecrets, as remove --purge does.
func TestDeletedSecretsLeaveNothing(t *testing.T) {
	const name = "mattermost.admin-password"
	s := openTest(t, Options{})
	setKnownSecrets(t, s)
	if err := s.SetSecret("app/wiki/ADMIN", "wiki-admin-Zk41mQ-unmistakable"); err != nil {
		t.Fatal(err)
	}
	doomed := []string{name, "app/wiki/DB_PASSWORD", "app/wiki/ADMIN"}
	for what, raw := range fileAndBackup(t, s) {
		if got := recoverSecrets(t, raw, s.key, doomed); len(got) < len(doomed) {
			t.Fatalf("the attack finds %d of %d in %s before the deletes: it proves nothing", len(got), len(doomed), what)
		}
	}
	if err := s.DeleteSecret(name); err != nil {
		t.Fatal(err)
	}
	for what, raw := range fileAndBackup(t, s) {
		if got := recoverSecrets(t, raw, s.key, []string{name}); len(got) > 0 {
			t.Errorf("DeleteSecret: %s still holds the deleted %s", what, name)
		}
	}
	if n, err := s.DeleteSecrets("app/wiki/"); err != nil || n != 2 {
		t.Fatalf("DeleteSecrets = %d, %v; want 2", n, err)
	}
	for what, raw := range fileAndBackup(t, s) {
		if got := recoverSecrets(t, raw, s.key, doomed); len(got) > 0 {
			t.Errorf("DeleteSecrets: %s still holds %d deleted secrets", what, len(got))
		}
	}
	if _, err := s.Secret("mattermost.bot-token"); err != nil {
		t.Errorf("the secret kept is gone: %v", err)
	}
	// Deleting what is not there is no error and needs no compaction.
	if err := s.DeleteSecret(name); err != nil {
		t.Error(err)
	}
	if n, err := s.DeleteSecrets("app/none/"); err != nil || n != 0 {
		t.Errorf("DeleteSecrets of nothing = %d, %v", n, err)
	}
}

// A stop after a delete committed but before its compaction: the mark makes
// the next Open compact.
func TestScrubMarkSurvivesAStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s := openTestPath(t, path)
	setKnownSecrets(t, s)
	key := s.key
	// What DeleteSecret commits, without its compaction.
	if err := s.update(func(tx *bbolt.Tx) error {
		if err := tx.Bucket([]byte(bucketSecrets)).Delete([]byte("app/wiki/DB_PASSWORD")); err != nil {
			return err
		}
		return markScrub(tx)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := recoverSecrets(t, readFile(t, path), key, []string{"app/wiki/DB_PASSWORD"}); len(got) == 0 {
		t.Fatal("the deleted value is not in a free page before the reopen: the test proves nothing")
	}
	s = openTestPath(t, path)
	if got := recoverSecrets(t, readFile(t, path), key, []string{"app/wiki/DB_PASSWORD"}); len(got) > 0 {
		t.Error("Open did not compact a file marked for it")
	}
	_ = s.view(func(tx *bbolt.Tx) error {
		if tx.Bucket([]byte(bucketMeta)).Get([]byte(keyScrub)) != nil {
			t.Error("the mark stayed after the compaction")
		}
		return nil
	})
}

// A clear value in the secrets bucket of a migrated file was planted by
// someone without the key: refused, with a message that says so.
func TestUnsealedSecretRefused(t *testing.T) {
	s := openTest(t, Options{})
	if err := s.update(func(tx *bbolt.Tx) error {
		return put(tx.Bucket([]byte(bucketSecrets)), []byte("buttons.hmac-key"), secretRecord{Value: "planted"})
	}); err != nil {
		t.Fatal(err)
	}
	v, err := s.Secret("buttons.hmac-key")
	if err == nil || !strings.Contains(err.Error(), "unsealed") {
		t.Fatalf("Secret of a planted clear value = %q, %v; want it refused", v.Reveal(), err)
	}
	if _, err := s.EnsureSecret("buttons.hmac-key", func() (Secret, error) { return "new", nil }); err == nil {
		t.Error("EnsureSecret took the planted clear value")
	}
	if err := s.SetSecret("buttons.hmac-key", "fresh"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Secret("buttons.hmac-key"); err != nil || v != "fresh" {
		t.Errorf("after SetSecret: %v, %v", v == "fresh", err)
	}
}

// A key file open to group or others is refused, with the fix in the
// message; 0600 and 0400 open.
func TestKeyFileModeChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s := openTestPath(t, path)
	setKnownSecrets(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		if err := os.Chmod(KeyPath(path), mode); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{})
		if err == nil {
			_ = s.Close()
		}
		if !errors.Is(err, ErrKey) || !strings.Contains(err.Error(), "chmod 600 "+KeyPath(path)) {
			t.Errorf("Open with the key file mode %04o = %v; want ErrKey saying chmod 600", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(KeyPath(path), mode); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("Open with the key file mode %04o: %v", mode, err)
		}
		checkKnownSecrets(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Compactions of the live store while every kind of transaction and the
// audit writer run: nothing is lost, no deadlock, Close works after.
func TestCompactLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s := openTestPath(t, path)
	setKnownSecrets(t, s)
	stop := make(chan struct{})
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	var durable sync.Map // audit id -> text, acknowledged durable
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch i {
				case 0:
					for name, want := range knownSecrets {
						if got, e := s.Secret(name); e != nil || got != want {
							err = fmt.Errorf("Secret(%q) during a compaction: %v", name, e)
						}
					}
				case 1:
					err = s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: fmt.Sprint("A ", n)})
				case 2:
					var id uint64
					text := fmt.Sprint("D ", n)
					if id, err = s.AppendAuditDurable(AuditRecord{Kind: AuditClick, Text: text}); err == nil {
						durable.Store(id, text)
					}
				case 3:
					_, _, err = s.StartJob(Job{Verb: "backup"}, AuditRecord{Kind: AuditCommand, Text: "J"})
					if err == nil {
						_, err = s.RecentAudit(5)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for n := range 20 {
		var err error
		switch n % 3 {
		case 0:
			_, err = s.RotateKey()
		case 1:
			if err = s.SetSecret("app/tmp/X", "x"); err == nil {
				err = s.DeleteSecret("app/tmp/X")
			}
		case 2:
			if err = s.SetSecret("app/tmp/Y", "y"); err == nil {
				_, err = s.DeleteSecrets("app/tmp/")
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestPath(t, path)
	checkKnownSecrets(t, s)
	count := 0
	durable.Range(func(id, text any) bool {
		count++
		var rec AuditRecord
		_ = s.view(func(tx *bbolt.Tx) error {
			rec, _ = get[AuditRecord](tx.Bucket([]byte(bucketAudit)), itob(id.(uint64)))
			return nil
		})
		if rec.Text != text {
			t.Errorf("durable audit record %d = %q after the compactions, want %q", id, rec.Text, text)
		}
		return true
	})
	if count == 0 {
		t.Error("no durable audit record was written during the compactions")
	}
}

const compactChildEnv = "TOOLBOX_STATE_COMPACT_CHILD"

// compactChild deletes secrets (each delete compacts the file) and appends
// durable audit records until it is killed, printing "D <id> <text>" for
// each durable record acknowledged.
func compactChild(path string) {
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("ready")
	for n := 0; ; n++ {
		if err := s.SetSecret("app/tmp/X", Secret(fmt.Sprint("x", n))); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if err := s.DeleteSecret("app/tmp/X"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		text := fmt.Sprint("D ", n)
		id, err := s.AppendAuditDurable(AuditRecord{Kind: AuditClick, Text: text})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println("D", id, text)
	}
}

// TestCompactKill9 kills a process at random points while it compacts a
// state of a few megabytes over and over: the file always opens, passes
// bbolt's check, and holds every secret, every record written before, and
// every durable audit record acknowledged.
func TestCompactKill9(t *testing.T) {
	runs := 15
	if testing.Short() {
		runs = 3
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s := openTestPath(t, path)
	setKnownSecrets(t, s)
	filler := fillState(t, s, 3<<20)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	compactions := 0
	for run := range runs {
		after := time.Duration(20+rand.IntN(400)) * time.Millisecond
		killChildAfter(t, exe, []string{compactChildEnv + "=" + path}, after, func(line string) {
			f := strings.SplitN(line, " ", 3)
			id, _ := strconv.ParseUint(f[1], 10, 64)
			acked[id] = f[2]
			compactions++
		})
		s, err := Open(path, Options{})
		if err != nil {
			t.Fatalf("run %d: Open after kill -9 during compactions: %v", run, err)
		}
		if err := s.Check(); err != nil {
			t.Errorf("run %d: %v", run, err)
		}
		checkKnownSecrets(t, s)
		if _, err := s.Secret("app/tmp/X"); !errors.Is(err, ErrNotFound) && err != nil {
			t.Errorf("run %d: the secret being deleted: %v", run, err)
		}
		_ = s.view(func(tx *bbolt.Tx) error {
			audit := tx.Bucket([]byte(bucketAudit))
			for id, text := range acked {
				if rec, err := get[AuditRecord](audit, itob(id)); err != nil || rec.Text != text {
					t.Errorf("run %d: acknowledged audit record %d (%q): %v %q", run, id, text, err, rec.Text)
				}
			}
			fb := tx.Bucket([]byte(bucketSettings))
			for k, v := range filler {
				if !bytes.Equal(fb.Get([]byte(k)), v) {
					t.Errorf("run %d: filler %s lost", run, k)
					break
				}
			}
			return nil
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			t.Fatalf("run %d failed", run)
		}
	}
	t.Logf("%d kills during %d compactions of a %d MB state: every time it opened whole", runs, compactions, 3)
}

// fillState writes about size bytes of records in the settings bucket and
// returns them.
func fillState(tb testing.TB, s *Store, size int) map[string][]byte {
	tb.Helper()
	filler := map[string][]byte{}
	value := bytes.Repeat([]byte("0123456789abcdef"), 64) // 1 KiB
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSettings))
		for i := 0; i*len(value) < size; i++ {
			k := fmt.Sprintf("filler-%06d", i)
			v := append([]byte(nil), fmt.Sprintf(`"%s%s"`, k, value)...)
			filler[k] = v
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return filler
}

// BenchmarkCompact10MB measures one compaction of a 10 MB state, as
// DeleteSecret and RotateKey run it (every transaction waits for it).
func BenchmarkCompact10MB(b *testing.B) {
	path := filepath.Join(b.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fillState(b, s, 10<<20)
	for b.Loop() {
		if err := s.compact(); err != nil {
			b.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	b.ReportMetric(float64(fi.Size())/(1<<20), "MB-file")
}

// A process that waits for the lock while the holder compacts must end up
// with the file at path, not the old one the holder renamed over: it sees
// what the holder wrote after the compaction.
func TestOpenWaitingThroughACompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	setKnownSecrets(t, s)
	type opened struct {
		s   *Store
		err error
	}
	waiter := make(chan opened, 1)
	go func() {
		w, err := Open(path, Options{Timeout: 20 * time.Second})
		waiter <- opened{w, err}
	}()
	time.Sleep(300 * time.Millisecond) // let it wait for the lock of the current file
	if err := s.DeleteSecret("app/wiki/DB_PASSWORD"); err != nil {
		t.Fatal(err)
	}
	id, err := s.AppendAuditDurable(AuditRecord{Kind: AuditCommand, Text: "after the compaction"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case o := <-waiter:
		if o.err == nil {
			_ = o.s.Close()
		}
		t.Fatalf("Open returned while the holder still had the file open: %v", o.err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o := <-waiter
	if o.err != nil {
		t.Fatal(o.err)
	}
	defer o.s.Close()
	_ = o.s.view(func(tx *bbolt.Tx) error {
		if rec, err := get[AuditRecord](tx.Bucket([]byte(bucketAudit)), itob(id)); err != nil || rec.Text != "after the compaction" {
			t.Errorf("the waiter opened a stale file: audit record %d = %q, %v", id, rec.Text, err)
		}
		return nil
	})
}

// Another process that opens the path while the store compacts it, as soon
// as the copy is renamed over it, never gets the lock (review 2, finding
// 2): the copy stays locked from its creation on, so the store never writes
// to a file no longer at path, and every write after a compaction is in
// the file there.
func TestCompactNeverUnlocksThePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	// A short lock timeout, so that a store that had to take the lock again
	// after the rename would give up while the intruder holds it.
	s, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	setKnownSecrets(t, s)
	stop := make(chan struct{})
	var tries, intruded atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		last, _ := os.Stat(path)
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Open as soon as the inode at path changes: that is when a
			// store that reopens after its rename leaves path unlocked.
			now, err := os.Stat(path)
			if err != nil || (last != nil && os.SameFile(last, now)) {
				continue
			}
			last = now
			tries.Add(1)
			db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Millisecond})
			if err == nil {
				intruded.Add(1)
				time.Sleep(200 * time.Millisecond) // longer than the store waits
				_ = db.Close()
			}
		}
	})
	written := map[uint64]string{}
	const compactions = 60
	for n := range compactions {
		if err := s.SetSecret("app/tmp/X", Secret(fmt.Sprint("x", n))); err != nil {
			t.Errorf("compaction %d: SetSecret: %v", n, err)
		}
		if err := s.DeleteSecret("app/tmp/X"); err != nil { // compacts
			t.Errorf("compaction %d: %v", n, err)
		}
		text := fmt.Sprint("after compaction ", n)
		if id, err := s.AppendAuditDurable(AuditRecord{Kind: AuditCommand, Text: text}); err == nil {
			written[id] = text
		} else {
			t.Errorf("compaction %d: AppendAuditDurable: %v", n, err)
		}
	}
	close(stop)
	wg.Wait()
	if tries.Load() < compactions/2 {
		t.Fatalf("the intruder saw %d of %d renames: the test proves nothing", tries.Load(), compactions)
	}
	if n := intruded.Load(); n > 0 {
		t.Errorf("another opener got the lock of the path %d times during %d compactions", n, compactions)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkKnownSecrets(t, s)
	lost := 0
	_ = s.view(func(tx *bbolt.Tx) error {
		audit := tx.Bucket([]byte(bucketAudit))
		for id, text := range written {
			if rec, err := get[AuditRecord](audit, itob(id)); err != nil || rec.Text != text {
				lost++
			}
		}
		return nil
	})
	if lost > 0 {
		t.Errorf("%d of %d audit records written after compactions are not in the file at the path", lost, len(written))
	}
}
