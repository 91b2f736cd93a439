package docker_test

import (
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/internal/dockertest"
	"github.com/toolbox-collective/toolbox/internal/sshdtest"
)

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
	clientPub, clientPEM := sshdtest.NewKey(t)
	srv := sshdtest.Start(t, clientPub)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	host := "ssh://" + me.Username + "@" + srv.Addr + socket
	dir := t.TempDir()
	knownHosts := func(name string, hosts []string, key ssh.PublicKey) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(knownhosts.Line(hosts, key)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pinned := knownHosts("known_hosts", []string{knownhosts.Normalize(srv.Addr)}, srv.HostKey)
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

	t.Run("trust on first use, when asked", func(t *testing.T) {
		file := filepath.Join(dir, "first", "known_hosts")
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			t.Fatal(err)
		}
		e, err := docker.Connect(ctx, docker.Config{Host: host, SSHKey: clientPEM, SSHKnownHostsFile: file, SSHTrustOnFirstUse: true})
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		recorded, err := os.ReadFile(file)
		if want := knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, srv.HostKey) + "\n"; err != nil || string(recorded) != want {
			t.Fatalf("the known hosts file after the first use = %q, %v; want %q", recorded, err, want)
		}
		// From then on the key is pinned, asked or not.
		e, err = docker.Connect(ctx, docker.Config{Host: host, SSHKey: clientPEM, SSHKnownHostsFile: file})
		if err != nil {
			t.Fatalf("Connect with the recorded key: %v", err)
		}
		e.Close()
	})

	otherHost, _ := sshdtest.NewKey(t)
	otherClient, otherClientPEM := sshdtest.NewKey(t)
	for _, tc := range []struct {
		name string
		cfg  docker.Config
		want []string
	}{
		{"another host key", docker.Config{Host: host, SSHKey: clientPEM, SSHKnownHostsFile: knownHosts("other_key", []string{knownhosts.Normalize(srv.Addr)}, otherHost)},
			[]string{"does not match the pinned key", ssh.FingerprintSHA256(srv.HostKey), "is not reachable"}},
		{"another host key, even trusting on first use", docker.Config{Host: host, SSHKey: clientPEM, SSHTrustOnFirstUse: true, SSHKnownHostsFile: knownHosts("other_key_tofu", []string{knownhosts.Normalize(srv.Addr)}, otherHost)},
			[]string{"does not match the pinned key"}},
		{"a host the file does not list", docker.Config{Host: host, SSHKey: clientPEM, SSHKnownHostsFile: knownHosts("other_host", []string{"vm.example.org"}, srv.HostKey)},
			[]string{"is not in the known hosts file", knownhosts.Normalize(srv.Addr)}},
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

// BenchmarkPingThroughOpenSSH measures a ping through Debian's sshd against
// one on the socket itself, in the same run: the cost of DOCKER_HOST=ssh://
// once connected, reported as a ratio.
func BenchmarkPingThroughOpenSSH(b *testing.B) {
	local := dockertest.Engine(b)
	socket, _, err := local.Socket(b.Context())
	if err != nil {
		b.Skipf("the benchmark forwards to a local socket: %v", err)
	}
	clientPub, clientPEM := sshdtest.NewKey(b)
	srv := sshdtest.Start(b, clientPub)
	me, err := user.Current()
	if err != nil {
		b.Fatal(err)
	}
	e, err := docker.Connect(b.Context(), docker.Config{Host: "ssh://" + me.Username + "@" + srv.Addr + socket, SSHKey: clientPEM,
		SSHKnownHosts: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey)))})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	ping := func(e *docker.Engine, n int) time.Duration {
		start := time.Now()
		for range n {
			if _, err := e.Ping(b.Context()); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	var direct, tunnelled time.Duration
	for b.Loop() {
		direct += ping(local, 1)
		tunnelled += ping(e, 1)
	}
	b.ReportMetric(float64(direct.Microseconds())/float64(b.N), "direct-µs/ping")
	b.ReportMetric(float64(tunnelled.Microseconds())/float64(b.N), "ssh-µs/ping")
	b.ReportMetric(float64(tunnelled)/float64(direct), "ssh/direct")
}
