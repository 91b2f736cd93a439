package bot

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/toolbox-collective/toolbox/commands"
	"github.com/toolbox-collective/toolbox/state"
)

const (
	testCommandToken = "mm-command-token-4f8a1c"
	testTeamID       = "team1"
)

var testConfirmKey = []byte("0123456789abcdef0123456789abcdef")

type testPrompt struct{ ChannelID, Text, Token string }

// fakeChat records the bot's posts and prompts.
type fakeChat struct {
	mu      sync.Mutex
	n       int
	prompts []testPrompt
}

var _ commands.Chat = (*fakeChat)(nil)

func (c *fakeChat) Post(context.Context, string, string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return fmt.Sprintf("post%d", c.n), nil
}

func (c *fakeChat) Edit(context.Context, string, string) error { return nil }

func (c *fakeChat) AskConfirmation(_ context.Context, channelID, text, token string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	c.prompts = append(c.prompts, testPrompt{ChannelID: channelID, Text: text, Token: token})
	return fmt.Sprintf("post%d", c.n), nil
}

func (c *fakeChat) Prompts() []testPrompt {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]testPrompt(nil), c.prompts...)
}

// fakeDirectory knows the users in its map; id-root is the one system admin.
type fakeDirectory struct{ users map[string]string } // name -> id

var _ commands.Directory = (*fakeDirectory)(nil)

func (d *fakeDirectory) IsSystemAdmin(_ context.Context, id string) (bool, error) {
	return id == "id-root", nil
}

func (d *fakeDirectory) UserByName(_ context.Context, name string) (commands.User, error) {
	id, ok := d.users[name]
	if !ok {
		return commands.User{}, commands.Errorf(commands.NotFound, "There is no user @%s here.", name)
	}
	return commands.User{ID: id, Name: name}, nil
}

// botEnv is the real handler on the real router and a store in a temporary directory.
type botEnv struct {
	handler *Handler
	store   *state.Store
	chat    *fakeChat
}

func newBotEnv(tb testing.TB) *botEnv {
	tb.Helper()
	st, err := state.Open(filepath.Join(tb.TempDir(), "toolbox.db"), state.Options{})
	if err != nil {
		tb.Fatalf("state.Open: %v", err)
	}
	chat := &fakeChat{}
	root, cancel := context.WithCancel(context.Background())
	router, err := commands.NewRouter(root, commands.Deps{
		Store: st, Chat: chat, Directory: &fakeDirectory{users: map[string]string{"ann": "id-ann", "bob": "id-bob"}},
		Version: "test", ConfirmKey: testConfirmKey,
	})
	if err != nil {
		tb.Fatalf("NewRouter: %v", err)
	}
	tb.Cleanup(func() {
		ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
		defer stop()
		if err := router.Jobs().Shutdown(ctx); err != nil {
			tb.Errorf("Jobs.Shutdown: %v", err)
		}
		cancel()
		if err := st.Close(); err != nil {
			tb.Errorf("state close: %v", err)
		}
	})
	h := &Handler{Router: router, CommandToken: state.Secret(testCommandToken), TeamID: testTeamID}
	return &botEnv{handler: h, store: st, chat: chat}
}

func (e *botEnv) auditCount(tb testing.TB) int {
	tb.Helper()
	recs, err := e.store.RecentAudit(1 << 20)
	if err != nil {
		tb.Fatalf("RecentAudit: %v", err)
	}
	return len(recs)
}

// commandForm is the form Mattermost posts for `/toolbox text`, as user.
func commandForm(user, text string) url.Values {
	return url.Values{
		"channel_id":   {"chan1"},
		"channel_name": {"toolbox"},
		"command":      {"/toolbox"},
		"response_url": {"http://mattermost.invalid/hooks/commands/abc"},
		"team_domain":  {"collective"},
		"team_id":      {testTeamID},
		"text":         {text},
		"token":        {testCommandToken},
		"trigger_id":   {"trigger"},
		"user_id":      {"id-" + user},
		"user_name":    {user},
	}
}

// without returns a copy of v without keys.
func without(v url.Values, keys ...string) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = vs
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

// with returns a copy of v with key set to value.
func with(v url.Values, key, value string) url.Values {
	out := without(v)
	out.Set(key, value)
	return out
}
