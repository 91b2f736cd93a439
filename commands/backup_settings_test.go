package commands

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// fakeSchedules keeps the schedules in memory: the environment's are daily
// 03:00 and weekly sunday 05:00; "nightly" does not read.
type fakeSchedules struct {
	mu   sync.Mutex
	set  map[string]string // by job, the ones set
	sets []string          // "job spec" of each SetSchedule, spec "" for the default
}

var _ Schedules = (*fakeSchedules)(nil)

var fakeScheduleDefaults = map[string]string{ScheduleBackup: "daily 03:00", ScheduleDrill: "weekly sunday 05:00"}

func (f *fakeSchedules) info(job string) ScheduleInfo {
	paris, _ := time.LoadLocation("Europe/Paris")
	spec, set := f.set[job], true
	if spec == "" {
		spec, set = fakeScheduleDefaults[job], false
	}
	next := time.Date(2026, 3, 2, 3, 0, 0, 0, paris)
	if job == ScheduleDrill {
		next = time.Date(2026, 3, 8, 5, 0, 0, 0, paris)
	}
	return ScheduleInfo{Spec: spec, Set: set, Zone: "Europe/Paris", Next: next}
}

func (f *fakeSchedules) Schedule(job string) (ScheduleInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := fakeScheduleDefaults[job]; !ok {
		return ScheduleInfo{}, errors.New("no such job")
	}
	return f.info(job), nil
}

func (f *fakeSchedules) SetSchedule(job, spec string) (ScheduleInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if spec == "nightly" {
		return ScheduleInfo{}, &Error{Kind: Invalid, Message: "I cannot read that schedule: write `daily HH:MM` or `weekly <day> HH:MM`."}
	}
	f.sets = append(f.sets, job+" "+spec)
	if f.set == nil {
		f.set = map[string]string{}
	}
	f.set[job] = spec
	return f.info(job), nil
}

func (f *fakeSchedules) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sets)
}

// errTestUnreachable stands for deploy/backup's ErrUnreachable.
var errTestUnreachable = errors.New("the repository's storage cannot be reached")

// settingsEnv is a router with the backup settings' verbs, on the fakes;
// ann is an admin, bob is not.
func settingsEnv(t *testing.T, b *fakeBackups) (*env, *fakeSchedules) {
	t.Helper()
	s := &fakeSchedules{}
	e := newEnv(t, envOptions{
		apps: func(st *state.Store) *AppDeps {
			return &AppDeps{Catalog: catalog.New(nil), Engine: &fakeEngine{calls: &callLog{}}, Store: st, BaseDomain: "example.org", Backups: b, Schedules: s}
		},
		errorKinds: []ErrorKind{{Err: errTestUnreachable, Kind: Unavailable, Message: "The backup repository cannot be reached (network, credentials or permissions of its storage)."}},
	})
	e.addAdmin(t, "ann")
	return e, s
}

// confirmJob runs text as c, confirms its one prompt and waits for the job.
func confirmJob(t *testing.T, e *env, c Caller, text string) ClickResult {
	t.Helper()
	before := len(e.chat.Prompts())
	if got := e.handle(c, text).Text; !strings.Contains(got, "This needs a confirmation") {
		t.Fatalf("Handle(%q) = %q, want a confirmation", text, got)
	}
	prompts := e.chat.Prompts()[before:]
	if len(prompts) != 1 {
		t.Fatalf("%q posted %d prompts, want 1", text, len(prompts))
	}
	res := e.router.HandleClick(context.Background(), Click{Caller: c, PostID: prompts[0].ID, Confirm: true, Token: prompts[0].Token})
	if !strings.Contains(res.Update, "Started job") {
		t.Fatalf("confirming %q = %+v, want a job", text, res)
	}
	e.router.Jobs().Wait()
	return res
}

func TestBackupSettingsGolden(t *testing.T) {
	b := &fakeBackups{snaps: []Snapshot{
		{ID: "old1", App: "wordpress", What: "volumes", Time: time.Date(2026, 2, 27, 3, 0, 0, 0, time.UTC)},
		{ID: "new2", App: "wordpress", What: "volumes", Time: time.Date(2026, 2, 28, 3, 0, 0, 0, time.UTC)},
	}}
	e, _ := settingsEnv(t, b)
	var got []string
	for _, text := range []string{"backup schedule", "backup keep"} {
		got = append(got, "> /toolbox "+text+"\n"+e.handle(caller("bob"), text).Text)
	}
	e.handle(caller("ann"), "backup repository")
	e.router.Jobs().Wait()
	got = append(got, "> /toolbox backup repository\n"+lastPost(t, e))
	got = append(got, "> /toolbox help backup schedule\n"+e.handle(caller("bob"), "help backup schedule").Text)
	golden(t, "backup_settings.golden", strings.Join(got, "\n\n")+"\n")
}

