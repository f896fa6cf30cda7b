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

// name reads a string that repeats across events, interned: a name seen before costs no
// allocation.
func (s *scanner) name() string {
	if s.intern == nil || s.err != nil {
		return s.str()
	}
	if s.i < len(s.b) && s.b[s.i] == '"' {
		end := s.i + 1
		for end < len(s.b) && s.b[end] != '"' && s.b[end] != '\\' && s.b[end] >= 0x20 {
			end++
		}
		if end < len(s.b) && s.b[end] == '"' {
			if x, ok := s.intern[string(s.b[s.i+1:end])]; ok {
				s.i = end + 1
				return x
			}
		}
	}
	v := s.str()
	if s.err == nil && len(s.intern) < 1<<16 {
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

// skipString moves past a JSON string without decoding it.
func (s *scanner) skipString() {
	s.expect('"')
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case '"':
			s.i++
			return
		case '\\':
			s.i += 2
			continue
		}
		s.i++
	}
	s.fail()
}

// rawString returns a string's bytes when it has no escapes (hashes, times), without
// allocating.
func (s *scanner) rawString() []byte {
	s.expect('"')
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c == '"' {
			s.i++
			return s.b[start : s.i-1]
		}
		if c == '\\' || c < 0x20 {
			s.fail()
			return nil
		}
		s.i++
	}
	s.fail()
	return nil
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
	return parseHashBytes(s, s.rawString())
}

func parseHashBytes(s *scanner, b []byte) cas.Hash {
	var h cas.Hash
	const prefix = "blake3:"
	if len(b) != len(prefix)+2*cas.HashSize || string(b[:len(prefix)]) != prefix {
		s.fail()
		return h
	}
	b = b[len(prefix):]
	for i := range h {
		hi, lo := unhex(b[2*i]), unhex(b[2*i+1])
		if hi > 15 || lo > 15 {
			s.fail()
			return h
		}
		h[i] = hi<<4 | lo
	}
	return h
}

// unhexTable maps a lower-case hex digit to its value and every other byte to 255.
var unhexTable = func() (t [256]byte) {
	for i := range t {
		t[i] = 255
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c-'a') + 10
	}
	return t
}()

func unhex(c byte) byte { return unhexTable[c] }

// parseTime reads the canonical time form, YYYY-MM-DDTHH:MM:SS[.fraction]Z.
func parseTime(b []byte) (time.Time, bool) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' || b[len(b)-1] != 'Z' {
		return time.Time{}, false
	}
	num := func(x []byte) int {
		n := 0
		for _, c := range x {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, mo, d, h, mi, sec := num(b[0:4]), num(b[5:7]), num(b[8:10]), num(b[11:13]), num(b[14:16]), num(b[17:19])
	if y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return time.Time{}, false
	}
	nanos := 0
	if frac := b[19 : len(b)-1]; len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return time.Time{}, false
		}
		n := num(frac[1:])
		if n < 0 {
			return time.Time{}, false
		}
		for i := len(frac) - 1; i < 9; i++ {
			n *= 10
		}
		nanos = n
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, nanos, time.UTC)
	if t.Day() != d {
		return time.Time{}, false
	}
	return t, true
}

// object calls fn for each key; fn must consume the value. Keys are passed as the bytes
// they are stored as (canonical keys have no escapes; one with an escape makes the fast
// path fail): a million events would otherwise allocate ten million key strings.
func (s *scanner) object(fn func(key []byte)) {
	s.expect('{')
	first := true
	for s.err == nil && s.peek() != '}' {
		if !first {
			s.expect(',')
		}
		first = false
		k := s.rawString()
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
			s.skipString()
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
	var tm []byte
	s.object(func(k []byte) {
		switch string(k) {
		case "actor":
			e.Actor = s.name()
		case "data":
			e.Data = s.rawObject()
		case "instance":
			e.Instance = s.name()
		case "prev":
			if p := s.rawString(); len(p) > 0 {
				e.Prev = parseHashBytes(s, p)
			}
		case "project":
			e.Project = s.name()
		case "runtime":
			e.Runtime = s.name()
		case "seq":
			e.Seq = uint64(s.int())
		case "time":
			tm = s.rawString()
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
	t, ok := parseTime(tm)
	if !ok {
		return Event{}, false
	}
	e.Time = t
	return e, true
}

// fastPayload decodes the payload types replay needs, leaving out the fields apply does not
// read (host, tool_version, workdir); ok false means "use encoding/json".
func fastPayload(t Type, data []byte, intern map[string]string, c *CopiedData) (any, bool) {
	s := &scanner{b: data, intern: intern}
	var out any
	switch t {
	case RuntimeBuilt, RuntimeCopied:
		*c = CopiedData{}
		s.object(func(k []byte) {
			switch string(k) {
			case "files":
				c.Files = s.int()
			case "gen_all_bundles":
				c.GenAllBundles = s.bool()
			case "host", "tool_version", "workdir":
				s.skipString() // apply does not read them
			case "manifest":
				c.Manifest = s.hash()
			case "mode":
				c.Mode = s.name()
			case "new_bytes":
				c.NewBytes = s.int()
			case "origin":
				c.Origin = s.str()
			case "python":
				c.Python = s.name()
			case "size":
				c.Size = s.int()
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
			out = &c.BuiltData
		} else {
			out = c
		}
	case RuntimeTagged, RuntimeUntagged:
		var d TagsData
		s.object(func(k []byte) {
			if string(k) != "tags" {
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
