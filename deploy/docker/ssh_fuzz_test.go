package docker

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// FuzzParseSSHTarget: DOCKER_HOST comes from the environment. An accepted
// address has a host, a port number, a user and an absolute socket path, and
// never keeps a password.
func FuzzParseSSHTarget(f *testing.F) {
	for _, s := range []string{"ssh://deploy@vm.example.org", "ssh://root@127.0.0.1:2222/run/docker.sock", "ssh://u:pw@h", "ssh://[::1]:22", "ssh://h?x=1", "tcp://h:2375", "ssh://@:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		tg, err := parseSSHTarget(host)
		if err != nil {
			return
		}
		h, port, err := net.SplitHostPort(tg.addr)
		if err != nil || h == "" {
			t.Fatalf("parseSSHTarget(%q).addr = %q, not host:port", host, tg.addr)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			t.Errorf("parseSSHTarget(%q) port %q", host, port)
		}
		if tg.user == "" || !strings.HasPrefix(tg.socket, "/") {
			t.Errorf("parseSSHTarget(%q) = %+v", host, tg)
		}
	})
}

// FuzzPinnedKeys: TOOLBOX_SSH_HOST_KEY is read line by line; whatever it
// holds gives keys or an error, and an accepted text with no key refuses to
// connect.
func FuzzPinnedKeys(f *testing.F) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	for _, s := range []string{key, "[vm]:2222 " + key + " c", "# x\n", "", "@revoked * " + key, "ssh-rsa AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, known string) {
		keys, err := pinnedKeys(known)
		if err != nil {
			return
		}
		_, algorithms, err := hostKeyCheck("vm:22", Config{SSHKnownHosts: known})
		if len(keys) == 0 && err == nil {
			t.Errorf("hostKeyCheck(%q) accepted no key", known)
		}
		if len(keys) > 0 && (err != nil || len(algorithms) == 0) {
			t.Errorf("hostKeyCheck(%q) = %v, %v with %d keys", known, algorithms, err, len(keys))
		}
	})
}
