package ledger

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/swcli/swcli/cas"
)

// Status is a version's lifecycle state.
type Status uint8

const (
	StatusLive    Status = 1
	StatusRemoved Status = 2 // soft-deleted: recoverable
	StatusPurged  Status = 3 // deleted for good: its chunks are garbage
)

func (s Status) String() string {
	switch s {
	case StatusLive:
		return "live"
	case StatusRemoved:
		return "removed"
	case StatusPurged:
		return "purged"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Project is a project's projection.
type Project struct {
	Name    string
	Created time.Time
	Seq     uint64 // the event that created it
	Removed bool
}

// Runtime is a runtime's projection.
type Runtime struct {
	Project, Name string
	Created       time.Time
	Seq           uint64
	NextVN        int    // the vN the next new version gets
	Latest        string // version id that latest names; "" if none
	Mode          string
}

// Version is a version's projection.
type Version struct {
	Project, Runtime, ID string
	Status               Status
	Seq                  uint64    // the event that made it (first build or copy)
	Created              time.Time // of that event
	Updated              time.Time // of the last build or copy of it
	Manifest             cas.Hash
	Size                 int64 // content bytes
	NewBytes             int64 // stored bytes its first build added
	Files                int64
	VN                   int      // its vN tag
	Tags                 []string // user tags, sorted
	Python, Mode         string
	Actor                string // who made it
	Source               string // for copies: where it came from
	Origin               string // the id it had where it was made, if another (BuiltData.Origin)

	Latest bool // set by queries: latest names this version (not stored)
}

// AllTags returns the tags as users see them: latest (if it names v), vN, then user tags.
func (v *Version) AllTags() []string {
	var out []string
	if v.Latest && v.Status == StatusLive {
		out = append(out, "latest")
	}
	if v.Status != StatusPurged {
		out = append(out, vnTag(v.VN))
	}
	return append(out, v.Tags...)
}

// Sentinel errors of Append and the queries.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid event")
)

// ValidName reports whether s may name a project, runtime or tag (SPEC: Names):
// ^[a-zA-Z_][a-zA-Z0-9_.-]{0,79}$. Written out because apply checks two names per event.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 80 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// IsBuiltinTag reports whether tag is latest or vN (v[0-9]+), which only the ledger moves.
func IsBuiltinTag(tag string) bool {
	if tag == "latest" {
		return true
	}
	if len(tag) < 2 || tag[0] != 'v' {
		return false
	}
	for i := 1; i < len(tag); i++ {
		if tag[i] < '0' || tag[i] > '9' {
			return false
		}
	}
	return true
}

// kv is a sorted key-value space: the database (queries), an indexed batch (Append) or
// the replay's memory. Queries scan it; apply never touches it directly, only through
// projections.
type kv interface {
	get(k []byte) ([]byte, bool, error)
	set(k, v []byte)
	del(k []byte)
	// scan calls fn for every key with prefix p, in key order.
	scan(p []byte, fn func(k, v []byte) error) error
}

// state is the apply rules over a set of projections.
type state struct{ p projections }

// apply is the one place that says what each event does to the projections; Append and
// replay both use it.
func (s state) apply(e *Event) error {
	if e.Type == LedgerKeyed { // the ledger's own: no project, no projection
		var d KeyData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if d.Key == "" || e.Project != "" || e.Runtime != "" || e.Version != "" {
			return fmt.Errorf("%w: a ledger.key event names a key and nothing else", ErrInvalid)
		}
		return nil
	}
	if e.Type != ProjectCreated && e.Type != ProjectRemoved {
		if !ValidName(e.Runtime) {
			return fmt.Errorf("%w: runtime name %q", ErrInvalid, e.Runtime)
		}
	}
	if !ValidName(e.Project) {
		return fmt.Errorf("%w: project name %q", ErrInvalid, e.Project)
	}
	proj, err := s.p.project(e.Project)
	if err != nil {
		return err
	}
	switch e.Type {
	case ProjectCreated:
		if proj != nil && !proj.Removed {
			return fmt.Errorf("%w: project %s exists", ErrConflict, e.Project)
		}
		s.p.putProject(&Project{Name: e.Project, Created: e.Time, Seq: e.Seq})
		return nil
	case ProjectRemoved:
		if proj == nil || proj.Removed {
			return fmt.Errorf("%w: project %s", ErrNotFound, e.Project)
		}
		proj.Removed = true
		s.p.putProject(proj)
		return nil
	}
	if proj == nil || proj.Removed {
		return fmt.Errorf("%w: project %s", ErrNotFound, e.Project)
	}
	rt, err := s.p.runtime(e.Project, e.Runtime)
	if err != nil {
		return err
	}
	if rt == nil {
		if e.Type != RuntimeCreated && e.Type != RuntimeBuilt && e.Type != RuntimeCopied {
			return fmt.Errorf("%w: runtime %s/%s", ErrNotFound, e.Project, e.Runtime)
		}
		rt = &Runtime{Project: e.Project, Name: e.Runtime, Created: e.Time, Seq: e.Seq}
	}
	defer s.p.putRuntime(rt)

	switch e.Type {
	case RuntimeCreated:
		var d CreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		rt.Mode = d.Mode
		return nil
	case RuntimeBuilt, RuntimeCopied:
		return s.applyBuilt(e, rt)
	}

	// The rest act on one version, or on every version when Version is empty.
	var targets []*Version
	if e.Version != "" {
		v, err := s.p.version(e.Project, e.Runtime, e.Version)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("%w: version %s of %s/%s", ErrNotFound, e.Version, e.Project, e.Runtime)
		}
		targets = []*Version{v}
	} else if e.Type == RuntimeRemoved || e.Type == RuntimePurged || e.Type == RuntimeRecovered {
		if targets, err = s.p.versions(e.Project, e.Runtime); err != nil {
			return err
		}
	} else {
		return fmt.Errorf("%w: %s needs a version", ErrInvalid, e.Type)
	}

	switch e.Type {
	case RuntimeTagged, RuntimeUntagged:
		var d TagsData
		if err := e.Decode(&d); err != nil {
			return err
		}
		v := targets[0]
		if v.Status != StatusLive {
			return fmt.Errorf("%w: version %s is %s", ErrConflict, v.ID, v.Status)
		}
		if err := checkTags(d.Tags); err != nil {
			return err
		}
		if e.Type == RuntimeTagged {
			return s.addTags(v, d.Tags)
		}
		for _, tag := range d.Tags {
			if i := slices.Index(v.Tags, tag); i >= 0 {
				v.Tags = slices.Delete(v.Tags, i, i+1)
				s.p.deleteTag(v.Project, v.Runtime, tag)
			}
		}
		s.p.putVersion(v)
		return nil
	case RuntimeRemoved:
		return s.move(targets, StatusLive, StatusRemoved, e.Version != "")
	case RuntimeRecovered:
		return s.move(targets, StatusRemoved, StatusLive, e.Version != "")
	case RuntimePurged:
		for _, v := range targets {
			if v.Status == StatusPurged {
				if e.Version != "" {
					return fmt.Errorf("%w: version %s is purged", ErrConflict, v.ID)
				}
				continue
			}
			v.Status = StatusPurged
			for _, tag := range v.Tags {
				s.p.deleteTag(v.Project, v.Runtime, tag)
			}
			v.Tags = nil
			if rt.Latest == v.ID {
				rt.Latest = ""
				s.p.deleteBuiltin(v.Project, v.Runtime, latest)
			}
			s.p.deleteBuiltin(v.Project, v.Runtime, builtin(v.VN))
			s.p.putVersion(v)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown type %q", ErrInvalid, e.Type)
}

// move changes the targets in state from to state to; for one named version, a version in
// another state is a conflict, for a whole runtime it is left alone.
func (s state) move(targets []*Version, from, to Status, named bool) error {
	for _, v := range targets {
		if v.Status == from {
			v.Status = to
			s.p.putVersion(v)
		} else if named {
			return fmt.Errorf("%w: version %s is %s", ErrConflict, v.ID, v.Status)
		}
	}
	return nil
}

func (s state) applyBuilt(e *Event, rt *Runtime) error {
	if len(e.Version) != 32 {
		return fmt.Errorf("%w: version id %q", ErrInvalid, e.Version)
	}
	d, tags, source, err := builtPayload(e)
	if err != nil {
		return err
	}
	if err := checkTags(tags); err != nil {
		return err
	}
	v, err := s.p.version(e.Project, e.Runtime, e.Version)
	if err != nil {
		return err
	}
	if v == nil || v.Status == StatusPurged {
		if v != nil {
			s.p.deleteOrder(v.Project, v.Runtime, v.Seq)
		}
		v = s.p.newVersion()
		*v = Version{Project: e.Project, Runtime: e.Runtime, ID: e.Version, Seq: e.Seq,
			Created: e.Time, VN: rt.NextVN, NewBytes: d.NewBytes, Actor: e.Actor, Source: source}
		rt.NextVN++
		s.p.setBuiltin(v.Project, v.Runtime, builtin(v.VN), v.ID)
	}
	v.Status = StatusLive
	v.Updated = e.Time
	v.Manifest, v.Size, v.Files, v.Python, v.Mode = d.Manifest, d.Size, d.Files, d.Python, d.Mode
	if d.Origin != "" && v.Origin == "" {
		if err := CheckOrigin(d.Origin, v.ID); err != nil {
			return err
		}
		v.Origin = d.Origin
		s.p.setAlias(v.Project, v.Runtime, d.Origin, v.ID)
	}
	rt.Latest = v.ID
	if rt.Mode == "" {
		rt.Mode = d.Mode
	}
	s.p.setBuiltin(v.Project, v.Runtime, latest, v.ID)
	if len(tags) > 0 {
		return s.addTags(v, tags)
	}
	s.p.putVersion(v)
	return nil
}

// builtPayload is a built or copied event's payload (with a copy's tags and source): the
// one replay decoded ahead when there is one, read in place rather than copied, so that a
// million builds do not allocate a million payloads.
func builtPayload(e *Event) (d *BuiltData, tags []string, source string, err error) {
	switch x := e.payload.(type) {
	case *BuiltData:
		if e.Type == RuntimeBuilt {
			return x, nil, "", nil
		}
	case *CopiedData:
		if e.Type == RuntimeCopied {
			return &x.BuiltData, x.Tags, x.Source, nil
		}
	}
	if e.Type == RuntimeCopied {
		var c CopiedData
		if err := e.Decode(&c); err != nil {
			return nil, nil, "", err
		}
		return &c.BuiltData, c.Tags, c.Source, nil
	}
	d = new(BuiltData)
	if err := e.Decode(d); err != nil {
		return nil, nil, "", err
	}
	return d, nil, "", nil
}

// CheckOrigin refuses an origin id that could be taken for something else: it must look
// like a version id of some system (lowercase letters and digits, 8 to 64 of them), and
// not like a tag of ours (latest, vN).
func CheckOrigin(origin, id string) error {
	if len(origin) < 8 || len(origin) > 64 || origin == id || IsBuiltinTag(origin) {
		return fmt.Errorf("%w: origin id %q", ErrInvalid, origin)
	}
	for _, c := range origin {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("%w: origin id %q", ErrInvalid, origin)
		}
	}
	return nil
}

// checkTags refuses tags that are not names, and latest and vN, which only the ledger moves.
func checkTags(tags []string) error {
	for _, tag := range tags {
		if !ValidName(tag) || IsBuiltinTag(tag) {
			return fmt.Errorf("%w: tag %q", ErrInvalid, tag)
		}
	}
	return nil
}

// addTags gives v the user tags, moving each from the version of the runtime that had it.
func (s state) addTags(v *Version, tags []string) error {
	for _, tag := range tags {
		if slices.Contains(v.Tags, tag) {
			continue
		}
		if old, ok, err := s.p.tag(v.Project, v.Runtime, tag); err != nil {
			return err
		} else if ok && old != v.ID {
			ov, err := s.p.version(v.Project, v.Runtime, old)
			if err != nil {
				return err
			}
			if ov != nil {
				ov.Tags = slices.DeleteFunc(ov.Tags, func(t string) bool { return t == tag })
				s.p.putVersion(ov)
			}
		}
		v.Tags = append(v.Tags, tag)
		s.p.setTag(v.Project, v.Runtime, tag, v.ID)
	}
	slices.Sort(v.Tags)
	s.p.putVersion(v)
	return nil
}
