package cas

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// statTimes returns a file's mtime and ctime in nanoseconds.
func statTimes(st *syscall.Stat_t) (mtime, ctime int64) {
	return st.Mtim.Sec*1e9 + st.Mtim.Nsec, st.Ctim.Sec*1e9 + st.Ctim.Nsec
}

// fsClock is the clock Linux stamps files with (current_time: the coarse real-time clock,
// which moves once a tick), in nanoseconds.
func fsClock() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_REALTIME_COARSE, &ts) != nil {
		return 0 // every file then counts as recent: read again, never wrong
	}
	return ts.Nano()
}
