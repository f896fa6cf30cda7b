package ledger

// projections is what the apply rules (state.go) read and write: typed operations on the
// ledger's state, one per thing an event can do. Two stores implement it — the pebble
// batch of an Append (kvProjections, keys in keys.go) and the replay's memory
// (memProjections) — so a new projection is written once, in apply, and here once per
// store. A SQL ledger implements the same operations as statements.
//
// Reads return the state as the operations before them in the same Append left it.
type projections interface {
	project(name string) (*Project, error) // nil if none
	runtime(project, name string) (*Runtime, error)
	version(project, runtime, id string) (*Version, error)
	versions(project, runtime string) ([]*Version, error) // by id
	tag(project, runtime, tag string) (id string, ok bool, err error)
	alias(project, runtime, origin string) (id string, ok bool, err error)

	// newVersion returns a zero Version for a new version (a replay hands them out in
	// blocks: a million builds are a million of them).
	newVersion() *Version

	putProject(p *Project)
	putRuntime(r *Runtime)
	// putVersion stores a version under its id and under its place in its runtime's
	// newest-first order.
	putVersion(v *Version)
	// deleteOrder drops a version's place in the order (a purged version built again
	// gets a new place).
	deleteOrder(project, runtime string, seq uint64)
	setTag(project, runtime, tag, id string) // a user tag
	deleteTag(project, runtime, tag string)
	// setAlias records the id a version had where it was made (it never changes).
	setAlias(project, runtime, origin, id string)
	// setBuiltin and deleteBuiltin move latest and vN, which follow from the runtimes and
	// versions: a store may derive them instead of storing them.
	setBuiltin(project, runtime string, tag builtin, id string)
	deleteBuiltin(project, runtime string, tag builtin)
}

// kvProjections stores projections as encoded values under the keys of keys.go.
type kvProjections struct{ kv kv }

var _ projections = kvProjections{}

func (s kvProjections) project(name string) (*Project, error) {
	b, ok, err := s.kv.get(projectKey(name))
	if err != nil || !ok {
		return nil, err
	}
	return decodeProject(b)
}

func (s kvProjections) runtime(p, r string) (*Runtime, error) {
	b, ok, err := s.kv.get(runtimeKey(p, r))
	if err != nil || !ok {
		return nil, err
	}
	return decodeRuntime(b)
}

func (s kvProjections) version(p, r, id string) (*Version, error) {
	b, ok, err := s.kv.get(versionKey(p, r, id))
	if err != nil || !ok {
		return nil, err
	}
	return decodeVersion(b)
}

func (s kvProjections) versions(p, r string) ([]*Version, error) {
	var out []*Version
	err := s.kv.scan(runtimePrefix(keyVersion, p, r), func(_, v []byte) error {
		x, err := decodeVersion(v)
		out = append(out, x)
		return err
	})
	return out, err
}

func (s kvProjections) tag(p, r, tag string) (string, bool, error) {
	b, ok, err := s.kv.get(tagKey(p, r, tag))
	return string(b), ok, err
}

func (s kvProjections) alias(p, r, o string) (string, bool, error) {
	b, ok, err := s.kv.get(aliasKey(p, r, o))
	return string(b), ok, err
}

func (s kvProjections) putProject(p *Project) { s.kv.set(projectKey(p.Name), encodeProject(p)) }
func (s kvProjections) putRuntime(r *Runtime) {
	s.kv.set(runtimeKey(r.Project, r.Name), encodeRuntime(r))
}

func (s kvProjections) newVersion() *Version { return new(Version) }

func (s kvProjections) putVersion(v *Version) {
	b := encodeVersion(v)
	s.kv.set(versionKey(v.Project, v.Runtime, v.ID), b)
	s.kv.set(orderKey(v.Project, v.Runtime, v.Seq), b)
}

func (s kvProjections) deleteOrder(p, r string, seq uint64) { s.kv.del(orderKey(p, r, seq)) }
func (s kvProjections) setTag(p, r, tag, id string)         { s.kv.set(tagKey(p, r, tag), []byte(id)) }
func (s kvProjections) deleteTag(p, r, tag string)          { s.kv.del(tagKey(p, r, tag)) }
func (s kvProjections) setAlias(p, r, o, id string)         { s.kv.set(aliasKey(p, r, o), []byte(id)) }
func (s kvProjections) setBuiltin(p, r string, tag builtin, id string) {
	s.kv.set(tagKey(p, r, tag.String()), []byte(id))
}
func (s kvProjections) deleteBuiltin(p, r string, tag builtin) { s.kv.del(tagKey(p, r, tag.String())) }

