package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/state"
)

// App statuses kept in the state.
const (
	statusDeploying = "deploying"
	statusRunning   = "running"
	statusFailed    = "failed"
	// postInstallKey, numbered, records in the app's state each post-install step done.
	postInstallKey = "post-install step done"
)

func (a *AppDeps) addVerb(r *Router) *Verb {
	return &Verb{
		Name: "add", Args: "<app> [domain]", MinArgs: 1, MaxArgs: 2, Role: Admin, Job: true, Apps: firstApp,
		Summary: "deploy an app from the catalog, with HTTPS on its domain",
		Help: "Without a domain the app gets one under the toolbox's base domain. Adding an app that is already there " +
			"checks it and repairs what is missing. I refuse an app the machine's memory cannot hold.",
		Validate: func(ctx context.Context, args []string) error {
			app, err := a.catalogApp(args[0])
			if err != nil {
				return err
			}
			domain, err := a.domainFor(app.Name, args[1:])
			if err != nil {
				return err
			}
			return a.domainFree(app.Name, domain, r)
		},
		// The memory is checked and reserved at once, when the add is
		// accepted: two adds accepted together cannot both take the last of it.
		Admit: func(ctx context.Context, args []string) (func(), error) {
			app, err := a.catalogApp(args[0])
			if err != nil {
				return nil, err
			}
			return a.reserveMemory(ctx, app, r)
		},
		Run: func(ctx context.Context, inv Invocation) (string, error) {
			app, err := a.catalogApp(inv.Args[0])
			if err != nil {
				return "", err
			}
			domain, err := a.domainFor(app.Name, inv.Args[1:])
			if err != nil {
				return "", err
			}
			start := r.deps.Now()
			if err := a.deploy(ctx, app, domain, inv.Progress, r); err != nil {
				return "", err
			}
			return fmt.Sprintf("**%s** is running at %s://%s (took %s).", app.Name, a.scheme(), domain, r.deps.Now().Sub(start).Round(time.Second)), nil
		},
	}
}

func (a *AppDeps) scheme() string {
	if a.Scheme == "" {
		return "https"
	}
	return a.Scheme
}

// domainFor is the domain given, or the one the app already has, or a default.
func (a *AppDeps) domainFor(app string, given []string) (string, error) {
	if len(given) > 0 {
		d := strings.ToLower(strings.TrimSuffix(given[0], "."))
		return d, validateDomain(d)
	}
	if rec, err := a.Store.App(app); err == nil && rec.Domain != "" {
		return rec.Domain, nil
	}
	if a.BaseDomain == "" {
		return "", Errorf(Invalid, "Give a domain: `/toolbox add %s <domain>` (no base domain is configured).", app)
	}
	return app + "." + a.BaseDomain, nil
}

// domainFree refuses a domain another app already serves.
func (a *AppDeps) domainFree(app, domain string, r *Router) error {
	apps, err := r.deps.Store.Apps()
	if err != nil {
		return err
	}
	for _, other := range apps {
		if other.Name != app && other.Domain == domain {
			return Errorf(Conflict, "%s already serves %s. Choose another domain.", other.Name, domain)
		}
	}
	return nil
}

// reserveMemory reserves the memory app needs until its add ends, or
// refuses an app the machine cannot hold, saying what would make room. What
// an app needs is what its services reserve (catalog.Memory); what is free is
// the machine's memory plus its swap, less the margin (MemoryMargin), what
// running containers reserve, the next backup's share, and what the adds
// accepted before this one reserved (their containers may not run yet).
func (a *AppDeps) reserveMemory(ctx context.Context, app catalog.App, r *Router) (release func(), err error) {
	if _, err := a.Store.App(app.Name); err == nil {
		return func() {}, nil // already there: its containers are counted in what runs
	}
	// Held while the engine answers: the next add waits to see this one's reservation.
	a.reserveMu.Lock()
	defer a.reserveMu.Unlock()
	c, err := a.capacity(ctx)
	if err != nil {
		return nil, err
	}
	need := app.Memory.Reservation()
	if need <= c.free() {
		if a.reserved == nil {
			a.reserved = map[string]int64{}
		}
		a.reserved[app.Name] = need
		var once sync.Once
		return func() {
			once.Do(func() {
				a.reserveMu.Lock()
				defer a.reserveMu.Unlock()
				delete(a.reserved, app.Name)
			})
		}, nil
	}
	msg := fmt.Sprintf("%s needs %s of memory (what its services reserve), and only %s is free: %s.",
		app.Name, formatBytes(need), formatBytes(max(c.free(), 0)), c.accounts())
	if room := c.whatMakesRoom(need); room != "" {
		msg += " " + upperFirst(room) + " would make room."
	} else {
		msg += " No machine up to 64 GiB would hold it."
	}
	return nil, Errorf(Conflict, "%s", msg)
}

