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
	"time"

	bbolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout of the buckets and records this code reads and
// writes. Open refuses a file holding any other version.
const SchemaVersion = 1

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
}

// Store is the toolbox's database. It is safe for concurrent use.
type Store struct {
	db    *bbolt.DB
	now   func() time.Time
	audit *auditWriter
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
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bbolt.ErrTimeout) {
		return nil, fmt.Errorf("state: open %s: %w (waited %s)", path, ErrLocked, opts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	if err := db.Update(initialize); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("state: open %s: %w", path, err)
	}
	s := &Store{db: db, now: opts.Now}
	s.startAuditWriter()
	return s, nil
}

// initialize checks the schema version and creates the buckets. It runs in
// the Update transaction of Open, so a refused file is left untouched.
func initialize(tx *bbolt.Tx) error {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		empty := true
		_ = tx.ForEach(func([]byte, *bbolt.Bucket) error { empty = false; return nil })
		if !empty {
			return fmt.Errorf("%w: found a bbolt file without a schema version (not a toolbox database?), want %d", ErrSchema, SchemaVersion)
		}
		var err error
		if meta, err = tx.CreateBucket([]byte(bucketMeta)); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketMeta, err)
		}
		if err := put(meta, []byte(keySchema), SchemaVersion); err != nil {
			return err
		}
	}
	found, err := get[int](meta, []byte(keySchema))
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("%w: found no schema version, want %d", ErrSchema, SchemaVersion)
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	case found > SchemaVersion:
		return fmt.Errorf("%w: found %d, want %d: the database was written by a newer toolbox", ErrSchema, found, SchemaVersion)
	case found < SchemaVersion:
		return fmt.Errorf("%w: found %d, want %d: the database is older and no migration exists", ErrSchema, found, SchemaVersion)
	}
	for _, name := range []string{bucketJobs, bucketAudit, bucketAdmins, bucketSettings, bucketSecrets, bucketNonces, bucketApps} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if tx.Bucket([]byte(bucketJobsActive)) == nil {
		if _, err := tx.CreateBucket([]byte(bucketJobsActive)); err != nil {
			return fmt.Errorf("create bucket %s: %w", bucketJobsActive, err)
		}
		if err := buildActiveIndex(tx); err != nil {
			return fmt.Errorf("index active jobs: %w", err)
		}
	}
	return nil
}

// Close closes the database. Running transactions finish first.
func (s *Store) Close() error {
	auditErr := s.stopAuditWriter()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close: %w", err)
	}
	return auditErr
}

// Check verifies the whole file's consistency (bbolt's tx.Check): for a
// backup received over a stream.
func (s *Store) Check() error {
	return s.db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("state: %s is damaged: %w", s.db.Path(), err)
		}
		return nil
	})
}

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

// Backup writes a consistent copy of the whole database to w while the store
// stays in use (a read transaction), and returns the number of bytes written.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
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
		if live, err := os.Stat(s.db.Path()); err == nil && os.SameFile(fi, live) {
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
	err := s.db.Update(func(tx *bbolt.Tx) error {
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
