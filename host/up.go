package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/catalog"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/proxy"
	"github.com/toolbox-collective/toolbox/deploy/stack"
	"github.com/toolbox-collective/toolbox/host/images"
)

// Names of the toolbox's own objects on the engine.
const (
	BotContainer     = "toolbox"
	botStateVolume   = "toolbox-state"
	caddyContainer   = "toolbox-caddy"
	caddyVolume      = "toolbox-caddy-data"
	caddyAdminVolume = "toolbox-caddy-admin"
	botCatalogDir    = "/catalog"
	// ChatApp is the catalog app that is the collective's chat.
	ChatApp = "mattermost"
	// BotNetwork is the bot's own network: only Mattermost joins it, so the
	// apps, which share a network with the proxy, cannot reach the bot.
	BotNetwork = "toolbox-bot"
)

// ownLabels mark the toolbox's own containers, network and volumes.
func ownLabels() map[string]string {
	return map[string]string{stack.LabelManaged: "1", stack.LabelApp: "toolbox"}
}

// Up brings the toolbox to life on the engine: the proxy, the bot in its
// container, Mattermost through the bot, and the bootstrap. Run again, it
// says what exists and changes nothing.
func Up(ctx context.Context, cfg Config, log *slog.Logger, stdout io.Writer) error {
	e, err := docker.Connect(ctx, cfg.engine())
	if err != nil {
		return err
	}
	defer e.Close()
	// Every line said is something done: a run that says none changed nothing.
	changed := false
	say := func(format string, args ...any) {
		changed = true
		fmt.Fprintf(stdout, "- "+format+"\n", args...)
	}

	// Swap first: the image builds and Mattermost's first start need it most.
	info, err := e.Info(ctx)
	if err != nil {
		return err
	}
	ensureSwap(ctx, cfg.Swap, cfg.BotSettings["TOOLBOX_MACHINE_SWAP"] != "", e.Host(), info.MemTotal, stdout, say)
	if err := ensureImages(ctx, e, cfg, say); err != nil {
		return err
	}
	image, err := ensureBotImage(ctx, e, cfg, say)
	if err != nil {
		return err
	}
	for _, n := range []string{cfg.Network, BotNetwork} {
		if err := e.EnsureNetwork(ctx, n, ownLabels()); err != nil {
			return err
		}
	}
	httpsAddr, err := ensureCaddy(ctx, e, cfg, say)
	if err != nil {
		return err
	}
	// The guard first: the bot reaches the engine only through it.
	if err := ensureGuard(ctx, e, cfg, image, say); err != nil {
		return err
	}
	if err := ensureBot(ctx, e, cfg, image, say); err != nil {
		return err
	}
	if out, err := botExec(ctx, e, "proxy", "init"); err != nil {
		return fmt.Errorf("set up the proxy: %w\n%s", err, out)
	}
	if cfg.Recover {
		say("bringing back every app the state records, from its latest backup (this takes a while)")
		out, err := botExec(ctx, e, "do", "--yes", "recover")
		if err != nil {
			return fmt.Errorf("recover the apps: %w\n%s", err, out)
		}
		say("%s", strings.TrimSpace(out))
	}
	chatDomain := "chat." + cfg.BaseDomain
	chat, err := e.Containers(ctx, map[string]string{stack.LabelManaged: "1", stack.LabelApp: ChatApp})
	if err != nil {
		return err
	}
	first := len(chat) == 0
	if first {
		say("deploying Mattermost at %s: the first time takes a few minutes (its database is created, and the server sets it up)", chatDomain)
	}
	out, err := botExec(ctx, e, "do", "--yes", "add "+ChatApp+" "+chatDomain)
	if err != nil {
		return fmt.Errorf("deploy Mattermost: %w\n%s", err, out)
	}
	if first {
		say("%s", strings.TrimSpace(out))
	} else {
		// Checked (and repaired if need be): not a change of its own.
		fmt.Fprintf(stdout, "- %s\n", strings.TrimSpace(out))
	}
	out, err = botExec(ctx, e, "mattermost", "bootstrap")
	if err != nil {
		return fmt.Errorf("bootstrap Mattermost: %w\n%s", err, out)
	}
	fmt.Fprintf(stdout, "\n%s\n", strings.TrimSpace(out))
	if strings.Contains(out, "First admin:") {
		// Shown: the state keeps it no longer (a later bootstrap that needs
		// it asks for TOOLBOX_MM_ADMIN_PASSWORD).
		if out, err := botExec(ctx, e, "mattermost", "forget-admin-password"); err != nil {
			return fmt.Errorf("forget the first admin's password: %w\n%s", err, out)
		}
		// The first bootstrap: the backup key is shown once too, here only.
		key, err := botExec(ctx, e, "do", "backup key")
		if err != nil {
			return fmt.Errorf("show the backup key: %w\n%s", err, key)
		}
		fmt.Fprintf(stdout, "\n%s\n", strings.TrimSpace(key))
	}
	if !changed {
		fmt.Fprintf(stdout, "\nNothing changed: the proxy, the docker guard, the bot and Mattermost were already up.\n")
	}
	url := "https://" + chatDomain
	if _, port, err := net.SplitHostPort(httpsAddr); err == nil && port != "443" {
		url += ":" + port
	}
	fmt.Fprintf(stdout, "\nYour chat: %s\nType /toolbox help in ~toolbox to begin.\n", url)
	if cfg.Local {
		fmt.Fprintf(stdout, "(local mode: certificates come from Caddy's own CA; to trust it, save it with\n  docker exec %s %s proxy ca > toolbox-ca.pem\nand import that file in your browser.)\n", BotContainer, BotBinary)
	}
	log.Info("up", "chat", url)
	return nil
}

