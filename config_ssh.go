package main

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/toolbox-collective/toolbox/deploy/docker"
	"github.com/toolbox-collective/toolbox/state"
)

// sshConfig is how an ssh:// engine (DOCKER_HOST=ssh://user@host) is reached:
// its host key pinned, never trusted on first use, and the client's key.
type sshConfig struct {
	KnownHostsFile string       // TOOLBOX_SSH_KNOWN_HOSTS: a known_hosts file (default ~/.ssh/known_hosts)
	HostKeys       string       // TOOLBOX_SSH_HOST_KEY: the host's key lines themselves, for a container without the file
	Key            state.Secret // TOOLBOX_SSH_KEY given as the private key itself
	KeyFile        string       // TOOLBOX_SSH_KEY given as the private key's file
	// TOOLBOX_SSH_TRUST_ON_FIRST_USE: a host the known hosts file does not
	// list yet is trusted, and its key recorded there.
	TrustOnFirstUse bool
}

// loadSSH reads the SSH settings when DOCKER_HOST is ssh://, and checks them
// as Connect would, without connecting: the host listed in the known hosts,
// the key readable and private.
func loadSSH(dockerHost string, getenv func(string) string) (sshConfig, []string) {
	var c sshConfig
	if !strings.HasPrefix(dockerHost, "ssh://") {
		return c, nil
	}
	var problems []string
	c.HostKeys = strings.TrimSpace(getenv("TOOLBOX_SSH_HOST_KEY"))
	c.KnownHostsFile = strings.TrimSpace(getenv("TOOLBOX_SSH_KNOWN_HOSTS"))
	if v := strings.TrimSpace(getenv("TOOLBOX_SSH_TRUST_ON_FIRST_USE")); v != "" {
		tofu, err := strconv.ParseBool(v)
		if err != nil {
			problems = append(problems, "TOOLBOX_SSH_TRUST_ON_FIRST_USE must be true or false")
		}
		c.TrustOnFirstUse = tofu
	}
	if c.KnownHostsFile == "" && (c.HostKeys == "" || c.TrustOnFirstUse) {
		if home, err := os.UserHomeDir(); err == nil {
			c.KnownHostsFile = filepath.Join(home, ".ssh", "known_hosts")
		}
	}
	if c.KnownHostsFile != "" && !c.TrustOnFirstUse {
		if _, err := os.Stat(c.KnownHostsFile); err != nil {
			problems = append(problems, fmt.Sprintf("TOOLBOX_SSH_KNOWN_HOSTS: %v; DOCKER_HOST=ssh:// needs the host's key pinned, in a known_hosts file or as TOOLBOX_SSH_HOST_KEY (there is no trust on first use)", err))
			c.KnownHostsFile = ""
		}
	}
	key := strings.TrimSpace(getenv("TOOLBOX_SSH_KEY"))
	switch {
	case strings.HasPrefix(key, "-----BEGIN"):
		// The key itself, as a container is given it; an env file holds it
		// on one line with \n for the line breaks.
		if !strings.Contains(key, "\n") {
			key = strings.ReplaceAll(key, `\n`, "\n")
		}
		c.Key = state.Secret(key + "\n")
	case key != "":
		if err := checkPrivateKeyFile(key); err != nil {
			problems = append(problems, "TOOLBOX_SSH_KEY: "+err.Error())
			break
		}
		c.KeyFile = key // read at each connection: a key replaced in place is used
	case getenv("SSH_AUTH_SOCK") == "":
		problems = append(problems, "DOCKER_HOST=ssh:// needs TOOLBOX_SSH_KEY (a private key file, or the key itself) or an ssh agent (SSH_AUTH_SOCK)")
	}
	if len(problems) == 0 {
		if err := docker.CheckSSH(c.docker(dockerHost)); err != nil {
			shown := dockerHost
			if u, perr := url.Parse(dockerHost); perr == nil {
				shown = u.Redacted() // a password in it is refused, not printed
			}
			problems = append(problems, fmt.Sprintf("DOCKER_HOST=%s: %v", shown, err))
		}
	}
	return c, problems
}

// checkPrivateKeyFile refuses a private key that others can read, as
// OpenSSH does.
func checkPrivateKeyFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s can be read by others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	return nil
}

// docker is the engine's address with what ssh:// needs.
func (c sshConfig) docker(host string) docker.Config {
	return docker.Config{Host: host, SSHKey: []byte(c.Key.Reveal()), SSHKeyFile: c.KeyFile, SSHKnownHostsFile: c.KnownHostsFile, SSHKnownHosts: c.HostKeys, SSHTrustOnFirstUse: c.TrustOnFirstUse}
}
