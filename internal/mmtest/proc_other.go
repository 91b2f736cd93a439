//go:build !linux

package mmtest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