func TestBackupSchedule(t *testing.T) {
	e, s := settingsEnv(t, &fakeBackups{})
	got := e.handle(caller("bob"), "backup schedule").Text
	if !contains(got, "Every app is backed up daily 03:00 (the environment's TOOLBOX_BACKUP_SCHEDULE); the next time is Mon 2026-03-02 03:00.",
		"Restore drills run weekly sunday 05:00", "Times are in Europe/Paris.") {
		t.Errorf("backup schedule = %q", got)
	}
	if again := e.handle(caller("bob"), "backup schedule drill").Text; again != got {
		t.Errorf("backup schedule drill = %q, want both schedules", again)
	}

	for _, text := range []string{"backup schedule daily 04:30", "backup schedule drill weekly sunday 06:00", "backup schedule default"} {
		if got := e.handle(caller("bob"), text); !got.Failed || !strings.Contains(got.Text, "only toolbox admins may change it") {
			t.Errorf("%s by a member = %+v, want it refused", text, got)
		}
	}
	if rec := e.lastAudit(t); rec.Outcome != "refused" {
		t.Errorf("audit of a refusal = %+v", rec)
	}
	if got := s.changes(); len(got) != 0 {
		t.Fatalf("a member changed the schedules: %q", got)
	}

	got = e.handle(caller("ann"), "backup schedule daily 04:30").Text
	if !contains(got, "Backups of every app now run daily 04:30, in Europe/Paris.", "wins over TOOLBOX_BACKUP_SCHEDULE", "`/toolbox backup schedule default`") {
		t.Errorf("backup schedule daily 04:30 = %q", got)
	}
	got = e.handle(caller("ann"), "backup schedule Drill weekly sunday 06:00").Text
	if !contains(got, "Restore drills now run weekly sunday 06:00", "TOOLBOX_DRILL_SCHEDULE", "`/toolbox backup schedule drill default`") {
		t.Errorf("backup schedule drill = %q", got)
	}
	if got := e.handle(caller("bob"), "backup schedule").Text; !contains(got, "backed up daily 04:30 (set with `/toolbox backup schedule`)",
		"drills run weekly sunday 06:00 (set with `/toolbox backup schedule drill`)") {
		t.Errorf("backup schedule after changes = %q", got)
	}
	got = e.handle(caller("ann"), "backup schedule default").Text
	if !contains(got, "Backups of every app run on the environment's schedule again (TOOLBOX_BACKUP_SCHEDULE): daily 03:00") {
		t.Errorf("backup schedule default = %q", got)
	}
	if got := e.handle(caller("ann"), "backup schedule nightly"); !got.Failed || !strings.Contains(got.Text, "I cannot read that schedule") {
		t.Errorf("backup schedule nightly = %+v", got)
	}
	if got := e.handle(Caller{UserName: "operator", Terminal: true}, "backup schedule weekly monday 01:00").Text; !strings.Contains(got, "now run weekly monday 01:00") {
		t.Errorf("backup schedule on the terminal = %q", got)
	}
	want := []string{"backup daily 04:30", "drill weekly sunday 06:00", "backup ", "backup weekly monday 01:00"}
	if got := s.changes(); !slices.Equal(got, want) {
		t.Errorf("SetSchedule calls = %q, want %q", got, want)
	}
	if got := e.handle(caller("ann"), "backup schedule drill weekly sunday 05:00 extra").Text; !strings.Contains(got, "Usage") {
		t.Errorf("too many words = %q, want the usage", got)
	}
}

