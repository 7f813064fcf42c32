//go:build !linux

package testserver

import "syscall"

// childAttrs: only Linux kills children with their parent.
func childAttrs() *syscall.SysProcAttr { return nil }
