package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/control"
	"github.com/toolbox-collective/toolbox/schedule"
	"github.com/toolbox-collective/toolbox/state"
)

// retentionSchedule is when the retention of jobs and audit records runs.
const retentionSchedule = "daily 04:45"

// serve runs the bot's HTTP server and the control socket until ctx ends,
// then drains: HTTP first keeps answering politely while running jobs get
// their grace time, then HTTP stops, then bbolt closes.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	st, err := state.Open(cfg.StatePath, cfg.stateOptions())
	if err != nil {
		return err
	}
	defer st.Close() // bbolt last, after HTTP and jobs
	m := newEngine(cfg)
	defer m.Close()
	// Jobs run on their own root: a SIGTERM first drains, and cancels them only
	// when their grace time is over.
	jobsRoot, cancelJobs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelJobs()
	live := &bot.Live{Log: log}
	sched := schedule.New(schedule.Config{Location: cfg.TimeZone, Store: st, Logger: log})
	sc := newSchedules(cfg, st, sched, log)
	router, err := newRouterWith(jobsRoot, cfg, log, st, m, live, live, live.Check, sc)
	if err != nil {
		return err
	}
	live.Router = router
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	ctl, err := control.Listen(controlSocket(cfg))
	if err != nil {
		ln.Close()
		return err
	}
	connect := func() error {
		s, err := bot.LoadSettings(st, cfg.MattermostURL, cfg.BotURL)
		if err == nil {
			live.Connect(s)
		}
		return err
	}
	switch err := connect(); {
	case errors.Is(err, bot.ErrNotBootstrapped):
		log.Warn("not connected to mattermost: waiting for `toolbox mattermost bootstrap`")
	case err != nil:
		ln.Close()
		ctl.Close()
		return err
	}
	// Once, before serving: jobs a previous run left running died with it.
	if interrupted, err := router.Jobs().Recover(ctx); err != nil {
		log.Error("job recovery failed", "err", err)
	} else if len(interrupted) > 0 {
		log.Warn("jobs interrupted by the previous stop", "count", len(interrupted))
	}
	// And the scratch copies of their restores and drills, with them.
	sweepCtx, cancelSweep := context.WithTimeout(ctx, 30*time.Second)
	if swept, err := m.SweepCopies(sweepCtx); err != nil {
		log.Warn("scratch copies left by a previous stop not all removed", "err", err)
	} else if len(swept) > 0 {
		log.Info("removed what interrupted restores and drills left", "objects", swept)
	}
	cancelSweep()
	// Jobs and audit records past their retention go at start, then daily.
	prune := func(context.Context, time.Time) error {
		p, err := st.Prune(cfg.Retention)
		if p.Jobs+p.Audit > 0 {
			log.Info("retention: deleted old jobs and audit records", "jobs", p.Jobs, "audit", p.Audit)
		}
		return err
	}
	if err := prune(ctx, time.Now()); err != nil {
		log.Error("retention of jobs and audit records failed", "err", err)
	}
	daily, err := schedule.Parse(retentionSchedule)
	if err == nil {
		err = sched.Add("retention", daily, prune)
	}
	if err != nil {
		ln.Close()
		ctl.Close()
		return err
	}
	// The nightly backups and the weekly drills run as the operator's
	// `backup now` and `drill now`, reporting in the toolbox channel like
	// any job, at the times `backup schedule` set, else the environment's.
	for _, job := range []struct{ name, text string }{{commands.ScheduleBackup, "backup now"}, {commands.ScheduleDrill, "drill now"}} {
		when, _ := sc.spec(job.name)
		err := sched.Add(job.name, when, func(ctx context.Context, _ time.Time) error {
			r := control.RunAndWait(ctx, router, st, commands.Request{
				Caller: commands.Caller{UserName: "schedule", Terminal: true, ChannelID: live.ChannelID()}, Text: job.text, Confirmed: true,
			})
			if r.Failed {
				return errors.New(r.Text)
			}
			return nil
		})
		if err != nil {
			ln.Close()
			ctl.Close()
			return err
		}
	}
	schedCtx, stopSched := context.WithCancel(jobsRoot)
	var scheduled sync.WaitGroup
	scheduled.Go(func() { _ = sched.Run(schedCtx) })
	defer func() { stopSched(); scheduled.Wait() }()
	// A restore stopped in the middle of its swap had passed its checks: the
	// app is moved onto the restored data now, as a job (see state.App.Pending).
	if apps, err := st.Apps(); err == nil {
		for _, a := range apps {
			if a.Pending == nil {
				continue
			}
			log.Warn("finishing a restore interrupted in its swap", "app", a.Name)
			text := "add " + a.Name
			scheduled.Go(func() {
				control.RunAndWait(schedCtx, router, st, commands.Request{
					Caller: commands.Caller{UserName: "schedule", Terminal: true, ChannelID: live.ChannelID()}, Text: text, Confirmed: true,
				})
			})
		}
	}
	for _, name := range []string{commands.ScheduleBackup, commands.ScheduleDrill} {
		if info, err := sc.Schedule(name); err == nil {
			log.Info(name+"s scheduled", "schedule", info.Spec, "set", info.Set, "next", info.Next)
		}
	}
	srv := bot.NewServer(live)
	ctlSrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: (&control.Server{
		Router: router, Store: st, ChannelID: live.ChannelID, Log: log,
		Bootstrap: func(ctx context.Context) (bot.BootstrapResult, error) {
			res, err := bot.WaitAndBootstrap(ctx, bootstrapConfig(cfg), st)
			if err == nil {
				err = connect()
			}
			return res, err
		},
	}).Handler()}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	go func() { errc <- ctlSrv.Serve(ctl) }()
	log.Info("toolbox serving", "addr", ln.Addr().String(), "version", version)

	select {
	case err := <-errc:
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	log.Info("draining", "grace", cfg.ShutdownGrace)
	stopSched() // no new scheduled run; a running one's job drains below
	router.Drain()
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	if err := router.Jobs().Shutdown(graceCtx); err != nil {
		log.Warn("jobs stopped before finishing", "err", err)
	}
	cancel()
	httpCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = ctlSrv.Shutdown(httpCtx)
	if err := srv.Shutdown(httpCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}

// healthcheck asks the local server whether it answers: the bot container's
// health check (its image has no curl).
func healthcheck(ctx context.Context, cfg config) error {
	_, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+bot.HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s", resp.Status)
	}
	return nil
}

