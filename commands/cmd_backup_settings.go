package commands

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The jobs of the scheduler whose times `backup schedule` changes.
const (
	ScheduleBackup = "backup" // every app's backup, as the operator's `backup now`
	ScheduleDrill  = "drill"  // every app's restore drill, as the operator's `drill now`
)

// DefaultCheckSubset is the part of the data `backup check` reads back.
const DefaultCheckSubset = "5%"

// Schedules are when the nightly backups and the restore drills run.
type Schedules interface {
	// Schedule says when job (ScheduleBackup or ScheduleDrill) runs.
	Schedule(job string) (ScheduleInfo, error)
	// SetSchedule reads spec as people write it ("daily 03:00", "weekly
	// sunday 05:00"), or "" for the environment's, keeps it across
	// restarts, and makes it job's schedule in the running scheduler at
	// once. A spec that does not read is an *Error of kind Invalid.
	SetSchedule(job, spec string) (ScheduleInfo, error)
}

// ScheduleInfo is when a job runs.
type ScheduleInfo struct {
	Spec string    // "daily 03:00"
	Set  bool      // set with `backup schedule`, else the environment's
	Zone string    // the time zone the Spec is read in, for people: "Europe/Paris"
	Next time.Time // the next run, in that zone
}

// mayChange checks that c may change a setting that everyone may see.
func (r *Router) mayChange(ctx context.Context, c Caller, verb, what string) error {
	err := r.authorize(ctx, c, &Verb{Name: verb, Role: Admin})
	if err != nil && KindOf(err) == Forbidden {
		return Errorf(Forbidden, "Everyone may see %s, but only toolbox admins may change it: Mattermost system admins and the people `/toolbox admins list` shows. Ask one of them.", what)
	}
	return err
}

// isDefault is the word that takes a setting back to the environment's.
func isDefault(args []string) bool { return len(args) == 1 && strings.EqualFold(args[0], "default") }

const nextFormat = "Mon 2006-01-02 15:04"

func (a *AppDeps) backupScheduleVerb(r *Router, s Schedules) *Verb {
	return &Verb{
		Name: "backup schedule", Args: "[drill] [daily HH:MM | weekly <day> HH:MM | default]", MaxArgs: 4,
		Summary: "say when every app is backed up and when the restore drills run; admins change it",
		Help: "Without more, says when the nightly backups and the restore drills run, in the toolbox's time zone, and when next. " +
			"Admins change the backups' time with `/toolbox backup schedule daily 04:30` (or `weekly sunday 02:00`), and the drills' " +
			"with `/toolbox backup schedule drill weekly sunday 05:00`; `default` goes back to the environment's " +
			"(TOOLBOX_BACKUP_SCHEDULE, TOOLBOX_DRILL_SCHEDULE). The time zone is TOOLBOX_TIME_ZONE's. A change is kept and takes effect at once: a run going now finishes, " +
			"and the next one is at the new time.",
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			job, args := ScheduleBackup, inv.Args
			if len(args) > 0 && (strings.EqualFold(args[0], "drill") || strings.EqualFold(args[0], "drills")) {
				job, args = ScheduleDrill, args[1:]
			}
			if len(args) == 0 {
				return showSchedules(s)
			}
			if err := r.mayChange(ctx, inv.Caller, "backup schedule", "when backups and drills run"); err != nil {
				return "", err
			}
			spec := strings.Join(args, " ")
			if isDefault(args) {
				spec = ""
			}
			info, err := s.SetSchedule(job, spec)
			if err != nil {
				return "", err
			}
			what, env, again := "Backups of every app", "TOOLBOX_BACKUP_SCHEDULE", "/toolbox backup schedule default"
			if job == ScheduleDrill {
				what, env, again = "Restore drills", "TOOLBOX_DRILL_SCHEDULE", "/toolbox backup schedule drill default"
			}
			if !info.Set {
				return fmt.Sprintf("%s run on the environment's schedule again (%s): %s, in %s. The next one is on %s.",
					what, env, info.Spec, info.Zone, info.Next.Format(nextFormat)), nil
			}
			return fmt.Sprintf("%s now run %s, in %s. The next one is on %s. This is kept, and wins over %s from now on: `%s` goes back to it.",
				what, info.Spec, info.Zone, info.Next.Format(nextFormat), env, again), nil
		},
	}
}

