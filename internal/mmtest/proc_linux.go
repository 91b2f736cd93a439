package mmtest

import "syscall"

// sysProcAttr kills the server when the test process dies without its cleanups,
// for example on a test timeout.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
