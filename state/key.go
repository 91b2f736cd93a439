package state

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// The secrets bucket is encrypted with AES-256-GCM under a 32-byte key kept
// outside the database file: TOOLBOX_STATE_KEY (Options.Key), else the key
// file beside the database (KeyPath). The meta bucket holds only a check of
// the key (an HMAC of a constant under it), so that a wrong key is refused
// at Open before anything is read or written with it.

// KeySize is the length of the state key.
const KeySize = 32

// EnvKey is the variable that gives the key instead of the key file; the
// state package only names it in messages (main reads it).
const EnvKey = "TOOLBOX_STATE_KEY"

// ErrKey: the key given (or found) does not open this database's secrets,
// or is missing.
var ErrKey = errors.New("wrong or missing state key")

// KeyPath is the key file of the database at dbPath.
func KeyPath(dbPath string) string { return dbPath + ".key" }

// keyPathNew is where a rotation writes the next key before it is in use.
func keyPathNew(dbPath string) string { return KeyPath(dbPath) + ".new" }

// ParseKey decodes a key written as base64 (standard or URL alphabet,
// padded or not), as the key file and TOOLBOX_STATE_KEY hold it.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("a state key is %d bytes, this one %d", KeySize, len(k))
			}
			return k, nil
		}
	}
	return nil, errors.New("a state key is base64 (44 characters)")
}

// EncodeKey writes k as ParseKey reads it.
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// NewKey returns a new random state key.
func NewKey() ([]byte, error) { return newKey() }

func newKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("new state key: %w", err)
	}
	return k, nil
}

// keyring seals and opens secret values under one key.
type keyring struct {
	aead  cipher.AEAD
	check string
}

func newKeyring(k []byte) (*keyring, error) {
	if len(k) != KeySize {
		return nil, fmt.Errorf("%w: a state key is %d bytes, got %d", ErrKey, KeySize, len(k))
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &keyring{aead: aead, check: keyCheck(k)}, nil
}

// keyCheck identifies a key without revealing it.
func keyCheck(k []byte) string {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("toolbox state key check v1"))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil)[:16])
}

// additional data: the secret's name, so a value cannot be moved to another
// name and still open.
func secretAD(name string) []byte { return append([]byte("toolbox secret v1\x00"), name...) }

func (k *keyring) seal(name, clear string) (string, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := k.aead.Seal(nonce, nonce, []byte(clear), secretAD(name))
	return base64.RawStdEncoding.EncodeToString(out), nil
}

func (k *keyring) open(name, sealed string) (string, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < k.aead.NonceSize() {
		return "", fmt.Errorf("secret %q: not a sealed value", name)
	}
	n := k.aead.NonceSize()
	clear, err := k.aead.Open(nil, raw[:n], raw[n:], secretAD(name))
	if err != nil {
		return "", fmt.Errorf("secret %q does not open with the state key (moved from another name, or damaged)", name)
	}
	return string(clear), nil
}