// capacity asks the engine for the machine; a.reserveMu must be held (it
// reads the adds under way).
func (a *AppDeps) capacity(ctx context.Context) (capacity, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := a.Engine.Memory(ctx)
	if err != nil {
		return capacity{}, &Error{Kind: Unavailable, Message: "I could not ask the Docker engine how much memory is free.", Err: err}
	}
	return capacity{m: m, pending: maps.Clone(a.reserved), chatApp: a.ChatApp}, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// engineFailed is the error people get when the engine fails at a step:
// which step ("Deploying wordpress"), the engine's first line, which helps
// them here (a health check's output, a name taken) but may quote the app's
// configuration, so with its secrets hidden, and then next, what to do. The
// whole cause goes to the log.
func engineFailed(step, next string, secrets []string, err error) error {
	msg := fmt.Sprintf("%s failed: %s", step, scrub(firstLine(err.Error()), secrets))
	if next != "" {
		msg = sentences(msg, next)
	}
	return &Error{Kind: Unavailable, Message: msg, Err: err}
}

// deploy records the app, converges its containers, routes its domain and
// runs its post-install steps once. Run again, it repairs and changes nothing else.
func (a *AppDeps) deploy(ctx context.Context, app catalog.App, domain string, progress func(string, ...any), r *Router) error {
	rec, err := a.Store.App(app.Name)
	switch {
	case errors.Is(err, state.ErrNotFound):
		// Removed without --purge: back onto the data it had then.
		if rec.Generation, err = a.Store.Setting(keptGenerationKey(app.Name)); err != nil && !errors.Is(err, state.ErrNotFound) {
			return err
		}
	case err != nil:
		return err
	}
	rec.Name, rec.Catalog, rec.Domain, rec.Version, rec.Status = app.Name, app.Name, domain, app.Version, statusDeploying
	rec.Source = app.Source()
	if err := a.Store.PutApp(rec); err != nil { // recorded first: a crash from here on is repaired by running add again
		return err
	}
	fail := func(err error) error {
		rec.Status = statusFailed
		if perr := a.Store.PutApp(rec); perr != nil {
			r.deps.Log.Error("app state not recorded", "app", app.Name, "err", perr)
		}
		return err
	}
	vars, secrets, err := a.vars(app, domain)
	if err != nil {
		return fail(err)
	}
	project, err := app.Project(ctx, vars)
	if err != nil {
		return fail(err)
	}
	if app.Build != nil {
		progress("building %s with its upstream launcher", app.Name)
		if err := a.Engine.Build(ctx, app.Name, *app.Build, project, func(line string) { progress("%s", scrub(line, secrets)) }); err != nil {
			return fail(engineFailed(fmt.Sprintf("Building %s", app.Name), "", secrets, err))
		}
	}
	gen := rec.Generation
	if p := rec.Pending; p != nil {
		// A restore stopped in the middle of its swap, after its copy passed
		// its checks: the app goes onto the restored data, as was asked.
		progress("finishing the interrupted restore of %s", app.Name)
		gen = p.Generation
	}
	progress("deploying %s %s", app.Name, app.Version)
	upstream, err := a.Engine.Deploy(ctx, Deployment{App: app.Name, Project: project, Entry: app.Entry, Generation: gen}, func(line string) { progress("%s", line) })
	if err != nil {
		return fail(engineFailed(fmt.Sprintf("Deploying %s", app.Name), "", secrets, err))
	}
	if p := rec.Pending; p != nil {
		rec.Previous = &state.PreviousData{Generation: rec.Generation, Version: rec.Version, Until: r.deps.Now().Add(a.undoWindow()), Snapshot: p.Snapshot}
		rec.Generation, rec.Pending = p.Generation, nil
		if err := a.Store.PutApp(rec); err != nil {
			return err
		}
	}
	if a.Proxy != nil {
		progress("routing %s to %s", domain, app.Name)
		if err := a.Proxy.SetRoute(ctx, app.Name, domain, upstream); err != nil {
			return fail(&Error{Kind: Unavailable, Message: fmt.Sprintf("%s runs, but its route on %s could not be set.", app.Name, domain), Err: err})
		}
	}
	// Each post-install step runs once: it is recorded as soon as it is done,
	// so a retry after a failure goes on from the step that failed.
	if rec.Settings == nil {
		rec.Settings = map[string]string{}
	}
	for i, step := range app.PostInstall {
		key := fmt.Sprintf("%s %d", postInstallKey, i+1)
		if rec.Settings[key] != "" {
			continue
		}
		progress("post-install: %s", step.Description)
		if _, err := a.Engine.Exec(ctx, app.Name, step.Service, step.Command); err != nil {
			return fail(&Error{Kind: Unavailable, Message: fmt.Sprintf("%s runs, but its post-install step %q failed. Run `/toolbox add %s` again to retry it.", app.Name, step.Description, app.Name), Err: err})
		}
		rec.Settings[key] = r.deps.Now().UTC().Format(time.RFC3339)
		if err := a.Store.PutApp(rec); err != nil {
			return err
		}
	}
	rec.Status = statusRunning
	return a.Store.PutApp(rec)
}
