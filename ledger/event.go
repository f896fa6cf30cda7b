// Package ledger is swcli's record of truth: an append-only, hash-chained log of events,
// with the projections that every view (list, info, history, tags) reads, updated in the
// same synced batch (or transaction) as the event, on one of two backends: pebble (a local
// root) or PostgreSQL (replicas). It also replays, verifies and exports the log.
//
// The ledger imports cas for hashes, and to check in verify that every version's manifest
// and chunks are stored (cas.Getter); it never logs or prints.
package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/swcli/swcli/cas"
)

// Type is an event's type.
type Type string

const (
	ProjectCreated   Type = "project.created"
	ProjectRemoved   Type = "project.removed"
	RuntimeCreated   Type = "runtime.created"
	RuntimeBuilt     Type = "runtime.built"
	RuntimeTagged    Type = "runtime.tagged"
	RuntimeUntagged  Type = "runtime.untagged"
	RuntimeRemoved   Type = "runtime.removed"
	RuntimePurged    Type = "runtime.purged"
	RuntimeRecovered Type = "runtime.recovered"
	RuntimeCopied    Type = "runtime.copied"
	// LedgerKeyed records the key that signs the ledger's checkpoints, at first use and at
	// each rotation (KeyData); it names no project.
	LedgerKeyed Type = "ledger.key"
)

// Types lists every event type.
var Types = []Type{ProjectCreated, ProjectRemoved, RuntimeCreated, RuntimeBuilt, RuntimeTagged,
	RuntimeUntagged, RuntimeRemoved, RuntimePurged, RuntimeRecovered, RuntimeCopied, LedgerKeyed}

// Event is one entry of the ledger. Seq, Prev and Hash are set by Append; Time too when zero.
type Event struct {
	Seq      uint64
	Time     time.Time // UTC
	Actor    string    // user@host, or the server's user
	Instance string    // "local", or the server's name
	Project  string
	Runtime  string
	Version  string // version id; empty for project events and whole-runtime ones
	Type     Type
	Data     json.RawMessage // the typed payload, canonical JSON (see Payload types)
	Prev     cas.Hash        // hash of the event before; zero for the first
	Hash     cas.Hash        // blake3 of Body()

	payload any // Data decoded ahead of time by replay, or nil
}

// Payloads. Field names are the canonical JSON keys; every field is always present.

// CreatedData is runtime.created's payload.
type CreatedData struct {
	Mode    string `json:"mode"`
	Python  string `json:"python"`
	Workdir string `json:"workdir"`
}

// BuiltData is runtime.built's and (embedded) runtime.copied's payload.
type BuiltData struct {
	Files         int64    `json:"files"`
	GenAllBundles bool     `json:"gen_all_bundles"`
	Host          string   `json:"host"`
	Manifest      cas.Hash `json:"manifest"`
	Mode          string   `json:"mode"`
	NewBytes      int64    `json:"new_bytes"` // stored bytes this build added
	// Origin is the id the bundle had where it was made (Starwhale's version id), when it
	// differs from the version id here: the version answers to it too. Left out when empty,
	// so events without one encode as they always did.
	Origin      string `json:"origin,omitempty"`
	Python      string `json:"python"`
	Size        int64  `json:"size"` // content bytes of the bundle
	ToolVersion string `json:"tool_version"`
	Workdir     string `json:"workdir"`
}

// TagsData is runtime.tagged's and runtime.untagged's payload.
type TagsData struct {
	Tags []string `json:"tags"`
}

// CopiedData is runtime.copied's payload.
type CopiedData struct {
	BuiltData
	Source      string   `json:"source"`       // the source version's URI
	SourceActor string   `json:"source_actor"` // who built it there
	Tags        []string `json:"tags"`         // user tags that came along
}

// KeyData is ledger.key's payload: the checkpoint key's verifier (a signed-note key,
// golang.org/x/mod/sumdb/note) and the one it replaces ("" at first).
type KeyData struct {
	Key      string `json:"key"`
	Previous string `json:"previous"`
}

// EmptyData is the payload of events that need none.
type EmptyData struct{}

// New returns an event with its payload encoded.
func New(t Type, project, runtime, version string, payload any) (Event, error) {
	data, err := canonicalOf(payload)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s payload: %w", t, err)
	}
	return Event{Project: project, Runtime: runtime, Version: version, Type: t, Data: data}, nil
}

// Decode decodes the payload into v.
func (e *Event) Decode(v any) error {
	switch p := v.(type) {
	case *BuiltData:
		if x, ok := e.payload.(*BuiltData); ok {
			*p = *x
			return nil
		}
	case *CopiedData:
		if x, ok := e.payload.(*CopiedData); ok {
			*p = *x
			return nil
		}
	case *TagsData:
		if x, ok := e.payload.(*TagsData); ok {
			*p = *x
			return nil
		}
	case *CreatedData:
		if x, ok := e.payload.(*CreatedData); ok {
			*p = *x
			return nil
		}
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %d (%s): payload: %w", e.Seq, e.Type, err)
	}
	return nil
}

