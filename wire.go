package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/backup"
	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/proxy"
	"github.com/toolbox-collective/toolbox/engine"
	"github.com/toolbox-collective/toolbox/host"
	"github.com/toolbox-collective/toolbox/state"
)

func newEngine(cfg config) *engine.Engine {
	return engine.New(engine.Config{
		Docker: cfg.docker(), SharedNetwork: cfg.Network,
		ChatApp: host.ChatApp, ChatNetwork: cfg.BotNetwork,
		MachineMemory: cfg.MachineMemory, MachineSwap: cfg.MachineSwap, MachineSwapSet: cfg.MachineSwapSet,
	})
}

// newAppDeps wires the app verbs: the catalog (with the collective's own
// entries), the machine and, when configured, the proxy.
func newAppDeps(cfg config, log *slog.Logger, st *state.Store, m *engine.Engine) (*commands.AppDeps, error) {
	var extra fs.FS
	if cfg.CatalogDir != "" {
		if _, err := os.Stat(cfg.CatalogDir); err != nil {
			return nil, fmt.Errorf("TOOLBOX_CATALOG_DIR: %w", err)
		}
		extra = os.DirFS(cfg.CatalogDir)
	}
	apps := &commands.AppDeps{
		Catalog: catalog.New(extra), Engine: m, Store: st, BaseDomain: cfg.BaseDomain, Scheme: "http", ChatApp: host.ChatApp,
	}
	apps.Backups = engine.NewBackups(m, engine.BackupConfig{
		ResticImage: cfg.ResticImage, Repository: cfg.BackupRepository, LocalVolume: cfg.BackupVolume, Keep: cfg.BackupKeep, Env: revealAll(cfg.BackupEnv),
		Saved: savedBackupSettings(st, log), Save: st.SetSetting,
		Password: func() (string, error) {
			if cfg.BackupPassword != "" {
				return cfg.BackupPassword.Reveal(), nil // the operator gave an existing repository's key
			}
			key, err := st.EnsureSecret(backupKeySecret, func() (state.Secret, error) { return state.NewRandomSecret(32) })
			return key.Reveal(), err
		},
		State: st.BackupWithKey, // the repository is encrypted: `toolbox recover` gets the key back with the state
	})
	if cfg.ProxyAdmin != "" {
		apps.Proxy = newProxy(cfg)
		apps.Scheme = "https"
	}
	return apps, nil
}

// savedBackupSettings reads what the backup verbs set (the repository, the
// retention), which wins over the environment's. A value that does not read
// any more is logged and left out: the environment's applies.
func savedBackupSettings(st *state.Store, log *slog.Logger) engine.BackupSaved {
	var saved engine.BackupSaved
	saved.Repository = setting(st, log, engine.SettingRepository)
	if keep := setting(st, log, engine.SettingKeep); keep != "" {
		p, err := backup.ParsePolicy(keep)
		if err != nil {
			log.Warn("the retention set with `backup keep` does not read: the environment's applies", "setting", engine.SettingKeep, "err", err)
		}
		saved.Keep = p
	}
	return saved
}

// setting is a setting of the state, "" when it was never set (or could not
// be read, which is logged).
func setting(st *state.Store, log *slog.Logger, key string) string {
	v, err := st.Setting(key)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		log.Warn("setting not read: the environment's applies", "setting", key, "err", err)
	}
	return v
}

func newProxy(cfg config) *proxy.Proxy {
	return proxy.New(cfg.ProxyAdmin, proxy.Options{Local: cfg.Local, Email: cfg.ACMEEmail})
}

// proxyCommand prepares Caddy's config (init) or prints its local CA (ca).
func proxyCommand(ctx context.Context, cfg config, what string, stdout io.Writer) error {
	if cfg.ProxyAdmin == "" {
		return errors.New("set TOOLBOX_PROXY_ADMIN to Caddy's admin API (http://host:port or unix:///path)")
	}
	p := newProxy(cfg)
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := p.Wait(wctx); err != nil {
		return err
	}
	if what == "ca" {
		pem, err := p.RootCA(ctx)
		if err != nil {
			return err
		}
		_, err = stdout.Write(pem)
		return err
	}
	return p.Init(ctx)
}

