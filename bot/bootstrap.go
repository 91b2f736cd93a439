package bot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/state"
)

// Names of what the bootstrap keeps in the state.
const (
	SecretAdminPassword = "mattermost.admin-password"
	SecretBotToken      = "mattermost.bot-token"
	SecretCommandToken  = "mattermost.command-token"

	SettingSiteURL       = "mattermost.url"
	SettingBotURL        = "bot.url"
	SettingTeamID        = "mattermost.team-id"
	SettingChannelID     = "mattermost.channel-id"
	SettingBotUserID     = "mattermost.bot-user-id"
	SettingAdminUsername = "mattermost.admin-username"
)

// BootstrapStore is where the bootstrap keeps the secrets it makes.
type BootstrapStore interface {
	Secret(name string) (state.Secret, error)
	SetSecret(name string, v state.Secret) error
	SetSetting(key, value string) error
	Settings(keys ...string) (map[string]string, error)
}

// ErrAdminPasswordGone: the bootstrap must log in as the admin, and the
// first admin's password is no longer kept (up showed it once, then forgot it).
var ErrAdminPasswordGone = errors.New("the first admin's password is no longer kept (toolbox up showed it once)")

// BootstrapConfig says what to set up on a Mattermost server.
type BootstrapConfig struct {
	SiteURL string // Mattermost, as the toolbox reaches it
	BotURL  string // the bot's base URL, as Mattermost reaches it

	TeamName, TeamDisplayName string
	ChannelName               string
	BotUsername               string

	AdminUsername, AdminEmail string
	// AdminPassword is the operator's, for a server that already has an admin;
	// empty means the one kept in state, or a new one on an empty server.
	AdminPassword state.Secret
}

func (c *BootstrapConfig) defaults() {
	c.SiteURL = strings.TrimRight(c.SiteURL, "/")
	c.BotURL = strings.TrimRight(c.BotURL, "/")
	if c.TeamName == "" {
		c.TeamName = "collective"
	}
	if c.TeamDisplayName == "" {
		c.TeamDisplayName = "Collective"
	}
	if c.ChannelName == "" {
		c.ChannelName = "toolbox"
	}
	if c.BotUsername == "" {
		c.BotUsername = "toolbox"
	}
	if c.AdminUsername == "" {
		c.AdminUsername = "admin"
	}
	if c.AdminEmail == "" {
		c.AdminEmail = c.AdminUsername + "@toolbox.invalid"
	}
}

// BootstrapResult is what the bootstrap found or made.
type BootstrapResult struct {
	TeamID, ChannelID, BotUserID, CommandID string
	AdminUsername                           string
	// AdminPassword is set only when this run created the admin: print it once.
	AdminPassword state.Secret
	// Changes lists what this run created or changed; empty on a rerun.
	Changes []string
}