// parsePayload decodes Data by type ahead of apply (replay runs it on other cores), into
// slot when the fast decoder takes it.
func (e *Event) parsePayload(intern map[string]string, slot *CopiedData) error {
	if p, ok := fastPayload(e.Type, e.Data, intern, slot); ok {
		e.payload = p
		return nil
	}
	var p any
	switch e.Type {
	case RuntimeBuilt:
		p = &BuiltData{}
	case RuntimeCopied:
		p = &CopiedData{}
	case RuntimeTagged, RuntimeUntagged:
		p = &TagsData{}
	case RuntimeCreated:
		p = &CreatedData{}
	default:
		return nil
	}
	if err := json.Unmarshal(e.Data, p); err != nil {
		return fmt.Errorf("event %d (%s): payload: %w", e.Seq, e.Type, err)
	}
	e.payload = p
	return nil
}

// Body is the event's canonical encoding, the bytes its hash covers: a JSON object with keys
// in byte order and no white space, strings with only '"', '\\' and control characters
// escaped (\b \t \n \f \r, else \u00xx) — what Python's
// json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) writes:
//
//	{"actor":…,"data":{…},"instance":…,"prev":"blake3:…"|"","project":…,"runtime":…,
//	 "seq":N,"time":"2006-01-02T15:04:05.999999999Z","type":…,"version":…}
func (e *Event) Body() []byte { return e.canonical(false) }

// canonical writes the event's fields in key order, with "hash" (between "data" and
// "instance") when withHash is set: Body, and the lines of Export.
func (e *Event) canonical(withHash bool) []byte {
	var b bytes.Buffer
	b.Grow(256 + len(e.Data))
	b.WriteString(`{"actor":`)
	writeString(&b, e.Actor)
	b.WriteString(`,"data":`)
	if len(e.Data) == 0 {
		b.WriteString("{}")
	} else {
		b.Write(e.Data)
	}
	if withHash {
		b.WriteString(`,"hash":`)
		writeString(&b, e.Hash.String())
	}
	b.WriteString(`,"instance":`)
	writeString(&b, e.Instance)
	b.WriteString(`,"prev":`)
	if e.Prev.IsZero() {
		b.WriteString(`""`)
	} else {
		writeString(&b, e.Prev.String())
	}
	b.WriteString(`,"project":`)
	writeString(&b, e.Project)
	b.WriteString(`,"runtime":`)
	writeString(&b, e.Runtime)
	b.WriteString(`,"seq":`)
	b.WriteString(strconv.FormatUint(e.Seq, 10))
	b.WriteString(`,"time":`)
	writeString(&b, e.Time.UTC().Format(time.RFC3339Nano))
	b.WriteString(`,"type":`)
	writeString(&b, string(e.Type))
	b.WriteString(`,"version":`)
	writeString(&b, e.Version)
	b.WriteByte('}')
	return b.Bytes()
}

// body is the JSON shape of Body, for decoding.
type body struct {
	Actor    string          `json:"actor"`
	Data     json.RawMessage `json:"data"`
	Instance string          `json:"instance"`
	Prev     string          `json:"prev"`
	Project  string          `json:"project"`
	Runtime  string          `json:"runtime"`
	Seq      uint64          `json:"seq"`
	Time     string          `json:"time"`
	Type     Type            `json:"type"`
	Version  string          `json:"version"`
}

// ErrBadEvent reports an event that cannot be decoded.
var ErrBadEvent = errors.New("bad event")

// DecodeBody parses an event's canonical body.
func DecodeBody(b []byte) (Event, error) {
	return decodeBody(b, nil)
}

func decodeBody(b []byte, intern map[string]string) (Event, error) {
	if e, ok := fastDecodeBody(b, intern); ok {
		return e, nil
	}
	var x body
	if err := json.Unmarshal(b, &x); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrBadEvent, err)
	}
	t, err := time.Parse(time.RFC3339Nano, x.Time)
	if err != nil {
		return Event{}, fmt.Errorf("%w: time: %v", ErrBadEvent, err)
	}
	e := Event{Seq: x.Seq, Time: t, Actor: x.Actor, Instance: x.Instance, Project: x.Project,
		Runtime: x.Runtime, Version: x.Version, Type: x.Type, Data: x.Data}
	if x.Prev != "" {
		if e.Prev, err = cas.ParseHash(x.Prev); err != nil {
			return Event{}, fmt.Errorf("%w: prev: %v", ErrBadEvent, err)
		}
	}
	return e, nil
}

// canonicalOf encodes v (a payload struct) canonically: through encoding/json, then
// rewritten with sorted keys and the canonical string escaping.
func canonicalOf(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonical(raw)
}

// Canonical rewrites a JSON document in the canonical form described at Body. Numbers must
// be integers.
func Canonical(raw []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := writeValue(&b, x); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func writeValue(b *bytes.Buffer, x any) error {
	switch v := x.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if v {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case json.Number:
		if _, err := strconv.ParseInt(string(v), 10, 64); err != nil {
			return fmt.Errorf("number %s is not an integer", v)
		}
		b.WriteString(string(v))
	case string:
		writeString(b, v)
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeValue(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			if err := writeValue(b, v[k]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("unexpected JSON value %T", x)
	}
	return nil
}

func writeString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			b.WriteByte(c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b.WriteString("\uFFFD")
			} else {
				b.WriteString(s[i : i+size])
			}
			i += size
			continue
		}
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		i++
	}
	b.WriteByte('"')
}
