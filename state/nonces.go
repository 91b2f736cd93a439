package state

import (
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Nonces are kept this long past their expiry, then swept.
const (
	nonceRetention = 24 * time.Hour
	nonceSweepMax  = 100
)

// UseNonce records a confirmation button's nonce, durably, and reports true
// the first time, false if it was already used.
//
// expires only tells when the record may be forgotten: it is kept until
// expires+24h, so the caller must refuse an expired confirmation itself
// (before or after calling UseNonce). Each successful call also deletes up to
// 100 nonces that expired more than 24h ago, in the same transaction.
func (s *Store) UseNonce(nonce string, expires time.Time) (bool, error) {
	if nonce == "" {
		return false, errors.New("state: use nonce: empty nonce")
	}
	fresh := false
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketNonces))
		if b.Get([]byte(nonce)) != nil {
			return nil
		}
		fresh = true
		if err := sweepNonces(b, s.now().Add(-nonceRetention)); err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		return put(b, []byte(nonce), expires.UTC().Round(0))
	})
	if err != nil {
		return false, fmt.Errorf("state: use nonce: %w", err)
	}
	return fresh, nil
}

// sweepNonces deletes up to nonceSweepMax nonces that expired before cutoff.
// Keys are random, so it reads them all; there are only a day's worth or so.
func sweepNonces(b *bbolt.Bucket, cutoff time.Time) error {
	var old [][]byte
	c := b.Cursor()
	for k, v := c.First(); k != nil && len(old) < nonceSweepMax; k, v = c.Next() {
		exp, err := decode[time.Time](v)
		if err != nil || exp.Before(cutoff) { // an unreadable record is useless: sweep it too
			old = append(old, append([]byte(nil), k...)) // k dies with the page it points into
		}
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
