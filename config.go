package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/deploy/backup"
	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/host"
	"github.com/toolbox-collective/toolbox/host/images"
	"github.com/toolbox-collective/toolbox/schedule"
	"github.com/toolbox-collective/toolbox/state"
)

// config is everything read from the environment, validated once.
type config struct {
	StatePath     string        // TOOLBOX_STATE
	StateKey      []byte        // TOOLBOX_STATE_KEY (base64): the key of the state's secrets, instead of the key file beside the state
	Listen        string        // TOOLBOX_LISTEN
	MattermostURL string        // TOOLBOX_MATTERMOST_URL (else what the bootstrap recorded)
	BotURL        string        // TOOLBOX_BOT_URL: the bot as Mattermost reaches it
	TeamName      string        // TOOLBOX_TEAM
	ChannelName   string        // TOOLBOX_CHANNEL
	AdminUser     string        // TOOLBOX_MM_ADMIN_USER
	AdminPassword state.Secret  // TOOLBOX_MM_ADMIN_PASSWORD
	DockerHost    string        // DOCKER_HOST
	SSH           sshConfig     // TOOLBOX_SSH_*: for a DOCKER_HOST of ssh://
	BaseDomain    string        // TOOLBOX_BASE_DOMAIN: apps added without a domain get <app>.<base>
	CatalogDir    string        // TOOLBOX_CATALOG_DIR: the collective's own catalog entries
	Network       string        // TOOLBOX_NETWORK: the Docker network of the proxy and the apps' entries
	BotNetwork    string        // TOOLBOX_BOT_NETWORK: the bot's private network, shared with Mattermost only
	ProxyAdmin    string        // TOOLBOX_PROXY_ADMIN: Caddy's admin API
	Image         string        // TOOLBOX_IMAGE: the bot's image for `up` (default: built from this binary)
	CaddyImage    string        // TOOLBOX_CADDY_IMAGE
	PublicIP      string        // TOOLBOX_PUBLIC_IP: where Caddy listens (default 127.0.0.1 in local mode, else 0.0.0.0)
	HTTPPort      int           // TOOLBOX_HTTP_PORT (80; 0 picks a free port)
	HTTPSPort     int           // TOOLBOX_HTTPS_PORT (443; 0 picks a free port)
	ACMEEmail     string        // TOOLBOX_ACME_EMAIL: for the certificate authority's account
	Local         bool          // TOOLBOX_LOCAL: Caddy's internal CA instead of ACME (default: for a localhost base domain)
	ShutdownGrace time.Duration // TOOLBOX_SHUTDOWN_GRACE: how long running jobs get on SIGTERM
	ConfirmTTL    time.Duration // TOOLBOX_CONFIRM_TTL: how long confirmation buttons stay valid
	LogLevel      slog.Level    // TOOLBOX_LOG_LEVEL
	CacheDir      string        // TOOLBOX_CACHE: where the image builder keeps its builds ("" is its default)

	BackupRepository string                  // TOOLBOX_BACKUP_REPOSITORY: restic's repository URL ("" keeps backups in a local volume)
	BackupEnv        map[string]state.Secret // the repository backend's settings and credentials (backupEnvKeys)
	BackupVolume     string                  // TOOLBOX_BACKUP_VOLUME: the local repository's volume
	BackupPassword   state.Secret            // TOOLBOX_BACKUP_PASSWORD: the repository's password, to reach existing backups ("" generates one)
	ResticImage      string                  // TOOLBOX_RESTIC_IMAGE
	BackupKeep       backup.Policy           // TOOLBOX_BACKUP_KEEP: the retention after each run ("daily 7 weekly 4 monthly 6")
	BackupSchedule   schedule.Spec           // TOOLBOX_BACKUP_SCHEDULE: when every app is backed up ("daily 03:00")
	DrillSchedule    schedule.Spec           // TOOLBOX_DRILL_SCHEDULE: when every app's latest backup is restored into a scratch copy and checked ("weekly sunday 05:00")
	TimeZone         *time.Location          // TOOLBOX_TIME_ZONE: the zone schedules are written in (default the machine's)
	timeZoneName     string                  // as given, passed on by up

	// JobLimits bound what the chat can start at once: TOOLBOX_MAX_JOBS and
	// TOOLBOX_JOB_STARTS_PER_MINUTE (each user's).
	JobLimits commands.Limits

	// Retention of jobs and audit records: TOOLBOX_JOBS_RETENTION (90d),
	// TOOLBOX_JOBS_KEEP (200), TOOLBOX_AUDIT_RETENTION (365d).
	Retention   state.Retention
	botSettings map[string]string // settings only the bot reads, as given, passed on by up

	// The machine as the capacity guard counts it, instead of what the engine
	// and /proc/meminfo say: TOOLBOX_MACHINE_MEMORY, TOOLBOX_MACHINE_SWAP.
	MachineMemory int64 // 0: the engine's MemTotal
	MachineSwap   int64
	// CgroupParent puts every container of the toolbox under one parent
	// cgroup (TOOLBOX_CGROUP_PARENT): a machine's size on a bigger one.
	CgroupParent   string
	MachineSwapSet bool
	// Swap is TOOLBOX_SWAP: the swap file up creates when the machine has none.
	Swap host.SwapSetting
}

