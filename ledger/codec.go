package ledger

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/swcli/swcli/cas"
)

// Projection values are a compact binary encoding (listing 10k versions must take
// milliseconds): uvarint-prefixed strings, varints, fixed 32-byte hashes, in the field order
// of the encode functions below. They are derived data: replay rebuilds them.

type wbuf struct{ b []byte }

func (w *wbuf) str(s string) {
	w.b = binary.AppendUvarint(w.b, uint64(len(s)))
	w.b = append(w.b, s...)
}
func (w *wbuf) int(v int64) { w.b = binary.AppendVarint(w.b, v) }
func (w *wbuf) uint(v uint64) {
	w.b = binary.AppendUvarint(w.b, v)
}
func (w *wbuf) time(t time.Time) { w.int(t.UnixNano()) }
func (w *wbuf) hash(h cas.Hash)  { w.b = append(w.b, h[:]...) }
func (w *wbuf) strs(ss []string) {
	w.uint(uint64(len(ss)))
	for _, s := range ss {
		w.str(s)
	}
}

type rbuf struct {
	b   []byte
	err error
}

var errShort = errors.New("projection value truncated")

func (r *rbuf) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) int() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) str() string {
	n := r.uint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShort
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *rbuf) time() time.Time { return time.Unix(0, r.int()).UTC() }

func (r *rbuf) hash() cas.Hash {
	var h cas.Hash
	if r.err != nil || len(r.b) < cas.HashSize {
		r.err = errShort
		return h
	}
	copy(h[:], r.b)
	r.b = r.b[cas.HashSize:]
	return h
}

func (r *rbuf) strs() []string {
	n := r.uint()
	if n > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	var out []string
	for range n {
		out = append(out, r.str())
	}
	return out
}

func encodeProject(p *Project) []byte {
	var w wbuf
	w.str(p.Name)
	w.time(p.Created)
	w.uint(p.Seq)
	w.uint(boolU(p.Removed))
	return w.b
}

func decodeProject(b []byte) (*Project, error) {
	r := rbuf{b: b}
	p := &Project{Name: r.str(), Created: r.time(), Seq: r.uint(), Removed: r.uint() == 1}
	return p, r.err
}

func encodeRuntime(x *Runtime) []byte {
	var w wbuf
	w.str(x.Project)
	w.str(x.Name)
	w.time(x.Created)
	w.uint(x.Seq)
	w.uint(uint64(x.NextVN))
	w.str(x.Latest)
	w.str(x.Mode)
	return w.b
}

func decodeRuntime(b []byte) (*Runtime, error) {
	r := rbuf{b: b}
	x := &Runtime{Project: r.str(), Name: r.str(), Created: r.time(), Seq: r.uint(),
		NextVN: int(r.uint()), Latest: r.str(), Mode: r.str()}
	return x, r.err
}

func encodeVersion(v *Version) []byte {
	var w wbuf
	w.str(v.Project)
	w.str(v.Runtime)
	w.str(v.ID)
	w.uint(uint64(v.Status))
	w.uint(v.Seq)
	w.time(v.Created)
	w.time(v.Updated)
	w.hash(v.Manifest)
	w.int(v.Size)
	w.int(v.NewBytes)
	w.int(v.Files)
	w.int(int64(v.VN))
	w.strs(v.Tags)
	w.str(v.Python)
	w.str(v.Mode)
	w.str(v.Actor)
	w.str(v.Source)
	if v.Origin != "" { // last and optional: versions stored before origins decode unchanged
		w.str(v.Origin)
	}
	return w.b
}

func decodeVersion(b []byte) (*Version, error) {
	r := rbuf{b: b}
	v := &Version{Project: r.str(), Runtime: r.str(), ID: r.str(), Status: Status(r.uint()),
		Seq: r.uint(), Created: r.time(), Updated: r.time(), Manifest: r.hash(), Size: r.int(),
		NewBytes: r.int(), Files: r.int(), VN: int(r.int()), Tags: r.strs(), Python: r.str(),
		Mode: r.str(), Actor: r.str(), Source: r.str()}
	if r.err == nil && len(r.b) > 0 {
		v.Origin = r.str()
	}
	return v, r.err
}

func boolU(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
