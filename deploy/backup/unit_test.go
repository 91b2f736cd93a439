package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// fakeRunner answers each run with canned output (a hand-written fake:
// restic's real behaviour is in the other tests).
type fakeRunner struct {
	run  func(r Run) (code int, stdout, stderr string)
	runs []Run
}

func (f *fakeRunner) Run(_ context.Context, r Run) (int, error) {
	f.runs = append(f.runs, r)
	code, out, errOut := f.run(r)
	_, _ = io.WriteString(r.Stdout, out)
	_, _ = io.WriteString(r.Stderr, errOut)
	return code, nil
}

func fakeRepo(f *fakeRunner) *Repository {
	return &Repository{URL: "/repository", Password: "pw", Runner: f}
}

const fakeSummary = `{"message_type":"summary","files_new":2,"total_files_processed":3,"total_bytes_processed":10,"data_added":5,"total_duration":1.5,"snapshot_id":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}` + "\n"

func TestBackupSomeFilesUnreadable(t *testing.T) {
	f := &fakeRunner{run: func(Run) (int, string, string) {
		return 3, fakeSummary,
			`{"message_type":"error","error":{"message":"open /volumes/wp_data/secret: permission denied"},"during":"archival","item":"/volumes/wp_data/secret"}` + "\n" +
				`{"message_type":"exit_error","code":3,"message":"Warning: at least one source file could not be read\n"}` + "\n"
	}}
	sum, err := fakeRepo(f).Backup(t.Context(), BackupSpec{Volumes: []string{"wp_data"}}, nil)
	var e *ExitError
	if !errors.Is(err, ErrPartial) || !errors.As(err, &e) || e.Code != 3 {
		t.Fatalf("Backup = %v, want ErrPartial", err)
	}
	if sum.SnapshotID == "" || sum.FilesNew != 2 || sum.Duration.Seconds() != 1.5 {
		t.Errorf("Summary = %+v, want the snapshot restic made", sum)
	}
	want := "backup: restic backup: some files could not be read: Warning: at least one source file could not be read (open /volumes/wp_data/secret: permission denied)"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// TestBackupTruncatedStreamIsForgotten: a runner that closes restic's input
// on a read error breaks its contract; Backup takes the snapshot back.
func TestBackupTruncatedStreamIsForgotten(t *testing.T) {
	f := &fakeRunner{run: func(r Run) (int, string, string) {
		if r.Stdin != nil {
			_, _ = io.ReadAll(r.Stdin)
			return 0, fakeSummary, ""
		}
		return 0, "", ""
	}}
	in := io.MultiReader(strings.NewReader("half a dump"), &failingReader{errors.New("pg_dump died")})
	_, err := fakeRepo(f).Backup(t.Context(), BackupSpec{Stdin: in, StdinFilename: "db.sql"}, nil)
	if err == nil || !strings.Contains(err.Error(), "pg_dump died") {
		t.Fatalf("Backup = %v, want the stream's error", err)
	}
	if len(f.runs) != 2 || f.runs[1].Args[0] != "forget" || f.runs[1].Args[len(f.runs[1].Args)-1] != "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("runs = %v, want a backup then a forget of its snapshot", argsOf(f.runs))
	}
}

func argsOf(runs []Run) [][]string {
	var a [][]string
	for _, r := range runs {
		a = append(a, r.Args)
	}
	return a
}

func TestKindOf(t *testing.T) {
	for _, tt := range []struct {
		code    int
		msg     string
		retried bool
		want    error
	}{
		{3, "", false, ErrPartial},
		{10, "", false, ErrNoRepository},
		{11, "", false, ErrLocked},
		{12, "", false, ErrWrongPassword},
		{1, "Fatal: wrong password or no key found", false, ErrWrongPassword}, // restic 0.16
		{1, "unable to create lock in backend: repository is already locked by PID 7", false, ErrLocked}, // restic 0.16
		{1, "Fatal: unable to open config file: dial tcp 10.0.0.1:443: i/o timeout", false, ErrUnreachable},
		{1, "Fatal: unable to open config file: context canceled", true, ErrUnreachable},
		{1, "Fatal: repository contains errors", false, nil},
	} {
		if got := kindOf(tt.code, tt.msg, tt.retried); got != tt.want {
			t.Errorf("kindOf(%d, %q, %v) = %v, want %v", tt.code, tt.msg, tt.retried, got, tt.want)
		}
	}
}

