package main

import (
	"archive/tar"
	"bufio"
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
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/deploy/proxy"
	"github.com/toolbox-collective/toolbox/deploy/stack"
)

// Names of the toolbox's own objects on the engine.
const (
	botContainer     = "toolbox"
	botStateVolume   = "toolbox-state"
	caddyContainer   = "toolbox-caddy"
	caddyVolume      = "toolbox-caddy-data"
	caddyAdminVolume = "toolbox-caddy-admin"
	botStateDir      = "/data"
	botCatalogDir    = "/catalog"
	chatApp          = "mattermost"
	botUID           = "10001"
	// botNetwork is the bot's own network: only Mattermost joins it, so the
	// apps, which share a network with the proxy, cannot reach the bot.
	botNetwork = "toolbox-bot"
)

// ownLabels mark the toolbox's own containers, network and volumes.
func ownLabels() map[string]string {
	return map[string]string{stack.LabelManaged: "1", stack.LabelApp: "toolbox"}
}

// up brings the toolbox to life on the engine: the proxy, the bot in its
// container, Mattermost through the bot, and the bootstrap. Run again, it
// says what exists and changes nothing.
func up(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	e, err := docker.Connect(ctx, docker.Config{Host: cfg.DockerHost})
	if err != nil {
		return err
	}
	defer e.Close()
	say := func(format string, args ...any) { fmt.Fprintf(stdout, "- "+format+"\n", args...) }

	image, err := ensureBotImage(ctx, e, cfg, say)
	if err != nil {
		return err
	}
	for _, n := range []string{cfg.Network, botNetwork} {
		if err := e.EnsureNetwork(ctx, n, ownLabels()); err != nil {
			return err
		}
	}
	httpsAddr, err := ensureCaddy(ctx, e, cfg, say)
	if err != nil {
		return err
	}
	if err := ensureBot(ctx, e, cfg, image, say); err != nil {
		return err
	}
	if out, err := botExec(ctx, e, "proxy", "init"); err != nil {
		return fmt.Errorf("set up the proxy: %w\n%s", err, out)
	}
	chatDomain := "chat." + cfg.BaseDomain
	say("deploying Mattermost at %s (this can take a few minutes the first time)", chatDomain)
	if out, err := botExec(ctx, e, "do", "--yes", "add "+chatApp+" "+chatDomain); err != nil {
		return fmt.Errorf("deploy Mattermost: %w\n%s", err, out)
	} else {
		say("%s", strings.TrimSpace(out))
	}
	out, err := botExec(ctx, e, "mattermost", "bootstrap")
	if err != nil {
		return fmt.Errorf("bootstrap Mattermost: %w\n%s", err, out)
	}
	fmt.Fprintf(stdout, "\n%s\n", strings.TrimSpace(out))
	url := "https://" + chatDomain
	if _, port, err := net.SplitHostPort(httpsAddr); err == nil && port != "443" {
		url += ":" + port
	}
	fmt.Fprintf(stdout, "\nYour chat: %s\nType /toolbox help in ~toolbox to begin.\n", url)
	if cfg.Local {
		fmt.Fprintf(stdout, "(local mode: certificates come from Caddy's own CA; to trust it, save it with\n  docker exec %s /toolbox proxy ca > toolbox-ca.pem\nand import that file in your browser.)\n", botContainer)
	}
	log.Info("up", "chat", url)
	return nil
}

