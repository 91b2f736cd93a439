package state

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	bbolt "go.etcd.io/bbolt"
)

const redacted = "[redacted]"

// Secret is a token, password or key. It prints, logs and marshals as
// "[redacted]"; Reveal is the only way to the clear value, so that
// `grep -rn Reveal` finds every use.
//
// Two gaps remain, as for any string type: fmt prints an unexported struct
// field of type Secret raw (it cannot call methods on it), and encoding/json
// writes a map key of type Secret raw (string keys skip MarshalText). Keep
// secrets in exported fields, variables and map values.
type Secret string

// Reveal returns the clear value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]", for %#v.
func (Secret) GoString() string { return redacted }

// Format prints "[redacted]" for every verb (%v, %s, %q, %x, %d...).
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue makes slog print "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns "[redacted]" as a JSON string.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// NewRandomSecret returns nbytes from crypto/rand as URL-safe base64 without
// padding.
func NewRandomSecret(nbytes int) (Secret, error) {
	if nbytes <= 0 {
		return "", fmt.Errorf("state: new random secret: %d bytes", nbytes)
	}
	buf := make([]byte, nbytes)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("state: new random secret: %w", err)
	}
	return Secret(base64.RawURLEncoding.EncodeToString(buf)), nil
}

// secretRecord is how a secret is stored: sealed with the state key
// (keyring.seal, the name as additional data). Value is the clear value of a
// version-1 file, sealed by Open's migration.
type secretRecord struct {
	Sealed string    `json:"sealed,omitempty"`
	Value  string    `json:"value,omitempty"`
	Set    time.Time `json:"set,omitzero"`
}

var errNoKey = fmt.Errorf("%w: the state was opened without its key", ErrKey)

// sealClearSecrets seals every secret still in clear and returns how many.
func sealClearSecrets(tx *bbolt.Tx, keys *keyring) (int, error) {
	b := tx.Bucket([]byte(bucketSecrets))
	type clear struct {
		name []byte
		rec  secretRecord
	}
	var found []clear
	if err := b.ForEach(func(k, v []byte) error {
		rec, err := decode[secretRecord](v)
		if err != nil {
			return fmt.Errorf("secret %q: %w", k, err)
		}
		if rec.Sealed == "" {
			found = append(found, clear{bytes.Clone(k), rec})
		}
		return nil
	}); err != nil {
		return 0, err
	}
	for _, c := range found { // no writes while ForEach walks
		sealed, err := keys.seal(string(c.name), c.rec.Value)
		if err != nil {
			return 0, err
		}
		if err := put(b, c.name, secretRecord{Sealed: sealed, Set: c.rec.Set}); err != nil {
			return 0, err
		}
	}
	return len(found), nil
}

// readSecret opens the secret called name in b; hold keysMu for reading.
func (s *Store) readSecret(b *bbolt.Bucket, name string) (Secret, error) {
	rec, err := get[secretRecord](b, []byte(name))
	if err != nil {
		return "", err
	}
	if s.keys == nil {
		return "", errNoKey
	}
	if rec.Sealed == "" {
		// Open sealed every clear value of a version-1 file, so this one
		// was written by someone without the key: refuse to trust it.
		return "", fmt.Errorf("secret %q is stored unsealed, which only a version-1 file holds and Open seals: it was written without the state key, so it is refused; set it again", name)
	}
	v, err := s.keys.open(name, rec.Sealed)
	return Secret(v), err
}

// writeSecret seals v under name in b; hold keysMu for reading.
func (s *Store) writeSecret(b *bbolt.Bucket, name string, v Secret) error {
	if s.keys == nil {
		return errNoKey
	}
	sealed, err := s.keys.seal(name, v.Reveal())
	if err != nil {
		return err
	}
	return put(b, []byte(name), secretRecord{Sealed: sealed, Set: s.stamp()})
}

// Secret returns the secret called name, or ErrNotFound.
func (s *Store) Secret(name string) (Secret, error) {
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	var v Secret
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		v, err = s.readSecret(tx.Bucket([]byte(bucketSecrets)), name)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("state: secret %q: %w", name, err)
	}
	return v, nil
}

// SetSecret stores v under name, durably, replacing any previous value.
func (s *Store) SetSecret(name string, v Secret) error {
	if name == "" || v == "" {
		return fmt.Errorf("state: set secret %q: empty name or value", name)
	}
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	err := s.update(func(tx *bbolt.Tx) error {
		return s.writeSecret(tx.Bucket([]byte(bucketSecrets)), name, v)
	})
	if err != nil {
		return fmt.Errorf("state: set secret %q: %w", name, err)
	}
	return nil
}

// EnsureSecret returns the secret called name, creating it with generate if
// it does not exist yet, in one transaction: concurrent callers all get the
// same value. generate runs inside the write transaction; keep it quick
// (NewRandomSecret is).
func (s *Store) EnsureSecret(name string, generate func() (Secret, error)) (Secret, error) {
	if name == "" {
		return "", errors.New("state: ensure secret: empty name")
	}
	s.keysMu.RLock()
	defer s.keysMu.RUnlock()
	var v Secret
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSecrets))
		var err error
		v, err = s.readSecret(b, name)
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		if v, err = generate(); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
		if v == "" {
			return errors.New("generate: empty value")
		}
		return s.writeSecret(b, name, v)
	})
	if err != nil {
		return "", fmt.Errorf("state: ensure secret %q: %w", name, err)
	}
	return v, nil
}

// DeleteSecret removes the secret called name; a missing one is no error.
// It then compacts the file (compact), so that the sealed value does not
// stay in a free page, where the key beside the file would open it.
func (s *Store) DeleteSecret(name string) error {
	found := false
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSecrets))
		if found = b.Get([]byte(name)) != nil; !found {
			return nil
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return markScrub(tx)
	})
	if err == nil && found {
		err = s.compact()
	}
	if err != nil {
		return fmt.Errorf("state: delete secret %q: %w", name, err)
	}
	return nil
}

// DeleteSecrets removes every secret whose name starts with prefix (an app's
// secrets when its data is purged) and returns how many went, then compacts
// the file as DeleteSecret does.
func (s *Store) DeleteSecrets(prefix string) (int, error) {
	if prefix == "" {
		return 0, errors.New("state: delete secrets: empty prefix")
	}
	n := 0
	err := s.update(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bucketSecrets)).Cursor()
		p := []byte(prefix)
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Seek(p) {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		return markScrub(tx)
	})
	if err != nil {
		return 0, fmt.Errorf("state: delete secrets %q: %w", prefix, err)
	}
	if n > 0 {
		if err := s.compact(); err != nil { // as DeleteSecret
			return n, fmt.Errorf("state: delete secrets %q: deleted %d, but their sealed values are still in free pages (the next open removes them): %w", prefix, n, err)
		}
	}
	return n, nil
}
