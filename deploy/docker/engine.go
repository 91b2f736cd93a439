// Package docker drives one Docker Engine through github.com/moby/moby/client:
// networks, volumes, containers converged to a spec, images built or imported
// without a registry, exec, logs and memory accounting.
//
// The engine may be local (unix socket), remote over TCP with TLS, or remote
// over SSH (pure Go, forwarding to the remote engine's unix socket).
//
// It imports nothing of the project.
package docker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"
)

// Labels the package itself puts on objects.
const (
	// LabelSpecHash holds the sha256 of the ContainerSpec a container was created from.
	LabelSpecHash = "toolbox.spec-hash"
)

const (
	connectTimeout = 10 * time.Second
	stopTimeout    = 10 // seconds
)

// Config says which engine to reach.
type Config struct {
	// Host is the engine address: "" uses DOCKER_HOST (and DOCKER_CERT_PATH,
	// DOCKER_TLS_VERIFY, DOCKER_API_VERSION) or the default unix socket;
	// "unix:///path", "tcp://host:port" (TLS from DOCKER_CERT_PATH and
	// DOCKER_TLS_VERIFY when set) or "ssh://user@host[:port][/socket/path]".
	Host string
	// SSHKey is the private key for ssh:// hosts (PEM, unencrypted); it wins
	// over SSHKeyFile. With neither, the agent at SSH_AUTH_SOCK is asked.
	SSHKey []byte
	// SSHKeyFile is a file holding that key.
	SSHKeyFile string
	// SSHKnownHostsFile is a known_hosts file, read as OpenSSH reads it (host
	// patterns, hashed names, @revoked): the ssh:// host's key must be listed
	// there for its name and port.
	SSHKnownHostsFile string
	// SSHKnownHosts pins the ssh:// host key whatever its name: one or more
	// known_hosts lines (or authorized_keys-style "type base64" lines).
	// ssh:// needs this or SSHKnownHostsFile: there is no trust on first use,
	// unless SSHTrustOnFirstUse.
	SSHKnownHosts string
	// SSHTrustOnFirstUse accepts the key of a host that SSHKnownHostsFile
	// does not list yet, and records it there (a key that differs from one
	// listed is still refused).
	SSHTrustOnFirstUse bool
	// CgroupParent, when set, is the parent cgroup of every container this
	// engine value creates (Docker's --cgroup-parent): all of the toolbox
	// under one memory limit, as on a machine of that size.
	CgroupParent string
}

// Engine is a connection to one Docker Engine. It is safe for concurrent use.
type Engine struct {
	cli  *client.Client
	host string     // for messages
	ssh  *sshTunnel // nil unless ssh://
	// cgroupParent is Config.CgroupParent.
	cgroupParent string

	lastDialErr atomic.Pointer[error]

	netMu sync.Mutex // serialises EnsureNetwork: API 1.41 allows duplicate network names
	names sync.Map   // container name → *sync.Mutex, serialising EnsureContainer per name
	runs  sync.Map   // container name → struct{}: the runs under way (Run)
}

// Info describes the engine and the machine it runs on.
type Info struct {
	APIVersion        string // negotiated API version in use
	ServerVersion     string
	MemTotal          int64 // bytes
	NCPU              int
	Name              string
	OperatingSystem   string
	Architecture      string
	KernelVersion     string
	StorageDriver     string
	DockerRootDir     string
	ContainersRunning int
	Images            int
	SwarmState        string // "inactive", "active", ...
}

// GOARCH is the Go architecture of the engine's machine (Architecture is
// uname -m): what a static binary for its containers is built for.
func (i Info) GOARCH() string {
	switch i.Architecture {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "armv7l", "arm":
		return "arm"
	case "i386", "i686":
		return "386"
	}
	return i.Architecture
}