// backupEnvKeys are the variables restic's backends read (OpenStack Swift,
// S3, the REST server), passed to restic's runs when set.
var backupEnvKeys = []string{
	"OS_AUTH_URL", "OS_REGION_NAME", "OS_USERNAME", "OS_USER_ID", "OS_PASSWORD", "OS_TENANT_ID", "OS_TENANT_NAME",
	"OS_USER_DOMAIN_NAME", "OS_USER_DOMAIN_ID", "OS_PROJECT_NAME", "OS_PROJECT_ID", "OS_PROJECT_DOMAIN_NAME", "OS_PROJECT_DOMAIN_ID",
	"OS_TRUST_ID", "OS_APPLICATION_CREDENTIAL_ID", "OS_APPLICATION_CREDENTIAL_NAME", "OS_APPLICATION_CREDENTIAL_SECRET",
	"OS_STORAGE_URL", "OS_AUTH_TOKEN",
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
	"RESTIC_REST_USERNAME", "RESTIC_REST_PASSWORD",
}

func loadConfig(getenv func(string) string) (config, error) {
	get := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	c := config{
		StatePath:     get("TOOLBOX_STATE", "toolbox.db"),
		Listen:        get("TOOLBOX_LISTEN", "127.0.0.1:8080"),
		MattermostURL: strings.TrimRight(get("TOOLBOX_MATTERMOST_URL", ""), "/"),
		BotURL:        strings.TrimRight(get("TOOLBOX_BOT_URL", ""), "/"),
		TeamName:      get("TOOLBOX_TEAM", "collective"),
		ChannelName:   get("TOOLBOX_CHANNEL", "toolbox"),
		AdminUser:     get("TOOLBOX_MM_ADMIN_USER", "admin"),
		AdminPassword: state.Secret(getenv("TOOLBOX_MM_ADMIN_PASSWORD")),
		DockerHost:    get("DOCKER_HOST", ""),
		BaseDomain:    strings.ToLower(get("TOOLBOX_BASE_DOMAIN", "localhost")),
		CatalogDir:    get("TOOLBOX_CATALOG_DIR", ""),
		Network:       get("TOOLBOX_NETWORK", "toolbox"),
		BotNetwork:    get("TOOLBOX_BOT_NETWORK", ""),
		ProxyAdmin:    strings.TrimRight(get("TOOLBOX_PROXY_ADMIN", ""), "/"),
		CacheDir:      get(images.EnvCache, ""),

		BackupRepository: get("TOOLBOX_BACKUP_REPOSITORY", ""),
		BackupEnv:        map[string]state.Secret{},
		BackupVolume:     get("TOOLBOX_BACKUP_VOLUME", ""),
		BackupPassword:   state.Secret(getenv("TOOLBOX_BACKUP_PASSWORD")),
		ResticImage:      get("TOOLBOX_RESTIC_IMAGE", "restic/restic:0.18.1"),
	}
	for _, k := range backupEnvKeys {
		if v := getenv(k); v != "" {
			c.BackupEnv[k] = state.Secret(v)
		}
	}
	var problems []string
	if k := getenv(state.EnvKey); k != "" {
		key, err := state.ParseKey(k)
		if err != nil {
			problems = append(problems, state.EnvKey+": "+err.Error())
		}
		c.StateKey = key
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		problems = append(problems, fmt.Sprintf("TOOLBOX_LISTEN=%q is not host:port", c.Listen))
	}
	if c.ProxyAdmin != "" && !strings.HasPrefix(c.ProxyAdmin, "unix:///") {
		if u, err := url.Parse(c.ProxyAdmin); err != nil || u.Scheme != "http" || u.Host == "" {
			problems = append(problems, fmt.Sprintf("TOOLBOX_PROXY_ADMIN=%q is neither http://host:port nor unix:///path", c.ProxyAdmin))
		}
	}
	for _, kv := range [][2]string{{"TOOLBOX_MATTERMOST_URL", c.MattermostURL}, {"TOOLBOX_BOT_URL", c.BotURL}} {
		if kv[1] == "" {
			continue
		}
		if u, err := url.Parse(kv[1]); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			problems = append(problems, fmt.Sprintf("%s=%q is not an http(s) URL", kv[0], kv[1]))
		}
	}
	local, err := strconv.ParseBool(get("TOOLBOX_LOCAL", strconv.FormatBool(c.BaseDomain == "localhost" || strings.HasSuffix(c.BaseDomain, ".localhost"))))
	if err != nil {
		problems = append(problems, "TOOLBOX_LOCAL must be true or false")
	}
	c.Local = local
	c.Image = get("TOOLBOX_IMAGE", "")
	c.CaddyImage = get("TOOLBOX_CADDY_IMAGE", "caddy:2.11.9")
	c.ACMEEmail = get("TOOLBOX_ACME_EMAIL", "")
	defaultIP := "0.0.0.0"
	if local {
		defaultIP = "127.0.0.1"
	}
	c.PublicIP = get("TOOLBOX_PUBLIC_IP", defaultIP)
	if _, err := netip.ParseAddr(c.PublicIP); err != nil {
		problems = append(problems, fmt.Sprintf("TOOLBOX_PUBLIC_IP=%q is not an IP address", c.PublicIP))
	}
	for _, p := range []struct {
		key, def string
		dst      *int
	}{{"TOOLBOX_HTTP_PORT", "80", &c.HTTPPort}, {"TOOLBOX_HTTPS_PORT", "443", &c.HTTPSPort}} {
		n, err := strconv.Atoi(get(p.key, p.def))
		if err != nil || n < 0 || n > 65535 {
			problems = append(problems, p.key+" is not a port number")
		}
		*p.dst = n
	}
	grace, err := time.ParseDuration(get("TOOLBOX_SHUTDOWN_GRACE", "30s"))
	if err != nil || grace < 0 {
		problems = append(problems, "TOOLBOX_SHUTDOWN_GRACE is not a duration like 30s")
	}
	c.ShutdownGrace = grace
	ttl, err := time.ParseDuration(get("TOOLBOX_CONFIRM_TTL", "10m"))
	if err != nil || ttl <= 0 {
		problems = append(problems, "TOOLBOX_CONFIRM_TTL is not a positive duration like 10m")
	}
	c.ConfirmTTL = ttl
	c.botSettings = map[string]string{}
	for _, l := range []struct {
		key string
		def int
		dst *int
	}{
		{"TOOLBOX_MAX_JOBS", commands.DefaultMaxRunningJobs, &c.JobLimits.MaxRunningJobs},
		{"TOOLBOX_JOB_STARTS_PER_MINUTE", commands.DefaultJobStartsPerMinute, &c.JobLimits.JobStartsPerMinute},
	} {
		if v := get(l.key, ""); v != "" {
			c.botSettings[l.key] = v
		}
		n, err := strconv.Atoi(get(l.key, strconv.Itoa(l.def)))
		if err != nil || n < 1 || n > 1000 {
			problems = append(problems, l.key+" is not a whole number from 1 to 1000")
		}
		*l.dst = n
	}
	for _, r := range []struct {
		key, def string
		dst      *time.Duration
	}{
		{"TOOLBOX_JOBS_RETENTION", "90d", &c.Retention.JobsMaxAge},
		{"TOOLBOX_AUDIT_RETENTION", "365d", &c.Retention.AuditMaxAge},
	} {
		if v := get(r.key, ""); v != "" {
			c.botSettings[r.key] = v
		}
		age, err := parseAge(get(r.key, r.def))
		if err != nil {
			problems = append(problems, r.key+": "+err.Error())
		}
		*r.dst = age
	}
	if v := get("TOOLBOX_JOBS_KEEP", ""); v != "" {
		c.botSettings["TOOLBOX_JOBS_KEEP"] = v
	}
	if c.Retention.JobsKeep, err = strconv.Atoi(get("TOOLBOX_JOBS_KEEP", strconv.Itoa(state.DefaultJobsKeep))); err != nil || c.Retention.JobsKeep < 0 {
		problems = append(problems, "TOOLBOX_JOBS_KEEP is not a whole number of jobs (0 or more)")
	}
	if v := get(host.EnvCgroupParent, ""); v != "" {
		c.botSettings[host.EnvCgroupParent] = v
		c.CgroupParent = v
		if err := docker.CheckCgroupParent(v); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if v := get("TOOLBOX_MACHINE_MEMORY", ""); v != "" {
		c.botSettings["TOOLBOX_MACHINE_MEMORY"] = v
		if c.MachineMemory, err = parseMachineSize(v); err != nil || c.MachineMemory < 64<<20 {
			problems = append(problems, fmt.Sprintf("TOOLBOX_MACHINE_MEMORY=%q is not a size of 64m or more, such as 1.9g or 2048m", v))
		}
	}
	if v := get("TOOLBOX_MACHINE_SWAP", ""); v != "" {
		c.botSettings["TOOLBOX_MACHINE_SWAP"] = v
		c.MachineSwapSet = true
		if c.MachineSwap, err = parseMachineSize(v); err != nil {
			problems = append(problems, fmt.Sprintf("TOOLBOX_MACHINE_SWAP=%q is not a size, such as 2g, 512m or 0", v))
		}
	}
	if c.Swap, err = host.ParseSwapSetting(get("TOOLBOX_SWAP", "")); err != nil {
		problems = append(problems, "TOOLBOX_SWAP: "+err.Error())
	}
	keep, err := backup.ParsePolicy(get("TOOLBOX_BACKUP_KEEP", "daily 7 weekly 4 monthly 6"))
	if err != nil {
		problems = append(problems, "TOOLBOX_BACKUP_KEEP: "+err.Error())
	}
	c.BackupKeep = keep
	spec, err := schedule.Parse(get("TOOLBOX_BACKUP_SCHEDULE", "daily 03:00"))
	if err != nil {
		problems = append(problems, "TOOLBOX_BACKUP_SCHEDULE: "+err.Error())
	}
	c.BackupSchedule = spec
	if c.DrillSchedule, err = schedule.Parse(get("TOOLBOX_DRILL_SCHEDULE", "weekly sunday 05:00")); err != nil {
		problems = append(problems, "TOOLBOX_DRILL_SCHEDULE: "+err.Error())
	}
	c.TimeZone = time.Local
	if tz := get("TOOLBOX_TIME_ZONE", ""); tz != "" {
		c.timeZoneName = tz
		if c.TimeZone, err = time.LoadLocation(tz); err != nil {
			problems = append(problems, fmt.Sprintf("TOOLBOX_TIME_ZONE=%q is not a time zone like Europe/Paris", tz))
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("TOOLBOX_LOG_LEVEL", "info"))); err != nil {
		problems = append(problems, "TOOLBOX_LOG_LEVEL must be debug, info, warn or error")
	}
	problems = append(problems, checkValues(c)...)
	var sshProblems []string
	c.SSH, sshProblems = loadSSH(c.DockerHost, getenv)
	problems = append(problems, sshProblems...)
	if len(problems) > 0 {
		return c, errors.New("configuration: " + strings.Join(problems, "; "))
	}
	return c, nil
}

