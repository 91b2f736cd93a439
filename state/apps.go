package state

import (
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// App is a deployed tool.
type App struct {
	Name     string            `json:"name"`
	Catalog  string            `json:"catalog,omitempty"` // the catalog entry it was made from
	Domain   string            `json:"domain,omitempty"`
	Version  string            `json:"version,omitempty"`
	Status   string            `json:"status,omitempty"`
	Created  time.Time         `json:"created,omitzero"`
	Updated  time.Time         `json:"updated,omitzero"`
	Settings map[string]string `json:"settings,omitempty"`
	// Source is the catalog entry (its Compose file) the app runs from, so
	// that a failed upgrade can go back to it once the catalog moved on.
	Source []byte `json:"source,omitempty"`
	// Generation names the app's volumes in use: "" the first ones, then
	// each restore's (see stack.GenerationVolume).
	Generation string `json:"generation,omitempty"`
	// Previous is the generation a restore replaced, kept until Until so that
	// `restore undo` can swap it back.
	Previous *PreviousData `json:"previous,omitempty"`
	// Pending is a restore's generation, checked in its scratch copy, that
	// the app was being moved onto: set just before the swap, cleared after
	// it. Found set, the swap was interrupted, and the next deploy finishes it.
	Pending *PreviousData `json:"pending,omitempty"`
}

// PreviousData is an app's data that a restore replaced, kept for undo.
type PreviousData struct {
	Generation string    `json:"generation"`
	Version    string    `json:"version"` // the app's version with that data
	Until      time.Time `json:"until"`
	Snapshot   string    `json:"snapshot"` // what was restored over it
}

// PutApp creates or replaces the app a.Name. Updated is set to now; Created
// keeps its stored value when a.Created is zero (or becomes now for a new app).
func (s *Store) PutApp(a App) error {
	if a.Name == "" {
		return errors.New("state: put app: empty name")
	}
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketApps))
		a.Updated = s.stamp()
		if a.Created.IsZero() {
			old, err := get[App](b, []byte(a.Name))
			switch {
			case err == nil:
				a.Created = old.Created
			case errors.Is(err, ErrNotFound):
				a.Created = a.Updated
			default:
				return err
			}
		}
		return put(b, []byte(a.Name), a)
	})
	if err != nil {
		return fmt.Errorf("state: put app %s: %w", a.Name, err)
	}
	return nil
}

// App returns the app called name, or ErrNotFound.
func (s *Store) App(name string) (App, error) {
	var a App
	err := s.view(func(tx *bbolt.Tx) error {
		var err error
		a, err = get[App](tx.Bucket([]byte(bucketApps)), []byte(name))
		return err
	})
	if err != nil {
		return App{}, fmt.Errorf("state: app %s: %w", name, err)
	}
	return a, nil
}

// Apps returns every app, sorted by name.
func (s *Store) Apps() ([]App, error) {
	apps := []App{}
	err := s.view(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketApps)).ForEach(func(k, v []byte) error {
			a, err := decode[App](v)
			if err != nil {
				return fmt.Errorf("app %s: %w", k, err)
			}
			apps = append(apps, a)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: apps: %w", err)
	}
	return apps, nil
}

// DeleteApp deletes the app called name, or returns ErrNotFound.
func (s *Store) DeleteApp(name string) error {
	err := s.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketApps))
		if b.Get([]byte(name)) == nil {
			return ErrNotFound
		}
		return b.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("state: delete app %s: %w", name, err)
	}
	return nil
}
