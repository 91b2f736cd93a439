package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/control"
	"github.com/toolbox-collective/toolbox/schedule"
	"github.com/toolbox-collective/toolbox/state"
)

// serve runs the bot's HTTP server and the control socket until ctx ends,
// then drains: HTTP first keeps answering politely while running jobs get
// their grace time, then HTTP stops, then bbolt closes.
func serve(ctx context.Context, cfg config, log *slog.Logger) error {
	st, err := state.Open(cfg.StatePath, state.Options{})
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
	router, err := newRouter(jobsRoot, cfg, log, st, m, live, live, live.Check)
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
	// The nightly backups and the weekly drills run as the operator's
	// `backup now` and `drill now`, reporting in the toolbox channel like
	// any job.
	sched := schedule.New(schedule.Config{Location: cfg.TimeZone, Store: st, Logger: log})
	for _, job := range []struct {
		name, text string
		when       schedule.Spec
	}{{"backup", "backup now", cfg.BackupSchedule}, {"drill", "drill now", cfg.DrillSchedule}} {
		err := sched.Add(job.name, job.when, func(ctx context.Context, _ time.Time) error {
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
	for name, when := range map[string]schedule.Spec{"backup": cfg.BackupSchedule, "drill": cfg.DrillSchedule} {
		if next, ok := sched.Next(name); ok {
			log.Info(name+"s scheduled", "schedule", when.String(), "next", next)
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
