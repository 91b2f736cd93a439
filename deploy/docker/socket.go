package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Socket is the engine's unix socket on the engine's own machine and the
// group that owns it: what a container that drives the engine mounts, and
// joins. Over ssh:// both are read on that machine, through the SSH
// connection; a tcp:// engine has no socket to give.
func (e *Engine) Socket(ctx context.Context) (path string, gid int, err error) {
	if e.ssh != nil {
		gid, err := e.ssh.socketGroup(ctx)
		return e.ssh.socket, gid, err
	}
	path, ok := strings.CutPrefix(e.host, "unix://")
	if !ok {
		return "", 0, fmt.Errorf("the docker engine at %s is not reached through a unix socket", e.host)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", 0, fmt.Errorf("the docker socket: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", 0, errors.New("cannot read the docker socket's group")
	}
	return path, int(st.Gid), nil
}

// socketGroup asks the engine's machine for the group of its socket.
func (t *sshTunnel) socketGroup(ctx context.Context) (int, error) {
	c, err := t.client(ctx)
	if err != nil {
		return 0, err
	}
	s, err := c.NewSession()
	if err != nil {
		return 0, fmt.Errorf("ssh session on %s: %w", t.target.addr, err)
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { _ = s.Close() })
	defer stop()
	// The path comes from DOCKER_HOST: quoted for the remote shell.
	out, err := s.Output("stat -c %g -- '" + strings.ReplaceAll(t.socket, "'", `'\''`) + "'")
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("read the group of %s on %s: %w", t.socket, t.target.addr, err)
	}
	gid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		return 0, fmt.Errorf("read the group of %s on %s: stat said %q", t.socket, t.target.addr, abbreviate(string(out), 40))
	}
	return gid, nil
}
