package cas

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/swcli/swcli/internal/fsutil"
)

// The store's epoch lets an ingest trust what it learnt about the store before without
// loading the index. Invariants:
//   - STORE/epoch holds a random token. It is replaced by a new one, durably, before any
//     chunk entry is dropped from the index (gc, quarantine, lost packs): entries only
//     ever disappear after the token changes.
//   - A cache entry (statcache.go) that says "these chunks are stored" carries the token
//     read before they were known to be stored; with the same token now, none of them can
//     have been dropped since. Any other token sends the entry back to the index.
//   - A store made anew (its directory removed and made again) gets a new token, so a
//     cache kept beside it trusts nothing of the old one.

// epoch is the token; the zero value is "unknown" and never matches.
type epoch [8]byte

const epochFile = "epoch"

// readEpoch returns the store's token, making one if the store has none yet. A token that
// cannot be read or made is the zero epoch: nothing is trusted.
func (x *index) readEpoch() epoch {
	var e epoch
	path := filepath.Join(x.dir, epochFile)
	b, err := readSmall(path)
	if errors.Is(err, os.ErrNotExist) {
		// Made beside, then linked in: never replaces a token another process wrote.
		var fresh epoch
		rand.Read(fresh[:])
		tmp := path + "." + fmt.Sprintf("%x", fresh) + ".tmp"
		if err := fsutil.CreateSynced(tmp, fresh[:], 0o644); err != nil {
			return e
		}
		os.Link(tmp, path)
		os.Remove(tmp)
		b, err = readSmall(path)
	}
	if err != nil || len(b) != len(e) {
		// Not a token (a crash while the file was made, or something else put there): a
		// new one in its place, as gc would make.
		if x.newEpoch() != nil {
			return e
		}
		b, err = readSmall(path)
	}
	if err != nil || len(b) != len(e) {
		return e
	}
	copy(e[:], b)
	return e
}

// readSmall reads the first bytes of the regular file at path, not through a link: a
// token is 8 bytes, and whatever else lies there is read no further than that tells.
func readSmall(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b := make([]byte, 2*len(epoch{}))
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// newEpoch replaces the token, durably: called before chunk entries are dropped.
func (x *index) newEpoch() error {
	var fresh epoch
	rand.Read(fresh[:])
	path := filepath.Join(x.dir, epochFile)
	if err := fsutil.WriteFileAtomic(path, fresh[:], 0o644); err != nil {
		return fmt.Errorf("store epoch: %w", err)
	}
	if err := fsutil.SyncDir(x.dir); err != nil {
		return fmt.Errorf("store epoch: %w", err)
	}
	return nil
}

func (e epoch) known() bool { return e != epoch{} }