// memProjections keeps projections as objects in a memKV: replay's hot path reads and
// writes them without encoding. It leaves out what follows from them — each version's
// order entry and the latest and vN tags — and memKV.derive adds those on the first read
// that needs them (apply never does).
type memProjections struct{ m *memKV }

var _ projections = memProjections{}

// Events come in runs on one runtime of one project, and a version is mostly stored right
// after it was read: memKV remembers the last project, runtime and version it handed out,
// so those look-ups and puts skip a map of a million entries.

func (s memProjections) project(name string) (*Project, error) {
	c := &s.m.last
	if c.proj != nil && c.proj.Name == name {
		return c.proj, nil
	}
	var buf [128]byte
	p, _ := s.m.m[string(appendKey(buf[:0], keyProject, name))].(*Project)
	c.proj = p
	return p, nil
}

func (s memProjections) runtime(p, r string) (*Runtime, error) {
	c := &s.m.last
	if c.rt != nil && c.rt.Project == p && c.rt.Name == r {
		return c.rt, nil
	}
	var buf [256]byte
	x, _ := s.m.m[string(appendKey(buf[:0], keyRuntime, p, r))].(*Runtime)
	c.rt = x
	return x, nil
}

func (s memProjections) version(p, r, id string) (*Version, error) {
	var buf [256]byte
	v, _ := s.m.m[string(appendKey(buf[:0], keyVersion, p, r, id))].(*Version)
	s.m.last.v = v
	return v, nil
}

func (s memProjections) versions(p, r string) ([]*Version, error) {
	return kvProjections{s.m}.versions(p, r)
}

func (s memProjections) tag(p, r, tag string) (string, bool, error) {
	if IsBuiltinTag(tag) { // apply never asks for these: it refuses them as user tags
		s.m.derive()
	}
	var buf [256]byte
	id, ok := s.m.m[string(appendKey(buf[:0], keyTag, p, r, tag))].(*string)
	if !ok {
		return "", false, nil
	}
	return *id, true, nil
}

func (s memProjections) putProject(p *Project) {
	if s.m.last.proj == p && p != nil { // read from the map and changed in place
		return
	}
	var buf [128]byte
	s.m.put(appendKey(buf[:0], keyProject, p.Name), p)
	s.m.last.proj = p
}

func (s memProjections) putRuntime(r *Runtime) {
	if s.m.last.rt == r && r != nil {
		return
	}
	var buf [256]byte
	s.m.put(appendKey(buf[:0], keyRuntime, r.Project, r.Name), r)
	s.m.last.rt = r
}

func (s memProjections) newVersion() *Version { return s.m.newVersion() }

func (s memProjections) putVersion(v *Version) {
	if s.m.last.v == v && v != nil {
		return
	}
	var buf [256]byte
	s.m.put(appendKey(buf[:0], keyVersion, v.Project, v.Runtime, v.ID), v) // 'o': memKV.derive
}

func (s memProjections) setTag(p, r, tag, id string) {
	var buf [256]byte
	k := appendKey(buf[:0], keyTag, p, r, tag)
	if cur, ok := s.m.m[string(k)].(*string); ok {
		*cur = id
		return
	}
	s.m.m[string(k)] = &id
}

func (s memProjections) deleteTag(p, r, tag string) { s.m.del(tagKey(p, r, tag)) }
func (s memProjections) setAlias(p, r, o, id string) {
	var buf [256]byte
	s.m.m[string(appendKey(buf[:0], keyAlias, p, r, o))] = &id
}

func (s memProjections) alias(p, r, o string) (string, bool, error) {
	var buf [256]byte
	id, ok := s.m.m[string(appendKey(buf[:0], keyAlias, p, r, o))].(*string)
	if !ok {
		return "", false, nil
	}
	return *id, true, nil
}
func (s memProjections) deleteOrder(string, string, uint64)         {}
func (s memProjections) setBuiltin(string, string, builtin, string) {}
func (s memProjections) deleteBuiltin(string, string, builtin)      {}
