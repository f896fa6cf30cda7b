package cas

import "time"

// ShiftFSClock moves the clock ingests judge files' ctimes by (Racy) by d for the tests of
// this directory, most of which ingest a tree they have just written and then again.
func ShiftFSClock(d time.Duration) (restore func()) {
	old := fsNow
	fsNow = func() int64 { return fsClock() + int64(d) }
	return func() { fsNow = old }
}
