package main

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/toolbox-collective/toolbox/internal/dockertest"
	"github.com/toolbox-collective/toolbox/internal/sshdtest"
)

// TestLoadConfigSSH: DOCKER_HOST=ssh:// takes its known hosts and key from the
// environment, checked at start-up: the engine is reached with them, and
// what is missing or unsafe is listed.
func TestLoadConfigSSH(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(block)
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyFile := write("id_ed25519", keyPEM, 0o600)
	openKey := write("id_open", keyPEM, 0o644)
	garbage := write("id_garbage", []byte("not a key\n"), 0o600)
	hostPub, _, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewPublicKey(hostPub)
	known := write("known_hosts", []byte(knownhosts.Line([]string{"[vm.example.org]:2222"}, hostKey)+"\n"), 0o644)
	const host = "ssh://deploy@vm.example.org:2222"
	base := map[string]string{"DOCKER_HOST": host, "TOOLBOX_SSH_KNOWN_HOSTS": known, "TOOLBOX_SSH_KEY": keyFile}
	with := func(changes map[string]string) map[string]string {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for k, v := range changes {
			env[k] = v
		}
		return env
	}

	for name, env := range map[string]map[string]string{
		"a key file":                base,
		"the key itself":            with(map[string]string{"TOOLBOX_SSH_KEY": string(keyPEM)}),
		"the key on one line":       with(map[string]string{"TOOLBOX_SSH_KEY": strings.ReplaceAll(strings.TrimSpace(string(keyPEM)), "\n", `\n`)}),
		"the host key itself":       with(map[string]string{"TOOLBOX_SSH_KNOWN_HOSTS": "", "TOOLBOX_SSH_HOST_KEY": strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostKey)))}),
		"trust on first use, asked": with(map[string]string{"TOOLBOX_SSH_KNOWN_HOSTS": filepath.Join(dir, "first_known_hosts"), "TOOLBOX_SSH_TRUST_ON_FIRST_USE": "true"}),
		"an agent instead of a key": with(map[string]string{"TOOLBOX_SSH_KEY": "", "SSH_AUTH_SOCK": filepath.Join(dir, "agent.sock")}),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := loadConfig(envOf(env))
			if err != nil {
				t.Fatalf("loadConfig = %v", err)
			}
			d := c.docker()
			if inline := strings.HasPrefix(env["TOOLBOX_SSH_KEY"], "-----BEGIN"); d.Host != host || (inline && !strings.Contains(string(d.SSHKey), "OPENSSH PRIVATE KEY-----\n")) || (!inline && d.SSHKeyFile != env["TOOLBOX_SSH_KEY"]) ||
				d.SSHKnownHostsFile != env["TOOLBOX_SSH_KNOWN_HOSTS"] || d.SSHKnownHosts != env["TOOLBOX_SSH_HOST_KEY"] ||
				d.SSHTrustOnFirstUse != (env["TOOLBOX_SSH_TRUST_ON_FIRST_USE"] == "true") {
				t.Errorf("the engine's configuration = %+v", d)
			}
			if h := c.host(); h.SSH.SSHKnownHostsFile != d.SSHKnownHostsFile || string(h.SSH.SSHKey) != string(d.SSHKey) || h.SSH.SSHKeyFile != d.SSHKeyFile {
				t.Errorf("up and down do not get the SSH settings: %+v", h.SSH)
			}
			if strings.Contains(sprint(c), "PRIVATE KEY") {
				t.Errorf("the configuration prints the private key: %s", sprint(c))
			}
		})
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no key and no agent", with(map[string]string{"TOOLBOX_SSH_KEY": ""}), "needs TOOLBOX_SSH_KEY (a private key file, or the key itself) or an ssh agent"},
		{"a key others can read", with(map[string]string{"TOOLBOX_SSH_KEY": openKey}), "can be read by others (mode 0644): chmod 600 it"},
		{"a key file that is not there", with(map[string]string{"TOOLBOX_SSH_KEY": filepath.Join(dir, "nope")}), "TOOLBOX_SSH_KEY"},
		{"a key that does not read", with(map[string]string{"TOOLBOX_SSH_KEY": garbage}), "ssh key " + garbage},
		{"no known hosts file", with(map[string]string{"TOOLBOX_SSH_KNOWN_HOSTS": filepath.Join(dir, "nope")}), "no trust on first use"},
		{"a host the known hosts do not list", with(map[string]string{"DOCKER_HOST": "ssh://deploy@other.example.org"}), "other.example.org is not in the known hosts file"},
		{"a host key line that does not read", with(map[string]string{"TOOLBOX_SSH_KNOWN_HOSTS": "", "TOOLBOX_SSH_HOST_KEY": "ssh-ed25519 nope"}), "neither a known_hosts line nor a public key"},
		{"trust on first use that does not read", with(map[string]string{"TOOLBOX_SSH_TRUST_ON_FIRST_USE": "sure"}), "TOOLBOX_SSH_TRUST_ON_FIRST_USE must be true or false"},
		{"a password in the address", with(map[string]string{"DOCKER_HOST": "ssh://deploy:hunter2@vm.example.org:2222"}), "a password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(envOf(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("loadConfig = %v, want it to say %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("loadConfig printed the password: %v", err)
			}
		})
	}

	// Not ssh://: the SSH settings are not read at all.
	if c, err := loadConfig(envOf(map[string]string{"DOCKER_HOST": "unix:///run/docker.sock", "TOOLBOX_SSH_KEY": openKey})); err != nil || len(c.docker().SSHKey) != 0 {
		t.Errorf("with a unix socket: %+v, %v", c.docker(), err)
	}
}