// errorKinds says how the adapters' sentinel errors reach people; commands
// maps state's and the catalog's itself. TestEveryDeploySentinelHasAKind
// keeps the list whole.
func errorKinds() []commands.ErrorKind {
	return []commands.ErrorKind{
		{Err: proxy.ErrDomainTaken, Kind: commands.Conflict, Message: "Another app's route already has this domain: choose another domain, or remove that app first."},
		{Err: proxy.ErrInvalid, Kind: commands.Invalid, Message: "The proxy refused the route's app name, domain or address."},
		{Err: proxy.ErrNotInitialized, Kind: commands.Unavailable, Message: "The proxy (Caddy) has no toolbox configuration and could not set one up: run `toolbox proxy init` on the machine."},
		{Err: docker.ErrNotOurs, Kind: commands.Conflict, Message: "A Docker network, volume or container with the name the toolbox needs exists and was not made by the toolbox: rename or remove it on the machine, then try again."},
		{Err: docker.ErrBusy, Kind: commands.Conflict, Message: "Another run of that step is still going on the machine: wait for it to finish, then try again."},
		{Err: backup.ErrNoRepository, Kind: commands.Unavailable, Message: "There is no restic repository at the backup location: check `/toolbox backup repository` (or TOOLBOX_BACKUP_REPOSITORY)."},
		{Err: backup.ErrWrongPassword, Kind: commands.Unavailable, Message: "The backup repository does not accept the toolbox's password: it belongs to another toolbox, or its key was changed."},
		{Err: backup.ErrUnreachable, Kind: commands.Unavailable, Message: "The backup repository cannot be reached (network, credentials or permissions of its storage)."},
		{Err: backup.ErrLocked, Kind: commands.Conflict, Message: "The backup repository is busy with another backup, check or prune: try again when it is done."},
		{Err: backup.ErrPartial, Kind: commands.Unavailable, Message: "The backup was made, but some files could not be read: the operators can find which in the log."},
		{Err: docker.ErrRegistryUnreachable, Kind: commands.Unavailable, Message: "The machine's Docker engine cannot reach the image's registry. On a machine without one, `toolbox images build` makes the images it can; see the README."},
	}
}

const (
	confirmKeySecret = "confirm.hmac-key"
	backupKeySecret  = "backup.repository-password"
)

// newRouter wires the verbs to the state, the machine, the chat and the
// checks, with no scheduler running here: a schedule changed through it is
// kept for the next start.
func newRouter(root context.Context, cfg config, log *slog.Logger, st *state.Store, m *engine.Engine, chat commands.Chat, dir commands.Directory, chatCheck func(context.Context) (string, error)) (*commands.Router, error) {
	return newRouterWith(root, cfg, log, st, m, chat, dir, chatCheck, newSchedules(cfg, st, nil, log))
}

// newRouterWith is newRouter with the schedules of the running scheduler.
func newRouterWith(root context.Context, cfg config, log *slog.Logger, st *state.Store, m *engine.Engine, chat commands.Chat, dir commands.Directory, chatCheck func(context.Context) (string, error), sc *schedules) (*commands.Router, error) {
	key, err := st.EnsureSecret(confirmKeySecret, func() (state.Secret, error) { return state.NewRandomSecret(32) })
	if err != nil {
		return nil, err
	}
	checks := []commands.Check{
		{Name: "state", Run: func(context.Context) (string, error) {
			took, err := st.CheckWritable()
			if err != nil {
				return "", err
			}
			if held, err := st.AuditBacklog(); err != nil {
				return "", fmt.Errorf("%d audit records wait for the disk: %w", held, err)
			}
			return fmt.Sprintf("%s is writable (a write took %s)", st.Path(), took.Round(time.Microsecond)), nil
		}},
	}
	if chatCheck != nil {
		checks = append(checks, commands.Check{Name: "mattermost", Run: chatCheck})
	}
	checks = append(checks, commands.Check{Name: "docker", Run: m.Check})
	apps, err := newAppDeps(cfg, log, st, m)
	if err != nil {
		return nil, err
	}
	apps.Schedules = sc
	router, err := commands.NewRouter(root, commands.Deps{
		Store: st, Chat: chat, Directory: dir, Checks: checks, Log: log, Version: version, Apps: apps,
		ConfirmKey: []byte(key.Reveal()), ConfirmTTL: cfg.ConfirmTTL, ErrorKinds: errorKinds(), Limits: cfg.JobLimits,
	})
	if err != nil {
		return nil, err
	}
	return router, nil
}

func revealAll(secrets map[string]state.Secret) map[string]string {
	out := make(map[string]string, len(secrets))
	for k, v := range secrets {
		out[k] = v.Reveal()
	}
	return out
}