func showSchedules(s Schedules) (string, error) {
	var b strings.Builder
	zone := ""
	for _, j := range []struct{ job, what, env, verb string }{
		{ScheduleBackup, "Every app is backed up", "TOOLBOX_BACKUP_SCHEDULE", "/toolbox backup schedule"},
		{ScheduleDrill, "Restore drills run", "TOOLBOX_DRILL_SCHEDULE", "/toolbox backup schedule drill"},
	} {
		info, err := s.Schedule(j.job)
		if err != nil {
			return "", err
		}
		from := "the environment's " + j.env
		if info.Set {
			from = "set with `" + j.verb + "`"
		}
		fmt.Fprintf(&b, "%s %s (%s); the next time is %s.\n", j.what, info.Spec, from, info.Next.Format(nextFormat))
		zone = info.Zone
	}
	fmt.Fprintf(&b, "Times are in %s. Admins change them: `/toolbox backup schedule daily 04:30`, `/toolbox backup schedule drill weekly sunday 05:00`.", zone)
	return b.String(), nil
}

func (a *AppDeps) backupKeepVerb(r *Router) *Verb {
	return &Verb{
		Name: "backup keep", Args: "[daily N weekly N monthly N yearly N last N | default]", MaxArgs: 16,
		Summary: "say which backups are kept; admins change it",
		Help: "After each app's backup, restic forgets the backups the retention does not keep and prunes their data. " +
			"`daily 7 weekly 4 monthly 6` (the default) keeps the newest backup of each of the last 7 days that have one, " +
			"of the last 4 weeks and of the last 6 months; `last N` keeps the N newest, `yearly N` one a year. A backup that one rule keeps is kept. " +
			"Admins change it with `/toolbox backup keep daily 14 weekly 8 monthly 12`, or go back to the environment's (TOOLBOX_BACKUP_KEEP) " +
			"with `default`. It applies from the next run on, and a smaller retention then forgets older backups for good.",
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			before := a.Backups.Settings()
			if len(inv.Args) == 0 {
				from := "the environment's, TOOLBOX_BACKUP_KEEP"
				if before.KeepSet {
					from = "set with `/toolbox backup keep`"
				}
				if before.Keep == "" {
					return fmt.Sprintf("No retention is set (%s): every backup is kept, and the repository only grows.", from), nil
				}
				return fmt.Sprintf("After each app's backup, restic keeps `%s` (%s): %s. The others are forgotten and their data pruned.",
					before.Keep, from, describeKeep(before.Keep)), nil
			}
			if err := r.mayChange(ctx, inv.Caller, "backup keep", "which backups are kept"); err != nil {
				return "", err
			}
			text := strings.Join(inv.Args, " ")
			if isDefault(inv.Args) {
				text = ""
			}
			keep, err := a.Backups.SetRetention(text)
			if err != nil {
				return "", err
			}
			msg := fmt.Sprintf("From the next run on, restic keeps `%s`: %s.", keep, describeKeep(keep))
			if text == "" {
				msg = fmt.Sprintf("From the next run on, restic keeps the environment's retention again (TOOLBOX_BACKUP_KEEP), `%s`: %s.", keep, describeKeep(keep))
			} else {
				msg += " This is kept, and wins over TOOLBOX_BACKUP_KEEP from now on: `/toolbox backup keep default` goes back to it."
			}
			if keepsLess(before.Keep, keep) {
				msg += " That keeps less than before: the next run forgets, for good, the backups it no longer keeps. Change it back before then if that was not meant."
			}
			return msg, nil
		},
	}
}

// keepRules reads a retention's canonical text ("daily 7 weekly 4") into
// its counts.
func keepRules(keep string) map[string]int {
	f := strings.Fields(keep)
	out := map[string]int{}
	for i := 0; i+1 < len(f); i += 2 {
		n, _ := strconv.Atoi(f[i+1])
		out[f[i]] = n
	}
	return out
}

