package docker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
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

// CheckSSH checks, without connecting, what an ssh:// engine needs: the
// host's address, a key pinned for it and the private key, when given,
// that reads. Connect checks the same; this says it at start-up.
func CheckSSH(cfg Config) error {
	tg, err := parseSSHTarget(cfg.Host)
	if err != nil {
		return err
	}
	if _, _, err := hostKeyCheck(tg.addr, cfg); err != nil {
		return err
	}
	if len(cfg.SSHKey) == 0 && cfg.SSHKeyFile == "" {
		return nil // the agent, asked when connecting
	}
	_, closeAuth, err := sshAuth(cfg)
	if err != nil {
		return err
	}
	closeAuth()
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
		// Not quoted: the text may hold a password.
		return sshTarget{}, errors.New("the ssh address is not a URL like ssh://user@host[:port][/socket/path]")
	}
	if u.Scheme != "ssh" || u.Hostname() == "" {
		return sshTarget{}, fmt.Errorf("no host name in %q: want ssh://user@host[:port][/socket/path]", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User.String() != u.User.Username() {
		return sshTarget{}, fmt.Errorf("%q holds more than ssh://user@host[:port][/socket/path] (a password, a query or a fragment)", u.Redacted())
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
// against the pinned ones.
func dialSSH(ctx context.Context, tg sshTarget, cfg Config) (*ssh.Client, error) {
	hostKey, algorithms, err := hostKeyCheck(tg.addr, cfg)
	if err != nil {
		return nil, err
	}
	auth, closeAuth, err := sshAuth(cfg)
	if err != nil {
		return nil, err
	}
	defer closeAuth()

	conf := &ssh.ClientConfig{
		User:            tg.user,
		Auth:            auth.methods,
		HostKeyCallback: hostKey,
		// Only the algorithms of the pinned keys: else the server may show a
		// key of another type, which no pin could match.
		HostKeyAlgorithms: algorithms,
		Timeout:           connectTimeout,
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
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("ssh to %s: the server refused %s for the user %s (is its public key in that user's authorized_keys there?): %w", tg.addr, auth.what, tg.user, err)
		}
		return nil, fmt.Errorf("ssh to %s: %w", tg.addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// hostKeyCheck accepts the keys pinned for addr: those of cfg.SSHKnownHosts
// whatever the name, and those cfg.SSHKnownHostsFile lists for addr. It also
// returns the host key algorithms of those keys, to ask the server for.
func hostKeyCheck(addr string, cfg Config) (ssh.HostKeyCallback, []string, error) {
	pinned, err := pinnedKeys(cfg.SSHKnownHosts)
	if err != nil {
		return nil, nil, err
	}
	var inFile ssh.HostKeyCallback
	if cfg.SSHKnownHostsFile != "" {
		if cfg.SSHTrustOnFirstUse {
			// The file is made on the first use.
			f, err := os.OpenFile(cfg.SSHKnownHostsFile, os.O_CREATE|os.O_RDONLY, 0o600)
			if err != nil {
				return nil, nil, fmt.Errorf("ssh known hosts: %w", err)
			}
			_ = f.Close()
		}
		if inFile, err = knownhosts.New(cfg.SSHKnownHostsFile); err != nil {
			return nil, nil, fmt.Errorf("ssh known hosts: %w", err)
		}
		// The file's keys for addr, as its callback reports them for a key
		// that cannot be among them.
		probe, err := ssh.NewPublicKey(ed25519.PublicKey(make([]byte, ed25519.PublicKeySize)))
		if err != nil {
			return nil, nil, err
		}
		var ke *knownhosts.KeyError
		if err := inFile(addr, &net.TCPAddr{}, probe); errors.As(err, &ke) {
			for _, k := range ke.Want {
				pinned = append(pinned, k.Key)
			}
		}
	}
	if len(pinned) == 0 && cfg.SSHTrustOnFirstUse && cfg.SSHKnownHostsFile != "" {
		return recordFirstKey(cfg.SSHKnownHostsFile), nil, nil
	}
	if len(pinned) == 0 {
		if cfg.SSHKnownHostsFile != "" {
			return nil, nil, fmt.Errorf("%s is not in the known hosts file %s, refusing to connect to an unverified host: add its key (ssh-keyscan -p PORT HOST, checked against the host's own ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)", knownhosts.Normalize(addr), cfg.SSHKnownHostsFile)
		}
		return nil, nil, errors.New("no pinned ssh host key given (a known hosts file or the key itself), refusing to connect to an unverified host")
	}
	var algorithms []string
	for _, k := range pinned {
		for _, a := range hostKeyAlgorithms(k.Type()) {
			if !slices.Contains(algorithms, a) {
				algorithms = append(algorithms, a)
			}
		}
	}
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		for _, k := range pinned {
			if k.Type() == key.Type() && bytes.Equal(k.Marshal(), key.Marshal()) {
				if inFile != nil {
					var revoked *knownhosts.RevokedError
					if err := inFile(hostname, remote, key); errors.As(err, &revoked) {
						return fmt.Errorf("ssh host key of %s (%s %s) is revoked in %s", hostname, key.Type(), ssh.FingerprintSHA256(key), cfg.SSHKnownHostsFile)
					}
				}
				return nil
			}
		}
		return fmt.Errorf("ssh host key of %s (%s %s) does not match the pinned key", hostname, key.Type(), ssh.FingerprintSHA256(key))
	}
	return check, algorithms, nil
}

// recordFirstKey accepts the key a host shows the first time, and appends
// it to the known hosts file, which pins it from then on.
func recordFirstKey(file string) ssh.HostKeyCallback {
	return func(hostname string, _ net.Addr, key ssh.PublicKey) error {
		f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return fmt.Errorf("record the ssh host key of %s: %w", hostname, err)
		}
		_, err = fmt.Fprintln(f, knownhosts.Line([]string{knownhosts.Normalize(hostname)}, key))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("record the ssh host key of %s: %w", hostname, err)
		}
		return nil
	}
}

// hostKeyAlgorithms are the signature algorithms a host key of keyType
// signs with, best first (RSA without SHA-1).
func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}

// pinnedKeys reads known (known_hosts lines, or plain "type base64
// [comment]" public key lines). Host patterns in known_hosts lines are not
// matched: these pins are given for this host.
func pinnedKeys(known string) ([]ssh.PublicKey, error) {
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
	return keys, nil
}

type sshAuthMethods struct {
	methods []ssh.AuthMethod
	what    string // for messages: "the key SHA256:…", "the agent's keys"
}

func sshAuth(cfg Config) (sshAuthMethods, func(), error) {
	pem, source := cfg.SSHKey, "the ssh key given"
	if len(pem) == 0 && cfg.SSHKeyFile != "" {
		var err error
		if pem, err = os.ReadFile(cfg.SSHKeyFile); err != nil {
			return sshAuthMethods{}, nil, fmt.Errorf("ssh key: %w", err)
		}
		source = "ssh key " + cfg.SSHKeyFile
	}
	if len(pem) > 0 {
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return sshAuthMethods{}, nil, fmt.Errorf("%s is protected by a passphrase; use an unencrypted key or an ssh agent", source)
			}
			return sshAuthMethods{}, nil, fmt.Errorf("%s: %w", source, err)
		}
		return sshAuthMethods{
			methods: []ssh.AuthMethod{ssh.PublicKeys(signer)},
			what:    "the key " + ssh.FingerprintSHA256(signer.PublicKey()),
		}, func() {}, nil
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return sshAuthMethods{}, nil, errors.New("no ssh key given and no ssh agent (SSH_AUTH_SOCK) to ask")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return sshAuthMethods{}, nil, fmt.Errorf("ssh agent: %w", err)
	}
	ag := agent.NewClient(conn)
	return sshAuthMethods{methods: []ssh.AuthMethod{ssh.PublicKeysCallback(ag.Signers)}, what: "the ssh agent's keys"}, func() { _ = conn.Close() }, nil
}

func abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