// TestEngineThroughOpenSSH: the settings as the environment gives them reach
// the engine through Debian's sshd: the app verbs' engine answers its check,
// and with another host key pinned it is refused, saying why.
func TestEngineThroughOpenSSH(t *testing.T) {
	dockertest.Engine(t) // skips (or fails in CI) without an engine
	if h := os.Getenv("DOCKER_HOST"); h != "" && !strings.HasPrefix(h, "unix://") {
		t.Skipf("the test forwards to a local socket; DOCKER_HOST is %s", h)
	}
	socket := strings.TrimPrefix(cmp.Or(os.Getenv("DOCKER_HOST"), "unix:///var/run/docker.sock"), "unix://")
	clientPub, clientPEM := sshdtest.NewKey(t)
	srv := sshdtest.Start(t, clientPub)
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id_ed25519")
	known := filepath.Join(dir, "known_hosts")
	otherHost, _ := sshdtest.NewKey(t)
	wrong := filepath.Join(dir, "wrong_known_hosts")
	for path, data := range map[string][]byte{
		keyFile: clientPEM,
		known:   []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, srv.HostKey) + "\n"),
		wrong:   []byte(knownhosts.Line([]string{knownhosts.Normalize(srv.Addr)}, otherHost) + "\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DOCKER_HOST": "ssh://" + me.Username + "@" + srv.Addr + socket, "TOOLBOX_SSH_KNOWN_HOSTS": known, "TOOLBOX_SSH_KEY": keyFile}
	cfg, err := loadConfig(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	m := newEngine(cfg)
	defer m.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if got, err := m.Check(ctx); err != nil {
		t.Errorf("the engine's check through sshd = %q, %v", got, err)
	}

	env["TOOLBOX_SSH_KNOWN_HOSTS"] = wrong
	if cfg, err = loadConfig(envOf(env)); err != nil {
		t.Fatal(err)
	}
	m2 := newEngine(cfg)
	defer m2.Close()
	if _, err := m2.Check(ctx); err == nil || !strings.Contains(err.Error(), "does not match the pinned key") {
		t.Errorf("the engine's check with another host key pinned = %v, want a host key mismatch", err)
	}
}
