package engines

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// Nothing left behind. Every engine (and the corpus build) runs in a process group of its
// own with Pdeathsig, so the kernel kills its leader when the test binary dies, however it
// dies (a timeout's panic, SIGINT, SIGKILL). Children of the leader that outlive it
// (PostgreSQL's backends, a script's python) and the engine's directory are the reaper's:
// a small sh in a session of its own that waits for the test binary to be gone, then kills
// the group and removes the directory, unless a normal stop removed the directory first.

// Reap starts the reaper of the process group pgid (0: none) and directory dir, for when
// this process is gone. A normal stop removes dir, and the reaper then does nothing.
// extra are files the engine makes outside dir (SeaweedFS's sockets), removed with it.
func Reap(pgid int, dir string, extra ...string) error { return reap(pgid, dir, "", extra) }

// ReapUnless is Reap for a directory that is meant to stay once done (the corpus): the
// reaper leaves it, and the group, alone when the file done exists.
func ReapUnless(pgid int, dir, done string) error { return reap(pgid, dir, done, nil) }

func reap(pgid int, dir, done string, extra []string) error {
	// A PostgreSQL data directory's postmaster.pid names the System V segment the server
	// keeps (its seventh line: key and id), which outlives a killed server: it goes too.
	script := `while kill -0 "$1" 2>/dev/null; do sleep 1; done
if [ -d "$3" ] && { [ -z "$4" ] || [ ! -e "$4" ]; }; then
  shm=$(sed -n 7p "$3/data/postmaster.pid" 2>/dev/null | awk '{print $2}')
  [ "$2" -gt 0 ] && kill -KILL "-$2" 2>/dev/null
  sleep 1
  [ "$2" -gt 0 ] && kill -KILL "-$2" 2>/dev/null
  [ -n "$shm" ] && ipcrm -m "$shm" 2>/dev/null
  rm -rf -- "$3"
  shift 4
  [ "$#" -gt 0 ] && rm -f -- "$@"
fi`
	args := append([]string{"-c", script, "swcli-reaper", fmt.Sprint(os.Getpid()), fmt.Sprint(pgid), dir, done}, extra...)
	cmd := exec.Command("sh", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the reaper of %s: %w", dir, err)
	}
	return cmd.Process.Release()
}
