package state

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Admin is a toolbox admin: someone who may run destructive verbs.
type Admin struct {
	UserID   string    `json:"user_id"`
	UserName string    `json:"user_name,omitempty"`
	AddedBy  string    `json:"added_by,omitempty"`
	Added    time.Time `json:"added,omitzero"`
}

// AddAdmin adds a, with Added=now if zero. An admin already present is
// ErrConflict.
func (s *Store) AddAdmin(a Admin) error {
	if a.UserID == "" {
		return errors.New("state: add admin: empty user id")
	}
	if a.Added.IsZero() {
		a.Added = s.stamp()
	}
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketAdmins))
		if b.Get([]byte(a.UserID)) != nil {
			return ErrConflict
		}
		return put(b, []byte(a.UserID), a)
	})
	if err != nil {
		return fmt.Errorf("state: add admin %s (%s): %w", a.UserName, a.UserID, err)
	}
	return nil
}

// RemoveAdmin removes an admin, or returns ErrNotFound.
func (s *Store) RemoveAdmin(userID string) error {
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketAdmins))
		if b.Get([]byte(userID)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(userID))
	})
	if err != nil {
		return fmt.Errorf("state: remove admin %s: %w", userID, err)
	}
	return nil
}

// Admins returns the admins sorted by UserName (then UserID).
func (s *Store) Admins() ([]Admin, error) {
	admins := []Admin{}
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketAdmins)).ForEach(func(k, v []byte) error {
			a, err := decode[Admin](v)
			if err != nil {
				return fmt.Errorf("admin %s: %w", k, err)
			}
			admins = append(admins, a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: admins: %w", err)
	}
	slices.SortFunc(admins, func(a, b Admin) int {
		return cmp.Or(cmp.Compare(a.UserName, b.UserName), cmp.Compare(a.UserID, b.UserID))
	})
	return admins, nil
}

// IsAdmin reports whether userID is an admin.
func (s *Store) IsAdmin(userID string) (bool, error) {
	if userID == "" {
		return false, nil
	}
	var ok bool
	err := s.view(func(tx *bbolt.Tx) error {
		ok = tx.Bucket([]byte(bucketAdmins)).Get([]byte(userID)) != nil
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("state: is admin %s: %w", userID, err)
	}
	return ok, nil
}