// parseMachineSize reads a size in bytes as people write a machine's
// memory: a decimal number, fractions allowed (rounded down to a byte), with
// an optional binary suffix k, m, g or t (1024, 1024², ...; "2g" is 2 GiB),
// upper or lower case, optionally followed by b or ib ("1.9GiB"). At most
// 64 TiB.
func parseMachineSize(s string) (int64, error) {
	num := strings.ToLower(strings.TrimSpace(s))
	num = strings.TrimSuffix(strings.TrimSuffix(num, "b"), "i")
	mul := 1.0
	if n := len(num); n > 0 {
		if i := strings.IndexByte("kmgt", num[n-1]); i >= 0 {
			mul = float64(int64(1) << (10 * (i + 1)))
			num = num[:n-1]
		}
	}
	if num == "" || strings.Trim(num, "0123456789.") != "" || strings.Count(num, ".") > 1 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*mul > float64(int64(64)<<40) {
		return 0, fmt.Errorf("%q is not a size up to 64t", s)
	}
	return int64(f * mul), nil
}

// docker is how the engine is reached.
func (c config) docker() docker.Config {
	d := c.SSH.docker(c.DockerHost)
	d.CgroupParent = c.CgroupParent
	return d
}

// parseAge reads a retention: "90d" (days), a Go duration ("36h"), or
// "forever" (0: nothing goes).
func parseAge(s string) (time.Duration, error) {
	if s == "forever" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days like 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Hour {
		return 0, fmt.Errorf("%q is neither days (90d), a duration of an hour or more (36h), nor forever", s)
	}
	return d, nil
}