// Connect reaches the engine described by cfg, negotiates the API version
// and pings it. An unreachable engine gives an error naming the host.
func Connect(ctx context.Context, cfg Config) (*Engine, error) {
	host := cfg.Host
	fromEnv := host == ""
	if fromEnv {
		host = os.Getenv(client.EnvOverrideHost)
		if host == "" {
			host = client.DefaultDockerHost
		}
	}
	if err := CheckCgroupParent(cfg.CgroupParent); err != nil {
		return nil, err
	}
	e := &Engine{host: host, cgroupParent: cfg.CgroupParent}

	var opts []client.Opt
	switch {
	case strings.HasPrefix(host, "ssh://"):
		tun, err := newSSHTunnel(ctx, host, cfg)
		if err != nil {
			return nil, fmt.Errorf("docker engine at %s is not reachable: %w", host, err)
		}
		e.ssh = tun
		// The unix scheme keeps the client away from HTTP proxies and gives it
		// a dummy host name; the dialer goes through the SSH connection.
		opts = append(opts,
			client.WithHost("unix://"+tun.socket),
			client.WithDialContext(e.recordDial(tun.DialContext)),
		)
	default:
		u, err := client.ParseHostURL(host)
		if err != nil {
			return nil, fmt.Errorf("docker host %q: %w", host, err)
		}
		if u.Scheme != "unix" && u.Scheme != "tcp" {
			return nil, fmt.Errorf("docker host %q: unsupported scheme %q (want unix://, tcp:// or ssh://)", host, u.Scheme)
		}
		if fromEnv {
			opts = append(opts, client.FromEnv)
		} else {
			opts = append(opts, client.WithTLSClientConfigFromEnv(), client.WithHost(host))
		}
		d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
		proto, addr := u.Scheme, u.Host
		opts = append(opts, client.WithDialContext(e.recordDial(func(ctx context.Context) (net.Conn, error) {
			return d.DialContext(ctx, proto, addr)
		})))
	}

	cli, err := client.New(opts...)
	if err != nil {
		e.closeSSH()
		return nil, fmt.Errorf("docker host %q: %w", host, err)
	}
	e.cli = cli

	pctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if _, err := e.cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		_ = e.Close()
		return nil, e.unreachable(ctx, err)
	}
	return e, nil
}

// CheckCgroupParent accepts what both of Docker's cgroup drivers take: a
// path of plain names for cgroupfs ("/toolbox" or "toolbox/limited"), a
// slice name for systemd ("toolbox.slice").
func CheckCgroupParent(p string) error {
	if p == "" {
		return nil
	}
	for _, part := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if part == "" || part == "." || part == ".." || !cgroupName.MatchString(part) {
			return fmt.Errorf("docker: cgroup parent %q: want a path of names made of letters, digits, '.', '_' and '-', such as /toolbox or toolbox.slice", p)
		}
	}
	return nil
}

var cgroupName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// recordDial wraps a dialer so that the last dial error is kept: the client
// replaces it with a generic message, and people need the real cause.
func (e *Engine) recordDial(dial func(context.Context) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := dial(ctx)
		if err != nil {
			e.lastDialErr.Store(&err)
		}
		return c, err
	}
}

func (e *Engine) unreachable(ctx context.Context, err error) error {
	cause := err
	if p := e.lastDialErr.Load(); p != nil && client.IsErrConnectionFailed(err) {
		cause = *p
	}
	if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		cause = fmt.Errorf("no answer within %s: %w", connectTimeout, err)
	}
	return fmt.Errorf("docker engine at %s is not reachable: %w", e.host, cause)
}

// Close releases the connection.
func (e *Engine) Close() error {
	var err error
	if e.cli != nil {
		err = e.cli.Close()
	}
	e.closeSSH()
	return err
}

func (e *Engine) closeSSH() {
	if e.ssh != nil {
		_ = e.ssh.Close()
	}
}

// Host is the address the engine was reached at.
func (e *Engine) Host() string { return e.host }

// Ping measures one round trip to the engine.
func (e *Engine) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := e.cli.Ping(ctx, client.PingOptions{}); err != nil {
		if client.IsErrConnectionFailed(err) {
			return 0, e.unreachable(ctx, err)
		}
		return 0, fmt.Errorf("docker: ping %s: %w", e.host, err)
	}
	return time.Since(start), nil
}

// Info describes the engine and its machine.
func (e *Engine) Info(ctx context.Context) (Info, error) {
	res, err := e.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("docker: info: %w", err)
	}
	i := res.Info
	return Info{
		APIVersion:        e.cli.ClientVersion(),
		ServerVersion:     i.ServerVersion,
		MemTotal:          i.MemTotal,
		NCPU:              i.NCPU,
		Name:              i.Name,
		OperatingSystem:   i.OperatingSystem,
		Architecture:      i.Architecture,
		KernelVersion:     i.KernelVersion,
		StorageDriver:     i.Driver,
		DockerRootDir:     i.DockerRootDir,
		ContainersRunning: i.ContainersRunning,
		Images:            i.Images,
		SwarmState:        string(i.Swarm.LocalNodeState),
	}, nil
}
