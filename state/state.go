// Package state keeps the toolbox's own records in one bbolt file: jobs, the
// audit log, admins, settings, secrets, confirmation nonces and apps.
//
// It is the only package that imports bbolt. Callers see records, never bytes:
// every value is JSON, encoded and decoded by encode and decode below, and
// decoded inside its transaction, because bbolt's byte slices are only valid
// until the transaction ends.
//
// It imports nothing of the project.
package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout of the buckets and records this code reads and
// writes. Open migrates version 1 (secrets in clear, no index of active
// jobs) and refuses any other. Version 2 encrypts the secrets: a toolbox
// that speaks only version 1 must refuse the file rather than take the
// sealed values for secrets.
const SchemaVersion = 2

// Bucket names. Every bucket is created by Open.
const (
	bucketMeta     = "meta"
	bucketJobs     = "jobs"
	bucketAudit    = "audit"
	bucketAdmins   = "admins"
	bucketSettings = "settings"
	bucketSecrets  = "secrets"
	bucketNonces   = "nonces"
	bucketApps     = "apps"
	// bucketJobsActive indexes the queued and running jobs: keys are job
	// IDs, values empty.
	bucketJobsActive = "jobs_active"
)

// Keys of the meta bucket.
const (
	keySchema = "schema"
	keyProbe  = "probe"
	// keyCheckKey identifies the key of the secrets (keyCheck).
	keyCheckKey = "key_check"
	// keyScrub marks a file whose free pages may still hold secrets in
	// clear (a migration from version 1): Open compacts it.
	keyScrub = "scrub_pending"
	// keyBundled holds the key itself, only in the copy for the backup
	// repository (BackupWithKey).
	keyBundled = "bundled_key"
)

// Sentinel errors; match them with errors.Is.
var (
	// ErrNotFound: no such job, app, admin, setting or secret.
	ErrNotFound = errors.New("not found")
	// ErrSchema: the file holds a schema version this code does not speak.
	ErrSchema = errors.New("unsupported schema version")
	// ErrConflict: the record already exists (for example an admin added twice).
	ErrConflict = errors.New("already exists")
	// ErrLocked: another process holds the database file open.
	ErrLocked = errors.New("database is locked by another process")
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Now stamps records; nil means time.Now.
	Now func() time.Time
	// Timeout is how long Open waits for the file lock; zero means one second.
	Timeout time.Duration
	// Key is the key of the secrets, given by the caller (TOOLBOX_STATE_KEY,
	// decoded with ParseKey). Nil means the key file beside the database
	// (KeyPath), created with mode 0600 on first open.
	Key []byte
	// WithoutKey opens the file without its key, to check a copy (a
	// backup): reading or writing a secret then fails with ErrKey.
	WithoutKey bool
}

// Store is the toolbox's database. It is safe for concurrent use.
type Store struct {
	path  string
	now   func() time.Time
	audit *auditWriter

	// dbMu is held for reading by every transaction (view, update) and for
	// writing by compact, which replaces db with a compacted copy.
	dbMu    sync.RWMutex
	db      *bbolt.DB
	timeout time.Duration

	// keysMu is held for reading by every use of keys for the length of its
	// transaction, and for writing by RotateKey.
	keysMu     sync.RWMutex
	keys       *keyring // nil when opened WithoutKey
	key        []byte
	keyFromEnv bool
}

// Open opens (or creates, mode 0600) the database at path, creates the
// buckets and checks the schema version: a new file gets SchemaVersion, a
// file with any other version is refused with an error wrapping ErrSchema.
// A file locked by another process is refused after opts.Timeout with an
// error wrapping ErrLocked.
func Open(path string, opts Options) (*Store, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	db, err := openBolt(path, opts.Timeout)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, db: db, timeout: opts.Timeout, now: opts.Now, keyFromEnv: opts.Key != nil}
	if err := s.open(path, opts); err != nil {
		_ = s.db.Close()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s.startAuditWriter()
	return s, nil
}

