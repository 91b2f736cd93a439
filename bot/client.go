package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mattermost/mattermost/server/public/model"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

// Client talks to Mattermost as the bot account.
type Client struct {
	api *model.Client4
	// actionURL is where Mattermost sends button clicks.
	actionURL string

	mu     sync.Mutex
	admins map[string]cachedRole
	now    func() time.Time
}

type cachedRole struct {
	admin bool
	until time.Time
}

// roleCacheTTL keeps a burst of admin commands from asking Mattermost each time,
// while a demotion takes effect within a minute.
const roleCacheTTL = time.Minute

var (
	_ commands.Chat      = (*Client)(nil)
	_ commands.Directory = (*Client)(nil)
	_ commands.Whisperer = (*Client)(nil)
)

// NewClient returns a client for the Mattermost at siteURL with the bot's token.
// botURL is the bot's own base URL as Mattermost reaches it.
func NewClient(siteURL string, token state.Secret, botURL string) *Client {
	api := model.NewAPIv4Client(siteURL)
	api.SetToken(token.Reveal())
	api.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	return &Client{api: api, actionURL: botURL + ActionPath, admins: map[string]cachedRole{}, now: time.Now}
}

// Post creates a post as the bot.
func (c *Client) Post(ctx context.Context, channelID, text string) (string, error) {
	p, _, err := c.api.CreatePost(ctx, &model.Post{ChannelId: channelID, Message: text})
	if err != nil {
		return "", fmt.Errorf("mattermost: create post: %w", err)
	}
	return p.Id, nil
}

// Edit replaces a bot post's text and drops its attachments.
func (c *Client) Edit(ctx context.Context, postID, text string) error {
	msg := text
	_, _, err := c.api.PatchPost(ctx, postID, &model.PostPatch{Message: &msg})
	if err != nil {
		return fmt.Errorf("mattermost: edit post %s: %w", postID, err)
	}
	return nil
}

// AskConfirmation posts text with Confirm and Cancel buttons that send token back.
func (c *Client) AskConfirmation(ctx context.Context, channelID, text, token string) (string, error) {
	button := func(id, name, style string) *model.PostAction {
		return &model.PostAction{
			Id: id, Type: model.PostActionTypeButton, Name: name, Style: style,
			Integration: &model.PostActionIntegration{
				URL:     c.actionURL,
				Context: map[string]any{contextToken: token, contextAction: id},
			},
		}
	}
	post := &model.Post{ChannelId: channelID, Message: text}
	model.ParseMessageAttachment(post, []*model.MessageAttachment{{
		Actions: []*model.PostAction{button("confirm", "Confirm", "danger"), button("cancel", "Cancel", "default")},
	}})
	p, _, err := c.api.CreatePost(ctx, post)
	if err != nil {
		return "", fmt.Errorf("mattermost: post confirmation: %w", err)
	}
	return p.Id, nil
}

// IsSystemAdmin says whether a user is a Mattermost system admin.
func (c *Client) IsSystemAdmin(ctx context.Context, userID string) (bool, error) {
	now := c.now()
	c.mu.Lock()
	r, ok := c.admins[userID]
	c.mu.Unlock()
	if ok && now.Before(r.until) {
		return r.admin, nil
	}
	u, _, err := c.api.GetUser(ctx, userID, "")
	if err != nil {
		return false, fmt.Errorf("mattermost: get user %s: %w", userID, err)
	}
	admin := u.IsSystemAdmin()
	c.mu.Lock()
	if len(c.admins) > 10000 { // bound the cache; it is only a shortcut
		clear(c.admins)
	}
	c.admins[userID] = cachedRole{admin: admin, until: now.Add(roleCacheTTL)}
	c.mu.Unlock()
	return admin, nil
}

// UserByName finds a user by name.
func (c *Client) UserByName(ctx context.Context, name string) (commands.User, error) {
	u, resp, err := c.api.GetUserByUsername(ctx, name, "")
	// Mattermost answers 400 for a name no user may have (channel, here, all...).
	if resp != nil && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest) {
		return commands.User{}, commands.Errorf(commands.NotFound, "There is no user @%s here.", name)
	}
	if err != nil {
		return commands.User{}, fmt.Errorf("mattermost: get user @%s: %w", name, err)
	}
	return commands.User{ID: u.Id, Name: u.Username}, nil
}

// Check verifies that Mattermost answers and accepts the bot's token.
func (c *Client) Check(ctx context.Context) (string, error) {
	me, _, err := c.api.GetMe(ctx, "")
	if err != nil {
		var appErr *model.AppError
		if errors.As(err, &appErr) && appErr.StatusCode == http.StatusUnauthorized {
			return "", errors.New("mattermost refused the bot's token")
		}
		return "", fmt.Errorf("mattermost did not answer: %w", err)
	}
	return fmt.Sprintf("answers at %s as @%s", c.api.URL, me.Username), nil
}

// commandHookPath is the path of a slash command's response URL; the id is
// Mattermost's 26-character one.
var commandHookPath = regexp.MustCompile(`^/hooks/commands/[a-z0-9]{26}$`)

// Whisper sends text to the person who typed a slash command, shown to them
// only, through the command's response URL. The URL is Mattermost's public
// address; the post goes to the same path at the address the bot reaches
// Mattermost by, so that nothing else can be made to receive it.
func (c *Client) Whisper(ctx context.Context, responseURL, text string) error {
	u, err := url.Parse(responseURL)
	if err != nil || !commandHookPath.MatchString(u.Path) || u.RawQuery != "" {
		return fmt.Errorf("mattermost: %q is not a slash command's response URL", abbreviate(responseURL, 100))
	}
	body, err := json.Marshal(&model.CommandResponse{ResponseType: model.CommandResponseTypeEphemeral, Text: text})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(c.api.URL, "/")+u.Path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("mattermost: reply to a command: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.api.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("mattermost: reply to a command: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mattermost: reply to a command: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