// readKeyFile reads a key file; a missing one is (nil, nil). It refuses a
// file that group or others may read (or write): the key must stay the
// owner's.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the state key %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read the state key %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: the state key file %s has mode %04o, open to group or others: run `chmod 600 %s` (and consider the key leaked: rotate it with `toolbox state rotate-key`)",
			ErrKey, path, perm, path)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read the state key %s: %w", path, err)
	}
	k, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("the state key file %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyFile writes k to path (mode 0600) durably and atomically: a
// temporary file, synced, renamed over path, the directory synced.
func WriteKeyFile(path string, k []byte) error {
	if len(k) != KeySize {
		return fmt.Errorf("state: write key %s: %d bytes, want %d", path, len(k), KeySize)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp") // 0600
	if err != nil {
		return fmt.Errorf("state: write key %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.WriteString(EncodeKey(k) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("state: write key %s: %w", path, err)
	}
	return nil
}

// keySource says where a key came from, for messages.
func keySource(fromEnv bool, path string) string {
	if fromEnv {
		return EnvKey
	}
	return "the key file " + path
}

// resolveKey finds the key of the database at path, whose meta bucket holds
// check ("" for a database without encrypted secrets yet). With a key from
// the environment, it must match. From the key file: the file's key, or,
// after a rotation that committed but was stopped before its rename, the
// new key file's (renamed into place here). A database with no key check
// and no key file gets a new key file.
func resolveKey(path string, envKey []byte, check string) ([]byte, error) {
	if envKey != nil {
		if check != "" && keyCheck(envKey) != check {
			return nil, fmt.Errorf("%w: %s does not open the secrets of %s: set it to the key they were encrypted with (its key file %s, or the `what=state` backup, holds it)",
				ErrKey, EnvKey, path, KeyPath(path))
		}
		return envKey, nil
	}
	keyFile, next := KeyPath(path), keyPathNew(path)
	k, err := readKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	if check == "" {
		if k == nil {
			if k, err = newKey(); err != nil {
				return nil, err
			}
			if err := WriteKeyFile(keyFile, k); err != nil {
				return nil, err
			}
		}
		_ = os.Remove(next) // a rotation that never committed
		return k, nil
	}
	if k != nil && keyCheck(k) == check {
		_ = os.Remove(next) // a rotation that never committed
		return k, nil
	}
	if n, _ := readKeyFile(next); n != nil && keyCheck(n) == check {
		// The rotation committed; finish its rename.
		if err := os.Rename(next, keyFile); err != nil {
			return nil, fmt.Errorf("state: finish the key rotation: %w", err)
		}
		return n, syncDir(filepath.Dir(keyFile))
	}
	if k == nil {
		return nil, fmt.Errorf("%w: %s holds encrypted secrets and its key file %s is missing: put the key file back (the `what=state` backup holds it) or set %s",
			ErrKey, path, keyFile, EnvKey)
	}
	return nil, fmt.Errorf("%w: the key file %s does not open the secrets of %s: put back the key they were encrypted with, or set %s to it",
		ErrKey, keyFile, path, EnvKey)
}

// ErrKeyFromEnv: the key comes from TOOLBOX_STATE_KEY, which the toolbox
// cannot change for its operator.
var ErrKeyFromEnv = fmt.Errorf("the state key comes from %s", EnvKey)

// RotateKey seals every secret with a new key and makes it the key file's,
// crash-safely: the new key is written first beside the old one (KeyPath +
// ".new"), the secrets are re-sealed and the key check changed in one
// transaction, then the new key file is renamed over the old. A stop at any
// point leaves a file that Open opens: before the commit with the old key,
// after it with the new one (whose rename Open finishes). It returns the new
// key's check (an identifier, not the key).
//
// Then it compacts the file (compact), so that no value sealed with the
// old key stays in a free page; a stop before that leaves the file marked
// and Open compacts it.
func (s *Store) RotateKey() (string, error) {
	if s.keyFromEnv {
		return "", fmt.Errorf("state: rotate key: %w: unset it to keep the key in %s, or stop the toolbox and change both yourself", ErrKeyFromEnv, KeyPath(s.Path()))
	}
	if s.keys == nil {
		return "", fmt.Errorf("state: rotate key: %w", errNoKey)
	}
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	next, err := newKey()
	if err != nil {
		return "", err
	}
	nextKeys, err := newKeyring(next)
	if err != nil {
		return "", err
	}
	path := s.Path()
	if err := WriteKeyFile(keyPathNew(path), next); err != nil {
		return "", fmt.Errorf("state: rotate key: %w", err)
	}
	err = s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSecrets))
		type entry struct{ name, value string }
		var all []entry
		if err := b.ForEach(func(k, _ []byte) error {
			v, err := s.readSecret(b, string(k))
			if err != nil {
				return err
			}
			all = append(all, entry{string(k), v.Reveal()})
			return nil
		}); err != nil {
			return err
		}
		for _, e := range all {
			rec, err := get[secretRecord](b, []byte(e.name))
			if err != nil {
				return err
			}
			if rec.Sealed, err = nextKeys.seal(e.name, e.value); err != nil {
				return err
			}
			rec.Value = ""
			if err := put(b, []byte(e.name), rec); err != nil {
				return err
			}
		}
		if err := markScrub(tx); err != nil {
			return err
		}
		return put(tx.Bucket([]byte(bucketMeta)), []byte(keyCheckKey), nextKeys.check)
	})
	if err != nil {
		_ = os.Remove(keyPathNew(path))
		return "", fmt.Errorf("state: rotate key: %w", err)
	}
	s.keys, s.key = nextKeys, next
	if err := os.Rename(keyPathNew(path), KeyPath(path)); err != nil {
		return "", fmt.Errorf("state: rotate key: the secrets use the new key, in %s, but renaming it over %s failed (the next open finishes it): %w",
			keyPathNew(path), KeyPath(path), err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", fmt.Errorf("state: rotate key: %w", err)
	}
	// The values sealed with the old key are in free pages now: whoever
	// holds the old key and a copy of the file would open them.
	if err := s.compact(); err != nil {
		return nextKeys.check, fmt.Errorf("state: rotate key: the secrets use the new key, but the old ciphertexts are still in the file's free pages (the next open removes them): %w", err)
	}
	return nextKeys.check, nil
}

