package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// MedianPair takes turns (each step first in every other round) and judges by the rounds'
// ratios, so a slow round slows both of its steps.
func TestMedianPairTakesTurns(t *testing.T) {
	var order []string
	step := func(name string, secs float64) Step {
		return Step{
			Prep: func() error { return nil },
			Run: func() (Result, error) {
				if len(order)/2 == 2 { // round 2 is ten times slower for both
					secs *= 10
					defer func() { secs /= 10 }()
				}
				order = append(order, name)
				return Result{Wall: time.Duration(secs * float64(time.Second))}, nil
			},
		}
	}
	p, err := MedianPair(4, step("a", 1), step("b", 2))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "b", "a", "a", "b", "b", "a"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
	if p.Ratio != 0.5 || p.Spread != 0 {
		t.Fatalf("ratio %v spread %v, want 0.5 and 0 (the slow round slows both)", p.Ratio, p.Spread)
	}
	if p.A.Wall != time.Second || p.B.Wall != 2*time.Second {
		t.Fatalf("medians %v %v", p.A.Wall, p.B.Wall)
	}
}

// Fresh hands out a directory never used before for each run, deleting nothing, unless
// the disk lacks room for every output: then each run's output replaces the last.
func TestFreshNamesNewDirectories(t *testing.T) {
	t.Run("room", func(t *testing.T) {
		f, err := NewFresh(t.TempDir(), 4, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if f.Reusing() {
			t.Skip("less than 2 GB free here")
		}
		seen := map[string]bool{}
		for range 3 {
			p, err := f.Next("extract")
			if err != nil {
				t.Fatal(err)
			}
			if seen[p] {
				t.Fatalf("%s handed out twice", p)
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("%s exists: %v", p, err)
			}
			seen[p] = true
			if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		for p := range seen {
			if _, err := os.Stat(filepath.Join(p, "sub")); err != nil {
				t.Fatalf("an earlier output went: %v", err)
			}
		}
	})
	t.Run("no room", func(t *testing.T) { // runs wherever the first is skipped
		tight, err := NewFresh(t.TempDir(), 4, 1<<62)
		if err != nil {
			t.Fatal(err)
		}
		if !tight.Reusing() {
			t.Fatal("room for four outputs of 4 EiB")
		}
		p1, _ := tight.Next("extract")
		if err := os.MkdirAll(filepath.Join(p1, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if p2, err := tight.Next("extract"); err != nil || p2 != p1 {
			t.Fatalf("without room: %s then %s (%v), want the same path", p1, p2, err)
		}
		if _, err := os.Stat(p1); !os.IsNotExist(err) {
			t.Fatalf("the last output is still there: %v", err)
		}
	})
}
