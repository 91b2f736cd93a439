package docker_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

const sshdPath = "/usr/sbin/sshd"

// openSSHServer is Debian's sshd on 127.0.0.1, run by the test with a host
// key and an authorized key of its own, in the foreground, logging to its
// stderr (kept for failure messages).
type openSSHServer struct {
	addr    string
	hostKey ssh.PublicKey
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newKey(t *testing.T) (ssh.PublicKey, []byte) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub, pem.EncodeToMemory(block)
}

func startOpenSSH(t *testing.T, authorized ssh.PublicKey) *openSSHServer {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing: install Debian's openssh-server (apt-get install openssh-server; .ci/run does)", sshdPath)
		}
		t.Skipf("%s is missing: install Debian's openssh-server to run this test", sshdPath)
	}
	if os.Geteuid() == 0 {
		// sshd started as root wants its privilege separation directory, which
		// Debian's service makes at boot.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	hostPub, hostPEM := newKey(t)
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hostKeyFile := write("ssh_host_ed25519_key", hostPEM)
	authorizedFile := write("authorized_keys", ssh.MarshalAuthorizedKey(authorized))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // sshd listens there next: a port another process takes meanwhile fails the start below, loudly
	// AllowTcpForwarding stays at its default: without it, this sshd refuses
	// to forward unix sockets too.
	config := write("sshd_config", fmt.Appendf(nil, `ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PidFile none
StrictModes no
UsePAM no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowStreamLocalForwarding local
X11Forwarding no
PermitTTY no
LogLevel VERBOSE
`, addr, hostKeyFile, authorizedFile))

	logs := &syncBuffer{}
	cmd := osexec.Command(sshdPath, "-D", "-e", "-f", config)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sshd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("sshd's log:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		select {
		case err := <-exited:
			t.Fatalf("sshd stopped at start (%v):\n%s", err, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s after 10 s:\n%s", addr, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &openSSHServer{addr: addr, hostKey: hostPub, logs: logs}
}

// TestConnectThroughOpenSSH drives the local engine through a real sshd, as
// DOCKER_HOST=ssh:// does: with the host key pinned in a known hosts file and
// the client's key, it pings, lists and finds the engine's socket; another
// host key, a host the file does not list and a key sshd does not know are
// each refused with a sentence that says so.
func TestConnectThroughOpenSSH(t *testing.T) {
	t.Parallel()
	local := dockertest.Engine(t) // skips (or fails in CI) without an engine
	socket, gid, err := local.Socket(t.Context())
	if err != nil {
		t.Skipf("the test forwards to a local socket: %v", err)
	}
	clientPub, clientPEM := newKey(t)
	srv := startOpenSSH(t, clientPub)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	host := "ssh://" + me.Username + "@" + srv.addr + socket
	dir := t.TempDir()
	knownHosts := func(name string, hosts []string, key ssh.PublicKey) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(knownhosts.Line(hosts, key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pinned := knownHosts("known_hosts", []string{knownhosts.Normalize(srv.addr)}, srv.hostKey)
	ctx := timeout(t, 2*time.Minute)

	t.Run("pings and lists", func(t *testing.T) {
		e, err := docker.Connect(ctx, docker.Config{Host: host, SSHKey: clientPEM, SSHKnownHostsFile: pinned})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		if _, err := e.Ping(ctx); err != nil {
			t.Errorf("Ping through sshd: %v", err)
		}
		info, err := e.Info(ctx)
		if want, _ := local.Info(ctx); err != nil || info.ServerVersion != want.ServerVersion || info.Name != want.Name {
			t.Errorf("Info through sshd = %+v, %v; want the local engine's %+v", info, err, want)
		}
		labels := dockertest.Labels(t, local)
		if cs, err := e.Containers(ctx, labels); err != nil || len(cs) != 0 {
			t.Errorf("Containers(%v) through sshd = %+v, %v; want none, no error", labels, cs, err)
		}
		path, g, err := e.Socket(ctx)
		if err != nil || path != socket || g != gid {
			t.Errorf("Socket through sshd = %s, %d, %v; want %s, %d", path, g, err, socket, gid)
		}
	})
	t.Run("a key file works too", func(t *testing.T) {
		keyFile := filepath.Join(dir, "id_ed25519")
		if err := os.WriteFile(keyFile, clientPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := docker.Connect(ctx, docker.Config{Host: host, SSHKeyFile: keyFile, SSHKnownHostsFile: pinned})
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
	})

	otherHost, _ := newKey(t)
	otherClient, otherClientPEM := newKey(t)
	for _, tc := range []struct {
		name string
		cfg  docker.Config
		want []string
	}{
		{"another host key", docker.Config{Host: host, SSHKey: clientPEM, SSHKnownHostsFile: knownHosts("other_key", []string{knownhosts.Normalize(srv.addr)}, otherHost)},
			[]string{"does not match the pinned key", ssh.FingerprintSHA256(srv.hostKey), "is not reachable"}},
		{"a host the file does not list", docker.Config{Host: host, SSHKey: clientPEM, SSHKnownHostsFile: knownHosts("other_host", []string{"vm.example.org"}, srv.hostKey)},
			[]string{"is not in the known hosts file", knownhosts.Normalize(srv.addr)}},
		{"no pinned key", docker.Config{Host: host, SSHKey: clientPEM},
			[]string{"no pinned ssh host key", "refusing to connect to an unverified host"}},
		{"a client key sshd does not know", docker.Config{Host: host, SSHKey: otherClientPEM, SSHKnownHostsFile: pinned},
			[]string{"the server refused the key " + ssh.FingerprintSHA256(otherClient), "for the user " + me.Username, "authorized_keys"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := docker.Connect(ctx, tc.cfg)
			if err == nil {
				e.Close()
				t.Fatal("Connect = nil error, want a refusal")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Connect = %v; want it to say %q", err, w)
				}
			}
		})
	}
}
