package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/backup"
	"github.com/toolbox-collective/toolbox/engine"
	"github.com/toolbox-collective/toolbox/host"
	"github.com/toolbox-collective/toolbox/internal/names"
	"github.com/toolbox-collective/toolbox/schedule"
	"github.com/toolbox-collective/toolbox/state"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.StatePath != "toolbox.db" || c.Listen != "127.0.0.1:8080" || c.BaseDomain != "localhost" || !c.Local ||
		c.PublicIP != "127.0.0.1" || c.HTTPSPort != 443 || c.ShutdownGrace != 30*time.Second || c.ConfirmTTL != 10*time.Minute {
		t.Errorf("defaults = %+v", c)
	}
	c, err = loadConfig(envOf(map[string]string{"TOOLBOX_BASE_DOMAIN": "Example.ORG"}))
	if err != nil || c.BaseDomain != "example.org" || c.Local || c.PublicIP != "0.0.0.0" {
		t.Errorf("with a real domain: %+v, %v; want ACME on 0.0.0.0", c, err)
	}
}

func TestLoadConfigListsEveryProblem(t *testing.T) {
	_, err := loadConfig(envOf(map[string]string{
		"TOOLBOX_LISTEN":          "nope",
		"TOOLBOX_MATTERMOST_URL":  "ftp://chat",
		"TOOLBOX_PROXY_ADMIN":     "caddy:2019",
		"TOOLBOX_SHUTDOWN_GRACE":  "soon",
		"TOOLBOX_CONFIRM_TTL":     "-1m",
		"TOOLBOX_LOG_LEVEL":       "loud",
		"TOOLBOX_LOCAL":           "maybe",
		"TOOLBOX_PUBLIC_IP":       "everywhere",
		"TOOLBOX_HTTPS_PORT":      "70000",
		"TOOLBOX_BACKUP_SCHEDULE": "nightly",
		"TOOLBOX_TIME_ZONE":       "Mars/Olympus",
		"TOOLBOX_BACKUP_KEEP":     "forever",
	}))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"TOOLBOX_LISTEN", "TOOLBOX_MATTERMOST_URL", "TOOLBOX_PROXY_ADMIN", "TOOLBOX_SHUTDOWN_GRACE",
		"TOOLBOX_CONFIRM_TTL", "TOOLBOX_LOG_LEVEL", "TOOLBOX_LOCAL", "TOOLBOX_PUBLIC_IP", "TOOLBOX_HTTPS_PORT",
		"TOOLBOX_BACKUP_SCHEDULE", "TOOLBOX_TIME_ZONE", "TOOLBOX_BACKUP_KEEP"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}

