package ledger

import (
	"errors"
	"fmt"
	"strings"

	"github.com/swcli/swcli/cas"
)

// Queries read the projections only; none replays events. A view answers them over the
// database (Ledger) or over a replayed state (Snapshot).
type view struct {
	kv kv          // scanned by listings
	p  projections // read by look-ups
}

// Project returns a project, or an error wrapping ErrNotFound (removed projects too).
func (l view) Project(name string) (*Project, error) {
	p, err := l.p.project(name)
	if err != nil {
		return nil, err
	}
	if p == nil || p.Removed {
		return nil, fmt.Errorf("project %s: %w", name, ErrNotFound)
	}
	return p, nil
}

// Projects lists the live projects by name.
func (l view) Projects() ([]*Project, error) {
	var out []*Project
	err := l.kv.scan([]byte{keyProject}, func(_, v []byte) error {
		p, err := decodeProject(v)
		if err == nil && !p.Removed {
			out = append(out, p)
		}
		return err
	})
	return out, err
}

// ProjectBySeq returns the live project created by event seq (its numeric id), or an
// error wrapping ErrNotFound.
func (l view) ProjectBySeq(seq uint64) (*Project, error) {
	ps, err := l.Projects()
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Seq == seq {
			return p, nil
		}
	}
	return nil, fmt.Errorf("project %d: %w", seq, ErrNotFound)
}

// Runtime returns a runtime of a project, or an error wrapping ErrNotFound.
func (l view) Runtime(project, name string) (*Runtime, error) {
	r, err := l.p.runtime(project, name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("runtime %s in project %s: %w", name, project, ErrNotFound)
	}
	return r, nil
}

// Runtimes lists a project's runtimes by name.
func (l view) Runtimes(project string) ([]*Runtime, error) {
	var out []*Runtime
	p := append(joinKey(keyRuntime, project), 0)
	err := l.kv.scan(p, func(_, v []byte) error {
		r, err := decodeRuntime(v)
		out = append(out, r)
		return err
	})
	return out, err
}

// ListOptions select and page versions.
type ListOptions struct {
	ShowRemoved bool // include soft-deleted versions
	Page, Size  int  // 1-based page of Size rows; Size 0 means all
	// MissingOK lists a runtime the project lacks as empty (the project must exist).
	MissingOK bool
}

