package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/toolbox-collective/toolbox/bot"
	"github.com/toolbox-collective/toolbox/state"
)

// Client calls a running toolbox through its control socket.
type Client struct {
	http *http.Client
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client {
	return &Client{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

func (c *Client) call(ctx context.Context, method, path string, body, reply any) error {
	var in io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		in = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://toolbox"+path, in)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the running toolbox did not answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the running toolbox answered %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(reply); err != nil {
		return fmt.Errorf("the running toolbox sent an unreadable answer: %w", err)
	}
	return nil
}

// Do runs text as the operator and waits for the job it starts, if any.
func (c *Client) Do(ctx context.Context, text string, yes bool) (Reply, error) {
	var reply Reply
	err := c.call(ctx, http.MethodPost, "/do", doRequest{Text: text, Yes: yes}, &reply)
	return reply, err
}

// Bootstrap has the running server set Mattermost up and connect to it.
func (c *Client) Bootstrap(ctx context.Context) (bot.BootstrapResult, error) {
	var reply bootstrapReply
	if err := c.call(ctx, http.MethodPost, "/bootstrap", nil, &reply); err != nil {
		return bot.BootstrapResult{}, err
	}
	if reply.Error != "" {
		return bot.BootstrapResult{}, errors.New(reply.Error)
	}
	return bot.BootstrapResult{Changes: reply.Changes, AdminUsername: reply.AdminUsername, AdminPassword: state.Secret(reply.AdminPassword)}, nil
}

// RotateKey has the running server seal the state's secrets with a new key
// (state.Store.RotateKey) and returns the new key's id.
func (c *Client) RotateKey(ctx context.Context) (string, error) {
	var reply keyReply
	if err := c.call(ctx, http.MethodPost, "/state/rotate-key", nil, &reply); err != nil {
		return "", err
	}
	if reply.Error != "" {
		return "", errors.New(reply.Error)
	}
	return reply.KeyID, nil
}

// ForgetAdminPassword has the running server delete the first admin's
// password from the state, once it has been shown.
func (c *Client) ForgetAdminPassword(ctx context.Context) error {
	var reply keyReply
	if err := c.call(ctx, http.MethodPost, "/mattermost/forget-admin-password", nil, &reply); err != nil {
		return err
	}
	if reply.Error != "" {
		return errors.New(reply.Error)
	}
	return nil
}

// BackupState writes a hot copy of the running server's state to path,
// atomically: a temporary file of mode 0600 beside it, checked to be a whole
// state before it is renamed over path.
func (c *Client) BackupState(ctx context.Context, path string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://toolbox/state/backup", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("the running toolbox did not answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("the running toolbox answered %s", resp.Status)
	}
	// CreateTemp makes the file 0600 and new: an old file's mode cannot leak in.
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return 0, fmt.Errorf("state backup: %w", err)
	}
	tmp := f.Name()
	n, err := io.Copy(f, resp.Body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// A cut-off stream would leave a torn file: check it is a whole state.
		var st *state.Store
		// Its key stays beside the live state: a copy opens without it.
		if st, err = state.Open(tmp, state.Options{WithoutKey: true}); err == nil {
			err = errors.Join(st.Check(), st.Close())
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return 0, fmt.Errorf("state backup: %w", err)
	}
	return n, nil
}
