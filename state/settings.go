package state

import (
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"
)

// Setting returns the value of key (team id, channel id, Mattermost URL...),
// or ErrNotFound if it was never set.
func (s *Store) Setting(key string) (string, error) {
	var v string
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		v, err = get[string](tx.Bucket([]byte(bucketSettings)), []byte(key))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("state: setting %q: %w", key, err)
	}
	return v, nil
}

// SetSetting sets key to value, durably.
func (s *Store) SetSetting(key, value string) error {
	if key == "" {
		return errors.New("state: set setting: empty key")
	}
	err := s.update(func(tx *bbolt.Tx) error {
		return put(tx.Bucket([]byte(bucketSettings)), []byte(key), value)
	})
	if err != nil {
		return fmt.Errorf("state: set setting %q: %w", key, err)
	}
	return nil
}

// Settings reads several keys in one transaction; keys never set are absent
// from the map.
func (s *Store) Settings(keys ...string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	err := s.view(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketSettings))
		for _, k := range keys {
			v, err := get[string](b, []byte(k))
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			out[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: settings: %w", err)
	}
	return out, nil
}
