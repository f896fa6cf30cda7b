package api

import (
	"context"
	"net/http"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/errs"
	"github.com/swcli/swcli/ops/formats"
)

// Endpoint is an instance as the runtime commands and copy see it: the standalone one
// (LocalEndpoint) or a server reached over HTTP (Remote). The server's handlers call a
// LocalEndpoint.
type Endpoint interface {
	Name() string // local, or cloud://ALIAS

	Versions(ctx context.Context, project, runtime string, opt ledger.ListOptions) ([]*ledger.Version, int, error)
	History(ctx context.Context, project, runtime string) ([]*ledger.Version, error)
	Resolve(ctx context.Context, project, runtime, ref string) (*ledger.Version, error)
	Info(ctx context.Context, project, runtime, ref string) (*Info, error)
	Tag(ctx context.Context, project, runtime, ref string, tags []string, remove, quiet, force bool) (*TagResult, error)
	RemoveTargets(ctx context.Context, project, runtime, ref string, purge bool) ([]*ledger.Version, error)
	Remove(ctx context.Context, project, runtime, ref string, purge bool) ([]*ledger.Version, error)
	Recover(ctx context.Context, project, runtime, ref string) ([]*ledger.Version, error)

	// Missing answers which chunks the endpoint lacks, sorted.
	Missing(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error)
	// GetChunks streams chunks as stored: only those of hs, each once (a group of several
	// of them counts for each); fn verifies them (PutChunks does).
	GetChunks(ctx context.Context, hs []cas.Hash, fn func(Chunk) error) error
	// PutChunks verifies every chunk, then stores them durably, or stores none.
	PutChunks(ctx context.Context, cs []Chunk) error
	// Commit makes versions appear in a project, each once its manifest and every chunk
	// it uses are present: one runtime.copied event each, in one batch.
	Commit(ctx context.Context, project string, vs []CommitVersion) error

	Close() error
}

// Chunk is a chunk as stored, with its name.
type Chunk struct {
	Hash cas.Hash
	Raw  cas.Raw
	// Group is set when a group was verified already (a download checks what it is sent
	// as it arrives; its content is kept only when asked for); PutChunks then does not
	// decompress it again.
	Group *cas.Group
}

// MaxBatchDecoded bounds what the chunks of one batch may decode to: what one PutChunks
// may hold in memory and spend CPU on, whatever their stored size.
const MaxBatchDecoded = 128 << 20

// CommitVersion is what a copy commits at the destination.
type CommitVersion struct {
	Runtime     string   `json:"runtime"`
	Version     string   `json:"version"`
	Manifest    cas.Hash `json:"manifest"`
	Size        int64    `json:"size"`
	Files       int64    `json:"files"`
	Python      string   `json:"python"`
	Mode        string   `json:"mode"`
	Source      string   `json:"source"`
	SourceActor string   `json:"source_actor"`
	Tags        []string `json:"tags"`
	Origin      string   `json:"origin,omitempty"` // the id it had where it was made
}

// VersionDTO is a version as JSON: the CLI's -o json output and the server's answers.
type VersionDTO struct {
	Project  string    `json:"project"`
	Runtime  string    `json:"runtime"`
	Version  string    `json:"version"`
	Status   string    `json:"status"`
	Tags     []string  `json:"tags"`
	UserTags []string  `json:"user_tags"`
	VN       int       `json:"vn"`
	Latest   bool      `json:"latest"`
	Size     int64     `json:"size"`
	Files    int64     `json:"files"`
	NewBytes int64     `json:"new_bytes"`
	Python   string    `json:"python"`
	Mode     string    `json:"mode"`
	Manifest cas.Hash  `json:"manifest"`
	Created  time.Time `json:"created"`
	Updated  time.Time `json:"updated"`
	Actor    string    `json:"actor"`
	Source   string    `json:"source,omitempty"`
	Origin   string    `json:"origin,omitempty"`
	// Event is the ledger event that made the version (its sequence number; the tree's
	// record Event-1): 'swcli ledger prove EVENT' proves it.
	Event uint64 `json:"event"`
}