// botExec runs the toolbox CLI inside the bot's container: it reaches the
// server there through its control socket.
func botExec(ctx context.Context, e *docker.Engine, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	code, err := e.Exec(ctx, botContainer, append([]string{"/toolbox"}, args...), &stdout, &stderr)
	if err != nil {
		return stdout.String(), err
	}
	if code != 0 {
		return stdout.String(), fmt.Errorf("toolbox %s exited with %d: %s", args[0], code, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ensureBotImage returns the bot's image: TOOLBOX_IMAGE when set, else one
// built from this very binary, as the Dockerfile's last stage would be.
func ensureBotImage(ctx context.Context, e *docker.Engine, cfg config, say func(string, ...any)) (string, error) {
	if cfg.Image != "" {
		return cfg.Image, e.PullImage(ctx, cfg.Image, func(line string) { say("%s", line) })
	}
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if err := checkStatic(exe); err != nil {
		return "", err
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(bin)
	tag := "toolbox:" + version + "-" + hex.EncodeToString(sum[:6])
	if ok, err := e.ImagePresent(ctx, tag); err != nil || ok {
		return tag, err
	}
	rootfs, err := botRootfs(bin)
	if err != nil {
		return "", err
	}
	changes := []string{
		`ENTRYPOINT ["/toolbox"]`, `CMD ["serve"]`, "USER " + botUID + ":" + botUID,
		"ENV TOOLBOX_STATE=" + botStateDir + "/toolbox.db", "WORKDIR " + botStateDir,
	}
	if err := e.ImportImage(ctx, tag, rootfs, changes); err != nil {
		return "", err
	}
	say("built the bot's image %s from this binary", tag)
	return tag, nil
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

// botRootfs is the bot image's file system: the binary, a passwd entry for
// its user, the CA bundle, and its state folder owned by that user.
func botRootfs(bin []byte) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	uid, _ := strconv.Atoi(botUID)
	add := func(h *tar.Header, data []byte) error {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	passwd := []byte("toolbox:x:" + botUID + ":" + botUID + ":toolbox:" + botStateDir + ":/sbin/nologin\n")
	group := []byte("toolbox:x:" + botUID + ":\n")
	dir := func(name string, mode int64, owner int) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: owner, Gid: owner}
	}
	file := func(name string, mode int64, data []byte) (*tar.Header, []byte) {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data
	}
	type entry struct {
		h    *tar.Header
		data []byte
	}
	entries := []entry{{h: dir("etc/", 0o755, 0)}}
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"etc/passwd", 0o644, passwd}, {"etc/group", 0o644, group}, {"toolbox", 0o755, bin}} {
		h, data := file(f.name, f.mode, f.data)
		entries = append(entries, entry{h, data})
	}
	entries = append(entries, entry{h: dir("data/", 0o700, uid)}, entry{h: dir("tmp/", 0o1777, 0)})
	if ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		h, data := file("etc/ssl/certs/ca-certificates.crt", 0o644, ca)
		entries = append(entries, entry{h: dir("etc/ssl/", 0o755, 0)}, entry{h: dir("etc/ssl/certs/", 0o755, 0)}, entry{h, data})
	}
	for _, en := range entries {
		if err := add(en.h, en.data); err != nil {
			return nil, err
		}
	}
	return &buf, tw.Close()
}

// ensureCaddy runs the proxy, the only container listening publicly, and
// returns the address its HTTPS port is published on. Its admin API is a unix
// socket in a volume that only Caddy and the bot mount.
func ensureCaddy(ctx context.Context, e *docker.Engine, cfg config, say func(string, ...any)) (string, error) {
	if err := e.PullImage(ctx, cfg.CaddyImage, func(line string) { say("%s", line) }); err != nil {
		return "", err
	}
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
		Files:       map[string][]byte{proxy.ConfigFile: proxy.ContainerConfig(cfg.Local, proxy.AdminUnix)},
		MemoryLimit: 256 << 20, MemoryReservation: 64 << 20,
		PublishTCP: []docker.Publish{
			{HostIP: cfg.PublicIP, HostPort: cfg.HTTPSPort, ContainerPort: 443},
			{HostIP: cfg.PublicIP, HostPort: cfg.HTTPPort, ContainerPort: 80},
		},
	})
	if err != nil {
		return "", err
	}
	say("proxy (Caddy): %s", res.Action)
	return e.PublishedAddr(ctx, caddyContainer, 443)
}