// ensureImages makes sure the engine has the proxy's image and the chat's:
// pulled when a registry answers, else built here when cfg.BuildImages, else
// up stops and says how to get them.
func ensureImages(ctx context.Context, e *docker.Engine, cfg Config, say func(string, ...any)) error {
	chat, err := catalog.Get(ChatApp)
	if err != nil {
		return err
	}
	var unreachable []string
	refs := append([]string{cfg.CaddyImage}, chat.Images()...)
	if cfg.ResticImage != "" {
		refs = append(refs, cfg.ResticImage) // the backups run it
	}
	for _, ref := range refs {
		err := e.PullImage(ctx, ref, func(line string) { say("%s", line) })
		switch {
		case errors.Is(err, docker.ErrRegistryUnreachable):
			unreachable = append(unreachable, ref)
		case err != nil:
			return err
		}
	}
	if len(unreachable) == 0 {
		return nil
	}
	names, err := buildable(unreachable)
	if err != nil {
		return err
	}
	if !cfg.BuildImages {
		return fmt.Errorf("no registry answers for %s.\n"+
			"This machine can build them from Go modules and Debian's packages (it needs Go, and takes about 10 minutes the first time):\n"+
			"  toolbox up --build-images    (or toolbox images build %s, then toolbox up)\n"+
			"See the README for what locally built images lack next to the official ones", strings.Join(unreachable, ", "), strings.Join(names, " "))
	}
	say("no registry answers for %s: building them here", strings.Join(unreachable, ", "))
	b := &images.Builder{Engine: e, CacheDir: cfg.CacheDir, Progress: func(line string) { say("%s", line) }}
	return b.Build(ctx, names...)
}

// buildable maps image references to the builder's names, or says which
// images it cannot build.
func buildable(refs []string) ([]string, error) {
	infos, err := images.Images()
	if err != nil {
		return nil, err
	}
	var names, unknown []string
	for _, ref := range refs {
		i := slices.IndexFunc(infos, func(in images.Info) bool { return in.Tag == ref })
		if i < 0 {
			unknown = append(unknown, ref)
			continue
		}
		names = append(names, infos[i].Name)
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("no registry answers for %s, and toolbox images build cannot make it: give the engine a registry, or load the image (docker load)", strings.Join(unknown, ", "))
	}
	return names, nil
}

