package docker_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
)

// sshServer is an in-process SSH server that, like OpenSSH with
// AllowStreamLocalForwarding, forwards direct-streamlocal channels to one
// unix socket: the real engine's.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey

	mu    sync.Mutex
	conns []net.Conn
}

func startSSHServer(t *testing.T, socket string, clientKey ssh.PublicKey) *sshServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sshServer{addr: ln.Addr().String(), hostKey: signer.PublicKey()}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.dropAll()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			wg.Go(func() { s.serve(c, cfg, socket, &wg) })
		}
	})
	return s
}

// dropAll cuts every SSH connection, as a network failure would.
func (s *sshServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

func (s *sshServer) serve(c net.Conn, cfg *ssh.ServerConfig, socket string, wg *sync.WaitGroup) {
	defer c.Close()
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	wg.Go(func() { ssh.DiscardRequests(reqs) })
	for nc := range chans {
		if nc.ChannelType() != "direct-streamlocal@openssh.com" {
			nc.Reject(ssh.UnknownChannelType, "only direct-streamlocal")
			continue
		}
		var p struct {
			SocketPath string
			Reserved0  string
			Reserved1  uint32
		}
		if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil || p.SocketPath != socket {
			nc.Reject(ssh.Prohibited, "socket not allowed")
			continue
		}
		uc, err := net.Dial("unix", socket)
		if err != nil {
			nc.Reject(ssh.ConnectionFailed, err.Error())
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			uc.Close()
			continue
		}
		wg.Go(func() { ssh.DiscardRequests(creqs) })
		wg.Go(func() {
			done := make(chan struct{})
			go func() {
				io.Copy(ch, uc)
				ch.CloseWrite()
				close(done)
			}()
			io.Copy(uc, ch)
			uc.(*net.UnixConn).CloseWrite()
			<-done
			ch.Close()
			uc.Close()
		})
	}
}

func TestConnectSSH(t *testing.T) {
	t.Parallel()
	local := dockertest.Engine(t) // skips (or fails in CI) without an engine
	socket := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			t.Skipf("the SSH test forwards to a local socket; DOCKER_HOST is %s", h)
		}
		socket = strings.TrimPrefix(h, "unix://")
	}
	image := dockertest.Standin(t, local)
	labels := dockertest.Labels(t, local)

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	clientPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	srv := startSSHServer(t, socket, clientPub)
	host := "ssh://tester@" + srv.addr
	if socket != "/var/run/docker.sock" {
		host += socket
	}
	known := knownhosts.Line([]string{knownhosts.Normalize(srv.addr)}, srv.hostKey)

	t.Run("refuses without a pinned key", func(t *testing.T) {
		_, err := docker.Connect(t.Context(), docker.Config{Host: host, SSHKeyFile: keyFile})
		if err == nil || !strings.Contains(err.Error(), "no pinned ssh host key") {
			t.Errorf("Connect without SSHKnownHosts = %v, want a refusal", err)
		}
	})
	t.Run("refuses another host key", func(t *testing.T) {
		otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
		other, _ := ssh.NewPublicKey(otherPub)
		_, err := docker.Connect(t.Context(), docker.Config{Host: host, SSHKeyFile: keyFile, SSHKnownHosts: knownhosts.Line([]string{srv.addr}, other)})
		if err == nil || !strings.Contains(err.Error(), "does not match the pinned key") || !strings.Contains(err.Error(), "is not reachable") {
			t.Errorf("Connect with a wrong pinned key = %v, want a host key mismatch", err)
		}
	})

	ctx := timeout(t, time.Minute)
	e, err := docker.Connect(ctx, docker.Config{Host: host, SSHKeyFile: keyFile, SSHKnownHosts: known})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	info, err := e.Info(ctx)
	if err != nil || info.APIVersion == "" {
		t.Fatalf("Info over ssh = %+v, %v", info, err)
	}

	spec := standinSpec(dockertest.Unique(t, "tbt-ssh"), image, labels)
	if _, err := e.EnsureContainer(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitHealthy(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	// Exec hijacks the HTTP connection: it must work through the tunnel too.
	if code, out, _ := exec(t, e, ctx, spec.Name, dockertest.StandinBinary, "health"); code != 0 || out != "healthy\n" {
		t.Errorf("exec health over ssh = %d, %q; want 0, healthy", code, out)
	}
	if logs, err := e.Logs(ctx, spec.Name, 0); err != nil || !strings.Contains(logs, "listening on") {
		t.Errorf("Logs over ssh = %q, %v", logs, err)
	}

	// A dropped SSH connection is re-established on the next call.
	srv.dropAll()
	if _, err := e.Ping(ctx); err != nil {
		t.Errorf("Ping after the ssh connection dropped: %v", err)
	}
	if cs, err := e.Containers(ctx, labels); err != nil || len(cs) != 1 {
		t.Errorf("Containers over a new ssh connection = %+v, %v", cs, err)
	}
}