// KeyID identifies the key in use (a check derived from it, not the key),
// for the operator to compare two files; "" without a key.
func (s *Store) KeyID() string {
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	if s.keys == nil {
		return ""
	}
	return s.keys.check
}

// BackupWithKey writes a consistent copy of the database with its key inside
// (the meta bucket), for the backup repository only, which is encrypted by
// its own password: what `toolbox recover` needs to bring the secrets back
// with nothing but that password. TakeBundledKey takes the key out again.
// Never write this copy anywhere else: unlike Backup's, it opens alone.
func (s *Store) BackupWithKey(w io.Writer) (int64, error) {
	s.keysMu.RLock()
	key := s.key
	s.keysMu.RUnlock()
	if key == nil {
		return 0, fmt.Errorf("state: backup with key: %w", errNoKey)
	}
	f, err := os.CreateTemp(filepath.Dir(s.Path()), bundlePrefix(s.Path())+"*") // 0600, beside its key file
	if err != nil {
		return 0, fmt.Errorf("state: backup with key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = s.Backup(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("state: backup with key: %w", err)
	}
	db, err := bbolt.Open(tmp, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return 0, fmt.Errorf("state: backup with key: %w", err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return put(tx.Bucket([]byte(bucketMeta)), []byte(keyBundled), EncodeKey(key))
	})
	var written int64
	if err == nil {
		err = db.View(func(tx *bbolt.Tx) error {
			var err error
			written, err = tx.WriteTo(w)
			return err
		})
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("state: backup with key: %w", err)
	}
	return written, nil
}

// bundlePrefix names BackupWithKey's temporary copies of the database at
// path; Open removes any a kill left behind (they hold the key).
func bundlePrefix(path string) string { return "." + filepath.Base(path) + ".bundle-" }

func removeStaleBundles(path string) {
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(path), bundlePrefix(path)+"*"))
	for _, f := range stale {
		_ = os.Remove(f)
	}
}

// TakeBundledKey takes the key out of a copy that BackupWithKey wrote, at
// path (not open), and scrubs the file so that the key is not left in a free
// page: nil, nil for a copy without one (a version-1 state, or Backup's).
func TakeBundledKey(path string) ([]byte, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("state: take the key of %s: %w", path, err)
	}
	var encoded string
	err = db.View(func(tx *bbolt.Tx) error {
		if meta := tx.Bucket([]byte(bucketMeta)); meta != nil {
			v, err := get[string](meta, []byte(keyBundled))
			if err != nil && !errors.Is(err, ErrNotFound) {
				return err
			}
			encoded = v
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("state: take the key of %s: %w", path, err)
	}
	if encoded == "" {
		return nil, nil
	}
	key, err := ParseKey(encoded)
	if err != nil {
		return nil, fmt.Errorf("state: take the key of %s: %w", path, err)
	}
	if err := compactFile(path, time.Second, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketMeta)).Delete([]byte(keyBundled))
	}); err != nil {
		return nil, fmt.Errorf("state: take the key of %s: %w", path, err)
	}
	return key, nil
}
