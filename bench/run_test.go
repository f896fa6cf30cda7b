package bench

import (
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
