package commands

import (
	"context"
	"net/url"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
)

// scrubbingEngine hides an app's secrets in everything the engine says about
// it: errors (a health wait quotes the app's last log lines, an exec its
// stderr), progress lines and logs. The verbs scrub what they show, but an
// error's whole chain also reaches the bot's own log and the job record;
// wrapping the engine once covers every verb, present and future.
type scrubbingEngine struct {
	Engine
	secrets func(app string) []string
}

// scrubEngine wraps a.Engine, once.
func (a *AppDeps) scrubEngine() {
	if _, done := a.Engine.(*scrubbingEngine); done || a.Engine == nil {
		return
	}
	a.Engine = &scrubbingEngine{Engine: a.Engine, secrets: a.secretsFor}
}

// secretsFor are the values to hide in what the engine says about app: its
// secrets and secret settings, with the encodings they take in URLs.
func (a *AppDeps) secretsFor(app string) []string {
	var values []string
	if rec, err := a.Store.App(app); err == nil {
		values = a.secretsOf(rec)
	} else if c, err := a.Catalog.Get(app); err == nil {
		values = a.knownSecrets(c)
	}
	out := values
	for _, v := range values {
		for _, enc := range []string{url.QueryEscape(v), url.PathEscape(v)} {
			if enc != v {
				out = append(out, enc)
			}
		}
	}
	return out
}

// hider hides one app's secrets, read from the state when first needed (an
// add creates them just before it deploys).
type hider struct {
	once    sync.Once
	load    func() []string
	secrets []string
}

func (e *scrubbingEngine) hider(app string) *hider {
	return &hider{load: func() []string { return e.secrets(app) }}
}

func (h *hider) text(s string) string {
	h.once.Do(func() { h.secrets = h.load() })
	return scrub(s, h.secrets)
}

func (h *hider) err(err error) error {
	if err == nil {
		return nil
	}
	text := h.text(err.Error())
	if text == err.Error() {
		return err
	}
	return &scrubbedError{text: text, err: err}
}

func (h *hider) progress(progress func(string)) func(string) {
	if progress == nil {
		return nil
	}
	return func(line string) { progress(h.text(line)) }
}

// scrubbedError is err with secrets hidden in its text; errors.Is and
// errors.As still see the cause.
type scrubbedError struct {
	text string
	err  error
}

func (e *scrubbedError) Error() string { return e.text }
func (e *scrubbedError) Unwrap() error { return e.err }

func (e *scrubbingEngine) Deploy(ctx context.Context, d Deployment, progress func(string)) (string, error) {
	h := e.hider(d.App)
	upstream, err := e.Engine.Deploy(ctx, d, h.progress(progress))
	return upstream, h.err(err)
}

func (e *scrubbingEngine) Build(ctx context.Context, app string, b catalog.Build, project *types.Project, progress func(string)) error {
	h := e.hider(app)
	return h.err(e.Engine.Build(ctx, app, b, project, h.progress(progress)))
}

func (e *scrubbingEngine) Remove(ctx context.Context, app string, purge bool) error {
	return e.hider(app).err(e.Engine.Remove(ctx, app, purge))
}

func (e *scrubbingEngine) Restart(ctx context.Context, app string, progress func(string)) error {
	h := e.hider(app)
	return h.err(e.Engine.Restart(ctx, app, h.progress(progress)))
}

func (e *scrubbingEngine) Logs(ctx context.Context, app, service string, lines int) (string, error) {
	h := e.hider(app)
	out, err := e.Engine.Logs(ctx, app, service, lines)
	return h.text(out), h.err(err)
}

func (e *scrubbingEngine) Exec(ctx context.Context, app, service string, cmd []string) (string, error) {
	h := e.hider(app)
	out, err := e.Engine.Exec(ctx, app, service, cmd)
	return h.text(out), h.err(err)
}

// scrubbingBackups is scrubbingEngine for the backups: a dump's or a
// restore's errors quote the app's commands' stderr, and progress its output.
type scrubbingBackups struct {
	Backups
	secrets func(app string) []string
}

// scrubBackups wraps a.Backups, once.
func (a *AppDeps) scrubBackups() {
	if _, done := a.Backups.(*scrubbingBackups); done || a.Backups == nil {
		return
	}
	a.Backups = &scrubbingBackups{Backups: a.Backups, secrets: a.secretsFor}
}

func (b *scrubbingBackups) hider(app string) *hider {
	return &hider{load: func() []string { return b.secrets(app) }}
}

func (b *scrubbingBackups) Backup(ctx context.Context, req BackupRequest, progress func(string)) ([]Snapshot, error) {
	h := b.hider(req.App)
	snaps, err := b.Backups.Backup(ctx, req, h.progress(progress))
	return snaps, h.err(err)
}

func (b *scrubbingBackups) Restore(ctx context.Context, req RestoreRequest, progress func(string)) (Restored, error) {
	h := b.hider(req.Live.App)
	res, err := b.Backups.Restore(ctx, req, h.progress(progress))
	return res, h.err(err)
}
