//go:build !cgo

package cas

// compressGroup compresses a group's content into dst (reused if large enough): without
// cgo, with klauspost's zstd at SpeedFastest (with cgo, libzstd at level 3: compress_cgo.go).
func compressGroup(src, dst []byte) []byte {
	codecs()
	return fastEncoder.EncodeAll(src, dst[:0])
}
