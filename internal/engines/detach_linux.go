package engines

import (
	"syscall"
	"testing"
)

// Detach returns the process attributes of an engine: its own process group, killed with
// the test binary (Pdeathsig); cred runs it as another user (nil: as this one).
func Detach(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}

// A test binary that imports engines dies with the process that started it: when `go test`
// is killed (SIGKILL, or a SIGTERM that it does not pass on), its test binaries would run
// on, engines and all, until their own deadline. With the parent-death signal set on the
// binary itself, the kernel kills it, and then its engines (Pdeathsig) and the reapers
// clean up after it. Other programs that import engines (testprep) are left alone.
func init() {
	if testing.Testing() {
		syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0)
	}
}
