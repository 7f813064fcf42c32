package testserver

import "syscall"

// childAttrs makes a started server die with the test process, so that a
// test binary that exits abruptly (a library calling os.Exit, a panic)
// leaves no server behind.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
