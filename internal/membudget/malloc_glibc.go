//go:build linux && cgo

package membudget

/*
#include <malloc.h>

static void fix_mmap_threshold(int n) {
#if defined(__GLIBC__) && defined(M_MMAP_THRESHOLD)
	mallopt(M_MMAP_THRESHOLD, n);
#endif
}
*/
import "C"

// fixMmapThreshold sets glibc's mmap threshold, which turns its dynamic raising off.
func fixMmapThreshold() { C.fix_mmap_threshold(C.int(mmapThreshold)) }
