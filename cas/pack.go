package cas

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/internal/fsutil"
)

// Pack files and their writer. A pack is STORE/packs/<16 hex digits>.pack: a header, then
// entries, each self-describing so that a pack the index does not know can be re-indexed
// by reading it:
//
//	header  "SWPACK1\n"
//	entry   hash[32] encoding[1] contentLen[4] storedLen[4] stored bytes
//
// Invariants:
//   - A pack is written as <n>.tmp, and once full (packTarget) or flushed it is synced,
//     renamed to <n>.pack and the directory synced; only then are its chunks indexed
//     (index.go).
//   - Several processes write packs at once: a pack number is taken by creating <n>.tmp
//     with O_EXCL where no <n>.pack exists, so two writers never share a number.
//   - Small flushes do not make small packs forever: after sealing a pack under
//     packTarget/2, the same process appends its next entries to it (after the indexed
//     bytes; synced, then indexed, like a new pack). No other process writes a pack it did
//     not create, and bytes past a pack's indexed size are never read. Otherwise a sealed
//     pack is never written again; only gc (repack.go) deletes it.
const (
	packMagic     = "SWPACK1\n"
	entryHeader   = HashSize + 1 + 4 + 4
	packTarget    = 32 << 20 // seal a pack once it holds this much
	packWriterBuf = 1 << 20
)

func (s *Local) packPath(n uint64) string {
	return filepath.Join(s.dir, "packs", fmt.Sprintf("%016x.pack", n))
}

func (s *Local) tmpPath(n uint64) string {
	return filepath.Join(s.dir, "packs", fmt.Sprintf("%016x.tmp", n))
}

// append writes one entry to the open pack and seals the pack once full. With force it
// writes even if the index has the chunk (repacking moves live chunks). It reports whether
// the chunk was new.
func (s *Local) append(h Hash, r Raw, force bool) (bool, error) {
	s.mu.Lock()
	isNew, full, err := s.appendLocked(h, r, force)
	var sp *sealedPack
	if err == nil && full {
		sp, err = s.detachLocked()
	}
	s.mu.Unlock()
	if sp != nil {
		err = s.seal(sp)
	}
	return isNew, err
}

// appendLocked writes the entry with s.mu held and reports whether the pack is full.
func (s *Local) appendLocked(h Hash, r Raw, force bool) (isNew, full bool, err error) {
	if s.sealErr != nil {
		return false, false, s.sealErr
	}
	if _, ok := s.pending[h]; ok {
		return false, false, nil
	}
	if !force && s.presentLocked(h) {
		return false, false, nil
	}
	off, err := s.writeEntryLocked(h, r)
	if err != nil {
		return false, false, err
	}
	s.pending[h] = loc{pack: s.curNum, off: off, stored: int64(len(r.Data)), size: r.Len, enc: r.Enc}
	return true, s.curOff >= packTarget, nil
}

// writeEntryLocked appends one entry to the open pack and returns the offset of its stored
// bytes (s.mu held).
func (s *Local) writeEntryLocked(h Hash, r Raw) (int64, error) {
	if s.sealErr != nil {
		return 0, s.sealErr
	}
	if s.cur == nil {
		if err := s.startPack(); err != nil {
			return 0, err
		}
	}
	var hdr [entryHeader]byte
	copy(hdr[:], h[:])
	hdr[HashSize] = byte(r.Enc)
	binary.BigEndian.PutUint32(hdr[HashSize+1:], uint32(r.Len))
	binary.BigEndian.PutUint32(hdr[HashSize+5:], uint32(len(r.Data)))
	if _, err := s.curBuf.Write(hdr[:]); err != nil {
		return 0, s.abortPack(err)
	}
	if _, err := s.curBuf.Write(r.Data); err != nil {
		return 0, s.abortPack(err)
	}
	off := s.curOff + entryHeader
	s.curOff += entryHeader + int64(len(r.Data))
	return off, nil
}

