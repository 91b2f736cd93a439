package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

const defaultRemoteSocket = "/var/run/docker.sock"

// sshTunnel keeps one SSH connection to the engine's machine and dials its
// socket through it, reconnecting when the connection has dropped.
type sshTunnel struct {
	target sshTarget
	cfg    Config
	socket string // remote engine socket, fixed

	mu     sync.Mutex
	c      *ssh.Client // nil when dropped
	closed bool
}

func newSSHTunnel(ctx context.Context, host string, cfg Config) (*sshTunnel, error) {
	tg, err := parseSSHTarget(host)
	if err != nil {
		return nil, err
	}
	t := &sshTunnel{target: tg, cfg: cfg, socket: tg.socket}
	if _, err := t.client(ctx); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *sshTunnel) client(ctx context.Context) (*ssh.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, net.ErrClosed
	}
	if t.c != nil {
		return t.c, nil
	}
	c, err := dialSSH(ctx, t.target, t.cfg)
	if err != nil {
		return nil, err
	}
	t.c = c
	go func() {
		_ = c.Wait()
		t.mu.Lock()
		if t.c == c {
			t.c = nil
		}
		t.mu.Unlock()
	}()
	return c, nil
}

// DialContext opens a stream to the remote engine socket.
func (t *sshTunnel) DialContext(ctx context.Context) (net.Conn, error) {
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := c.DialContext(ctx, "unix", t.socket)
	if err != nil && ctx.Err() == nil {
		// The connection may have dropped without Wait having returned yet:
		// start over once on a fresh one.
		t.drop(c)
		if c, err2 := t.client(ctx); err2 == nil {
			return c.DialContext(ctx, "unix", t.socket)
		}
	}
	return conn, err
}

func (t *sshTunnel) drop(c *ssh.Client) {
	t.mu.Lock()
	if t.c == c {
		t.c = nil
	}
	t.mu.Unlock()
	_ = c.Close()
}

func (t *sshTunnel) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.c != nil {
		err := t.c.Close()
		t.c = nil
		return err
	}
	return nil
}

type sshTarget struct {
	addr   string // host:port
	user   string
	socket string
}

// parseSSHTarget reads "ssh://user@host[:port][/socket/path]".
func parseSSHTarget(host string) (sshTarget, error) {
	u, err := url.Parse(host)
	if err != nil {
		return sshTarget{}, fmt.Errorf("parse %q: %w", host, err)
	}
	if u.Hostname() == "" {
		return sshTarget{}, fmt.Errorf("no host name in %q", host)
	}
	t := sshTarget{addr: u.Host, user: u.User.Username(), socket: defaultRemoteSocket}
	if u.Port() == "" {
		t.addr = net.JoinHostPort(u.Hostname(), "22")
	}
	if u.Path != "" && u.Path != "/" {
		t.socket = u.Path
	}
	if t.user == "" {
		if cur, err := user.Current(); err == nil {
			t.user = cur.Username
		} else {
			t.user = "root"
		}
	}
	return t, nil
}

// dialSSH opens an SSH connection to the target, checking its host key
// against the pinned one.
func dialSSH(ctx context.Context, tg sshTarget, cfg Config) (*ssh.Client, error) {
	hostKey, err := pinnedHostKey(cfg.SSHKnownHosts)
	if err != nil {
		return nil, err
	}
	auth, closeAuth, err := sshAuth(cfg.SSHKeyFile)
	if err != nil {
		return nil, err
	}
	defer closeAuth()

	conf := &ssh.ClientConfig{
		User:            tg.user,
		Auth:            auth,
		HostKeyCallback: hostKey,
		Timeout:         connectTimeout,
	}
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", tg.addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(connectTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, tg.addr, conf)
	stop()
	if err != nil {
		_ = conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("ssh to %s: %w", tg.addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// pinnedHostKey accepts only the keys listed in known (known_hosts lines, or
// plain "type base64 [comment]" public key lines). Host patterns in
// known_hosts lines are not matched: the pin is given for this host.
func pinnedHostKey(known string) (ssh.HostKeyCallback, error) {
	var keys []ssh.PublicKey
	for line := range strings.Lines(known) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if _, _, k, _, _, err := ssh.ParseKnownHosts([]byte(line)); err == nil {
			keys = append(keys, k)
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("pinned ssh host key %q is neither a known_hosts line nor a public key: %w", abbreviate(line, 40), err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no pinned ssh host key given (SSHKnownHosts), refusing to connect to an unverified host")
	}
	return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range keys {
			if k.Type() == key.Type() && bytes.Equal(k.Marshal(), key.Marshal()) {
				return nil
			}
		}
		return fmt.Errorf("ssh host key of %s (%s %s) does not match the pinned key", hostname, key.Type(), ssh.FingerprintSHA256(key))
	}, nil
}

func sshAuth(keyFile string) ([]ssh.AuthMethod, func(), error) {
	if keyFile != "" {
		pem, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, nil, fmt.Errorf("ssh key %s is protected by a passphrase; use an unencrypted key or an ssh agent", keyFile)
			}
			return nil, nil, fmt.Errorf("ssh key %s: %w", keyFile, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, func() {}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, errors.New("no ssh key file given and no ssh agent (SSH_AUTH_SOCK) to ask")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh agent: %w", err)
	}
	ag := agent.NewClient(conn)
	return []ssh.AuthMethod{ssh.PublicKeysCallback(ag.Signers)}, func() { _ = conn.Close() }, nil
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