// botExec runs the toolbox CLI inside the bot's container: it reaches the
// server there through its control socket.
func botExec(ctx context.Context, e *docker.Engine, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	code, err := e.Exec(ctx, BotContainer, append([]string{BotBinary}, args...), &stdout, &stderr)
	if err != nil {
		return stdout.String(), err
	}
	if code != 0 {
		return stdout.String(), fmt.Errorf("toolbox %s exited with %d: %s", args[0], code, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ensureBotImage returns the bot's image: cfg.BotImage when set, else one
// built from this very binary with the layout of the Dockerfile's last stage.
func ensureBotImage(ctx context.Context, e *docker.Engine, cfg Config, say func(string, ...any)) (string, error) {
	if cfg.BotImage != "" {
		return cfg.BotImage, e.PullImage(ctx, cfg.BotImage, func(line string) { say("%s", line) })
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if err := checkStatic(exe); err != nil {
		return "", err
	}
	sum, err := fileSum(exe)
	if err != nil {
		return "", err
	}
	tag := "toolbox:" + cfg.Version + "-" + sum[:12]
	if ok, err := e.ImagePresent(ctx, tag); err != nil || ok {
		return tag, err
	}
	if err := e.ImportEntries(ctx, tag, botImageEntries(exe), botImageConfig()); err != nil {
		return "", err
	}
	say("built the bot's image %s from this binary", tag)
	return tag, nil
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkStatic refuses a dynamically linked binary: it could not run in a
// FROM scratch image.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not a Linux binary, so it cannot be the bot's image: build toolbox for Linux, or set TOOLBOX_IMAGE", path)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is linked dynamically, so it cannot run in the bot's image: build it with CGO_ENABLED=0 (the README's command does)", path)
		}
	}
	return nil
}

// ensureCaddy runs the proxy, the only container listening publicly, and
// returns the address its HTTPS port is published on. Its admin API is a unix
// socket in a volume that only Caddy and the bot mount.
func ensureCaddy(ctx context.Context, e *docker.Engine, cfg Config, say func(string, ...any)) (string, error) {
	for _, v := range []string{caddyVolume, caddyAdminVolume} {
		if err := e.EnsureVolume(ctx, v, ownLabels()); err != nil {
			return "", err
		}
	}
	labels := ownLabels()
	labels[stack.LabelService] = "proxy"
	res, err := e.EnsureContainer(ctx, docker.ContainerSpec{
		Name: caddyContainer, Image: cfg.CaddyImage, Cmd: proxy.ContainerCommand(), Env: proxy.ContainerEnv(),
		Labels: labels, Network: cfg.Network, Aliases: []string{proxy.ContainerName},
		Mounts: []docker.Mount{
			{Volume: caddyVolume, Target: proxy.DataDir},
			{Volume: caddyAdminVolume, Target: proxy.AdminSocketDir},
		},
		Files: map[string][]byte{proxy.ConfigFile: proxy.ContainerConfig(cfg.Local, proxy.AdminUnix)},
		// The figures and their sources: deploy/catalog/toolbox.go.
		MemoryLimit: catalog.Toolbox(catalog.ToolboxProxy).Limit, MemoryReservation: catalog.Toolbox(catalog.ToolboxProxy).Reservation,
		PublishTCP: []docker.Publish{
			{HostIP: cfg.PublicIP, HostPort: cfg.HTTPSPort, ContainerPort: 443},
			{HostIP: cfg.PublicIP, HostPort: cfg.HTTPPort, ContainerPort: 80},
		},
	})
	if err != nil {
		return "", err
	}
	if res.Action != docker.ActionUnchanged {
		say("proxy (Caddy): %s", res.Action)
	}
	return e.PublishedAddr(ctx, caddyContainer, 443)
}

// ensureBot runs the bot's container on its private network, with its state
// in a volume and the docker guard's socket, through which it drives the engine.
func ensureBot(ctx context.Context, e *docker.Engine, cfg Config, image string, say func(string, ...any)) error {
	spec, err := botSpec(cfg, image)
	if err != nil {
		return err
	}
	if err := e.EnsureVolume(ctx, botStateVolume, ownLabels()); err != nil {
		return err
	}
	if cfg.Recover {
		if err := recoverState(ctx, e, spec, say); err != nil {
			return err
		}
	}
	res, err := e.EnsureContainer(ctx, spec)
	if err != nil {
		return err
	}
	if res.Action != docker.ActionUnchanged {
		say("bot: %s", res.Action)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return e.WaitHealthy(wctx, BotContainer)
}

// recoverState runs the bot's image once, as the bot but before it, to
// fetch the newest state from the backup repository into the bot's volume
// when the volume has none (`toolbox state recover`).
func recoverState(ctx context.Context, e *docker.Engine, bot docker.ContainerSpec, say func(string, ...any)) error {
	var out, errs bytes.Buffer
	code, err := e.Run(ctx, docker.RunSpec{
		Name: BotContainer + "-recover", Image: bot.Image, Cmd: []string{"state", "recover"}, Env: bot.Env, Labels: bot.Labels,
		Mounts: bot.Mounts, Network: bot.Network, GroupAdd: bot.GroupAdd, MemoryLimit: bot.MemoryLimit,
		Stdout: &out, Stderr: &errs,
	})
	if err != nil {
		return fmt.Errorf("recover the state: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("recover the state: %s", strings.TrimSpace(errs.String()))
	}
	say("%s", strings.TrimSpace(out.String()))
	return nil
}

// botSpec is the bot's container. It reaches the engine through the docker
// guard's socket, never the engine's own (ensureGuard, before it, finds that).
func botSpec(cfg Config, image string) (docker.ContainerSpec, error) {
	env := map[string]string{
		"TOOLBOX_STATE":          BotState,
		"TOOLBOX_LISTEN":         BotListen,
		"TOOLBOX_BOT_URL":        "http://" + BotContainer + ":" + strconv.Itoa(botPort),
		"TOOLBOX_MATTERMOST_URL": "http://" + stack.ContainerName(ChatApp, ChatApp) + ":8065",
		"TOOLBOX_PROXY_ADMIN":    "unix://" + proxy.AdminSocket,
		"TOOLBOX_BASE_DOMAIN":    cfg.BaseDomain,
		"TOOLBOX_NETWORK":        cfg.Network,
		"TOOLBOX_BOT_NETWORK":    BotNetwork,
		"TOOLBOX_LOCAL":          strconv.FormatBool(cfg.Local),
		"TOOLBOX_TEAM":           cfg.TeamName,
		"TOOLBOX_CHANNEL":        cfg.ChannelName,
		"DOCKER_HOST":            "unix://" + botGuardDir + "/" + path.Base(GuardListen),
		"TOOLBOX_CONFIRM_TTL":    cfg.ConfirmTTL.String(),
		"TOOLBOX_SHUTDOWN_GRACE": cfg.ShutdownGrace.String(),
		"TOOLBOX_LOG_LEVEL":      cfg.LogLevel.String(),
		"TOOLBOX_MM_ADMIN_USER":  cfg.AdminUser,
	}
	// Optional settings are passed on only when set, so that the bot's own
	// defaults apply otherwise.
	for key, value := range map[string]string{
		"TOOLBOX_ACME_EMAIL":        cfg.ACMEEmail,
		"TOOLBOX_BACKUP_REPOSITORY": cfg.BackupRepository,
		"TOOLBOX_RESTIC_IMAGE":      cfg.ResticImage,
		"TOOLBOX_BACKUP_SCHEDULE":   cfg.BackupSchedule,
		"TOOLBOX_DRILL_SCHEDULE":    cfg.DrillSchedule,
		"TOOLBOX_BACKUP_KEEP":       cfg.BackupKeep,
		"TOOLBOX_TIME_ZONE":         cfg.TimeZone,
		"TOOLBOX_BACKUP_PASSWORD":   cfg.BackupPassword.Reveal(),
		"TOOLBOX_BACKUP_VOLUME":     cfg.BackupVolume,
		"TOOLBOX_STATE_KEY":         cfg.StateKey.Reveal(),
	} {
		if value != "" {
			env[key] = value
		}
	}
	for k, v := range cfg.BackupEnv {
		env[k] = v.Reveal()
	}
	for k, v := range cfg.BotSettings {
		env[k] = v
	}
	files, err := catalogFiles(cfg.CatalogDir)
	if err != nil {
		return docker.ContainerSpec{}, err
	}
	if len(files) > 0 {
		env["TOOLBOX_CATALOG_DIR"] = botCatalogDir
	}
	labels := ownLabels()
	labels[stack.LabelService] = "bot"
	return docker.ContainerSpec{
		Name: BotContainer, Image: image, Env: env, Labels: labels,
		Network: BotNetwork, Aliases: []string{BotContainer},
		Mounts: []docker.Mount{
			{Volume: botStateVolume, Target: BotDataDir},
			{Volume: caddyAdminVolume, Target: proxy.AdminSocketDir},
			{Volume: guardVolume, Target: botGuardDir},
		},
		// Running jobs get their grace time on `docker stop`, and a little more.
		StopTimeout: cfg.ShutdownGrace + 10*time.Second,
		Files:       files,
		// The figures and their sources: deploy/catalog/toolbox.go.
		MemoryLimit: catalog.Toolbox(catalog.ToolboxBot).Limit, MemoryReservation: catalog.Toolbox(catalog.ToolboxBot).Reservation,
		Health: &docker.Health{
			Test: []string{"CMD", BotBinary, "healthcheck"}, Interval: 5 * time.Second,
			Timeout: 5 * time.Second, StartPeriod: 30 * time.Second, Retries: 3,
		},
	}, nil
}

type socketInfo struct {
	path string
	gid  int
}

// engineSocket is the engine's unix socket on its own machine, which the
// guard's container mounts there: found locally for unix://, through the SSH
// connection for ssh://.
func engineSocket(ctx context.Context, e *docker.Engine) (socketInfo, error) {
	path, gid, err := e.Socket(ctx)
	if err != nil {
		return socketInfo{}, fmt.Errorf("toolbox up mounts the engine's socket into the docker guard on the engine's machine, so it needs DOCKER_HOST=unix:// or ssh://: %w", err)
	}
	return socketInfo{path: path, gid: gid}, nil
}

// catalogFiles reads the collective's own catalog entries, for the bot's container.
func catalogFiles(dir string) (map[string][]byte, error) {
	if dir == "" {
		return nil, nil
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		files[botCatalogDir+"/"+filepath.Base(p)] = data
	}
	return files, nil
}