// keepsLess says whether after keeps fewer of some period than before.
func keepsLess(before, after string) bool {
	a := keepRules(after)
	for rule, n := range keepRules(before) {
		if a[rule] < n {
			return true
		}
	}
	return false
}

// describeKeep says a retention in words: "the newest backup of each of the
// last 7 days, 4 weeks and 6 months".
func describeKeep(keep string) string {
	rules := keepRules(keep)
	unit := func(n int, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	var periods []string
	for _, p := range []struct{ rule, unit string }{{"daily", "day"}, {"weekly", "week"}, {"monthly", "month"}, {"yearly", "year"}} {
		if n := rules[p.rule]; n > 0 {
			periods = append(periods, unit(n, p.unit))
		}
	}
	var parts []string
	switch n := rules["last"]; {
	case n == 1:
		parts = append(parts, "the newest backup")
	case n > 1:
		parts = append(parts, fmt.Sprintf("the %d newest backups", n))
	}
	if len(periods) > 0 {
		list := periods[0]
		if len(periods) > 1 {
			list = strings.Join(periods[:len(periods)-1], ", ") + " and " + periods[len(periods)-1]
		}
		parts = append(parts, "the newest backup of each of the last "+list)
	}
	if len(parts) == 0 {
		return "every backup"
	}
	return strings.Join(parts, ", and ")
}

// repositoryForms are the repository URLs `backup repository` takes.
const repositoryForms = "`s3:https://host/bucket/path` (or `s3:s3.amazonaws.com/bucket`), `swift:container:/path` or `rest:https://host:8000/path`"

// validRepositoryURL accepts the restic repositories whose credentials the
// toolbox passes on (s3:, swift:, rest:), without credentials in the URL.
// Its errors never repeat a URL that has some.
func validRepositoryURL(u string) error {
	if hasUserinfo(u) {
		return Errorf(Invalid, "Do not put a user name or password in the URL: it would be kept in the toolbox's state and shown in the chat. "+
			"Give the toolbox its storage's credentials in its environment (RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD, AWS_*, OS_*), and the URL without them.")
	}
	if len(u) > 512 || strings.IndexFunc(u, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) }) >= 0 {
		return Errorf(Invalid, "That is not a repository URL: give %s.", repositoryForms)
	}
	bad := Errorf(Invalid, "%s is not a repository URL I can use: give %s.", code(u), repositoryForms)
	scheme, rest, _ := strings.Cut(u, ":")
	switch scheme {
	case "s3":
		if strings.Contains(rest, "://") {
			p, err := url.Parse(rest)
			if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || strings.Trim(p.Path, "/") == "" {
				return bad
			}
			return nil
		}
		if host, bucket, ok := strings.Cut(rest, "/"); !ok || host == "" || strings.Trim(bucket, "/") == "" {
			return bad
		}
	case "swift":
		if container, path, ok := strings.Cut(rest, ":"); !ok || container == "" || !strings.HasPrefix(path, "/") {
			return bad
		}
	case "rest":
		p, err := url.Parse(rest)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return bad
		}
	case "sftp":
		return Errorf(Invalid, "restic's sftp: needs an ssh key inside its container, which the toolbox does not give it: use %s.", repositoryForms)
	case "b2", "azure", "gs", "rclone":
		return Errorf(Invalid, "The toolbox passes restic the credentials of s3:, swift: and rest: repositories only: use %s.", repositoryForms)
	default:
		if strings.HasPrefix(u, "/") {
			return Errorf(Invalid, "A path would be inside restic's throwaway container, and the backups lost with it. "+
				"`/toolbox backup repository default` keeps them in the local volume; to keep them elsewhere, give %s.", repositoryForms)
		}
		return bad
	}
	return nil
}

// userinfo finds the user information of the URL inside a restic
// repository string ("rest:https://user:pass@host/"): it is s[i:j].
func userinfo(s string) (i, j int, ok bool) {
	k := strings.Index(s, "://")
	if k < 0 {
		return 0, 0, false
	}
	host := s[k+3:]
	if end := strings.IndexAny(host, "/?#"); end >= 0 {
		host = host[:end]
	}
	at := strings.LastIndexByte(host, '@')
	if at < 0 {
		return 0, 0, false
	}
	return k + 3, k + 3 + at, true
}

