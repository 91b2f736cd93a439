package commands

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// fakeBackups records the backups it is asked for.
type fakeBackups struct {
	mu       sync.Mutex
	requests []BackupRequest
	snaps    []Snapshot
	failApp  string
	local    bool

	restores   []RestoreRequest
	restoreErr error // returned by Restore
	dropped    []string

	settings    BackupSettings // as Settings says; Keep "" is the default's
	uses        []string       // the URLs UseRepository was given
	useErr      error          // returned by UseRepository, which then changes nothing
	created     bool           // UseRepository found no repository and made one
	checks      []string       // the subsets Check was given
	checkReport CheckReport
	checkErr    error
}

var _ Backups = (*fakeBackups)(nil)

func (f *fakeBackups) Backup(_ context.Context, req BackupRequest, progress func(string)) ([]Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	if req.App == f.failApp {
		return nil, errors.New("restic: repository unreachable\nstack trace")
	}
	progress("dumping with " + dbPassword)
	s := Snapshot{ID: "abc123", App: req.App, Version: req.Version, Job: req.Job, What: "volumes", Time: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), Added: 3 << 20, Size: 10 << 20, Duration: 2 * time.Second}
	f.snaps = append(f.snaps, s)
	return []Snapshot{s}, nil
}

func (f *fakeBackups) Snapshots(_ context.Context, app string) ([]Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Snapshot
	for _, s := range f.snaps {
		if app == "" || s.App == app {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeBackups) Restore(_ context.Context, req RestoreRequest, progress func(string)) (Restored, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.restores = append(f.restores, req)
	progress("loading the dump with " + dbPassword)
	if req.BeforeSwap != nil && (f.restoreErr == nil || errors.Is(f.restoreErr, ErrNotAsItWas)) {
		if err := req.BeforeSwap(); err != nil {
			return Restored{}, err
		}
	}
	if f.restoreErr != nil {
		return Restored{}, f.restoreErr
	}
	return Restored{Job: 41, Version: "7.1.2", Time: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC), Size: 12 << 20,
		Checks: []string{"wordpress.sql: 12 posts"}, Took: 40 * time.Second, Replaced: true}, nil
}

func (f *fakeBackups) DropGeneration(_ context.Context, d Deployment) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropped = append(f.dropped, d.App+"@"+d.Generation)
	return nil
}

func (f *fakeBackups) Key() (string, error) { return "correct-horse-battery", nil }

func (f *fakeBackups) Where() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.where()
}

func (f *fakeBackups) where() (string, bool) {
	switch {
	case f.settings.Where != "":
		return f.settings.Where, f.settings.Local
	case f.local:
		return "the volume toolbox-backups", true
	}
	return "swift:backups:/", false
}

// fakeDefaultKeep is the fake's environment's retention.
const fakeDefaultKeep = "daily 7 weekly 4 monthly 6"

func (f *fakeBackups) Settings() BackupSettings {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.settings
	s.Where, s.Local = f.where()
	if s.Keep == "" {
		s.Keep = fakeDefaultKeep
	}
	return s
}

// SetRetention takes any text but one with "forever" in it, as is.
func (f *fakeBackups) SetRetention(keep string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(keep, "forever") {
		return "", &Error{Kind: Invalid, Message: `I cannot read that retention: "forever" is not a period.`}
	}
	f.settings.Keep, f.settings.KeepSet = keep, keep != ""
	if keep == "" {
		return fakeDefaultKeep, nil
	}
	return keep, nil
}

// UseRepository switches to url unless useErr is set; "" is the local volume.
func (f *fakeBackups) UseRepository(_ context.Context, url string, progress func(string)) (RepositoryChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uses = append(f.uses, url)
	var ch RepositoryChange
	ch.From, ch.FromLocal = f.where()
	to, local := url, url == ""
	if local {
		to = "the volume toolbox-backups"
	}
	ch.To, ch.ToLocal, ch.Created, ch.Unchanged = to, local, f.created, to == ch.From
	progress("reaching " + to)
	if f.useErr != nil {
		return ch, f.useErr
	}
	f.settings.Where, f.settings.Local, f.settings.RepositorySet = to, local, url != ""
	return ch, nil
}

func (f *fakeBackups) Check(_ context.Context, subset string, progress func(string)) (CheckReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = append(f.checks, subset)
	progress("checking")
	rep := f.checkReport
	rep.Where, _ = f.where()
	rep.Subset = subset
	return rep, f.checkErr
}

func backupsEnv(t *testing.T, b *fakeBackups) *env {
	t.Helper()
	e := newEnv(t, envOptions{apps: func(st *state.Store) *AppDeps {
		return &AppDeps{Catalog: catalog.New(nil), Engine: &fakeEngine{calls: &callLog{}}, Store: st, BaseDomain: "example.org", Backups: b}
	}})
	e.addAdmin(t, "ann")
	return e
}

