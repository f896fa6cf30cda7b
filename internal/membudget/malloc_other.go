//go:build !linux || !cgo

package membudget

// fixMmapThreshold: without cgo nothing is allocated by C; elsewhere than glibc, its
// allocator's own policy stands.
func fixMmapThreshold() {}
