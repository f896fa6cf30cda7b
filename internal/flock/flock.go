// Package flock holds a store directory against other processes with flock(2): shared or
// exclusive, waiting for a holder instead of failing, and saying who the holder is.
//
// A lock file holds the pid and command line of the process that took it last, which is
// the holder a waiter names (for a shared lock, one of the holders).
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Lock is a held lock; Release frees it.
type Lock struct {
	f      *os.File
	shared bool
}

// Holder is the process named in a lock file.
type Holder struct {
	PID     int
	Command string
}

func (h Holder) String() string {
	if h.PID == 0 {
		return "another process"
	}
	if h.Command == "" {
		return fmt.Sprintf("pid %d", h.PID)
	}
	return fmt.Sprintf("pid %d (%s)", h.PID, h.Command)
}

// BusyError is returned when the lock stayed held for longer than Options.Timeout.
type BusyError struct {
	Path   string
	Holder Holder
	Waited time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s is in use by %s; gave up after %s", e.Path, e.Holder, e.Waited.Round(time.Millisecond))
}

// Is makes errors.Is(err, ErrBusy) hold.
func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// ErrBusy is what a BusyError matches.
var ErrBusy = errors.New("lock held by another process")

// Options tune Acquire.
type Options struct {
	// Shared takes a shared lock: many holders at once, none while an exclusive one is held.
	Shared bool
	// OnWait is called once, after a second of waiting, with the holder.
	OnWait func(Holder)
	// Timeout bounds the wait (0: wait until ctx ends). Past it Acquire returns a *BusyError.
	Timeout time.Duration
}

// waitNotice is how long Acquire waits quietly before it calls OnWait.
const waitNotice = time.Second

// Acquire takes the lock on the file at path (created if needed), recording this process in
// it. If another process holds it in a conflicting mode, Acquire polls until it is free, ctx
// ends or the timeout passes.
func Acquire(ctx context.Context, path string, opt Options) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	how := syscall.LOCK_EX
	if opt.Shared {
		how = syscall.LOCK_SH
	}
	start := time.Now()
	told := false
	delay := 2 * time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		waited := time.Since(start)
		if opt.Timeout > 0 && waited >= opt.Timeout {
			f.Close()
			return nil, &BusyError{Path: path, Holder: ReadHolder(path), Waited: waited}
		}
		if !told && waited >= waitNotice && opt.OnWait != nil {
			opt.OnWait(ReadHolder(path))
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s (in use by %s): %w", path, ReadHolder(path), ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, 50*time.Millisecond)
	}
	l := &Lock{f: f, shared: opt.Shared}
	l.record()
	return l, nil
}

// TryAcquire takes the lock if it is free now, and reports whether it did.
func TryAcquire(path string, shared bool) (*Lock, bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &Lock{f: f, shared: shared}
	l.record()
	return l, true, nil
}

// Share turns a held exclusive lock into a shared one. flock(2) does not promise that the
// change is atomic: another process may take the lock exclusively in between, and Share
// then waits for it like Acquire.
func (l *Lock) Share(ctx context.Context, opt Options) error {
	if l.shared {
		return nil
	}
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		l.shared = true
		return nil
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("lock %s: %w", l.f.Name(), err)
	}
	path := l.f.Name()
	l.f.Close()
	l.f = nil
	opt.Shared = true
	nl, err := Acquire(ctx, path, opt)
	if err != nil {
		return err
	}
	*l = *nl
	return nil
}

// record writes this process into the lock file, for waiters to name.
func (l *Lock) record() {
	cmd := strings.Join(os.Args, " ")
	if len(cmd) > 200 {
		cmd = cmd[:200] + "…"
	}
	line := strconv.Itoa(os.Getpid()) + " " + strings.ReplaceAll(cmd, "\n", " ") + "\n"
	if err := l.f.Truncate(0); err == nil {
		l.f.WriteAt([]byte(line), 0)
	}
}

// ReadHolder returns the process a lock file names (zero if none).
func ReadHolder(path string) Holder {
	b, err := os.ReadFile(path)
	if err != nil {
		return Holder{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, cmd, _ := strings.Cut(strings.TrimSpace(line), " ")
	n, _ := strconv.Atoi(pid)
	return Holder{PID: n, Command: cmd}
}

// Release frees the lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing drops the flock
	l.f = nil
	return err
}