// openBolt opens path and locks it. A process that compacts the file
// renames a new one over path while others may wait for the lock of the
// old one: a lock taken on a file no longer at path is dropped and taken
// again on the one there, lest this process read and write a dead copy.
func openBolt(path string, timeout time.Duration) (*bbolt.DB, error) {
	for range 10 {
		before, _ := os.Stat(path)
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("state: open %s: %w (waited %s)", path, ErrLocked, timeout)
		}
		if err != nil {
			return nil, fmt.Errorf("state: open %s: %w", path, err)
		}
		if after, err := os.Stat(path); err == nil && before != nil && os.SameFile(before, after) {
			return db, nil
		}
		_ = db.Close()
	}
	return nil, fmt.Errorf("state: open %s: the file kept being replaced while this process waited for its lock", path)
}

// open finds the key, migrates and initializes the file, and scrubs it if a
// migration left secrets in clear in its free pages.
func (s *Store) open(path string, opts Options) error {
	var check string
	if err := s.db.View(func(tx *bbolt.Tx) error {
		meta, secrets := tx.Bucket([]byte(bucketMeta)), tx.Bucket([]byte(bucketSecrets))
		if meta != nil && secrets != nil && secrets.Stats().KeyN > 0 {
			// Only secrets need their key: a file without any takes any.
			check, _ = get[string](meta, []byte(keyCheckKey))
		}
		return nil
	}); err != nil {
		return err
	}
	if !opts.WithoutKey {
		removeStaleBundles(path) // the lock is ours: none is being written
		key, err := resolveKey(path, opts.Key, check)
		if err != nil {
			return err
		}
		if s.keys, err = newKeyring(key); err != nil {
			return err
		}
		s.key = key
	}
	scrub := false
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		var err error
		scrub, err = initialize(tx, s.keys)
		return err
	}); err != nil {
		return err
	}
	if scrub {
		return s.compact()
	}
	return nil
}

// view and update run every transaction of the Store, so that compact can
// swap the file under them.
func (s *Store) view(fn func(*bbolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.View(fn)
}

func (s *Store) update(fn func(*bbolt.Tx) error) error {
	s.dbMu.RLock()
	defer s.dbMu.RUnlock()
	return s.db.Update(fn)
}

// markScrub records in tx that the file's free pages now hold something
// that must go (a deleted secret, a value sealed with a retired key): if
// the process stops before compact's rename, Open compacts again.
func markScrub(tx *bbolt.Tx) error {
	return put(tx.Bucket([]byte(bucketMeta)), []byte(keyScrub), true)
}

// compact rewrites the live file with only its live keys and values
// (bbolt's Compact), so that nothing deleted or overwritten, such as a
// deleted secret or one sealed with the previous key, stays in its free
// pages, and clears the scrub mark in the copy. Transactions wait for it.
// A stop at any point leaves either the old file (still marked, so Open
// compacts it) or the complete new one: the copy is synced before it is
// renamed over path.
//
// The copy's own handle becomes the store's database: it has held the
// copy's lock since its creation, so the lock on path is never free for
// another process to take, and there is no reopen that could fail and
// leave the store writing to the old, unlinked file.
func (s *Store) compact() error {
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	tmp := s.path + ".compact"
	_ = os.Remove(tmp) // left by a stop in the middle of an earlier one
	// NoSync while copying, then synced like the live file: the copy
	// counts only once renamed, after the fsync, and is the live file
	// after that.
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: s.timeout, NoSync: true})
	if err != nil {
		return fmt.Errorf("state: compact: %w", err)
	}
	err = bbolt.Compact(dst, s.db, 1<<20)
	dst.NoSync = false
	if err == nil {
		err = dst.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Delete([]byte(keyScrub))
		})
	}
	if err == nil {
		err = dst.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		_ = dst.Close()
		_ = os.Remove(tmp)
		return fmt.Errorf("state: compact: %w", err)
	}
	// From here path is the copy, whatever fails next: the store uses it.
	// (dst.Path() still names tmp; nothing here reopens by that name.)
	old := s.db
	s.db = dst
	closeErr := old.Close()
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("state: compact: sync the rename: %w", err)
	}
	if closeErr != nil {
		return fmt.Errorf("state: compact: close the old file: %w", closeErr)
	}
	return nil
}