// Versions lists versions of one runtime (or of every runtime of the project when runtime
// is ""), runtimes by name and each runtime's versions newest first, with the total count
// before paging. Purged versions are never listed.
func (l view) Versions(project, runtime string, opt ListOptions) ([]*Version, int, error) {
	var rts []*Runtime
	if runtime != "" {
		rt, err := l.Runtime(project, runtime)
		if errors.Is(err, ErrNotFound) && opt.MissingOK {
			if _, perr := l.Project(project); perr != nil {
				return nil, 0, perr
			}
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		rts = []*Runtime{rt}
	} else {
		var err error
		if rts, err = l.Runtimes(project); err != nil {
			return nil, 0, err
		}
	}
	skip, limit := 0, -1
	if opt.Size > 0 {
		skip, limit = (max(opt.Page, 1)-1)*opt.Size, opt.Size
	}
	var out []*Version
	total := 0
	for _, rt := range rts {
		err := l.kv.scan(runtimePrefix(keyOrder, project, rt.Name), func(_, b []byte) error {
			status, _ := peekStatus(b)
			if status != StatusLive && (!opt.ShowRemoved || status != StatusRemoved) {
				return nil
			}
			if total >= skip && (limit < 0 || len(out) < limit) {
				v, err := decodeVersion(b)
				if err != nil {
					return err
				}
				v.Latest = v.ID == rt.Latest
				out = append(out, v)
			}
			total++
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return out, total, nil
}

// peekStatus reads a version's status without decoding the rest.
func peekStatus(b []byte) (Status, bool) {
	r := rbuf{b: b}
	r.str()
	r.str()
	r.str()
	s := Status(r.uint())
	return s, r.err == nil
}

// History lists every version of a runtime newest first, removed ones included.
func (l view) History(project, runtime string) ([]*Version, error) {
	vs, _, err := l.Versions(project, runtime, ListOptions{ShowRemoved: true})
	return vs, err
}

// AmbiguousError is Resolve's answer to a prefix that names several versions.
type AmbiguousError struct {
	Ref        string
	Candidates []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("version prefix %q is ambiguous: %s", e.Ref, strings.Join(e.Candidates, ", "))
}

// ErrAmbiguous is wrapped by *AmbiguousError.
var ErrAmbiguous = errors.New("ambiguous version")

// Unwrap makes errors.Is(err, ErrAmbiguous) hold.
func (e *AmbiguousError) Unwrap() error { return ErrAmbiguous }

// MinPrefix is the shortest version prefix Resolve accepts.
const MinPrefix = 5

// Resolve finds a version of a runtime by full id, tag (latest, vN or a user tag; a tag on a
// version that is not live does not resolve), the id it had where it was made (its
// origin), or unique prefix of at least MinPrefix characters. Full ids and prefixes find removed versions too; callers check Status.
func (l view) Resolve(project, runtime, ref string) (*Version, error) {
	return l.resolve(project, runtime, ref, false)
}

// ResolveRemoved is Resolve for recover: a tag on a removed version resolves too.
func (l view) ResolveRemoved(project, runtime, ref string) (*Version, error) {
	return l.resolve(project, runtime, ref, true)
}

func (l view) resolve(project, runtime, ref string, removedTags bool) (*Version, error) {
	rt, err := l.Runtime(project, runtime)
	if err != nil {
		return nil, err
	}
	s := l.p
	found := func(v *Version) *Version { v.Latest = v.ID == rt.Latest; return v }
	if v, err := s.version(project, runtime, ref); err != nil {
		return nil, err
	} else if v != nil && v.Status != StatusPurged {
		return found(v), nil
	}
	if id, ok, err := s.tag(project, runtime, ref); err != nil {
		return nil, err
	} else if ok {
		v, err := s.version(project, runtime, id)
		if err != nil {
			return nil, err
		}
		if v == nil || (v.Status != StatusLive && !(removedTags && v.Status == StatusRemoved)) {
			status := "gone"
			if v != nil {
				status = v.Status.String()
			}
			return nil, fmt.Errorf("tag %s of %s names version %s, which is %s: %w", ref, runtime, id, status, ErrNotFound)
		}
		return found(v), nil
	}
	if id, ok, err := s.alias(project, runtime, ref); err != nil {
		return nil, err
	} else if ok {
		if v, err := s.version(project, runtime, id); err != nil {
			return nil, err
		} else if v != nil && v.Status != StatusPurged {
			return found(v), nil
		}
	}
	if len(ref) < MinPrefix {
		return nil, fmt.Errorf("version %q of %s/%s (a prefix needs %d characters): %w", ref, project, runtime, MinPrefix, ErrNotFound)
	}
	p := append(runtimePrefix(keyVersion, project, runtime), ref...)
	var cands []*Version
	err = l.kv.scan(p, func(_, b []byte) error {
		v, err := decodeVersion(b)
		if err == nil && v.Status != StatusPurged {
			cands = append(cands, v)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	switch len(cands) {
	case 0:
		return nil, fmt.Errorf("version %s of %s/%s: %w", ref, project, runtime, ErrNotFound)
	case 1:
		return found(cands[0]), nil
	}
	e := &AmbiguousError{Ref: ref}
	for _, v := range cands {
		e.Candidates = append(e.Candidates, v.ID)
	}
	return nil, e
}

// Manifests lists the manifests of every live or removed version of every project: what
// garbage collection must keep.
func (l view) Manifests() ([]cas.Hash, error) {
	var out []cas.Hash
	err := l.kv.scan([]byte{keyVersion}, func(_, b []byte) error {
		v, err := decodeVersion(b)
		if err == nil && v.Status != StatusPurged {
			out = append(out, v.Manifest)
		}
		return err
	})
	return out, err
}

// AllVersions lists every live or removed version of every project, by key.
func (l view) AllVersions() ([]*Version, error) {
	var out []*Version
	err := l.kv.scan([]byte{keyVersion}, func(_, b []byte) error {
		v, err := decodeVersion(b)
		if err == nil && v.Status != StatusPurged {
			out = append(out, v)
		}
		return err
	})
	return out, err
}