// startPack takes the next free pack number: <n>.tmp created exclusively where no <n>.pack
// exists. Another process that took n first holds <n>.tmp until it renames it to
// <n>.pack, so one of the two names always tells.
func (s *Local) startPack() error {
	for len(s.reuse) > 0 {
		sp := s.reuse[len(s.reuse)-1]
		s.reuse = s.reuse[:len(s.reuse)-1]
		if _, err := sp.f.Seek(sp.size, io.SeekStart); err != nil {
			sp.f.Close()
			continue
		}
		s.cur, s.curNum, s.curOff, s.curAppend = sp.f, sp.num, sp.size, true
		if s.curBuf == nil {
			s.curBuf = bufio.NewWriterSize(sp.f, packWriterBuf)
		} else {
			s.curBuf.Reset(sp.f)
		}
		return nil
	}
	if s.nextNum == 0 {
		if err := s.initNextNum(); err != nil {
			return fmt.Errorf("start pack: %w", err)
		}
	}
	var f *os.File
	for tries := 0; ; tries++ {
		n := s.nextNum
		s.nextNum++
		var err error
		f, err = os.OpenFile(s.tmpPath(n), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
		if errors.Is(err, os.ErrExist) && tries < 1<<16 {
			continue
		}
		if err != nil {
			return fmt.Errorf("start pack: %w", err)
		}
		if _, err := os.Stat(s.packPath(n)); err == nil {
			f.Close()
			os.Remove(s.tmpPath(n))
			continue
		}
		s.cur, s.curNum, s.curOff, s.curAppend = f, n, int64(len(packMagic)), false
		break
	}
	if s.curBuf == nil {
		s.curBuf = bufio.NewWriterSize(f, packWriterBuf)
	} else {
		s.curBuf.Reset(f)
	}
	if _, err := s.curBuf.WriteString(packMagic); err != nil {
		return s.abortPack(err)
	}
	return nil
}

// initNextNum starts numbering after the highest pack on disk or in the index.
func (s *Local) initNextNum() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, "packs"))
	if err != nil {
		return err
	}
	var top uint64
	for _, e := range ents {
		name := e.Name()
		if t, ok := strings.CutSuffix(name, ".tmp"); ok {
			name = t + ".pack"
		}
		if n, ok := packNum(name); ok {
			top = max(top, n)
		}
	}
	for n := range s.idx.packSizes() {
		top = max(top, n)
	}
	s.nextNum = top + 1
	return nil
}

// maxReuse bounds the small packs a process keeps to go on with (several uploads flushing
// side by side each leave one).
const maxReuse = 8

// dropReuseLocked closes the small packs kept to go on with (s.mu held).
func (s *Local) dropReuseLocked() {
	for _, sp := range s.reuse {
		sp.f.Close()
	}
	s.reuse = nil
}

// abortPack drops the open pack after a write error; its chunks were never indexed.
func (s *Local) abortPack(cause error) error {
	if s.cur != nil {
		s.cur.Close()
		os.Remove(s.tmpPath(s.curNum))
	}
	s.cur = nil
	s.pending = map[Hash]loc{}
	return fmt.Errorf("write pack: %w", cause)
}

// sealedPack is a pack detached from the writer, on its way to being durable and indexed.
type sealedPack struct {
	num      uint64
	f        *os.File
	size     int64
	chunks   map[Hash]loc
	appended bool // entries added to a pack sealed before: already under its final name
}

// detachLocked takes the open pack out of the writer (its buffered bytes flushed) so that
// it can be sealed without holding s.mu; reads still find its chunks in s.sealing.
func (s *Local) detachLocked() (*sealedPack, error) {
	if s.cur == nil {
		return nil, nil
	}
	if err := s.curBuf.Flush(); err != nil {
		return nil, s.abortPack(err)
	}
	sp := &sealedPack{num: s.curNum, f: s.cur, size: s.curOff, chunks: s.pending, appended: s.curAppend}
	s.sealing[sp.num] = sp
	s.cur = nil
	s.pending = map[Hash]loc{}
	return sp, nil
}

// seal makes a detached pack durable, then indexes its chunks: file synced, renamed,
// directory synced, then one synced index batch. Only then do its chunks count as stored.
func (s *Local) seal(sp *sealedPack) error {
	err := s.sealFile(sp)
	if err == nil {
		err = s.idx.commitPack(context.Background(), sp.num, sp.size, sp.chunks)
	}
	s.mu.Lock()
	delete(s.sealing, sp.num)
	s.sealed.Broadcast()
	if err != nil {
		sp.f.Close()
		if !sp.appended {
			os.Remove(s.tmpPath(sp.num))
		}
		if s.sealErr == nil {
			s.sealErr = err
		}
	} else if sp.size < packTarget/2 && len(s.reuse) < maxReuse && !s.closed {
		s.reuse = append(s.reuse, sp) // later entries of this process go on after it, through its file
		sp = nil
	}
	s.mu.Unlock()
	if sp != nil && err == nil {
		sp.f.Close() // readers open the sealed pack on their own (read.go)
	}
	return err
}

func (s *Local) sealFile(sp *sealedPack) error {
	if err := sp.f.Sync(); err != nil {
		return fmt.Errorf("sync pack %016x: %w", sp.num, err)
	}
	if sp.appended {
		return nil // its name and directory entry are durable already
	}
	if err := os.Rename(s.tmpPath(sp.num), s.packPath(sp.num)); err != nil {
		return fmt.Errorf("seal pack %016x: %w", sp.num, err)
	}
	if err := fsutil.SyncDir(filepath.Join(s.dir, "packs")); err != nil {
		return fmt.Errorf("seal pack %016x: %w", sp.num, err)
	}
	return nil
}