func TestBackupKeep(t *testing.T) {
	b := &fakeBackups{}
	e, _ := settingsEnv(t, b)
	got := e.handle(caller("bob"), "backup keep").Text
	if !contains(got, "restic keeps `daily 7 weekly 4 monthly 6` (the environment's, TOOLBOX_BACKUP_KEEP): the newest backup of each of the last 7 days, 4 weeks and 6 months.") {
		t.Errorf("backup keep = %q", got)
	}
	if got := e.handle(caller("bob"), "backup keep daily 1"); !got.Failed || !strings.Contains(got.Text, "only toolbox admins may change it") {
		t.Errorf("backup keep by a member = %+v", got)
	}
	if s := b.Settings(); s.KeepSet {
		t.Fatalf("a member changed the retention: %+v", s)
	}

	got = e.handle(caller("ann"), "backup keep daily 14 weekly 8").Text
	if !contains(got, "From the next run on, restic keeps `daily 14 weekly 8`: the newest backup of each of the last 14 days and 8 weeks.",
		"wins over TOOLBOX_BACKUP_KEEP", "That keeps less than before: the next run forgets, for good") {
		t.Errorf("backup keep daily 14 weekly 8 = %q, want the warning (no monthly any more)", got)
	}
	got = e.handle(caller("ann"), "backup keep daily 14 weekly 8 monthly 12").Text
	if strings.Contains(got, "keeps less") {
		t.Errorf("a larger retention warns: %q", got)
	}
	if got := e.handle(caller("bob"), "backup keep").Text; !strings.Contains(got, "`daily 14 weekly 8 monthly 12` (set with `/toolbox backup keep`)") {
		t.Errorf("backup keep after a change = %q", got)
	}
	if got := e.handle(caller("ann"), "backup keep forever"); !got.Failed || !strings.Contains(got.Text, "I cannot read that retention") {
		t.Errorf("backup keep forever = %+v", got)
	}
	got = e.handle(caller("ann"), "backup keep default").Text
	if !contains(got, "restic keeps the environment's retention again (TOOLBOX_BACKUP_KEEP), `daily 7 weekly 4 monthly 6`", "keeps less") {
		t.Errorf("backup keep default = %q", got)
	}
	if s := b.Settings(); s.KeepSet || s.Keep != fakeDefaultKeep {
		t.Errorf("after default: %+v", s)
	}
}

func TestDescribeKeep(t *testing.T) {
	for _, tt := range []struct{ keep, want string }{
		{"daily 7 weekly 4 monthly 6", "the newest backup of each of the last 7 days, 4 weeks and 6 months"},
		{"last 1", "the newest backup"},
		{"last 3 yearly 1", "the 3 newest backups, and the newest backup of each of the last 1 year"},
		{"weekly 2", "the newest backup of each of the last 2 weeks"},
		{"", "every backup"},
	} {
		if got := describeKeep(tt.keep); got != tt.want {
			t.Errorf("describeKeep(%q) = %q, want %q", tt.keep, got, tt.want)
		}
	}
	for _, tt := range []struct {
		before, after string
		want          bool
	}{
		{"daily 7 weekly 4", "daily 7 weekly 4", false},
		{"daily 7 weekly 4", "daily 8 weekly 4 monthly 1", false},
		{"daily 7 weekly 4", "daily 6 weekly 5", true},
		{"daily 7 weekly 4", "daily 7", true},
		{"", "daily 1", false},
	} {
		if got := keepsLess(tt.before, tt.after); got != tt.want {
			t.Errorf("keepsLess(%q, %q) = %v, want %v", tt.before, tt.after, got, tt.want)
		}
	}
}

func TestBackupRepository(t *testing.T) {
	b := &fakeBackups{created: true}
	e, _ := settingsEnv(t, b)
	if got := e.handle(caller("bob"), "backup repository"); !got.Failed || !strings.Contains(got.Text, "Only toolbox admins") {
		t.Errorf("backup repository by a member = %+v", got)
	}
	if got := e.handle(caller("ann"), "backup repository").Text; !strings.Contains(got, "Started job") {
		t.Fatalf("backup repository = %q, want a job without confirmation", got)
	}
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !contains(got, "succeeded", "Backups go to swift:backups:/ (the environment's, TOOLBOX_BACKUP_REPOSITORY).", "It holds no backup yet") {
		t.Errorf("backup repository = %q", got)
	}

	const url = "s3:https://s3.example.org/collective/toolbox"
	confirmJob(t, e, caller("ann"), "backup repository "+url)
	prompt := e.chat.Prompts()[len(e.chat.Prompts())-1].Text
	if !contains(prompt, "From the next run on, backups go to `"+url+"`", "The backups already in swift:backups:/ stay there") {
		t.Errorf("the prompt = %q, want what changes", prompt)
	}
	got := lastPost(t, e)
	if !contains(got, "succeeded", "Backups now go to **"+url+"** (there was no repository there: one was created, with the toolbox's password).",
		"The backups made until now stay in swift:backups:/, where they are", "The next nightly run writes to the new repository") {
		t.Errorf("backup repository %s = %q", url, got)
	}
	if !slices.Equal(b.uses, []string{url}) {
		t.Errorf("UseRepository calls = %q", b.uses)
	}
	if s := b.Settings(); s.Where != url || !s.RepositorySet {
		t.Errorf("settings = %+v", s)
	}

	// Back to the environment's: here, the local volume.
	confirmJob(t, e, caller("ann"), "backup repository default")
	if got := lastPost(t, e); !contains(got, "Backups now go to **the volume toolbox-backups**", "do not survive losing it") {
		t.Errorf("backup repository default = %q", got)
	}
	if !slices.Equal(b.uses, []string{url, ""}) {
		t.Errorf("UseRepository calls = %q", b.uses)
	}
	e.handle(caller("ann"), "backup repository")
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !contains(got, "Backups go to the volume toolbox-backups (the environment's", "do not survive losing it") {
		t.Errorf("backup repository when local = %q", got)
	}
}

func TestBackupRepositoryFailsAndSwitchesNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"unreachable", errors.Join(errors.New("backup: restic cat config: dial tcp: i/o timeout"), errTestUnreachable),
			"Nothing was switched: backups still go to swift:backups:/. The backup repository cannot be reached"},
		{"restic's words", &Error{Kind: Unavailable, Message: "restic could not use rest:https://x.example/: invalid backend", Err: errors.New("exit 1")},
			"Nothing was switched: backups still go to swift:backups:/. restic could not use rest:https://x.example/: invalid backend"},
		{"unknown", errors.New("docker: boom"), "Nothing was switched: backups still go to swift:backups:/."},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBackups{useErr: tt.err}
			e, _ := settingsEnv(t, b)
			confirmJob(t, e, caller("ann"), "backup repository rest:https://x.example/")
			if got := lastPost(t, e); !contains(got, "failed", tt.want) || strings.Contains(got, "dial tcp") {
				t.Errorf("failed switch = %q, want %q", got, tt.want)
			}
			if s := b.Settings(); s.RepositorySet || s.Where != "swift:backups:/" {
				t.Errorf("settings after a failed switch = %+v", s)
			}
		})
	}
}

func TestBackupRepositoryRefusals(t *testing.T) {
	b := &fakeBackups{}
	e, _ := settingsEnv(t, b)
	const password = "s3cr3t-pa55"
	for text, want := range map[string]string{
		"backup repository rest:https://ann:" + password + "@backup.example.org/": "Do not put a user name or password in the URL",
		"backup repository /srv/backups":                                          "A path would be inside restic's throwaway container",
		"backup repository sftp:ann@host:/backups":                                "needs an ssh key",
		"backup repository b2:bucket:path":                                        "s3:, swift: and rest: repositories only",
		"backup repository s3:":                                                   "is not a repository URL I can use",
		"backup repository swift:container":                                       "is not a repository URL I can use",
		"backup repository rest:ftp://host/":                                      "is not a repository URL I can use",
		"backup repository nonsense":                                              "is not a repository URL I can use",
		"backup repository 'rest:https://host/ x'":                                "That is not a repository URL",
		"backup repository a b":                                                   "Usage",
	} {
		got := e.handle(caller("ann"), text)
		if !got.Failed || !strings.Contains(got.Text, want) {
			t.Errorf("%s = %+v, want %q", text, got, want)
		}
		if strings.Contains(got.Text, password) {
			t.Errorf("%s: the reply shows the password: %q", text, got.Text)
		}
	}
	if len(e.chat.Prompts()) != 0 || len(b.uses) != 0 {
		t.Errorf("refused commands asked %d confirmations and switched %q", len(e.chat.Prompts()), b.uses)
	}
	recs, err := e.store.RecentAudit(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if strings.Contains(rec.Text, password) {
			t.Errorf("the audit log keeps the password: %+v", rec)
		}
	}
	if strings.Contains(e.log.String(), password) {
		t.Errorf("the log shows the password:\n%s", e.log.String())
	}
}

