//go:build race

package ops_test

// raceEnabled: the race detector multiplies a process's memory (shadow memory for every
// allocation), so memory bounds are checked only without it.
const raceEnabled = true