// The settings `backup schedule` keeps, by scheduler job.
var scheduleSettings = map[string]string{
	commands.ScheduleBackup: "backup/schedule",
	commands.ScheduleDrill:  "backup/drill-schedule",
}

// schedules are the times of the nightly backups and the restore drills:
// the environment's, unless `backup schedule` set one (kept in the state),
// and the running scheduler's, which takes a change at once.
type schedules struct {
	st       *state.Store
	loc      *time.Location
	zone     string
	defaults map[string]schedule.Spec
	sched    *schedule.Scheduler // nil: none runs in this process (`toolbox do` without a server)
	log      *slog.Logger
	now      func() time.Time

	mu sync.Mutex // held while a schedule changes: the state and the scheduler agree
}

var _ commands.Schedules = (*schedules)(nil)

func newSchedules(cfg config, st *state.Store, sched *schedule.Scheduler, log *slog.Logger) *schedules {
	zone := cfg.timeZoneName
	if zone == "" {
		zone = "the machine's time zone (" + time.Now().In(cfg.TimeZone).Format("MST") + ")"
	}
	return &schedules{
		st: st, loc: cfg.TimeZone, zone: zone, sched: sched, log: log, now: time.Now,
		defaults: map[string]schedule.Spec{commands.ScheduleBackup: cfg.BackupSchedule, commands.ScheduleDrill: cfg.DrillSchedule},
	}
}

// spec is job's schedule, and whether `backup schedule` set it. One kept
// that does not read any more is logged and left out.
func (s *schedules) spec(job string) (schedule.Spec, bool) {
	if text := setting(s.st, s.log, scheduleSettings[job]); text != "" {
		spec, err := schedule.Parse(text)
		if err == nil {
			return spec, true
		}
		s.log.Warn("the schedule set with `backup schedule` does not read: the environment's applies", "job", job, "err", err)
	}
	return s.defaults[job], false
}

func (s *schedules) info(job string, spec schedule.Spec, set bool) commands.ScheduleInfo {
	next, ok := time.Time{}, false
	if s.sched != nil {
		next, ok = s.sched.Next(job)
	}
	if !ok {
		next = spec.Next(s.now(), s.loc)
	}
	return commands.ScheduleInfo{Spec: spec.String(), Set: set, Zone: s.zone, Next: next.In(s.loc)}
}

// Schedule says when job runs.
func (s *schedules) Schedule(job string) (commands.ScheduleInfo, error) {
	if _, ok := s.defaults[job]; !ok {
		return commands.ScheduleInfo{}, fmt.Errorf("schedule of %q: no such job", job)
	}
	spec, set := s.spec(job)
	return s.info(job, spec, set), nil
}

// SetSchedule keeps job's new schedule ("" the environment's), then gives
// it to the running scheduler.
func (s *schedules) SetSchedule(job, text string) (commands.ScheduleInfo, error) {
	spec, ok := s.defaults[job]
	if !ok {
		return commands.ScheduleInfo{}, fmt.Errorf("schedule of %q: no such job", job)
	}
	if text != "" {
		var err error
		if spec, err = schedule.Parse(text); err != nil {
			msg := "I cannot read that schedule"
			if _, why, _ := strings.Cut(err.Error(), ": "); !strings.HasPrefix(why, "want ") {
				msg += " (" + why + ")" // "hour 25 is not 00 to 23"
			}
			return commands.ScheduleInfo{}, &commands.Error{Kind: commands.Invalid, Err: err,
				Message: msg + ": write `daily HH:MM` or `weekly <day> HH:MM`, as in `daily 03:00` or `weekly sunday 05:00`."}
		}
		text = spec.String()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.SetSetting(scheduleSettings[job], text); err != nil {
		return commands.ScheduleInfo{}, err
	}
	if s.sched != nil {
		if err := s.sched.Reschedule(job, spec); err != nil {
			return commands.ScheduleInfo{}, err
		}
	}
	return s.info(job, spec, text != ""), nil
}
