package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketPath is where the server of the state file statePath listens: a
// socket inside a folder of mode 0700 beside the state, so that no other user
// can reach it, not even between listen and a chmod.
func SocketPath(statePath string) string {
	return filepath.Join(statePath+".control", "socket")
}

// Listen opens the control socket at path, refusing when another server
// answers there. Its folder is created with mode 0700, or checked to be the
// caller's own and private.
func Listen(path string) (net.Listener, error) {
	if Running(path) {
		return nil, fmt.Errorf("another toolbox is serving this state (%s answers)", path)
	}
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	_ = os.Remove(path) // a stale socket from a crash
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// The listener removes the socket file when it is closed.
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, nil
}

// privateDir makes dir, or checks an existing one: a real folder (not a link)
// owned by this user, mode 0700.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to another user (uid %d)", dir, st.Uid)
	}
	if fi.Mode().Perm() != 0o700 {
		// Ours, and nothing listens in it yet: make it private before listening.
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// Running says whether a server answers on the control socket at path.
func Running(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
