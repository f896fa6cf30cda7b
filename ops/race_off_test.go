//go:build !race

package ops_test

// raceEnabled: see race_on_test.go.
const raceEnabled = false