// compactFile runs before on the database at path, which is not open (what
// it deletes is not copied), copies it into a new file with bbolt's Compact
// and renames the copy over path.
func compactFile(path string, timeout time.Duration, before func(*bbolt.Tx) error) error {
	if before != nil {
		db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout})
		if err != nil {
			return err
		}
		err = db.Update(before)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	src, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout, ReadOnly: true})
	if err != nil {
		return err
	}
	defer src.Close()
	tmp := path + ".compact"
	_ = os.Remove(tmp) // left by a stop in the middle of an earlier one
	dst, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: timeout})
	if err != nil {
		return err
	}
	err = bbolt.Compact(dst, src, 1<<20)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = src.Close()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// initialize checks the schema version, migrates version 1, creates the
// buckets and seals any secret still in clear. It runs in the Update
// transaction of Open, so a refused file is left untouched. It reports
// whether the file's free pages may now hold clear secrets (scrub).
func initialize(tx *bbolt.Tx, keys *keyring) (scrub bool, err error) {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bbolt.Bucket) error { empty = false; return nil })
		if !empty {
			return false, fmt.Errorf("%w: found a bbolt file without a schema version (not a toolbox database?), want %d", ErrSchema, SchemaVersion)
		}
		if meta, err = tx.CreateBucket([]byte(bucketMeta)); err != nil {
			return false, fmt.Errorf("create bucket %s: %w", bucketMeta, err)
		}
		if err := put(meta, []byte(keySchema), SchemaVersion); err != nil {
			return false, err
		}
	}
	found, err := get[int](meta, []byte(keySchema))
	switch {
	case errors.Is(err, ErrNotFound):
		return false, fmt.Errorf("%w: found no schema version, want %d", ErrSchema, SchemaVersion)
	case err != nil:
		return false, fmt.Errorf("read schema version: %w", err)
	case found > SchemaVersion:
		return false, fmt.Errorf("%w: found %d, want %d: the database was written by a newer toolbox", ErrSchema, found, SchemaVersion)
	case found < 1:
		return false, fmt.Errorf("%w: found %d, want %d: the database is older and no migration exists", ErrSchema, found, SchemaVersion)
	case found < SchemaVersion && keys == nil:
		return false, fmt.Errorf("%w: version %d needs its migration, which needs the state key", ErrKey, found)
	}
	for _, name := range []string{bucketJobs, bucketAudit, bucketAdmins, bucketSettings, bucketSecrets, bucketNonces, bucketApps} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return false, fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if tx.Bucket([]byte(bucketJobsActive)) == nil {
		if _, err := tx.CreateBucket([]byte(bucketJobsActive)); err != nil {
			return false, fmt.Errorf("create bucket %s: %w", bucketJobsActive, err)
		}
		if err := buildActiveIndex(tx); err != nil {
			return false, fmt.Errorf("index active jobs: %w", err)
		}
	}
	if keys != nil {
		check, err := get[string](meta, []byte(keyCheckKey))
		switch {
		case errors.Is(err, ErrNotFound):
			if err := put(meta, []byte(keyCheckKey), keys.check); err != nil {
				return false, err
			}
		case err != nil:
			return false, fmt.Errorf("read the key check: %w", err)
		case check != keys.check:
			if tx.Bucket([]byte(bucketSecrets)).Stats().KeyN > 0 {
				return false, fmt.Errorf("%w: the key changed while the file was opened", ErrKey)
			}
			if err := put(meta, []byte(keyCheckKey), keys.check); err != nil {
				return false, err
			}
		}
		sealed, err := sealClearSecrets(tx, keys)
		if err != nil {
			return false, fmt.Errorf("encrypt the secrets: %w", err)
		}
		if sealed > 0 {
			if err := put(meta, []byte(keyScrub), true); err != nil {
				return false, err
			}
		}
	}
	if found != SchemaVersion {
		if err := put(meta, []byte(keySchema), SchemaVersion); err != nil {
			return false, err
		}
	}
	pending, _ := get[bool](meta, []byte(keyScrub))
	return pending, nil
}

