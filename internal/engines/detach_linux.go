package engines

import "syscall"

// Detach returns the process attributes of an engine: its own process group, killed with
// the test binary (Pdeathsig); cred runs it as another user (nil: as this one).
func Detach(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}
