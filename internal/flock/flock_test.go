package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// flock(2) locks belong to open files, so two Acquires in one process conflict as two
// processes would: the tests need no second process.

func TestExclusiveExcludesAndNamesItsHolder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := Acquire(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(context.Background(), p, Options{Timeout: 50 * time.Millisecond})
	var be *BusyError
	if !errors.As(err, &be) || !errors.Is(err, ErrBusy) {
		t.Fatalf("a second exclusive lock: %v, want a BusyError", err)
	}
	if be.Holder.PID != os.Getpid() || !strings.Contains(err.Error(), "in use by pid") {
		t.Fatalf("the holder named is %+v (%v), want this process", be.Holder, err)
	}
	if _, ok, err := TryAcquire(p, true); ok || err != nil {
		t.Fatalf("TryAcquire of a held lock: %v %v, want false", ok, err)
	}
	a.Release()
	b, ok, err := TryAcquire(p, false)
	if !ok || err != nil {
		t.Fatalf("TryAcquire after release: %v %v", ok, err)
	}
	b.Release()
}

func TestSharedLocksShareAndExcludeWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := Acquire(context.Background(), p, Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	b, err := Acquire(context.Background(), p, Options{Shared: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("a second shared lock: %v", err)
	}
	defer b.Release()
	if _, ok, _ := TryAcquire(p, false); ok {
		t.Fatal("an exclusive lock was taken beside shared ones")
	}
}

func TestWaitEndsWithTheContextAndTellsOnce(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := Acquire(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	told := 0
	_, err = Acquire(ctx, p, Options{OnWait: func(Holder) { told++ }})
	if !errors.Is(err, context.DeadlineExceeded) || told != 1 {
		t.Fatalf("a wait past its context: %v, told %d times, want the context's error and one notice", err, told)
	}
}

func TestReleaseWakesAWaiter(t *testing.T) {
	p := filepath.Join(t.TempDir(), "lock")
	a, err := Acquire(context.Background(), p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		b, err := Acquire(context.Background(), p, Options{Timeout: 10 * time.Second})
		if err == nil {
			b.Release()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.Release()
	if err := <-got; err != nil {
		t.Fatalf("the waiter after release: %v", err)
	}
}