// Close closes the database. Running transactions finish first.
func (s *Store) Close() error {
	auditErr := s.stopAuditWriter()
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return auditErr
}

// Check verifies the whole file's consistency (bbolt's tx.Check): for a
// backup received over a stream.
func (s *Store) Check() error {
	return s.view(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("state: %s is damaged: %w", s.path, err)
		}
		return nil
	})
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Backup writes a consistent copy of the whole database to w while the store
// stays in use (a read transaction), and returns the number of bytes written.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("state: backup: %w", err)
	}
	return n, nil
}

// BackupFile writes a backup to path (mode 0600) atomically: it writes
// path+".tmp", syncs it, then renames it over path. It refuses to overwrite the
// live database.
func (s *Store) BackupFile(path string) (n int64, err error) {
	if fi, err := os.Stat(path); err == nil {
		if live, err := os.Stat(s.path); err == nil && os.SameFile(fi, live) {
			return 0, fmt.Errorf("state: backup to %s: that is the live database", path)
		}
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, fmt.Errorf("state: backup to %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close() // may already be closed; the first error is the one to report
			_ = os.Remove(tmp)
			err = fmt.Errorf("state: backup to %s: %w", path, err)
		}
	}()
	if err = f.Chmod(0o600); err != nil { // an old tmp file keeps its mode otherwise
		return 0, err
	}
	if n, err = s.Backup(f); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, err
	}
	if err = f.Close(); err != nil {
		return n, err
	}
	if err = os.Rename(tmp, path); err != nil {
		return n, err
	}
	return n, syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return err
	}
	return d.Close()
}

// CheckWritable writes and deletes a probe key in a durable transaction, for
// health checks (a full disk or a read-only mount fails here), and returns how
// long the commit took.
func (s *Store) CheckWritable() (time.Duration, error) {
	start := time.Now() // the real clock: this measures the disk, not the injected time
	err := s.update(func(tx *bbolt.Tx) error {
		meta := tx.Bucket([]byte(bucketMeta))
		if err := put(meta, []byte(keyProbe), s.now()); err != nil {
			return err
		}
		return meta.Delete([]byte(keyProbe))
	})
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("state: check writable: %w", err)
	}
	return took, nil
}

// stamp is the current time for records: UTC without a monotonic reading, so
// a record compares equal before and after a round trip through the database.
func (s *Store) stamp() time.Time { return s.now().UTC().Round(0) }

// encode and decode are the one place that knows how values are stored.

func encode[T any](v T) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return data, nil
}

// decode must be called inside the transaction that produced data; the
// result owns its memory and outlives the transaction.
func decode[T any](data []byte) (T, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("decode %T: %w", v, err)
	}
	return v, nil
}

// put encodes v under key.
func put[T any](b *bbolt.Bucket, key []byte, v T) error {
	data, err := encode(v)
	if err != nil {
		return err
	}
	if err := b.Put(key, data); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

// get decodes the value under key, or returns ErrNotFound.
func get[T any](b *bbolt.Bucket, key []byte) (T, error) {
	data := b.Get(key)
	if data == nil {
		var zero T
		return zero, ErrNotFound
	}
	return decode[T](data)
}

// newest decodes up to n values of a bucket keyed by big-endian sequence
// numbers, newest first.
func newest[T any](b *bbolt.Bucket, n int) ([]T, error) {
	out := make([]T, 0, min(max(n, 0), 256))
	c := b.Cursor()
	for k, v := c.Last(); k != nil && len(out) < n; k, v = c.Prev() {
		rec, err := decode[T](v)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", btoi(k), err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// itob is the key of a sequence number: big-endian, so keys sort by number.
func itob(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func btoi(k []byte) uint64 {
	if len(k) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}