func TestConfigNeverPrintsThePassword(t *testing.T) {
	c, err := loadConfig(envOf(map[string]string{"TOOLBOX_MM_ADMIN_PASSWORD": "hunter2-secret"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{strings.Join([]string{c.AdminPassword.String()}, ""), sprint(c)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("the configuration printed the admin password: %s", s)
		}
	}
}

func sprint(c config) string { return strings.TrimSpace(fmt.Sprintf("%+v", c)) }

func openState(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "toolbox.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return st
}

// TestSchedulesKeptInState changes the schedules as `backup schedule` does:
// kept in the state, winning over the environment's at the next start, and
// given to the running scheduler at once.
func TestSchedulesKeptInState(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{"TOOLBOX_TIME_ZONE": "Europe/Paris", "TOOLBOX_BACKUP_SCHEDULE": "daily 02:00"}))
	if err != nil {
		t.Fatal(err)
	}
	st := openState(t)
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	sched := schedule.New(schedule.Config{Location: cfg.TimeZone, Store: st, Logger: log})
	sc := newSchedules(cfg, st, sched, log)
	for _, job := range []string{commands.ScheduleBackup, commands.ScheduleDrill} {
		spec, set := sc.spec(job)
		if set {
			t.Errorf("spec(%s) is set before any change", job)
		}
		if err := sched.Add(job, spec, func(context.Context, time.Time) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	info, err := sc.Schedule(commands.ScheduleBackup)
	if err != nil || info.Spec != "daily 02:00" || info.Set || info.Zone != "Europe/Paris" || info.Next.Location().String() != "Europe/Paris" {
		t.Errorf("Schedule(backup) = %+v, %v; want the environment's, in Paris", info, err)
	}

	info, err = sc.SetSchedule(commands.ScheduleBackup, "Daily 4:30")
	if err != nil || info.Spec != "daily 04:30" || !info.Set {
		t.Fatalf("SetSchedule = %+v, %v", info, err)
	}
	if spec, _ := sched.Spec(commands.ScheduleBackup); spec.String() != "daily 04:30" {
		t.Errorf("the scheduler runs backups %v, want daily 04:30", spec)
	}
	if next, _ := sched.Next(commands.ScheduleBackup); !next.Equal(info.Next) || next.In(cfg.TimeZone).Format("15:04") != "04:30" {
		t.Errorf("Next = %v, info says %v", next, info.Next)
	}
	if v, _ := st.Setting("backup/schedule"); v != "daily 04:30" {
		t.Errorf("kept %q, want daily 04:30", v)
	}
	if _, err := sc.SetSchedule(commands.ScheduleDrill, "weekly sat 06:15"); err != nil {
		t.Fatal(err)
	}
	// The next start reads the state: it wins over the environment's.
	again := newSchedules(cfg, st, nil, log)
	for job, want := range map[string]string{commands.ScheduleBackup: "daily 04:30", commands.ScheduleDrill: "weekly saturday 06:15"} {
		if spec, set := again.spec(job); spec.String() != want || !set {
			t.Errorf("after a restart, spec(%s) = %v, %v; want %s, set", job, spec, set, want)
		}
	}
	if info, _ := again.Schedule(commands.ScheduleBackup); info.Next.In(cfg.TimeZone).Format("15:04") != "04:30" || info.Next.Before(time.Now()) {
		t.Errorf("without a scheduler, Next = %v, want the next 04:30", info.Next)
	}

	// A schedule that does not read changes nothing.
	var e *commands.Error
	if _, err := sc.SetSchedule(commands.ScheduleBackup, "daily 25:00"); !errors.As(err, &e) || e.Kind != commands.Invalid || !strings.Contains(e.Message, "hour 25 is not 00 to 23") {
		t.Errorf("SetSchedule(daily 25:00) = %v, want invalid with the reason", err)
	}
	if _, err := sc.SetSchedule(commands.ScheduleBackup, "nightly"); !errors.As(err, &e) || strings.Contains(e.Message, "(") {
		t.Errorf("SetSchedule(nightly) = %v, want invalid without a repeated syntax", err)
	}
	if spec, _ := sched.Spec(commands.ScheduleBackup); spec.String() != "daily 04:30" {
		t.Errorf("after a refused change the scheduler runs backups %v", spec)
	}
	if _, err := sc.SetSchedule("cost", "daily 08:00"); err == nil {
		t.Error("SetSchedule of an unknown job = nil, want an error")
	}

	// Back to the environment's.
	if info, err := sc.SetSchedule(commands.ScheduleBackup, ""); err != nil || info.Spec != "daily 02:00" || info.Set {
		t.Errorf("SetSchedule(default) = %+v, %v", info, err)
	}
	if spec, _ := sched.Spec(commands.ScheduleBackup); spec.String() != "daily 02:00" {
		t.Errorf("after default the scheduler runs backups %v", spec)
	}

	// A kept schedule that no longer reads is logged, and the default applies.
	if err := st.SetSetting("backup/drill-schedule", "fortnightly"); err != nil {
		t.Fatal(err)
	}
	if spec, set := sc.spec(commands.ScheduleDrill); set || spec.String() != "weekly sunday 05:00" || !strings.Contains(logs.String(), "does not read") {
		t.Errorf("spec with a bad kept value = %v, %v; log:\n%s", spec, set, logs.String())
	}
}

func TestSavedBackupSettings(t *testing.T) {
	st := openState(t)
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if got := savedBackupSettings(st, log); got != (engine.BackupSaved{}) {
		t.Errorf("nothing set: %+v", got)
	}
	for k, v := range map[string]string{engine.SettingRepository: "s3:https://s3.example.org/b", engine.SettingKeep: "daily 3 weekly 2"} {
		if err := st.SetSetting(k, v); err != nil {
			t.Fatal(err)
		}
	}
	got := savedBackupSettings(st, log)
	if got.Repository != "s3:https://s3.example.org/b" || got.Keep != (backup.Policy{Daily: 3, Weekly: 2}) {
		t.Errorf("saved = %+v", got)
	}
	if err := st.SetSetting(engine.SettingKeep, "forever"); err != nil {
		t.Fatal(err)
	}
	if got := savedBackupSettings(st, log); !got.Keep.IsZero() || !strings.Contains(logs.String(), "does not read") {
		t.Errorf("a kept retention that does not read = %+v; log:\n%s", got, logs.String())
	}
}

// TestLoadConfigRefusesUnsafeValues: the values that end up in the apps'
// configuration (the base domain in WordPress's PHP, GitLab's Ruby), in
// Compose files and container specs (networks, volumes, images), in Caddy's
// configuration or in Mattermost's names are refused, each with its reason,
// before anything is done with them.
func TestLoadConfigRefusesUnsafeValues(t *testing.T) {
	for _, tc := range []struct{ key, value, want string }{
		{"TOOLBOX_BASE_DOMAIN", "'); system('id'); //", "give the host name alone"},
		{"TOOLBOX_BASE_DOMAIN", "example.org'); x('", "use lowercase letters, digits and dashes"},
		{"TOOLBOX_BASE_DOMAIN", "203.0.113.7", "203.0.113.7.sslip.io"},
		{"TOOLBOX_BASE_DOMAIN", "example..org", "empty label"},
		{"TOOLBOX_NETWORK", "toolbox net", "Docker name"},
		{"TOOLBOX_BOT_NETWORK", "-bot", "Docker name"},
		{"TOOLBOX_BACKUP_VOLUME", "../etc", "Docker name"},
		{"TOOLBOX_TEAM", "Our Collective", "Mattermost team name"},
		{"TOOLBOX_TEAM", "admins", "Mattermost team name"},
		{"TOOLBOX_CHANNEL", "tool box", "Mattermost channel name"},
		{"TOOLBOX_MM_ADMIN_USER", "channel", "Mattermost user name"},
		{"TOOLBOX_MM_ADMIN_USER", "Admin@example", "Mattermost user name"},
		{"TOOLBOX_ACME_EMAIL", "ops@example.org\", \"x\": \"", "e-mail address"},
		{"TOOLBOX_ACME_EMAIL", "Ops <ops@example.org>", "e-mail address"},
		{"TOOLBOX_CADDY_IMAGE", "caddy:2 --privileged", "image reference"},
		{"TOOLBOX_RESTIC_IMAGE", "restic/Restic", "image reference"},
		{"TOOLBOX_IMAGE", "toolbox:", "image reference"},
	} {
		t.Run(tc.key+"="+tc.value, func(t *testing.T) {
			_, err := loadConfig(envOf(map[string]string{tc.key: tc.value}))
			if err == nil || !strings.Contains(err.Error(), tc.key) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig(%s=%q) = %v, want an error naming %s and saying %q", tc.key, tc.value, err, tc.key, tc.want)
			}
		})
	}
	good := map[string]string{
		"TOOLBOX_BASE_DOMAIN": "203.0.113.7.sslip.io", "TOOLBOX_NETWORK": "tb_net.1", "TOOLBOX_BOT_NETWORK": "toolbox-bot",
		"TOOLBOX_BACKUP_VOLUME": "toolbox-backups", "TOOLBOX_TEAM": "our-collective", "TOOLBOX_CHANNEL": "ops__bots",
		"TOOLBOX_MM_ADMIN_USER": "first.admin", "TOOLBOX_ACME_EMAIL": "ops+acme@example.org",
		"TOOLBOX_CADDY_IMAGE": "caddy:2.11.9", "TOOLBOX_RESTIC_IMAGE": "registry.example.org:5000/restic/restic@sha256:" + strings.Repeat("ab", 32),
		"TOOLBOX_IMAGE": "ghcr.io/toolbox-collective/toolbox:1.2",
	}
	if _, err := loadConfig(envOf(good)); err != nil {
		t.Errorf("loadConfig(%v) = %v, want nil", good, err)
	}
}

// TestUpAndServeRefuseAnUnsafeBaseDomain: both read the configuration
// before they touch the engine or the state.
func TestUpAndServeRefuseAnUnsafeBaseDomain(t *testing.T) {
	statePath := filepath.Join(t.TempDir(), "toolbox.db")
	env := envOf(map[string]string{
		"TOOLBOX_BASE_DOMAIN": "'); system('id'); //", "TOOLBOX_STATE": statePath, "TOOLBOX_LISTEN": "127.0.0.1:0",
		"DOCKER_HOST": "unix:///nonexistent/docker.sock",
	})
	for _, verb := range []string{"up", "serve", "recover"} {
		var out strings.Builder
		// Bounded: a serve that accepted the configuration would run on.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := run(ctx, []string{verb}, env, strings.NewReader(""), &out, &out)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "TOOLBOX_BASE_DOMAIN") || !strings.Contains(err.Error(), "is not a base domain") {
			t.Errorf("toolbox %s with an unsafe base domain = %v, want the configuration refused", verb, err)
		}
		if strings.Contains(out.String(), "docker") {
			t.Errorf("toolbox %s went on to the engine: %s", verb, out.String())
		}
	}
	if _, err := os.Stat(statePath); !os.IsNotExist(err) {
		t.Errorf("serve created the state before refusing the configuration: %v", err)
	}
}