func TestValidRepositoryURL(t *testing.T) {
	for _, u := range []string{
		"s3:https://s3.example.org/bucket", "s3:https://s3.example.org/bucket/path", "s3:s3.amazonaws.com/bucket", "s3:http://127.0.0.1:9000/b",
		"swift:backups:/", "swift:backups:/toolbox", "rest:https://backup.example.org:8000/", "rest:http://10.0.0.2:8000/collective",
	} {
		if err := validRepositoryURL(u); err != nil {
			t.Errorf("validRepositoryURL(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range []string{
		"", "s3:", "s3:bucket", "s3:https://host", "s3:https://host/", "s3:ftp://host/bucket", "swift:", "swift:c", "swift::/p",
		"rest:", "rest:host:8000", "rest:https://", "rest:https://u:p@host/", "s3:https://key@host/bucket", "local:/x", "/x",
		"sftp:host:/x", "rclone:remote:x", "rest:https://host/\x00", strings.Repeat("s", 600),
	} {
		if err := validRepositoryURL(u); KindOf(err) != Invalid {
			t.Errorf("validRepositoryURL(%q) = %v, want invalid", u, err)
		}
	}
}

func TestRedactUserinfo(t *testing.T) {
	for in, want := range map[string]string{
		"rest:https://ann:pw@host:8000/path": "rest:https://[redacted]@host:8000/path",
		"rest:https://ann@host/":             "rest:https://[redacted]@host/",
		"rest:https://host/a@b":              "rest:https://host/a@b",
		"s3:https://host/bucket":             "s3:https://host/bucket",
		"swift:c:/p":                         "swift:c:/p",
		"rest:https://a:b@c@host/":           "rest:https://[redacted]@host/",
	} {
		if got := redactUserinfo(in); got != want {
			t.Errorf("redactUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackupCheck(t *testing.T) {
	b := &fakeBackups{checkReport: CheckReport{Took: 2*time.Minute + 3*time.Second}}
	e, _ := settingsEnv(t, b)
	if got := e.handle(caller("bob"), "backup check"); !got.Failed || !strings.Contains(got.Text, "Only toolbox admins") {
		t.Errorf("backup check by a member = %+v", got)
	}
	e.handle(caller("ann"), "backup check")
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !contains(got, "succeeded", "No errors: restic checked the structure of swift:backups:/ and read 5% of its data back, in 2m3s.") {
		t.Errorf("backup check = %q", got)
	}
	e.handle(caller("ann"), "backup check 100%")
	e.router.Jobs().Wait()
	for _, text := range []string{"backup check 0%", "backup check 101%", "backup check 5", "backup check 1/20", "backup check 05%", "backup check -5%"} {
		if got := e.handle(caller("ann"), text); !got.Failed || !strings.Contains(got.Text, "as a percentage") {
			t.Errorf("%s = %+v, want it refused", text, got)
		}
	}
	if !slices.Equal(b.checks, []string{"5%", "100%"}) {
		t.Errorf("Check calls = %q", b.checks)
	}

	b.checkReport = CheckReport{Errors: 3, BrokenPacks: 2, RepairIndex: true, Took: time.Minute}
	b.checkErr = errors.New("backup: restic check: exit code 1: Fatal: repository contains errors")
	e.handle(caller("ann"), "backup check")
	e.router.Jobs().Wait()
	got := lastPost(t, e)
	if !contains(got, "failed", ":rotating_light: **restic check found 3 errors** in swift:backups:/, reading 5% of its data back in 1m0s",
		"2 pack files are damaged (`restic repair packs`)", "the index needs repairing") || strings.Contains(got, "Fatal") {
		t.Errorf("backup check with errors = %q", got)
	}
	if !strings.Contains(e.log.String(), "repository contains errors") {
		t.Errorf("restic's report is not in the log:\n%s", e.log.String())
	}

	b.checkReport, b.checkErr = CheckReport{}, Errorf(NotFound, "There are no backups in swift:backups:/ yet, so nothing to check.")
	e.handle(caller("ann"), "backup check")
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !contains(got, "failed", "There are no backups in swift:backups:/ yet") {
		t.Errorf("backup check without backups = %q", got)
	}
	b.checkErr = errTestUnreachable
	e.handle(caller("ann"), "backup check")
	e.router.Jobs().Wait()
	if got := lastPost(t, e); !contains(got, "failed", "The check of the backups could not run. The backup repository cannot be reached") {
		t.Errorf("backup check unreachable = %q", got)
	}
}

func TestBackupSettingsInHelp(t *testing.T) {
	e, _ := settingsEnv(t, &fakeBackups{})
	got := e.handle(caller("bob"), "help backup").Text
	for _, v := range []string{"backup schedule", "backup keep", "backup repository", "backup check", "backup now"} {
		if !strings.Contains(got, "`/toolbox "+v) {
			t.Errorf("help backup lacks %s:\n%s", v, got)
		}
	}
	if !e.router.NeedsConfirmation("backup repository swift:c:/") || e.router.NeedsConfirmation("backup repository") {
		t.Error("backup repository asks for confirmation with a URL only")
	}
}
