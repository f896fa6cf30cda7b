package ledger

import (
	"errors"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/swcli/swcli/cas"
)

// A decoder for the canonical form only (objects with known keys, strings, integers,
// booleans, arrays of strings): replay reads a million events, and encoding/json spent most
// of replay's time. Anything it does not expect makes it fail, and callers fall back to
// encoding/json, so it never decides what an event means on its own.

var errNotCanonical = errors.New("not canonical")

type scanner struct {
	b      []byte
	i      int
	err    error
	intern map[string]string // repeated names (actor, project, …) are kept once
}

// name reads a string that repeats across events, interned.
func (s *scanner) name() string {
	if s.intern == nil || s.err != nil {
		return s.str()
	}
	start := s.i + 1
	v := s.str()
	if s.err != nil || s.i-1 < start {
		return v
	}
	raw := s.b[start : s.i-1]
	if x, ok := s.intern[string(raw)]; ok {
		return x
	}
	if len(s.intern) < 1<<16 {
		s.intern[v] = v
	}
	return v
}

func (s *scanner) fail() {
	if s.err == nil {
		s.err = errNotCanonical
	}
}

func (s *scanner) expect(c byte) {
	if s.err == nil && (s.i >= len(s.b) || s.b[s.i] != c) {
		s.fail()
	}
	s.i++
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// str reads a JSON string.
func (s *scanner) str() string {
	if s.err != nil {
		return ""
	}
	s.expect('"')
	start := s.i
	// Fast path: no escapes.
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			out := string(s.b[start:s.i])
			s.i++
			return out
		}
		if c == '\\' || c < 0x20 {
			break
		}
		s.i++
	}
	buf := append([]byte{}, s.b[start:s.i]...)
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return string(buf)
		case c < 0x20:
			s.fail()
			return ""
		case c != '\\':
			buf = append(buf, c)
			s.i++
			continue
		}
		if s.i+1 >= len(s.b) {
			s.fail()
			return ""
		}
		e := s.b[s.i+1]
		s.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r := s.hex4()
			if utf16.IsSurrogate(r) && s.i+1 < len(s.b) && s.b[s.i] == '\\' && s.b[s.i+1] == 'u' {
				s.i += 2
				r = utf16.DecodeRune(r, s.hex4())
			}
			buf = utf8.AppendRune(buf, r)
		default:
			s.fail()
			return ""
		}
	}
	s.fail()
	return ""
}

func (s *scanner) hex4() rune {
	if s.i+4 > len(s.b) {
		s.fail()
		return 0
	}
	v, err := strconv.ParseUint(string(s.b[s.i:s.i+4]), 16, 32)
	if err != nil {
		s.fail()
	}
	s.i += 4
	return rune(v)
}

func (s *scanner) int() int64 {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	v, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	if err != nil {
		s.fail()
	}
	return v
}

func (s *scanner) bool() bool {
	switch {
	case len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		s.i += 4
		return true
	case len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		s.i += 5
		return false
	}
	s.fail()
	return false
}

func (s *scanner) strs() []string {
	s.expect('[')
	var out []string
	for s.err == nil && s.peek() != ']' {
		if len(out) > 0 {
			s.expect(',')
		}
		out = append(out, s.str())
	}
	s.expect(']')
	return out
}

func (s *scanner) hash() cas.Hash {
	h, err := cas.ParseHash(s.str())
	if err != nil {
		s.fail()
	}
	return h
}

// object calls fn for each key; fn must consume the value.
func (s *scanner) object(fn func(key string)) {
	s.expect('{')
	first := true
	for s.err == nil && s.peek() != '}' {
		if !first {
			s.expect(',')
		}
		first = false
		k := s.str()
		s.expect(':')
		if s.err != nil {
			return
		}
		fn(k)
	}
	s.expect('}')
}

// skipValue skips an object (the event's data) and returns its bytes.
func (s *scanner) rawObject() []byte {
	start := s.i
	depth := 0
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			s.str()
			if s.err != nil {
				return nil
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				s.i++
				return s.b[start:s.i]
			}
		}
		s.i++
	}
	s.fail()
	return nil
}

// fastDecodeBody parses a canonical body; ok is false if it is not in the exact form.
func fastDecodeBody(b []byte, intern map[string]string) (Event, bool) {
	s := &scanner{b: b, intern: intern}
	var e Event
	var tm string
	s.object(func(k string) {
		switch k {
		case "actor":
			e.Actor = s.name()
		case "data":
			e.Data = s.rawObject()
		case "instance":
			e.Instance = s.name()
		case "prev":
			if p := s.str(); p != "" {
				h, err := cas.ParseHash(p)
				if err != nil {
					s.fail()
				}
				e.Prev = h
			}
		case "project":
			e.Project = s.name()
		case "runtime":
			e.Runtime = s.name()
		case "seq":
			e.Seq = uint64(s.int())
		case "time":
			tm = s.str()
		case "type":
			e.Type = Type(s.name())
		case "version":
			e.Version = s.str()
		default:
			s.fail()
		}
	})
	if s.err != nil || s.i != len(b) {
		return Event{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, tm)
	if err != nil {
		return Event{}, false
	}
	e.Time = t
	return e, true
}

// fastPayload decodes the payload types replay needs; ok false means "use encoding/json".
func fastPayload(t Type, data []byte) (any, bool) {
	s := &scanner{b: data}
	var out any
	switch t {
	case RuntimeBuilt, RuntimeCopied:
		var c CopiedData
		s.object(func(k string) {
			switch k {
			case "files":
				c.Files = s.int()
			case "gen_all_bundles":
				c.GenAllBundles = s.bool()
			case "host":
				c.Host = s.str()
			case "manifest":
				c.Manifest = s.hash()
			case "mode":
				c.Mode = s.str()
			case "new_bytes":
				c.NewBytes = s.int()
			case "python":
				c.Python = s.str()
			case "size":
				c.Size = s.int()
			case "tool_version":
				c.ToolVersion = s.str()
			case "workdir":
				c.Workdir = s.str()
			case "source":
				c.Source = s.str()
			case "source_actor":
				c.SourceActor = s.str()
			case "tags":
				c.Tags = s.strs()
			default:
				s.fail()
			}
		})
		if t == RuntimeBuilt {
			b := c.BuiltData
			out = &b
		} else {
			out = &c
		}
	case RuntimeTagged, RuntimeUntagged:
		var d TagsData
		s.object(func(k string) {
			if k != "tags" {
				s.fail()
				return
			}
			d.Tags = s.strs()
		})
		out = &d
	default:
		return nil, false
	}
	if s.err != nil || s.i != len(data) {
		return nil, false
	}
	return out, true
}
