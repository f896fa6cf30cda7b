package cas

import (
	"syscall"
	"time"
)

// statTimes returns a file's mtime and ctime in nanoseconds.
func statTimes(st *syscall.Stat_t) (mtime, ctime int64) {
	return st.Mtimespec.Sec*1e9 + st.Mtimespec.Nsec, st.Ctimespec.Sec*1e9 + st.Ctimespec.Nsec
}

// fsClock is the clock files are stamped with (APFS: the real-time clock, to the
// nanosecond), in nanoseconds.
func fsClock() int64 { return time.Now().UnixNano() }