// FuzzLoadConfigBaseDomain: whatever the environment gives, a base domain
// the configuration accepts makes an app name and the chat's name that the
// domain rule accepts, so nothing else can reach the apps' configuration.
func FuzzLoadConfigBaseDomain(f *testing.F) {
	for _, s := range []string{"localhost", "Example.ORG", "'); system('id'); //", " 203.0.113.7 ", "a.b\n", "xn--bcher-kva.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		c, err := loadConfig(envOf(map[string]string{"TOOLBOX_BASE_DOMAIN": base}))
		if err != nil {
			if !strings.Contains(err.Error(), "TOOLBOX_BASE_DOMAIN") {
				t.Errorf("loadConfig(TOOLBOX_BASE_DOMAIN=%q) = %v, an error that does not name the variable", base, err)
			}
			return
		}
		for _, name := range []string{"chat." + c.BaseDomain, strings.Repeat("w", names.MaxApp) + "." + c.BaseDomain} {
			if err := names.Domain(name); err != nil {
				t.Errorf("loadConfig accepted TOOLBOX_BASE_DOMAIN=%q, whose name %s is refused: %v", base, name, err)
			}
		}
	})
}

func TestLoadConfigJobLimits(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil || c.JobLimits != (commands.Limits{MaxRunningJobs: 4, JobStartsPerMinute: 5}) {
		t.Errorf("default job limits = %+v, %v", c.JobLimits, err)
	}
	c, err = loadConfig(envOf(map[string]string{"TOOLBOX_MAX_JOBS": "2", "TOOLBOX_JOB_STARTS_PER_MINUTE": "10"}))
	if err != nil || c.JobLimits != (commands.Limits{MaxRunningJobs: 2, JobStartsPerMinute: 10}) {
		t.Errorf("job limits = %+v, %v; want 2 and 10", c.JobLimits, err)
	}
	if got := c.host().BotSettings; len(got) != 2 || got["TOOLBOX_MAX_JOBS"] != "2" || got["TOOLBOX_JOB_STARTS_PER_MINUTE"] != "10" {
		t.Errorf("passed on to the bot: %v, want both limits as given", got)
	}
	for _, bad := range []string{"0", "-1", "many", "100000"} {
		_, err := loadConfig(envOf(map[string]string{"TOOLBOX_MAX_JOBS": bad, "TOOLBOX_JOB_STARTS_PER_MINUTE": bad}))
		if err == nil || !strings.Contains(err.Error(), "TOOLBOX_MAX_JOBS is not a whole number") || !strings.Contains(err.Error(), "TOOLBOX_JOB_STARTS_PER_MINUTE is not") {
			t.Errorf("job limits %q: %v, want both refused", bad, err)
		}
	}
}