func hasUserinfo(s string) bool { _, _, ok := userinfo(s); return ok }

// redactUserinfo hides the user information of a repository URL.
func redactUserinfo(s string) string {
	i, j, ok := userinfo(s)
	if !ok {
		return s
	}
	return s[:i] + "[redacted]" + s[j:]
}

func (a *AppDeps) backupRepositoryVerb(r *Router) *Verb {
	return &Verb{
		Name: "backup repository", Args: "[<url> | default]", MaxArgs: 1, Role: Admin, Job: true,
		ConfirmationsFor: func(args []string) int { return min(len(args), 1) },
		Summary:          "say where the backups go, or send them to another restic repository (s3:, swift:, rest:)",
		Help: "Without a URL, says where the backups go, whether that is on this machine, and what is there. With one, " +
			repositoryForms + ", it checks that the repository can be reached and opened with the toolbox's password, or creates it there, " +
			"and only then sends the next runs to it; if not, nothing changes. The backups already made stay where they are, and the toolbox " +
			"lists, restores and drills the new repository's only. `default` goes back to TOOLBOX_BACKUP_REPOSITORY (or the local volume). " +
			"The storage's credentials come from the toolbox's environment (OS_*, AWS_*, RESTIC_REST_USERNAME and RESTIC_REST_PASSWORD), " +
			"never from the chat: a URL with a password in it is refused. Changing it asks for a confirmation.",
		Redact: func(args []string) []string {
			out := make([]string, len(args))
			for i, arg := range args {
				out[i] = redactUserinfo(arg)
			}
			return out
		},
		Validate: func(_ context.Context, args []string) error {
			if len(args) == 0 || isDefault(args) {
				return nil
			}
			return validRepositoryURL(args[0])
		},
		Describe: func(args []string) string {
			where, _ := a.Backups.Where()
			to := code(redactUserinfo(args[0]))
			if isDefault(args) {
				to = "the environment's repository (TOOLBOX_BACKUP_REPOSITORY, else the local volume)"
			}
			return fmt.Sprintf("From the next run on, backups go to %s, once restic has reached it and opened it, or created it, with the toolbox's password. "+
				"The backups already in %s stay there, and the toolbox will list, restore and drill the new repository's only.", to, where)
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			if len(inv.Args) == 0 {
				return a.showRepository(ctx, r), nil
			}
			target := inv.Args[0]
			if isDefault(inv.Args) {
				target = ""
			}
			ch, err := a.Backups.UseRepository(ctx, target, func(line string) { inv.Progress("%s", line) })
			if err != nil {
				where, _ := a.Backups.Where()
				kept := "Nothing was switched: backups still go to " + where
				var e *Error
				if errors.As(err, &e) {
					return "", &Error{Kind: e.Kind, Message: sentences(kept, e.Message), Err: err}
				}
				return "", &Error{Kind: Unavailable, Message: kept + ".", Err: err}
			}
			return repositoryChanged(ch), nil
		},
	}
}

func repositoryChanged(ch RepositoryChange) string {
	var b strings.Builder
	if ch.Unchanged {
		fmt.Fprintf(&b, "Backups already go to %s, and it opens with the toolbox's password: nothing changed.", ch.To)
	} else {
		how := "it opened with the toolbox's password"
		if ch.Created {
			how = "there was no repository there: one was created, with the toolbox's password"
		}
		fmt.Fprintf(&b, "Backups now go to **%s** (%s). ", ch.To, how)
		fmt.Fprintf(&b, "The backups made until now stay in %s, where they are: the toolbox no longer lists, restores or drills them, "+
			"and plain restic still reads them with the key (see the README). ", ch.From)
		b.WriteString("The next nightly run writes to the new repository; `/toolbox backup now` fills it at once.")
	}
	if ch.ToLocal {
		b.WriteString("\n\n" + localWarning)
	}
	return b.String()
}

