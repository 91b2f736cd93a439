package commands

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/internal/names"
	"github.com/toolbox-collective/toolbox/state"
)

// Catalog is the list of apps the toolbox can deploy.
type Catalog interface {
	All() ([]catalog.App, error)
	Get(name string) (catalog.App, error)
}

// Engine is the container engine the apps run on: today the Docker engine of
// the machine (a cloud VM, or this one).
type Engine interface {
	// Deploy converges an app to its project and returns the address the
	// proxy forwards to (host:port on the shared network).
	Deploy(ctx context.Context, d Deployment, progress func(string)) (upstream string, err error)
	// Build makes, with upstream's own launcher, the image of an app that
	// upstream supports building only on the machine.
	Build(ctx context.Context, app string, b catalog.Build, project *types.Project, progress func(string)) error
	Remove(ctx context.Context, app string, purge bool) error
	Restart(ctx context.Context, app string, progress func(string)) error
	Services(ctx context.Context, app string) ([]Service, error)
	Logs(ctx context.Context, app, service string, lines int) (string, error)
	Exec(ctx context.Context, app, service string, cmd []string) (string, error)
	// Memory returns the machine's memory and swap, and what the running
	// containers reserve (see Machine).
	Memory(ctx context.Context) (Machine, error)
}

// Deployment is one app as the engine runs it.
type Deployment struct {
	App     string
	Project *types.Project
	Entry   catalog.Entry
	// Generation names the app's volumes: "" the first ones, then each
	// restore's (state.App.Generation).
	Generation string
}

// Service is one container of an app.
type Service struct{ Name, State, Health string }

// Proxy routes a domain to an app, with TLS.
type Proxy interface {
	SetRoute(ctx context.Context, app, domain, upstream string) error
	RemoveRoute(ctx context.Context, app string) error
}

// AppStore is the part of the state the app verbs use.
type AppStore interface {
	App(name string) (state.App, error)
	Apps() ([]state.App, error)
	PutApp(a state.App) error
	DeleteApp(name string) error
	EnsureSecret(name string, generate func() (state.Secret, error)) (state.Secret, error)
	Secret(name string) (state.Secret, error)
	DeleteSecrets(prefix string) (int, error)
	Setting(key string) (string, error)
	SetSetting(key, value string) error
	SetSecret(name string, v state.Secret) error
}

// AppDeps are what the app verbs need on top of Deps.
type AppDeps struct {
	Catalog Catalog
	Engine  Engine
	Proxy   Proxy
	Store   AppStore
	// Backups, when set, keeps the apps' backups (the backup verbs).
	Backups Backups
	// Schedules, when set with Backups, are the scheduler's times that
	// `backup schedule` shows and changes.
	Schedules Schedules
	// ChatApp is the app the bot lives in (Mattermost): recovered first.
	ChatApp string
	// UndoWindow is how long a restore keeps the data it replaced (0:
	// DefaultUndoWindow).
	UndoWindow time.Duration
	// BaseDomain names apps that are added without a domain: <app>.<BaseDomain>.
	BaseDomain string
	// Scheme of the apps' URLs: https, or http when no proxy with TLS is used.
	Scheme string

	locksOnce sync.Once
	locks     *appLocks // which job holds which app, shared with the router's jobs

	reserveMu sync.Mutex
	reserved  map[string]int64 // app → memory reserved by its add, accepted and not ended
}

// lockTable is the table of the apps' holders.
func (a *AppDeps) lockTable() *appLocks {
	a.locksOnce.Do(func() { a.locks = newAppLocks() })
	return a.locks
}

// firstApp is Verb.Apps for the verbs whose first argument, if any, is an app.
func firstApp(args []string) []string {
	if len(args) == 0 {
		return nil
	}
	return args[:1]
}

func secretName(app, name string) string  { return "app/" + app + "/" + name }
func settingName(app, name string) string { return "app/" + app + "/" + name }

// catalogApp finds a catalog entry by the name a user typed.
func (a *AppDeps) catalogApp(name string) (catalog.App, error) {
	if err := checkName(names.App(name)); err != nil {
		return catalog.App{}, err
	}
	app, err := a.Catalog.Get(name)
	if errors.Is(err, catalog.ErrUnknownApp) {
		all, _ := a.Catalog.All()
		known := make([]string, len(all))
		for i, x := range all {
			known[i] = x.Name
		}
		return catalog.App{}, Errorf(NotFound, "There is no app %s in the catalog. It has: %s. `/toolbox catalog` says what each needs.", code(name), strings.Join(known, ", "))
	}
	return app, err
}

// installed returns the state record of an installed app.
func (a *AppDeps) installed(name string) (state.App, error) {
	if err := checkName(names.App(name)); err != nil {
		return state.App{}, err
	}
	rec, err := a.Store.App(name)
	if errors.Is(err, state.ErrNotFound) {
		return state.App{}, Errorf(NotFound, "%s is not installed. `/toolbox status` lists what is.", code(name))
	}
	return rec, err
}

// installedApp returns an installed app's record and its catalog entry.
func (a *AppDeps) installedApp(name string) (state.App, catalog.App, error) {
	rec, err := a.installed(name)
	if err != nil {
		return state.App{}, catalog.App{}, err
	}
	app, err := a.catalogApp(rec.Catalog)
	return rec, app, err
}