// The machine as the capacity guard counts it, and up's swap file.
func TestLoadConfigMachine(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	if err != nil || c.MachineMemory != 0 || c.MachineSwapSet || c.Swap != (host.SwapSetting{}) {
		t.Errorf("defaults: memory %d, swap set %t, swap file %+v, %v", c.MachineMemory, c.MachineSwapSet, c.Swap, err)
	}
	c, err = loadConfig(envOf(map[string]string{"TOOLBOX_MACHINE_MEMORY": "1.9g", "TOOLBOX_MACHINE_SWAP": "0", "TOOLBOX_SWAP": "off"}))
	if err != nil || c.MachineMemory != 19<<30/10 || !c.MachineSwapSet || c.MachineSwap != 0 || !c.Swap.Off {
		t.Errorf("memory %d, swap %d (set %t), swap file %+v, %v", c.MachineMemory, c.MachineSwap, c.MachineSwapSet, c.Swap, err)
	}
	if got := c.host().BotSettings; got["TOOLBOX_MACHINE_MEMORY"] != "1.9g" || got["TOOLBOX_MACHINE_SWAP"] != "0" {
		t.Errorf("passed on to the bot: %v, want both as given", got)
	}
	if c.host().Swap != c.Swap {
		t.Errorf("up's swap setting = %+v", c.host().Swap)
	}
	for in, want := range map[string]int64{"2g": 2 << 30, "2048m": 2 << 30, "1.5GiB": 3 << 29, "2147483648": 2 << 30, "1.9G": 19 << 30 / 10} {
		if got, err := parseMachineSize(in); err != nil || got != want {
			t.Errorf("parseMachineSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	_, err = loadConfig(envOf(map[string]string{"TOOLBOX_MACHINE_MEMORY": "lots", "TOOLBOX_MACHINE_SWAP": "-2g", "TOOLBOX_SWAP": "huge"}))
	for _, want := range []string{`TOOLBOX_MACHINE_MEMORY="lots" is not a size`, `TOOLBOX_MACHINE_SWAP="-2g" is not a size`, "TOOLBOX_SWAP: "} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("bad machine settings: %v, want %q", err, want)
		}
	}
	for _, bad := range []string{"1m", "0", "1..5g", "100t"} {
		if _, err := loadConfig(envOf(map[string]string{"TOOLBOX_MACHINE_MEMORY": bad})); err == nil {
			t.Errorf("TOOLBOX_MACHINE_MEMORY=%q accepted", bad)
		}
	}
}

func TestLoadConfigRetention(t *testing.T) {
	c, err := loadConfig(envOf(nil))
	want := state.Retention{JobsMaxAge: state.DefaultJobsMaxAge, JobsKeep: state.DefaultJobsKeep, AuditMaxAge: state.DefaultAuditMaxAge}
	if err != nil || c.Retention != want {
		t.Errorf("default retention = %+v, %v; want %+v", c.Retention, err, want)
	}
	c, err = loadConfig(envOf(map[string]string{"TOOLBOX_JOBS_RETENTION": "30d", "TOOLBOX_JOBS_KEEP": "0", "TOOLBOX_AUDIT_RETENTION": "forever"}))
	want = state.Retention{JobsMaxAge: 30 * 24 * time.Hour}
	if err != nil || c.Retention != want {
		t.Errorf("retention = %+v, %v; want %+v", c.Retention, err, want)
	}
	if got := c.host().BotSettings; len(got) != 3 || got["TOOLBOX_JOBS_RETENTION"] != "30d" {
		t.Errorf("passed on to the bot: %v, want the three settings as given", got)
	}
	if c, _ := loadConfig(envOf(map[string]string{"TOOLBOX_AUDIT_RETENTION": "36h"})); c.Retention.AuditMaxAge != 36*time.Hour {
		t.Errorf("TOOLBOX_AUDIT_RETENTION=36h gives %v", c.Retention.AuditMaxAge)
	}
	for _, bad := range []string{"0d", "-3d", "ninety", "5m", "1e9d"} {
		_, err := loadConfig(envOf(map[string]string{"TOOLBOX_JOBS_RETENTION": bad, "TOOLBOX_AUDIT_RETENTION": bad, "TOOLBOX_JOBS_KEEP": "-1"}))
		if err == nil || !strings.Contains(err.Error(), "TOOLBOX_JOBS_RETENTION: ") || !strings.Contains(err.Error(), "TOOLBOX_AUDIT_RETENTION: ") || !strings.Contains(err.Error(), "TOOLBOX_JOBS_KEEP") {
			t.Errorf("retention %q: %v, want all three refused", bad, err)
		}
	}
}

func TestLoadConfigStateKey(t *testing.T) {
	key, _ := state.NewKey()
	c, err := loadConfig(envOf(map[string]string{state.EnvKey: state.EncodeKey(key)}))
	if err != nil || !bytes.Equal(c.StateKey, key) || c.host().StateKey.Reveal() != state.EncodeKey(key) {
		t.Errorf("TOOLBOX_STATE_KEY: %v, %v", c.StateKey, err)
	}
	if _, err := loadConfig(envOf(map[string]string{state.EnvKey: "too short"})); err == nil || !strings.Contains(err.Error(), state.EnvKey) {
		t.Errorf("a bad TOOLBOX_STATE_KEY: %v, want it refused by name", err)
	}
}

func FuzzParseAge(f *testing.F) {
	for _, s := range []string{"90d", "forever", "36h", "0d", "-1d", "1e9d", "5m", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseAge(s)
		if err != nil {
			return
		}
		if s != "forever" && d < time.Hour {
			t.Errorf("parseAge(%q) = %v, want an hour or more", s, d)
		}
		if s == "forever" && d != 0 {
			t.Errorf("parseAge(forever) = %v", d)
		}
	})
}