// DTO converts a version for JSON.
func DTO(v *ledger.Version) VersionDTO {
	tags := v.AllTags()
	if tags == nil {
		tags = []string{}
	}
	return VersionDTO{Project: v.Project, Runtime: v.Runtime, Version: v.ID, Status: v.Status.String(),
		Tags: tags, UserTags: formats.NonNil(v.Tags), VN: v.VN, Latest: v.Latest, Size: v.Size,
		Files: v.Files, NewBytes: v.NewBytes, Python: v.Python, Mode: v.Mode, Manifest: v.Manifest,
		Created: v.Created, Updated: v.Updated, Actor: v.Actor, Source: v.Source, Origin: v.Origin, Event: v.Seq}
}

// DTOs converts versions for JSON.
func DTOs(vs []*ledger.Version) []VersionDTO {
	out := make([]VersionDTO, 0, len(vs))
	for _, v := range vs {
		out = append(out, DTO(v))
	}
	return out
}

// FromDTO converts back.
func FromDTO(d VersionDTO) *ledger.Version {
	status := map[string]ledger.Status{"live": ledger.StatusLive, "removed": ledger.StatusRemoved, "purged": ledger.StatusPurged}[d.Status]
	tags := d.UserTags
	if len(tags) == 0 {
		tags = nil
	}
	return &ledger.Version{Project: d.Project, Runtime: d.Runtime, ID: d.Version, Status: status,
		Created: d.Created, Updated: d.Updated, Manifest: d.Manifest, Size: d.Size, NewBytes: d.NewBytes,
		Files: d.Files, VN: d.VN, Tags: tags, Python: d.Python, Mode: d.Mode, Actor: d.Actor,
		Source: d.Source, Origin: d.Origin, Latest: d.Latest, Seq: d.Event}
}

// TagResult says which tags changed and which were skipped (with -q).
type TagResult struct {
	Changed, Skipped []string
}

// Info is a version's manifest summary.
type Info struct {
	Version  *ledger.Version
	Totals   cas.Totals
	Lock     string // the lock file's content
	YAML     string // runtime.yaml as built
	Manifest *cas.Manifest
}

// Commands are runtime.yaml's commands, in order (restore runs them only when allowed).
func (i *Info) Commands() []string {
	ry, err := formats.ParseRuntimeYAML("runtime.yaml", []byte(i.YAML), "")
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range ry.Dependencies {
		out = append(out, d.Commands...)
	}
	return out
}

// InfoDTO is a version's info as JSON.
type InfoDTO struct {
	Version VersionDTO `json:"version"`
	Files   int        `json:"files"`
	Dirs    int        `json:"dirs"`
	Links   int        `json:"links"`
	Size    int64      `json:"size"`
	Lock    string     `json:"lock"`
	YAML    string     `json:"runtime_yaml"`
}

type TagRequest struct {
	Version string   `json:"version"`
	Tags    []string `json:"tags"`
	Remove  bool     `json:"remove"`
	Quiet   bool     `json:"quiet"`
	Force   bool     `json:"force"`
}

type RemoveRequest struct {
	Version string `json:"version"`
	Purge   bool   `json:"purge"`
	DryRun  bool   `json:"dry_run"`
}

// ErrorBody is the JSON of an error answer.
type ErrorBody struct {
	Error string `json:"error"`
	Hint  string `json:"hint,omitempty"`
	Kind  string `json:"kind"`
}

// KindStatus says how each kind of error travels: its HTTP status beside its name
// (Kind.String) in the JSON answer. The client maps the status back (ops/client).
var KindStatus = map[errs.Kind]int{
	errs.KindUsage: http.StatusBadRequest, errs.KindInvalid: http.StatusBadRequest,
	errs.KindNotFound: http.StatusNotFound, errs.KindExists: http.StatusConflict,
	errs.KindCorrupt: http.StatusUnprocessableEntity, errs.KindTooLarge: http.StatusRequestEntityTooLarge,
	errs.KindAuth: http.StatusUnauthorized, errs.KindForbidden: http.StatusForbidden,
	errs.KindBusy: http.StatusServiceUnavailable, errs.KindTooMany: http.StatusTooManyRequests,
}

// BatchBytes is the size of one upload of chunks (copy, RemoteStore).
const BatchBytes = 16 << 20

// Consistency is a proof that the tree of From events is a prefix of the tree of To.
type Consistency struct {
	From  uint64   `json:"from"`
	To    uint64   `json:"to"`
	Proof []string `json:"proof"` // base64 hashes
}

// Pages of versions: what a server answers when the client gives no size, and at most.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)
