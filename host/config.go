package host

import (
	"log/slog"
	"time"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/state"
)

// Config is what up and down need to know: a part of the program's
// configuration, filled by main.
type Config struct {
	DockerHost string // the engine: up runs on its machine, through its unix socket
	// SSH holds what a DockerHost of ssh:// needs: the fields SSH* of
	// docker.Config (its Host is DockerHost's).
	SSH        docker.Config
	Network    string // the proxy's and the apps' entry services' network
	BaseDomain string // the chat is chat.<BaseDomain>
	Local      bool   // Caddy's own CA instead of ACME
	ACMEEmail  string
	PublicIP   string // where Caddy listens
	HTTPPort   int
	HTTPSPort  int
	CatalogDir string // the collective's own catalog entries, copied into the bot's container

	// BotImage is the bot's image to pull; "" builds one from this binary.
	BotImage   string
	CaddyImage string
	Version    string // of this binary, in the bot image's tag

	// BuildImages builds on the machine (host/images) the images no
	// registry can give; else up stops and says how.
	BuildImages bool
	CacheDir    string // the image builder's cache; "" is its default

	// Where the backups go, and restic's image; passed on to the bot.
	// Recover fetches the bot's state from the backup repository when its
	// volume has none, then brings back every app it records.
	Recover          bool
	BackupSchedule   string // "daily 03:00"
	DrillSchedule    string // "weekly sunday 05:00"
	BackupKeep       string // "daily 7 weekly 4 monthly 6"
	TimeZone         string // "" is the bot's (UTC in its container)
	BackupRepository string
	BackupVolume     string
	BackupPassword   state.Secret
	BackupEnv        map[string]state.Secret
	ResticImage      string

	// StateKey is TOOLBOX_STATE_KEY as given (base64), passed on to the bot;
	// empty: the key file beside the bot's state, in its volume.
	StateKey state.Secret
	// BotSettings are the settings only the bot reads (job limits, retention:
	// TOOLBOX_MAX_JOBS, TOOLBOX_JOBS_RETENTION...) as given, passed on to it
	// as they are, so that its own defaults apply to the others.
	BotSettings map[string]string

	// Swap says whether up creates a swap file when the machine has none,
	// and how large (TOOLBOX_SWAP; see swap.go).
	Swap SwapSetting

	// Passed on to the bot in its container.
	TeamName, ChannelName, AdminUser string
	ConfirmTTL, ShutdownGrace        time.Duration
	LogLevel                         slog.Level
}

// engine is how up and down reach the engine.
func (c Config) engine() docker.Config {
	d := c.SSH
	d.Host = c.DockerHost
	return d
}