// FuzzLoadConfigNames: a value the configuration accepts for a name that
// reaches Compose files, Caddy or Mattermost holds no quote, space, line
// break or other character that could end the name where it lands.
func FuzzLoadConfigNames(f *testing.F) {
	for _, s := range []string{"toolbox", "tb_net.1", "ops@example.org", "caddy:2.11.9", "a\"b", "x\ny", "ghcr.io/a/b@sha256:" + strings.Repeat("0", 64)} {
		f.Add(s)
	}
	const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
	allowed := map[string]string{
		"TOOLBOX_NETWORK": safe, "TOOLBOX_BOT_NETWORK": safe, "TOOLBOX_BACKUP_VOLUME": safe,
		"TOOLBOX_TEAM": safe, "TOOLBOX_CHANNEL": safe, "TOOLBOX_MM_ADMIN_USER": safe,
		"TOOLBOX_ACME_EMAIL": safe + "@+%", "TOOLBOX_CADDY_IMAGE": safe + ":/@", "TOOLBOX_RESTIC_IMAGE": safe + ":/@", "TOOLBOX_IMAGE": safe + ":/@",
	}
	f.Fuzz(func(t *testing.T, value string) {
		for key, chars := range allowed {
			if _, err := loadConfig(envOf(map[string]string{key: value})); err == nil {
				if v := strings.TrimSpace(value); strings.Trim(v, chars) != "" {
					t.Errorf("loadConfig accepted %s=%q", key, value)
				}
			} else if !strings.Contains(err.Error(), key) {
				t.Errorf("loadConfig(%s=%q) = %v, an error that does not name the variable", key, value, err)
			}
		}
	})
}