// showRepository says where the backups go, and what is there.
func (a *AppDeps) showRepository(ctx context.Context, r *Router) string {
	s := a.Backups.Settings()
	var b strings.Builder
	fmt.Fprintf(&b, "Backups go to %s", s.Where)
	if s.RepositorySet {
		b.WriteString(" (set with `/toolbox backup repository`; `/toolbox backup repository default` goes back to TOOLBOX_BACKUP_REPOSITORY).")
	} else {
		b.WriteString(" (the environment's, TOOLBOX_BACKUP_REPOSITORY).")
	}
	snaps, err := a.Backups.Snapshots(ctx, "")
	switch {
	case err != nil:
		rep := r.rep.report(ctx, r.deps.Log, "backup repository not read", err)
		b.WriteString(" It cannot be read right now: " + rep.Text)
	case len(snaps) == 0:
		b.WriteString(" It holds no backup yet: `/toolbox backup now` makes one.")
	default:
		newest := snaps[0].Time
		for _, sn := range snaps {
			if sn.Time.After(newest) {
				newest = sn.Time
			}
		}
		fmt.Fprintf(&b, " It holds %d snapshots; the newest was made %s.", len(snaps), newest.Format("2006-01-02 15:04"))
	}
	if s.Local {
		b.WriteString("\n\n" + localWarning)
	}
	return b.String()
}

// checkSubset reads `backup check`'s argument: a percentage of the data.
func checkSubset(args []string) (string, error) {
	if len(args) == 0 {
		return DefaultCheckSubset, nil
	}
	p, ok := strings.CutSuffix(args[0], "%")
	n, err := strconv.Atoi(p)
	if !ok || err != nil || n < 1 || n > 100 || p != strconv.Itoa(n) {
		return "", Errorf(Invalid, "Say how much of the data to read back as a percentage, from 1%% to 100%%: `/toolbox backup check 10%%`.")
	}
	return strconv.Itoa(n) + "%", nil
}

func (a *AppDeps) backupCheckVerb() *Verb {
	return &Verb{
		Name: "backup check", Args: "[percent]", MaxArgs: 1, Role: Admin, Job: true,
		Summary: "check that the backups can be read back: restic check, reading " + DefaultCheckSubset + " of the data",
		Help: "restic checks the repository's structure (its index, snapshots and trees), then downloads and verifies a random " +
			DefaultCheckSubset + " of the stored data: on a small machine and a remote repository that ends in minutes, and since each check " +
			"draws other parts, checks now and then cover all of it over time. `/toolbox backup check 100%` reads everything back " +
			"(from a remote repository, that downloads it all). The backups are not changed; errors found are reported with what restic suggests.",
		Validate: func(_ context.Context, args []string) error { _, err := checkSubset(args); return err },
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			subset, err := checkSubset(inv.Args)
			if err != nil {
				return "", err
			}
			rep, err := a.Backups.Check(ctx, subset, func(line string) { inv.Progress("%s", line) })
			if err != nil && rep.Errors == 0 {
				var e *Error
				if errors.As(err, &e) {
					return "", err
				}
				return "", &Error{Kind: Unavailable, Message: "The check of the backups could not run.", Err: err}
			}
			took := rep.Took.Round(time.Second)
			if rep.Errors == 0 {
				msg := fmt.Sprintf("No errors: restic checked the structure of %s and read %s of its data back, in %s.", rep.Where, rep.Subset, took)
				if rep.Prune {
					msg += " It holds data that no backup uses any more; the next run's prune removes it."
				}
				return msg, nil
			}
			var advice []string
			if rep.BrokenPacks > 0 {
				advice = append(advice, fmt.Sprintf("%d pack files are damaged (`restic repair packs`)", rep.BrokenPacks))
			}
			if rep.RepairIndex {
				advice = append(advice, "the index needs repairing (`restic repair index`)")
			}
			msg := fmt.Sprintf(":rotating_light: **restic check found %d errors** in %s, reading %s of its data back in %s: some backups may not restore. "+
				"Run `/toolbox backup now` so that a whole new backup exists, then have the operators repair the repository with plain restic; "+
				"restic's report is in the toolbox's log.", rep.Errors, rep.Where, rep.Subset, took)
			if len(advice) > 0 {
				msg += " restic says: " + strings.Join(advice, "; ") + "."
			}
			return "", &Error{Kind: Unavailable, Message: msg, Err: err}
		},
	}
}