// ensureBot runs the bot's container on the apps' network, with its state in
// a volume and the engine's socket, which it drives.
func ensureBot(ctx context.Context, e *docker.Engine, cfg config, image string, say func(string, ...any)) error {
	if err := e.EnsureVolume(ctx, botStateVolume, ownLabels()); err != nil {
		return err
	}
	socket, err := engineSocket(cfg.DockerHost)
	if err != nil {
		return err
	}
	env := map[string]string{
		"TOOLBOX_STATE":          botStateDir + "/toolbox.db",
		"TOOLBOX_LISTEN":         "0.0.0.0:8080",
		"TOOLBOX_BOT_URL":        "http://" + botContainer + ":8080",
		"TOOLBOX_MATTERMOST_URL": "http://" + stack.ContainerName(chatApp, chatApp) + ":8065",
		"TOOLBOX_PROXY_ADMIN":    "unix://" + proxy.AdminSocket,
		"TOOLBOX_BASE_DOMAIN":    cfg.BaseDomain,
		"TOOLBOX_NETWORK":        cfg.Network,
		"TOOLBOX_BOT_NETWORK":    botNetwork,
		"TOOLBOX_LOCAL":          strconv.FormatBool(cfg.Local),
		"TOOLBOX_TEAM":           cfg.TeamName,
		"TOOLBOX_CHANNEL":        cfg.ChannelName,
		"DOCKER_HOST":            "unix:///var/run/docker.sock",
		"TOOLBOX_CONFIRM_TTL":    cfg.ConfirmTTL.String(),
		"TOOLBOX_SHUTDOWN_GRACE": cfg.ShutdownGrace.String(),
		"TOOLBOX_LOG_LEVEL":      cfg.LogLevel.String(),
		"TOOLBOX_MM_ADMIN_USER":  cfg.AdminUser,
	}
	if cfg.ACMEEmail != "" {
		env["TOOLBOX_ACME_EMAIL"] = cfg.ACMEEmail
	}
	files, err := catalogFiles(cfg.CatalogDir)
	if err != nil {
		return err
	}
	if len(files) > 0 {
		env["TOOLBOX_CATALOG_DIR"] = botCatalogDir
	}
	labels := ownLabels()
	labels[stack.LabelService] = "bot"
	spec := docker.ContainerSpec{
		Name: botContainer, Image: image, Env: env, Labels: labels,
		Network: botNetwork, Aliases: []string{botContainer},
		Mounts: []docker.Mount{
			{Volume: botStateVolume, Target: botStateDir},
			{Volume: caddyAdminVolume, Target: proxy.AdminSocketDir},
			{HostPath: socket.path, Target: "/var/run/docker.sock"},
		},
		GroupAdd: []string{strconv.Itoa(socket.gid)},
		// Running jobs get their grace time on `docker stop`, and a little more.
		StopTimeout: cfg.ShutdownGrace + 10*time.Second,
		Files:       files,
		MemoryLimit: 256 << 20, MemoryReservation: 64 << 20,
		Health: &docker.Health{
			Test: []string{"CMD", "/toolbox", "healthcheck"}, Interval: 5 * time.Second,
			Timeout: 5 * time.Second, StartPeriod: 30 * time.Second, Retries: 3,
		},
	}
	res, err := e.EnsureContainer(ctx, spec)
	if err != nil {
		return err
	}
	say("bot: %s", res.Action)
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return e.WaitHealthy(wctx, botContainer)
}

type socketInfo struct {
	path string
	gid  int
}

// engineSocket is the local engine's unix socket, which the bot's container
// mounts: up runs on the machine of the engine it drives.
func engineSocket(host string) (socketInfo, error) {
	path := "/var/run/docker.sock"
	if host != "" {
		p, ok := strings.CutPrefix(host, "unix://")
		if !ok {
			return socketInfo{}, fmt.Errorf("toolbox up runs on the machine of its Docker engine (a unix socket), not on %s", host)
		}
		path = p
	}
	fi, err := os.Stat(path)
	if err != nil {
		return socketInfo{}, fmt.Errorf("the Docker socket: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return socketInfo{}, errors.New("cannot read the Docker socket's group")
	}
	return socketInfo{path: path, gid: int(st.Gid)}, nil
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

// down removes the toolbox and its apps from the engine, after a
// confirmation on the terminal; volumes stay unless purge.
func down(ctx context.Context, cfg config, stdin io.Reader, stdout io.Writer, yes, purge bool) error {
	e, err := docker.Connect(ctx, docker.Config{Host: cfg.DockerHost})
	if err != nil {
		return err
	}
	defer e.Close()
	managed := map[string]string{stack.LabelManaged: "1"}
	cs, err := e.Containers(ctx, managed)
	if err != nil {
		return err
	}
	if len(cs) == 0 {
		fmt.Fprintln(stdout, "Nothing of the toolbox runs on this engine.")
	}
	what := "containers (the data is kept)"
	if purge {
		what = "containers AND ALL THEIR DATA"
	}
	if !yes {
		fmt.Fprintf(stdout, "This removes the toolbox's %d %s. Type yes to go on: ", len(cs), what)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(line) != "yes" {
			return errors.New("not confirmed; nothing was removed")
		}
	}
	var errs []error
	for _, c := range cs {
		if err := e.RemoveContainer(ctx, c.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(stdout, "- removed %s\n", c.Name)
	}
	nets, err := e.Networks(ctx, managed)
	errs = append(errs, err)
	for _, n := range nets {
		errs = append(errs, e.RemoveNetwork(ctx, n))
	}
	if purge {
		vols, err := e.Volumes(ctx, managed)
		errs = append(errs, err)
		for _, v := range vols {
			if err := e.RemoveVolume(ctx, v); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(stdout, "- deleted the volume %s\n", v)
		}
	}
	return errors.Join(errs...)
}
