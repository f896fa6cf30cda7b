//go:build !linux

package engines

import "syscall"

// Detach returns the process attributes of an engine: its own process group (no Pdeathsig
// outside Linux: the reaper alone cleans up after a killed test binary); cred runs it as
// another user (nil: as this one).
func Detach(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