func TestStderrWatcherSplitWrites(t *testing.T) {
	w := &stderrWatcher{}
	for _, part := range []string{"Load(<config/>) returned error, retrying after 1s: dial tcp: connection ", "refused\n{\"message_type\":\"exit_", "error\",\"code\":1,\"message\":\"Fatal: first\\nsecond\"}\n"} {
		_, _ = w.Write([]byte(part))
	}
	e := w.exitError("cat config", 1)
	if e.Message != "Fatal: first; second" || e.Kind != ErrUnreachable || retriedError(w.retry) != "dial tcp: connection refused" {
		t.Errorf("exitError = %+v (retry %q)", e, w.retry)
	}
}

func TestInvalidRequests(t *testing.T) {
	f := &fakeRunner{run: func(Run) (int, string, string) { t.Error("restic ran"); return 0, "", "" }}
	repo := fakeRepo(f)
	ctx := t.Context()
	for name, err := range map[string]error{
		"tag with a comma":   second(repo.Backup(ctx, BackupSpec{Volumes: []string{"v1"}, Tags: map[string]string{"app": "a,b"}}, nil)),
		"empty tag key":      second(repo.Backup(ctx, BackupSpec{Volumes: []string{"v1"}, Tags: map[string]string{"": "x"}}, nil)),
		"bad volume":         second(repo.Backup(ctx, BackupSpec{Volumes: []string{"../etc"}}, nil)),
		"both":               second(repo.Backup(ctx, BackupSpec{Volumes: []string{"v1"}, Stdin: strings.NewReader(""), StdinFilename: "a"}, nil)),
		"nothing":            second(repo.Backup(ctx, BackupSpec{}, nil)),
		"stdin name /":       second(repo.Backup(ctx, BackupSpec{Stdin: strings.NewReader(""), StdinFilename: "a/b.sql"}, nil)),
		"filter with comma":  second(repo.Snapshots(ctx, "app=a,b")),
		"empty policy":       second(repo.Forget(ctx, Policy{}, nil, false)),
		"negative policy":    second(repo.Forget(ctx, Policy{Daily: -1}, nil, false)),
		"bad subset":         second(repo.Check(ctx, "--read-data")),
		"bad snapshot":       repo.Dump(ctx, "--help", "/a.sql", io.Discard),
		"relative dump file": repo.Dump(ctx, "latest", "a.sql", io.Discard),
		"restore no volume":  second(repo.Restore(ctx, RestoreSpec{Snapshot: "latest"}, nil)),
		"reserved env":       second((&Repository{URL: "/r", Password: "p", Runner: f, Env: map[string]Secret{"RESTIC_PASSWORD": "x"}}).Open(ctx)),
		"no password":        second((&Repository{URL: "/r", Runner: f}).Open(ctx)),
	} {
		if err == nil {
			t.Errorf("%s: nil error", name)
		}
	}
	for _, s := range []string{"5%", "2.5%", "1/10", "500M", "1G", "100"} {
		if err := validSubset(s); err != nil {
			t.Errorf("validSubset(%q) = %v", s, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestSecretsDoNotShow(t *testing.T) {
	const pw, key = "hunter2-password", "AKIA-secret-key"
	repo := &Repository{URL: "rest:https://backup:" + pw + "@backups.example:8000/toolbox", Password: pw,
		Env: map[string]Secret{"AWS_SECRET_ACCESS_KEY": key}, Runner: &fakeRunner{}}
	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("repo", "repo", repo, "password", repo.Password, "env", repo.Env)
	run := Run{Args: []string{"snapshots"}, Env: map[string]string{"RESTIC_PASSWORD": pw}}
	log.Info("run", "run", run)
	js, _ := json.Marshal(struct{ P Secret }{repo.Password})
	shown := strings.Join([]string{logged.String(), string(js), repo.String(),
		fmt.Sprintf("%v %s %q %#v %x %+v", repo.Password, repo.Password, repo.Password, repo.Password, repo.Password, *repo)}, "\n")
	for _, secret := range []string{pw, key} {
		if strings.Contains(shown, secret) {
			t.Errorf("%q shows in:\n%s", secret, shown)
		}
	}
	if !strings.Contains(logged.String(), "AWS_SECRET_ACCESS_KEY") || !strings.Contains(repo.String(), "backups.example:8000/toolbox") {
		t.Errorf("the names should show: %s / %s", logged.String(), repo.String())
	}
}
