// Package sshdtest runs Debian's OpenSSH server for tests: on 127.0.0.1, on a
// free port, with a host key and an authorized key made by the test (apt-get
// install openssh-server; .ci/run installs it).
package sshdtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const sshdPath = "/usr/sbin/sshd"

// Server is Debian's sshd on 127.0.0.1, run by the test with a host
// key and an authorized key of its own, in the foreground, logging to its
// stderr (kept for failure messages).
type Server struct {
	Addr    string        // 127.0.0.1:port
	HostKey ssh.PublicKey // the key it shows
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

// NewKey makes an ed25519 key: its public half, and the private one in
// OpenSSH's PEM form.
func NewKey(t testing.TB) (ssh.PublicKey, []byte) {
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

// Start runs sshd on 127.0.0.1 until the test ends, letting in the current
// user with the authorized key and forwarding unix sockets. Without sshd it
// fails under CI and skips elsewhere.
func Start(t testing.TB, authorized ssh.PublicKey) *Server {
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
	hostPub, hostPEM := NewKey(t)
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
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", config)
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
	return &Server{Addr: addr, HostKey: hostPub}
}
