package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// clock is an injected time that tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// openTest opens a store in a fresh directory; cleanup runs tx.Check, then
// closes it.
func openTest(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "toolbox.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeChecked(t, s) })
	return s
}

// closeChecked runs bbolt's consistency check, as bbolt's internal/btesting
// does, then closes the store. A store already closed is left alone.
func closeChecked(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if errors.Is(err, bbolt.ErrDatabaseNotOpen) {
		return
	}
	if err != nil {
		t.Errorf("tx.Check: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// rawUpdate changes a closed database file directly with bbolt.
func rawUpdate(t *testing.T, path string, fn func(*bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt.Open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("bbolt Update: %v", err)
	}
}

func countKeys(t *testing.T, s *Store, bucket string) int {
	t.Helper()
	var n int
	if err := s.db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket([]byte(bucket)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenNewFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer closeChecked(t, s)

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), os.FileMode(0o600); got != want {
		t.Errorf("file mode = %v, want %v", got, want)
	}
	err = s.db.View(func(tx *bbolt.Tx) error {
		for _, name := range []string{bucketMeta, bucketJobs, bucketAudit, bucketAdmins, bucketSettings, bucketSecrets, bucketNonces, bucketApps} {
			if tx.Bucket([]byte(name)) == nil {
				t.Errorf("bucket %q missing", name)
			}
		}
		v, err := get[int](tx.Bucket([]byte(bucketMeta)), []byte(keySchema))
		if v != SchemaVersion {
			t.Errorf("schema version = %d, %v; want %d", v, err, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.SetSetting("team", "t1"); err != nil {
		t.Fatal(err)
	}
	closeChecked(t, s)

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer closeChecked(t, s)
	if got, err := s.Setting("team"); got != "t1" || err != nil {
		t.Errorf("Setting(team) after reopen = %q, %v; want t1", got, err)
	}
}

func TestOpenSchemaMismatch(t *testing.T) {
	setVersion := func(v int) func(*bbolt.Tx) error {
		return func(tx *bbolt.Tx) error { return put(tx.Bucket([]byte(bucketMeta)), []byte(keySchema), v) }
	}
	tests := []struct {
		name   string
		change func(*bbolt.Tx) error
		want   []string // in the error message
	}{
		{"newer", setVersion(SchemaVersion + 1), []string{"found 3", "want 2", "newer"}},
		{"older", setVersion(0), []string{"found 0", "want 2", "older"}},
		{"no version", func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte(bucketMeta)).Delete([]byte(keySchema))
		}, []string{"no schema version", "want 2"}},
		{"foreign file", func(tx *bbolt.Tx) error {
			if err := tx.DeleteBucket([]byte(bucketMeta)); err != nil {
				return err
			}
			_, err := tx.CreateBucket([]byte("somebody-else"))
			return err
		}, []string{"without a schema version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "toolbox.db")
			s, err := Open(path, Options{})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			closeChecked(t, s)
			rawUpdate(t, path, tt.change)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			s, err = Open(path, Options{})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want ErrSchema")
			}
			if !errors.Is(err, ErrSchema) {
				t.Errorf("Open error = %v, want ErrSchema", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error = %q, want it to contain %q", err, w)
				}
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, after) {
				t.Error("a refused Open changed the file")
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	s := openTest(t, Options{})
	_, err := Open(s.Path(), Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Errorf("second Open error = %v, want ErrLocked", err)
	}
}

func TestJobStatusDone(t *testing.T) {
	tests := []struct {
		st   JobStatus
		want bool
	}{
		{JobQueued, false}, {JobRunning, false},
		{JobSucceeded, true}, {JobFailed, true}, {JobInterrupted, true},
		{"", false},
	}
	for _, tt := range tests {
		if got := tt.st.Done(); got != tt.want {
			t.Errorf("JobStatus(%q).Done() = %v, want %v", tt.st, got, tt.want)
		}
	}
}

func TestJobDuration(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		job  Job
		want time.Duration
	}{
		{"finished", Job{Started: t0, Finished: t0.Add(90 * time.Second)}, 90 * time.Second},
		{"running", Job{Started: t0}, 0},
		{"interrupted while queued", Job{Finished: t0}, 0},
		{"new", Job{}, 0},
	}
	for _, tt := range tests {
		if got := tt.job.Duration(); got != tt.want {
			t.Errorf("%s: Duration() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestJobLifecycle(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})

	j, err := s.CreateJob(Job{ID: 42, Verb: "add", Args: []string{"wordpress", "my site"}, UserID: "u1", UserName: "alice", ChannelID: "c1"})
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	if j.ID != 1 || j.Status != JobQueued || !j.Created.Equal(c.Now()) {
		t.Errorf("CreateJob = id %d, status %q, created %v; want 1, queued, %v", j.ID, j.Status, j.Created, c.Now())
	}
	got, err := s.Job(1)
	if err != nil {
		t.Fatalf("Job(1): %v", err)
	}
	if !reflect.DeepEqual(got, j) {
		t.Errorf("Job(1) = %+v, want %+v", got, j)
	}

	c.Add(time.Second)
	started := c.Now()
	j, err = s.UpdateJob(1, func(j *Job) error {
		j.Status, j.Started, j.PostID, j.Progress = JobRunning, started, "p1", "pulling"
		j.ID = 99 // ignored
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateJob running: %v", err)
	}
	if j.ID != 1 || j.Status != JobRunning || j.PostID != "p1" {
		t.Errorf("UpdateJob = %+v, want id 1, running, post p1", j)
	}

	errNope := errors.New("nope")
	if _, err := s.UpdateJob(1, func(j *Job) error { j.Status = JobFailed; return errNope }); !errors.Is(err, errNope) {
		t.Errorf("UpdateJob with failing fn = %v, want %v", err, errNope)
	}
	if got, _ := s.Job(1); got.Status != JobRunning {
		t.Errorf("after a failing fn, status = %q, want running (nothing written)", got.Status)
	}

	c.Add(90 * time.Second)
	j, err = s.UpdateJob(1, func(j *Job) error {
		j.Status, j.Finished, j.Result = JobSucceeded, c.Now(), "https://wp.example"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateJob succeeded: %v", err)
	}
	got, _ = s.Job(1)
	if got.Duration() != 90*time.Second || !got.Status.Done() || got.Result != "https://wp.example" {
		t.Errorf("finished job = %+v, want 90s, succeeded, result set", got)
	}
	if !slices.Equal(got.Args, []string{"wordpress", "my site"}) {
		t.Errorf("Args = %q, want [wordpress, my site]", got.Args)
	}

	if _, err := s.Job(7); !errors.Is(err, ErrNotFound) {
		t.Errorf("Job(7) error = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateJob(7, func(*Job) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateJob(7) error = %v, want ErrNotFound", err)
	}
	if j, _ := s.CreateJob(Job{Verb: "backup"}); j.ID != 2 {
		t.Errorf("second job ID = %d, want 2", j.ID)
	}
}

func TestInterruptRunning(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	for _, st := range []JobStatus{JobSucceeded, JobRunning, JobFailed, JobQueued} {
		if _, err := s.CreateJob(Job{Verb: "add", Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	active, err := s.ActiveJobs()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(active), []uint64{2, 4}; !slices.Equal(got, want) {
		t.Errorf("ActiveJobs = %v, want %v", got, want)
	}

	c.Add(time.Minute)
	got, err := s.InterruptRunning("toolbox restarted")
	if err != nil {
		t.Fatalf("InterruptRunning: %v", err)
	}
	if want := []uint64{2, 4}; !slices.Equal(ids(got), want) {
		t.Errorf("InterruptRunning = %v, want %v", ids(got), want)
	}
	for _, id := range []uint64{2, 4} {
		j, _ := s.Job(id)
		if j.Status != JobInterrupted || j.Error != "toolbox restarted" || !j.Finished.Equal(c.Now()) {
			t.Errorf("job %d = %q, %q, %v; want interrupted, reason, %v", id, j.Status, j.Error, j.Finished, c.Now())
		}
	}
	for id, want := range map[uint64]JobStatus{1: JobSucceeded, 3: JobFailed} {
		if j, _ := s.Job(id); j.Status != want || !j.Finished.IsZero() {
			t.Errorf("job %d = %q finished %v, want %q untouched", id, j.Status, j.Finished, want)
		}
	}
	if active, _ := s.ActiveJobs(); len(active) != 0 {
		t.Errorf("ActiveJobs after interrupt = %v, want none", ids(active))
	}
	if again, _ := s.InterruptRunning("x"); len(again) != 0 {
		t.Errorf("second InterruptRunning = %v, want none", ids(again))
	}
}

func ids(jobs []Job) []uint64 {
	out := []uint64{}
	for _, j := range jobs {
		out = append(out, j.ID)
	}
	return out
}

func TestRecentJobs(t *testing.T) {
	s := openTest(t, Options{})
	for i := range 5 {
		if _, err := s.CreateJob(Job{Verb: fmt.Sprint("v", i)}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		n    int
		want []uint64
	}{
		{-1, []uint64{}},
		{0, []uint64{}},
		{1, []uint64{5}},
		{3, []uint64{5, 4, 3}},
		{5, []uint64{5, 4, 3, 2, 1}},
		{10, []uint64{5, 4, 3, 2, 1}},
	}
	for _, tt := range tests {
		got, err := s.RecentJobs(tt.n)
		if err != nil {
			t.Fatalf("RecentJobs(%d): %v", tt.n, err)
		}
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("RecentJobs(%d) = %v, want %v", tt.n, ids(got), tt.want)
		}
	}
}

func TestRecentJobsManyKeys(t *testing.T) {
	// Past 255 the big-endian keys must still sort as numbers.
	s := openTest(t, Options{})
	for range 300 {
		if _, err := s.CreateJob(Job{Verb: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.RecentJobs(3)
	if want := []uint64{300, 299, 298}; !slices.Equal(ids(got), want) {
		t.Errorf("RecentJobs(3) = %v, want %v", ids(got), want)
	}
}

func TestAuditConcurrent(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.AppendAudit(AuditRecord{UserID: "u", Kind: AuditCommand, Text: fmt.Sprint("/toolbox status ", i), Outcome: "ok"})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("AppendAudit: %v", err)
		}
	}

	recs, err := s.RecentAudit(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("RecentAudit = %d records, want %d", len(recs), n)
	}
	texts := map[string]bool{}
	for i, r := range recs {
		if want := uint64(n - i); r.ID != want { // unique, dense, newest first
			t.Errorf("record %d ID = %d, want %d", i, r.ID, want)
		}
		if !r.Time.Equal(c.Now()) {
			t.Errorf("record %d Time = %v, want %v", i, r.Time, c.Now())
		}
		texts[r.Text] = true
	}
	if len(texts) != n {
		t.Errorf("%d distinct texts, want %d", len(texts), n)
	}
	if got := countKeys(t, s, bucketAudit); got != n {
		t.Errorf("audit bucket holds %d keys, want %d", got, n)
	}
}

func TestAdmins(t *testing.T) {
	s := openTest(t, Options{})
	for _, a := range []Admin{{UserID: "u2", UserName: "zoe"}, {UserID: "u1", UserName: "alice", AddedBy: "zoe"}} {
		if err := s.AddAdmin(a); err != nil {
			t.Fatalf("AddAdmin(%s): %v", a.UserName, err)
		}
	}
	if err := s.AddAdmin(Admin{UserID: "u1", UserName: "alice again"}); !errors.Is(err, ErrConflict) {
		t.Errorf("AddAdmin duplicate = %v, want ErrConflict", err)
	}
	if err := s.AddAdmin(Admin{}); err == nil {
		t.Error("AddAdmin with empty user id succeeded")
	}
	admins, err := s.Admins()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range admins {
		names = append(names, a.UserName)
		if a.Added.IsZero() {
			t.Errorf("admin %s has no Added time", a.UserName)
		}
	}
	if want := []string{"alice", "zoe"}; !slices.Equal(names, want) {
		t.Errorf("Admins = %v, want %v", names, want)
	}
	for id, want := range map[string]bool{"u1": true, "u2": true, "u3": false, "": false} {
		if got, err := s.IsAdmin(id); got != want || err != nil {
			t.Errorf("IsAdmin(%q) = %v, %v; want %v", id, got, err, want)
		}
	}
	if err := s.RemoveAdmin("u1"); err != nil {
		t.Fatalf("RemoveAdmin: %v", err)
	}
	if err := s.RemoveAdmin("u1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RemoveAdmin again = %v, want ErrNotFound", err)
	}
	if ok, _ := s.IsAdmin("u1"); ok {
		t.Error("IsAdmin(u1) after removal = true")
	}
}

func TestSettings(t *testing.T) {
	s := openTest(t, Options{})
	if _, err := s.Setting("team_id"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Setting(unset) error = %v, want ErrNotFound", err)
	}
	for k, v := range map[string]string{"team_id": "t1", "channel_id": "c1", "url": "http://mm:8065"} {
		if err := s.SetSetting(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSetting("team_id", "t2"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Setting("team_id"); got != "t2" || err != nil {
		t.Errorf("Setting(team_id) = %q, %v; want t2", got, err)
	}
	got, err := s.Settings("team_id", "url", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"team_id": "t2", "url": "http://mm:8065"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Settings = %v, want %v", got, want)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	const clear = "hunter2-clear-value"
	sec := Secret(clear)
	type holder struct {
		Name  string
		Token Secret
		List  []Secret
	}
	h := holder{Name: "bot", Token: sec, List: []Secret{sec}}

	var outputs []string
	for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%q", "%x", "%X", "%d", "%10s", "%T"} {
		outputs = append(outputs, fmt.Sprintf(verb, sec), fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h), fmt.Sprintf(verb, &sec))
	}
	outputs = append(outputs, fmt.Sprint(sec), fmt.Sprintln(h), sec.String(), sec.GoString(), fmt.Errorf("login: %v", sec).Error())

	for _, v := range []any{sec, h, &h, map[string]Secret{"k": sec}} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("json.Marshal(%T): %v", v, err)
		}
		outputs = append(outputs, string(data))
	}

	var logs bytes.Buffer
	for _, handler := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		log := slog.New(handler)
		log.Info("bootstrap", "token", sec, "holder", h, slog.Group("g", "s", sec), slog.Any("ptr", &h))
		log.Info("bootstrap", "token", sec.String())
	}
	outputs = append(outputs, logs.String())

	for _, out := range outputs {
		if strings.Contains(out, clear) || strings.Contains(out, fmt.Sprintf("%x", clear)) {
			t.Errorf("output leaks the secret: %s", out)
		}
	}
	if !strings.Contains(logs.String(), redacted) {
		t.Errorf("logs = %s, want %q in them", logs.String(), redacted)
	}
	if got := sec.Reveal(); got != clear {
		t.Errorf("Reveal() = %q, want %q", got, clear)
	}
}

func TestSecrets(t *testing.T) {
	s := openTest(t, Options{})
	if _, err := s.Secret("bot_token"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Secret(unset) error = %v, want ErrNotFound", err)
	}
	if err := s.SetSecret("bot_token", "abc"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Secret("bot_token"); got.Reveal() != "abc" || err != nil {
		t.Errorf("Secret(bot_token) = %q, %v; want abc", got.Reveal(), err)
	}
	if err := s.SetSecret("empty", ""); err == nil {
		t.Error("SetSecret with an empty value succeeded")
	}

	calls := 0
	gen := func() (Secret, error) { calls++; return NewRandomSecret(32) }
	first, err := s.EnsureSecret("signing_key", gen)
	if err != nil {
		t.Fatalf("EnsureSecret: %v", err)
	}
	second, err := s.EnsureSecret("signing_key", gen)
	if err != nil {
		t.Fatalf("EnsureSecret again: %v", err)
	}
	if first.Reveal() != second.Reveal() || calls != 1 {
		t.Errorf("EnsureSecret twice: equal=%v, generate called %d times; want equal, once", first.Reveal() == second.Reveal(), calls)
	}
	if got, _ := s.Secret("signing_key"); got.Reveal() != first.Reveal() {
		t.Error("Secret(signing_key) differs from what EnsureSecret returned")
	}

	errGen := errors.New("no entropy")
	if _, err := s.EnsureSecret("other", func() (Secret, error) { return "", errGen }); !errors.Is(err, errGen) {
		t.Errorf("EnsureSecret with failing generate = %v, want %v", err, errGen)
	}
	if _, err := s.Secret("other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("after a failed generate, Secret(other) error = %v, want ErrNotFound", err)
	}
}

func TestEnsureSecretConcurrent(t *testing.T) {
	s := openTest(t, Options{})
	const n = 8
	got := make([]Secret, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := s.EnsureSecret("k", func() (Secret, error) { return NewRandomSecret(16) })
			if err != nil {
				t.Errorf("EnsureSecret: %v", err)
			}
			got[i] = v
		})
	}
	wg.Wait()
	for i := range got {
		if got[i].Reveal() != got[0].Reveal() {
			t.Fatalf("goroutine %d got a different secret", i)
		}
	}
}

func TestNewRandomSecret(t *testing.T) {
	a, err := NewRandomSecret(32)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewRandomSecret(32)
	if len(a.Reveal()) != 43 {
		t.Errorf("len = %d, want 43 (32 bytes, base64 without padding)", len(a.Reveal()))
	}
	if strings.ContainsAny(a.Reveal(), "+/=") {
		t.Errorf("%q is not URL-safe base64 without padding", a.Reveal())
	}
	if a.Reveal() == b.Reveal() {
		t.Error("two random secrets are equal")
	}
	if _, err := NewRandomSecret(0); err == nil {
		t.Error("NewRandomSecret(0) succeeded")
	}
}

func TestUseNonce(t *testing.T) {
	c := newClock()
	path := filepath.Join(t.TempDir(), "toolbox.db")
	s, err := Open(path, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	exp := c.Now().Add(10 * time.Minute)
	for i, want := range []bool{true, false, false} {
		if got, err := s.UseNonce("n1", exp); got != want || err != nil {
			t.Errorf("UseNonce(n1) call %d = %v, %v; want %v", i+1, got, err, want)
		}
	}
	if got, _ := s.UseNonce("n2", exp); !got {
		t.Error("UseNonce(n2) = false, want true")
	}
	if _, err := s.UseNonce("", exp); err == nil {
		t.Error("UseNonce(\"\") succeeded")
	}
	closeChecked(t, s)

	// Durable: still used after a restart.
	s, err = Open(path, Options{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeChecked(t, s) })
	if got, _ := s.UseNonce("n1", exp); got {
		t.Error("UseNonce(n1) after reopen = true, want false")
	}

	// Sweep: 150 more expire with n1 and n2; a day later each fresh use
	// deletes at most 100 of them.
	for i := range 150 {
		if ok, err := s.UseNonce(fmt.Sprint("old", i), exp); !ok || err != nil {
			t.Fatalf("UseNonce(old%d) = %v, %v", i, ok, err)
		}
	}
	c.Add(10*time.Minute + 24*time.Hour - time.Second)
	if ok, _ := s.UseNonce("fresh0", c.Now().Add(time.Minute)); !ok {
		t.Fatal("UseNonce(fresh0) = false")
	}
	if got, want := countKeys(t, s, bucketNonces), 153; got != want {
		t.Errorf("before the retention ends, %d nonces kept, want %d", got, want)
	}
	c.Add(2 * time.Second)
	s.UseNonce("fresh1", c.Now().Add(time.Minute))
	if got, want := countKeys(t, s, bucketNonces), 153-100+1; got != want {
		t.Errorf("after one sweep, %d nonces kept, want %d", got, want)
	}
	s.UseNonce("fresh2", c.Now().Add(time.Minute))
	if got, want := countKeys(t, s, bucketNonces), 3; got != want {
		t.Errorf("after two sweeps, %d nonces kept, want %d (the fresh ones)", got, want)
	}
}

func TestApps(t *testing.T) {
	c := newClock()
	s := openTest(t, Options{Now: c.Now})
	created := c.Now()
	for _, a := range []App{{Name: "wiki", Catalog: "mediawiki"}, {Name: "blog", Catalog: "wordpress", Settings: map[string]string{"lang": "fr"}}} {
		if err := s.PutApp(a); err != nil {
			t.Fatal(err)
		}
	}
	c.Add(time.Hour)
	if err := s.PutApp(App{Name: "blog", Catalog: "wordpress", Status: "running", Version: "6.8"}); err != nil {
		t.Fatal(err)
	}
	blog, err := s.App("blog")
	if err != nil {
		t.Fatal(err)
	}
	if !blog.Created.Equal(created) || !blog.Updated.Equal(c.Now()) || blog.Status != "running" {
		t.Errorf("App(blog) = %+v, want created %v, updated %v, running", blog, created, c.Now())
	}
	apps, _ := s.Apps()
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	if want := []string{"blog", "wiki"}; !slices.Equal(names, want) {
		t.Errorf("Apps = %v, want %v", names, want)
	}
	if err := s.DeleteApp("wiki"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteApp("wiki"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeleteApp again = %v, want ErrNotFound", err)
	}
	if _, err := s.App("wiki"); !errors.Is(err, ErrNotFound) {
		t.Errorf("App(deleted) = %v, want ErrNotFound", err)
	}
}

func TestCheckWritable(t *testing.T) {
	s := openTest(t, Options{})
	took, err := s.CheckWritable()
	if err != nil || took <= 0 {
		t.Errorf("CheckWritable = %v, %v; want a positive duration", took, err)
	}
	if got := countKeys(t, s, bucketMeta); got != 2 {
		t.Errorf("meta holds %d keys after the probe, want 2 (the schema version and the key check)", got)
	}
}

func TestBackup(t *testing.T) {
	s := openTest(t, Options{})
	for i := range 20 {
		if _, err := s.CreateJob(Job{Verb: "add", Args: []string{fmt.Sprint("app", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSecret("token", "abc"); err != nil {
		t.Fatal(err)
	}
	want, _ := s.RecentJobs(100)

	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Errorf("Backup = %d, %v; wrote %d bytes", n, err, buf.Len())
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(path+".tmp", []byte("left over by a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := s.BackupFile(path); err != nil || n == 0 {
		t.Fatalf("BackupFile = %d, %v", n, err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s.tmp still there: %v", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode = %v, want 0600", fi.Mode().Perm())
	}

	if _, err := Open(path, Options{}); !errors.Is(err, ErrKey) {
		t.Errorf("Open(backup) without its key = %v, want ErrKey", err)
	}
	b, err := Open(path, Options{Key: s.key})
	if err != nil {
		t.Fatalf("Open(backup): %v", err)
	}
	defer closeChecked(t, b)
	got, err := b.RecentJobs(100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backup holds %v, want %v", ids(got), ids(want))
	}
	if sec, err := b.Secret("token"); sec.Reveal() != "abc" || err != nil {
		t.Errorf("backup Secret(token) = %v, want it kept", err)
	}

	if _, err := s.BackupFile(s.Path()); err == nil {
		t.Error("BackupFile over the live database succeeded")
	}
}

// TestNoAliasing reads every kind of record, closes the store (unmapping the
// file), then reads the values: had they pointed into bbolt's memory map,
// this would fault.
func TestNoAliasing(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "toolbox.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 5000) // bigger than a page
	if _, err := s.CreateJob(Job{Verb: "add", Args: []string{"wordpress", long}, Result: long}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: long}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddAdmin(Admin{UserID: "u1", UserName: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting("url", long); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSecret("token", Secret(long)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutApp(App{Name: "blog", Settings: map[string]string{"k": long}}); err != nil {
		t.Fatal(err)
	}

	jobs, err1 := s.RecentJobs(10)
	active, err2 := s.ActiveJobs()
	audit, err3 := s.RecentAudit(10)
	admins, err4 := s.Admins()
	settings, err5 := s.Settings("url")
	setting, err6 := s.Setting("url")
	secret, err7 := s.Secret("token")
	apps, err8 := s.Apps()
	app, err9 := s.App("blog")
	if err := errors.Join(err1, err2, err3, err4, err5, err6, err7, err8, err9); err != nil {
		t.Fatal(err)
	}
	closeChecked(t, s)

	for name, got := range map[string]string{
		"job arg":    jobs[0].Args[1],
		"job result": jobs[0].Result,
		"active":     active[0].Result,
		"audit":      audit[0].Text,
		"settings":   settings["url"],
		"setting":    setting,
		"secret":     secret.Reveal(),
		"apps":       apps[0].Settings["k"],
		"app":        app.Settings["k"],
	} {
		if got != long {
			t.Errorf("%s after Close differs", name)
		}
	}
	if admins[0].UserName != "alice" {
		t.Errorf("admin after Close = %q, want alice", admins[0].UserName)
	}
}

func TestDeleteSecrets(t *testing.T) {
	s := openTest(t, Options{})
	for _, name := range []string{"app/wiki/DB", "app/wiki/KEY", "app/wikipedia/DB", "bot"} {
		if err := s.SetSecret(name, Secret("v-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteSecrets("app/wiki/")
	if err != nil || n != 2 {
		t.Fatalf("DeleteSecrets = %d, %v; want 2, nil", n, err)
	}
	for name, want := range map[string]bool{"app/wiki/DB": false, "app/wiki/KEY": false, "app/wikipedia/DB": true, "bot": true} {
		_, err := s.Secret(name)
		if got := err == nil; got != want {
			t.Errorf("after delete, secret %q present = %v, want %v", name, got, want)
		}
	}
}

func TestAuditAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "closed.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: "status"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(AuditRecord{Kind: AuditCommand, Text: "late"}); err == nil {
		t.Error("AppendAudit after Close succeeded")
	}
	s.FlushAudit() // must not block or panic
	again, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	recs, err := again.RecentAudit(10)
	if err != nil || len(recs) != 1 || recs[0].Text != "status" {
		t.Errorf("after reopening, audit = %+v, %v; want the record appended before Close", recs, err)
	}
}