// exclusive holds app for job (0: work outside jobs), so that two jobs
// never touch one app at once: a second is refused with the first's number.
// A job that holds the app since its acceptance (Verb.Apps) gets it at once.
func (a *AppDeps) exclusive(job uint64, app string) (release func(), err error) {
	h := appHolder{job: job, title: fmt.Sprintf("job #%d", job)}
	if job == 0 {
		h.title = "the data it kept for undo is being removed"
	}
	return a.lockTable().claim(h, app)
}

// hold is exclusive that waits for the app, saying so, until ctx ends.
func (a *AppDeps) hold(ctx context.Context, app string, inv Invocation) (release func(), err error) {
	for said := false; ; said = true {
		if release, err = a.exclusive(inv.JobID, app); err == nil {
			return release, nil
		}
		if !said {
			inv.Progress("waiting for the job that holds %s", app)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// runningEntry is the catalog entry an installed app runs: the one kept
// with its record (the catalog may have moved on since), else the catalog's.
func (a *AppDeps) runningEntry(ctx context.Context, rec state.App) (catalog.App, error) {
	if len(rec.Source) == 0 {
		return a.catalogApp(rec.Catalog)
	}
	app, err := catalog.Parse(ctx, rec.Catalog, rec.Source)
	if err != nil {
		return catalog.App{}, fmt.Errorf("the catalog entry %s runs from: %w", rec.Name, err)
	}
	return app, nil
}

// installedRunning returns an installed app's record and the entry it runs.
func (a *AppDeps) installedRunning(ctx context.Context, name string) (state.App, catalog.App, error) {
	rec, err := a.installed(name)
	if err != nil {
		return state.App{}, catalog.App{}, err
	}
	app, err := a.runningEntry(ctx, rec)
	return rec, app, err
}

// checkName turns a refusal of internal/names into an error for people: its
// message is a sentence that says what is allowed.
func checkName(err error) error {
	if err == nil {
		return nil
	}
	return Errorf(Invalid, "%s.", err)
}

// validateDomain accepts a lowercase host name with at least two labels; see names.Domain.
func validateDomain(d string) error { return checkName(names.Domain(d)) }

// alnumSecret makes a secret of n characters from [A-Za-z0-9]: catalog
// secrets end up in URLs and shell strings.
func alnumSecret(n int) (state.Secret, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", err
		}
		b[i] = alphabet[k.Int64()]
	}
	return state.Secret(b), nil
}

// vars gathers the variables of app's Compose file: domain, secrets (made
// once and kept) and settings.
func (a *AppDeps) vars(app catalog.App, domain string) (map[string]string, []string, error) {
	vars := map[string]string{catalog.VarDomain: domain, catalog.VarApp: app.Name}
	var secrets []string
	for _, s := range app.Secrets {
		v, err := a.Store.EnsureSecret(secretName(app.Name, s.Name), func() (state.Secret, error) { return alnumSecret(s.Length) })
		if err != nil {
			return nil, nil, err
		}
		vars[s.Name] = v.Reveal()
		secrets = append(secrets, v.Reveal())
	}
	var missing []string
	for _, s := range app.Settings {
		var v string
		if s.Secret {
			sec, err := a.Store.Secret(secretName(app.Name, s.Name))
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return nil, nil, err
			}
			v = sec.Reveal()
			if v != "" {
				secrets = append(secrets, v)
			}
		} else {
			val, err := a.Store.Setting(settingName(app.Name, s.Name))
			if err != nil && !errors.Is(err, state.ErrNotFound) {
				return nil, nil, err
			}
			v = val
		}
		if v != "" {
			vars[s.Name] = v
		} else if s.Required {
			missing = append(missing, fmt.Sprintf("`%s` (%s)", s.Name, s.Description))
		}
	}
	if len(missing) > 0 {
		return nil, nil, Errorf(Invalid, "%s needs settings that are not given yet: %s.", app.Name, strings.Join(missing, ", "))
	}
	return vars, secrets, nil
}

// knownSecrets are the values of app's secrets that exist, to hide them;
// unlike vars, it creates nothing and needs no setting.
func (a *AppDeps) knownSecrets(app catalog.App) []string {
	var secretNames, out []string
	for _, s := range app.Secrets {
		secretNames = append(secretNames, s.Name)
	}
	for _, s := range app.Settings {
		if s.Secret {
			secretNames = append(secretNames, s.Name)
		}
	}
	for _, n := range secretNames {
		if v, err := a.Store.Secret(secretName(app.Name, n)); err == nil {
			out = append(out, v.Reveal())
		}
	}
	return out
}

// secretsOf are the known secrets of an installed app, to hide them; none
// when its catalog entry is gone.
func (a *AppDeps) secretsOf(rec state.App) []string {
	app, err := a.Catalog.Get(rec.Catalog)
	if err != nil {
		return nil
	}
	return a.knownSecrets(app)
}

// scrub hides every known secret in text.
func scrub(text string, secrets []string) string {
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		if len(s) >= 6 {
			text = strings.ReplaceAll(text, s, "[redacted]")
		}
	}
	return text
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	default:
		return fmt.Sprintf("%d KiB", n>>10)
	}
}