// WaitReady polls Mattermost's ping endpoint until it answers or ctx ends.
func WaitReady(ctx context.Context, siteURL string) error {
	api := model.NewAPIv4Client(siteURL)
	api.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	for {
		status, _, err := api.GetPing(ctx)
		if err == nil && status == model.StatusOk {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("mattermost at %s did not become ready: %w (last: %v)", siteURL, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Bootstrap creates, or finds, the first admin, the team, the toolbox channel,
// the bot account and its token, and the /toolbox command. Run twice, it
// changes nothing.
func Bootstrap(ctx context.Context, cfg BootstrapConfig, store BootstrapStore) (BootstrapResult, error) {
	cfg.defaults()
	if cfg.SiteURL == "" || cfg.BotURL == "" {
		return BootstrapResult{}, errors.New("bootstrap: the Mattermost URL and the bot URL are required")
	}
	b := &bootstrapper{cfg: cfg, store: store}
	if cfg.AdminPassword == "" {
		// Once up has shown the first admin's password, the state forgets
		// it: a rerun on a Mattermost that is set up as recorded needs no
		// admin, and anything else asks for one.
		if _, err := store.Secret(SecretAdminPassword); errors.Is(err, state.ErrNotFound) {
			done, err := b.setUpAsRecorded(ctx)
			if err != nil {
				return BootstrapResult{}, fmt.Errorf("bootstrap %s: %w", cfg.SiteURL, err)
			}
			if done {
				return b.res, nil
			}
		}
	}
	b.admin = model.NewAPIv4Client(cfg.SiteURL)
	b.admin.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	steps := []func(context.Context) error{b.loginAdmin, b.ensureTeam, b.ensureChannel, b.ensureBot, b.ensureBotToken, b.ensureCommand, b.saveSettings}
	defer func() { _, _ = b.admin.Logout(context.WithoutCancel(ctx)) }()
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return b.res, fmt.Errorf("bootstrap %s: %w", cfg.SiteURL, err)
		}
	}
	return b.res, nil
}

// setUpAsRecorded reports whether an earlier bootstrap's records (settings
// and tokens) still describe this Mattermost, checked with the bot's own
// token: then there is nothing to do, and no admin is needed. No records
// at all is a first bootstrap (false, nil). Records that no longer hold
// need an admin, whose password is gone: ErrAdminPasswordGone, saying what
// to set.
func (b *bootstrapper) setUpAsRecorded(ctx context.Context) (bool, error) {
	set, err := b.store.Settings(SettingSiteURL, SettingBotURL, SettingTeamID, SettingChannelID, SettingBotUserID)
	if err != nil {
		return false, err
	}
	token, err := b.store.Secret(SecretBotToken)
	if errors.Is(err, state.ErrNotFound) && set[SettingTeamID] == "" && set[SettingBotUserID] == "" {
		return false, nil // never bootstrapped: the first admin is created now
	}
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return false, err
	}
	why := b.recordedDiffers(ctx, set, token)
	if why == "" {
		b.res.AdminUsername = b.cfg.AdminUsername
		b.res.TeamID, b.res.ChannelID, b.res.BotUserID = set[SettingTeamID], set[SettingChannelID], set[SettingBotUserID]
		return true, nil
	}
	return false, fmt.Errorf("%w, and %s: set TOOLBOX_MM_ADMIN_PASSWORD to the password of %s (or TOOLBOX_MM_ADMIN_USER and TOOLBOX_MM_ADMIN_PASSWORD to another system admin's)",
		ErrAdminPasswordGone, why, b.cfg.AdminUsername)
}

// recordedDiffers says why the records do not describe this Mattermost, or "".
func (b *bootstrapper) recordedDiffers(ctx context.Context, set map[string]string, token state.Secret) string {
	switch {
	case token == "":
		return "the bot has no token yet"
	case set[SettingSiteURL] != b.cfg.SiteURL || set[SettingBotURL] != b.cfg.BotURL:
		return "the addresses of Mattermost or of the bot changed"
	case set[SettingTeamID] == "" || set[SettingChannelID] == "" || set[SettingBotUserID] == "":
		return "an earlier bootstrap did not finish"
	}
	if _, err := b.store.Secret(SecretCommandToken); err != nil {
		return "the /" + commandTrigger + " command is not recorded"
	}
	api := model.NewAPIv4Client(b.cfg.SiteURL)
	api.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	api.SetToken(token.Reveal())
	me, _, err := api.GetMe(ctx, "")
	if err != nil || me.Id != set[SettingBotUserID] {
		return "the bot's token no longer logs it in"
	}
	team, _, err := api.GetTeam(ctx, set[SettingTeamID], "")
	if err != nil || team.Name != b.cfg.TeamName {
		return "the team " + b.cfg.TeamName + " is not the one recorded"
	}
	ch, _, err := api.GetChannel(ctx, set[SettingChannelID])
	if err != nil || ch.Name != b.cfg.ChannelName || ch.TeamId != team.Id || ch.DeleteAt != 0 {
		return "the channel " + b.cfg.ChannelName + " is not the one recorded"
	}
	return ""
}

type bootstrapper struct {
	cfg   BootstrapConfig
	store BootstrapStore
	admin *model.Client4
	res   BootstrapResult
}

func (b *bootstrapper) changed(format string, args ...any) {
	b.res.Changes = append(b.res.Changes, fmt.Sprintf(format, args...))
}

func statusOf(resp *model.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

func (b *bootstrapper) loginAdmin(ctx context.Context) error {
	b.res.AdminUsername = b.cfg.AdminUsername
	if b.cfg.AdminPassword != "" {
		// The operator's own password: used, never kept.
		return b.login(ctx, b.cfg.AdminPassword)
	}
	password, err := b.store.Secret(SecretAdminPassword)
	switch {
	case err == nil:
	case errors.Is(err, state.ErrNotFound):
		// The password is kept before the user exists, so a crash between
		// the two never leaves an admin whose password nobody knows.
		if password, err = state.NewRandomSecret(18); err != nil {
			return err
		}
		if err := b.store.SetSecret(SecretAdminPassword, password); err != nil {
			return err
		}
	default:
		return err
	}
	_, resp, err := b.admin.Login(ctx, b.cfg.AdminUsername, password.Reveal())
	if err == nil {
		return b.login(ctx, password)
	}
	if s := statusOf(resp); s != http.StatusUnauthorized && s != http.StatusBadRequest && s != http.StatusNotFound {
		return fmt.Errorf("log in as %s: %w", b.cfg.AdminUsername, err)
	}
	// No such user yet: on an empty server, the first user becomes system admin.
	_, resp, err = b.admin.CreateUser(ctx, &model.User{Username: b.cfg.AdminUsername, Email: b.cfg.AdminEmail, Password: password.Reveal()})
	if err != nil {
		if statusOf(resp) == http.StatusForbidden || statusOf(resp) == http.StatusBadRequest {
			return fmt.Errorf("this Mattermost already has users and %s could not log in: give an admin's user name and password (TOOLBOX_MM_ADMIN_USER, TOOLBOX_MM_ADMIN_PASSWORD): %w", b.cfg.AdminUsername, err)
		}
		return fmt.Errorf("create the first admin: %w", err)
	}
	if err := b.login(ctx, password); err != nil {
		return err
	}
	b.res.AdminPassword = password
	b.changed("created the first admin @%s", b.cfg.AdminUsername)
	return nil
}

// login logs in as the admin and checks that the account may set things up.
func (b *bootstrapper) login(ctx context.Context, password state.Secret) error {
	u, _, err := b.admin.Login(ctx, b.cfg.AdminUsername, password.Reveal())
	if err != nil {
		return fmt.Errorf("log in as %s: %w", b.cfg.AdminUsername, err)
	}
	if !u.IsSystemAdmin() {
		return fmt.Errorf("%s is not a system admin of this Mattermost: give an admin's user name and password (TOOLBOX_MM_ADMIN_USER, TOOLBOX_MM_ADMIN_PASSWORD)", u.Username)
	}
	return nil
}

func (b *bootstrapper) ensureTeam(ctx context.Context) error {
	team, resp, err := b.admin.GetTeamByName(ctx, b.cfg.TeamName, "")
	if statusOf(resp) == http.StatusNotFound {
		team, _, err = b.admin.CreateTeam(ctx, &model.Team{Name: b.cfg.TeamName, DisplayName: b.cfg.TeamDisplayName, Type: model.TeamInvite})
		if err == nil {
			b.changed("created the team %s", b.cfg.TeamName)
		}
	}
	if err != nil {
		return fmt.Errorf("team %s: %w", b.cfg.TeamName, err)
	}
	b.res.TeamID = team.Id
	return nil
}

func (b *bootstrapper) ensureChannel(ctx context.Context) error {
	ch, resp, err := b.admin.GetChannelByName(ctx, b.cfg.ChannelName, b.res.TeamID, "")
	if statusOf(resp) == http.StatusNotFound {
		ch, _, err = b.admin.CreateChannel(ctx, &model.Channel{
			TeamId: b.res.TeamID, Name: b.cfg.ChannelName, DisplayName: "Toolbox", Type: model.ChannelTypeOpen,
			Purpose: "Where the toolbox bot reports: jobs, costs, health.",
		})
		if err == nil {
			b.changed("created the channel ~%s", b.cfg.ChannelName)
		}
	}
	if err != nil {
		return fmt.Errorf("channel %s: %w", b.cfg.ChannelName, err)
	}
	b.res.ChannelID = ch.Id
	return nil
}

func (b *bootstrapper) ensureBot(ctx context.Context) error {
	u, resp, err := b.admin.GetUserByUsername(ctx, b.cfg.BotUsername, "")
	switch {
	case statusOf(resp) == http.StatusNotFound:
		bot, _, err := b.admin.CreateBot(ctx, &model.Bot{Username: b.cfg.BotUsername, DisplayName: "Toolbox", Description: "Runs the collective's tools."})
		if err != nil {
			return fmt.Errorf("create the bot @%s (is EnableBotAccountCreation on?): %w", b.cfg.BotUsername, err)
		}
		b.res.BotUserID = bot.UserId
		b.changed("created the bot @%s", b.cfg.BotUsername)
	case err != nil:
		return fmt.Errorf("look up @%s: %w", b.cfg.BotUsername, err)
	case !u.IsBot:
		return fmt.Errorf("@%s exists and is a person, not a bot: choose another bot name", b.cfg.BotUsername)
	default:
		b.res.BotUserID = u.Id
	}
	if _, resp, err := b.admin.GetTeamMember(ctx, b.res.TeamID, b.res.BotUserID, ""); statusOf(resp) == http.StatusNotFound {
		if _, _, err := b.admin.AddTeamMember(ctx, b.res.TeamID, b.res.BotUserID); err != nil {
			return fmt.Errorf("add the bot to the team: %w", err)
		}
		b.changed("added @%s to the team", b.cfg.BotUsername)
	} else if err != nil {
		return fmt.Errorf("team membership of the bot: %w", err)
	}
	if _, resp, err := b.admin.GetChannelMember(ctx, b.res.ChannelID, b.res.BotUserID, ""); statusOf(resp) == http.StatusNotFound {
		if _, _, err := b.admin.AddChannelMember(ctx, b.res.ChannelID, b.res.BotUserID); err != nil {
			return fmt.Errorf("add the bot to ~%s: %w", b.cfg.ChannelName, err)
		}
		b.changed("added @%s to ~%s", b.cfg.BotUsername, b.cfg.ChannelName)
	} else if err != nil {
		return fmt.Errorf("channel membership of the bot: %w", err)
	}
	return nil
}

func (b *bootstrapper) ensureBotToken(ctx context.Context) error {
	if tok, err := b.store.Secret(SecretBotToken); err == nil {
		c := model.NewAPIv4Client(b.cfg.SiteURL)
		c.SetToken(tok.Reveal())
		me, resp, err := c.GetMe(ctx, "")
		switch {
		case err == nil && me.Id == b.res.BotUserID:
			return nil
		case err != nil && statusOf(resp) != http.StatusUnauthorized:
			// Not a refused token: do not pile up new ones on a passing failure.
			return fmt.Errorf("check the bot's token: %w", err)
		}
	} else if !errors.Is(err, state.ErrNotFound) {
		return err
	}
	tok, _, err := b.admin.CreateUserAccessToken(ctx, b.res.BotUserID, "toolbox bot", 0)
	if err != nil {
		return fmt.Errorf("create the bot's access token: %w", err)
	}
	if err := b.store.SetSecret(SecretBotToken, state.Secret(tok.Token)); err != nil {
		return err
	}
	b.changed("created an access token for @%s", b.cfg.BotUsername)
	return nil
}

const (
	commandTrigger = "toolbox"
	commandHint    = "[help | status | jobs | selftest | admins list | …]"
	commandDesc    = "Run the collective's tools: add, back up, restore, report"
)

func (b *bootstrapper) ensureCommand(ctx context.Context) error {
	want := model.Command{
		TeamId: b.res.TeamID, Trigger: commandTrigger, Method: model.CommandMethodPost,
		URL: b.cfg.BotURL + CommandPath, DisplayName: "Toolbox", Description: commandDesc,
		AutoComplete: true, AutoCompleteDesc: commandDesc, AutoCompleteHint: commandHint,
		Username: b.cfg.BotUsername,
	}
	list, _, err := b.admin.ListCommands(ctx, b.res.TeamID, true)
	if err != nil {
		return fmt.Errorf("list commands: %w", err)
	}
	var cmd *model.Command
	for _, c := range list {
		if c.Trigger == commandTrigger && c.DeleteAt == 0 {
			cmd = c
			break
		}
	}
	switch {
	case cmd == nil:
		cmd, _, err = b.admin.CreateCommand(ctx, &want)
		if err != nil {
			return fmt.Errorf("create /%s: %w", commandTrigger, err)
		}
		b.changed("registered /%s pointing at %s", commandTrigger, want.URL)
	case cmd.URL != want.URL || cmd.Method != want.Method || !cmd.AutoComplete ||
		cmd.AutoCompleteHint != want.AutoCompleteHint || cmd.AutoCompleteDesc != want.AutoCompleteDesc ||
		cmd.Description != want.Description || cmd.DisplayName != want.DisplayName:
		update := *cmd
		update.URL, update.Method, update.AutoComplete = want.URL, want.Method, true
		update.AutoCompleteHint, update.AutoCompleteDesc = want.AutoCompleteHint, want.AutoCompleteDesc
		update.Description, update.DisplayName = want.Description, want.DisplayName
		if cmd, _, err = b.admin.UpdateCommand(ctx, &update); err != nil {
			return fmt.Errorf("update /%s: %w", commandTrigger, err)
		}
		b.changed("pointed /%s at %s", commandTrigger, want.URL)
	}
	if cmd.Token == "" {
		return fmt.Errorf("mattermost did not return the token of /%s", commandTrigger)
	}
	b.res.CommandID = cmd.Id
	old, err := b.store.Secret(SecretCommandToken)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return err
	}
	if old.Reveal() != cmd.Token {
		return b.store.SetSecret(SecretCommandToken, state.Secret(cmd.Token))
	}
	return nil
}

func (b *bootstrapper) saveSettings(context.Context) error {
	for k, v := range map[string]string{
		SettingSiteURL: b.cfg.SiteURL, SettingBotURL: b.cfg.BotURL, SettingTeamID: b.res.TeamID,
		SettingChannelID: b.res.ChannelID, SettingBotUserID: b.res.BotUserID, SettingAdminUsername: b.cfg.AdminUsername,
	} {
		if err := b.store.SetSetting(k, v); err != nil {
			return err
		}
	}
	return nil
}