func TestBackupNow(t *testing.T) {
	b := &fakeBackups{local: true}
	e := backupsEnv(t, b)
	if got := e.handle(caller("ann"), "backup now").Text; !strings.Contains(got, "Started job") {
		t.Fatalf("backup now on no app = %q, want a job", got)
	}
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !strings.Contains(got, "nothing to back up") {
		t.Errorf("backup now without apps = %q", got)
	}

	for _, a := range []state.App{{Name: "wordpress", Catalog: "wordpress", Version: "6.8", Status: statusRunning}, {Name: "wiki", Catalog: "mediawiki", Version: "1.43", Status: statusRunning}} {
		if err := e.store.PutApp(a); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.SetSecret(secretName("wordpress", "WORDPRESS_DB_PASSWORD"), state.Secret(dbPassword)); err != nil {
		t.Fatal(err)
	}
	e.handle(caller("ann"), "backup now")
	e.router.Jobs().Wait()
	got := lastPost(t, e)
	if !contains(got, "succeeded", "**wordpress** 6.8: 1 snapshots, 3.0 MiB added (of 10.0 MiB)", "**wiki** 1.43", "do not survive losing it") {
		t.Errorf("backup now = %q", got)
	}
	if len(b.requests) != 2 {
		t.Fatalf("requests = %+v, want two apps", b.requests)
	}
	wp := b.requests[1]
	if wp.App != "wordpress" || wp.Version != "6.8" || wp.Job == 0 || len(wp.Dumps) == 0 || len(wp.Volumes) == 0 {
		t.Errorf("the wordpress request = %+v, want its catalog dumps and volumes, its version and the job", wp)
	}
	for _, ed := range e.chat.Edits() {
		if strings.Contains(ed.Text, dbPassword) {
			t.Errorf("a progress edit shows a secret: %q", ed.Text)
		}
	}
}

func TestBackupNowOneAppFails(t *testing.T) {
	b := &fakeBackups{failApp: "wiki"}
	e := backupsEnv(t, b)
	for _, a := range []state.App{{Name: "wordpress", Catalog: "wordpress", Version: "6.8"}, {Name: "wiki", Catalog: "mediawiki", Version: "1.43"}} {
		if err := e.store.PutApp(a); err != nil {
			t.Fatal(err)
		}
	}
	e.handle(caller("ann"), "backup now")
	e.router.Jobs().Wait()
	got := lastPost(t, e)
	if !contains(got, "failed", "1 of 2 backups failed", "**wiki**: failed. Something went wrong on the toolbox's side (reference", "**wordpress** 6.8") ||
		strings.Contains(got, "stack trace") || strings.Contains(got, "restic:") {
		t.Errorf("a partly failed backup = %q, want the cause kept out of the chat", got)
	}
	if log := e.log.String(); !contains(log, "backup failed", "app=wiki", "repository unreachable") {
		t.Errorf("the log lacks the cause:\n%s", log)
	}
	if len(b.requests) != 2 {
		t.Errorf("requests = %d, want both apps tried", len(b.requests))
	}
}

func TestBackupNowRefusals(t *testing.T) {
	e := backupsEnv(t, &fakeBackups{})
	if got := e.handle(caller("bob"), "backup now").Text; !strings.Contains(got, "Only toolbox admins") {
		t.Errorf("backup now by a member = %q", got)
	}
	if got := e.handle(caller("ann"), "backup now gitlab").Text; !strings.Contains(got, "not installed") {
		t.Errorf("backup now of an app not installed = %q", got)
	}
}

func TestBackupsList(t *testing.T) {
	b := &fakeBackups{}
	e := backupsEnv(t, b)
	if got := e.handle(caller("bob"), "backups").Text; !strings.Contains(got, "No backups yet") {
		t.Errorf("backups when none = %q", got)
	}
	b.snaps = []Snapshot{
		{ID: "old1", App: "wordpress", What: "wordpress.sql", Version: "6.8", Time: time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC), Added: 1 << 20, Size: 5 << 20},
		{ID: "new2", App: "wordpress", What: "volumes", Version: "6.8", Time: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC), Added: 2 << 10, Size: 5 << 20},
		{ID: "wik3", App: "wiki", What: "volumes", Version: "1.43", Time: time.Date(2026, 12, 1, 3, 5, 0, 0, time.UTC)},
	}
	got := e.handle(caller("bob"), "backups wordpress").Text
	if !contains(got, "| 2026-12-01 03:00 | wordpress | volumes | 6.8 | 2.0 KiB | 5.0 MiB |", "`old1`", "Repository: swift:backups:/") || strings.Contains(got, "wik3") {
		t.Errorf("backups wordpress = %q", got)
	}
	if strings.Index(got, "new2") > strings.Index(got, "old1") {
		t.Errorf("backups are not newest first: %q", got)
	}
	if got := e.handle(caller("bob"), "backups Bad_Name").Text; !strings.Contains(got, "is not an app name") {
		t.Errorf("backups with a bad name = %q", got)
	}
}

func TestBackupKeyOnlyOnTheTerminal(t *testing.T) {
	e := backupsEnv(t, &fakeBackups{})
	got := e.handle(caller("ann"), "backup key").Text
	if strings.Contains(got, "correct-horse-battery") || !strings.Contains(got, "only on the machine's terminal") {
		t.Errorf("backup key in the chat by an admin = %q", got)
	}
	got = e.handle(Caller{UserName: "operator", Terminal: true}, "backup key").Text
	if !contains(got, "correct-horse-battery", "Keep it offline") {
		t.Errorf("backup key on the terminal = %q", got)
	}
}