func stateKeyText(k []byte) string {
	if k == nil {
		return ""
	}
	return state.EncodeKey(k)
}

// stateOptions open the state with the configured key (else its key file).
func (c config) stateOptions() state.Options { return state.Options{Key: c.StateKey} }

// host is the part of the configuration that up and down use.
func (c config) host() host.Config {
	return host.Config{
		DockerHost: c.DockerHost, SSH: c.docker(), Network: c.Network, BaseDomain: c.BaseDomain, Local: c.Local,
		ACMEEmail: c.ACMEEmail, PublicIP: c.PublicIP, HTTPPort: c.HTTPPort, HTTPSPort: c.HTTPSPort,
		CatalogDir: c.CatalogDir, BotImage: c.Image, CaddyImage: c.CaddyImage, Version: version,
		CacheDir: c.CacheDir, TeamName: c.TeamName, ChannelName: c.ChannelName, AdminUser: c.AdminUser,
		ConfirmTTL: c.ConfirmTTL, ShutdownGrace: c.ShutdownGrace, LogLevel: c.LogLevel,
		BackupSchedule: c.BackupSchedule.String(), DrillSchedule: c.DrillSchedule.String(), TimeZone: c.timeZoneName, BackupKeep: c.BackupKeep.String(),
		BackupRepository: c.BackupRepository, BackupVolume: c.BackupVolume, BackupPassword: c.BackupPassword, BackupEnv: c.BackupEnv, ResticImage: c.ResticImage,
		StateKey: state.Secret(stateKeyText(c.StateKey)), BotSettings: c.botSettings, Swap: c.Swap,
	}
}
