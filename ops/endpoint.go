package ops

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"unicode/utf8"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// Local is the Endpoint of an open standalone instance.
type LocalEndpoint struct{ In *Instance }

var _ api.Endpoint = LocalEndpoint{}

func (l LocalEndpoint) Name() string { return l.In.Name }

func (l LocalEndpoint) project(p string) error {
	if _, err := l.In.Ledger.Project(p); err != nil {
		return Errorf(KindNotFound, "'swcli project list' shows the projects", "no project %s on %s", p, l.In.Name)
	}
	return nil
}

func (l LocalEndpoint) runtime(p, r string) error {
	if err := l.project(p); err != nil {
		return err
	}
	if _, err := l.In.Ledger.Runtime(p, r); err != nil {
		return Errorf(KindNotFound, "'swcli runtime list' shows the runtimes", "no runtime %s in project %s", r, p)
	}
	return nil
}

func (l LocalEndpoint) Versions(ctx context.Context, project, runtime string, opt ledger.ListOptions) ([]*ledger.Version, int, error) {
	if err := l.project(project); err != nil {
		return nil, 0, err
	}
	if runtime != "" && !opt.MissingOK {
		if err := l.runtime(project, runtime); err != nil {
			return nil, 0, err
		}
	}
	vs, n, err := l.In.Ledger.Versions(project, runtime, opt)
	return vs, n, LedgerErr(err)
}

func (l LocalEndpoint) History(ctx context.Context, project, runtime string) ([]*ledger.Version, error) {
	if err := l.runtime(project, runtime); err != nil {
		return nil, err
	}
	vs, err := l.In.Ledger.History(project, runtime)
	return vs, LedgerErr(err)
}

func (l LocalEndpoint) Resolve(ctx context.Context, project, runtime, ref string) (*ledger.Version, error) {
	if err := l.project(project); err != nil {
		return nil, err
	}
	return l.In.Resolve(project, runtime, ref)
}

func (l LocalEndpoint) Info(ctx context.Context, project, runtime, ref string) (*api.Info, error) {
	if err := l.project(project); err != nil {
		return nil, err
	}
	return versionInfo(ctx, l.In, project, runtime, ref)
}

func (l LocalEndpoint) Tag(ctx context.Context, project, runtime, ref string, tags []string, remove, quiet, force bool) (*api.TagResult, error) {
	return tagVersion(ctx, l.In, project, runtime, ref, tags, remove, quiet, force)
}

func (l LocalEndpoint) RemoveTargets(ctx context.Context, project, runtime, ref string, purge bool) ([]*ledger.Version, error) {
	return removeTargets(l.In, project, runtime, ref, purge)
}

func (l LocalEndpoint) Remove(ctx context.Context, project, runtime, ref string, purge bool) ([]*ledger.Version, error) {
	return removeVersions(ctx, l.In, project, runtime, ref, purge)
}

func (l LocalEndpoint) Recover(ctx context.Context, project, runtime, ref string) ([]*ledger.Version, error) {
	return recoverVersions(ctx, l.In, project, runtime, ref)
}

func (l LocalEndpoint) Missing(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error) {
	return l.In.Chunks.Missing(ctx, hs)
}

// GetChunks sends what hs names as it should travel: a group whose chunks hs names all
// goes whole (cas.Local.Transfer). hs must not repeat a hash.
func (l LocalEndpoint) GetChunks(ctx context.Context, hs []cas.Hash, fn func(api.Chunk) error) error {
	return l.In.Chunks.Transfer(ctx, hs, func(_ int, h cas.Hash, r cas.Raw) error { return fn(api.Chunk{Hash: h, Raw: r}) })
}

// PutChunks verifies the whole batch first (every chunk of a group too), so that a bad
// chunk stores nothing, then makes it durable.
func (l LocalEndpoint) PutChunks(ctx context.Context, cs []api.Chunk) error {
	_, err := l.PutChunksHeld(ctx, cs)
	return err
}

// PutChunksHeld is PutChunks that also returns the hashes of the chunks the batch held (a
// group's chunks one by one): what a server records as the uploader's.
func (l LocalEndpoint) PutChunksHeld(ctx context.Context, cs []api.Chunk) ([]cas.Hash, error) {
	var declared int64
	for _, c := range cs {
		if c.Raw.Len < 0 || c.Raw.Len > cas.MaxBlob {
			return nil, &Error{Kind: KindCorrupt, Err: fmt.Errorf("batch rejected, nothing stored: chunk %s declares %d bytes", c.Hash, c.Raw.Len)}
		}
		if c.Group == nil {
			declared += c.Raw.Len
		}
	}
	if declared > api.MaxBatchDecoded {
		return nil, &Error{Kind: KindTooLarge, Err: fmt.Errorf("batch rejected, nothing stored: its chunks decode to %d bytes, over the %d-byte limit", declared, api.MaxBatchDecoded),
			Hint: "send smaller batches"}
	}
	var scratch, content []byte
	groups := make([]*cas.Group, len(cs))
	for i, c := range cs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var err error
		if c.Group != nil {
			groups[i] = c.Group
		} else if c.Raw.Enc == cas.EncGroup {
			groups[i], content, err = cas.CheckGroup(c.Hash, c.Raw, content)
		} else {
			var out []byte
			out, err = cas.Decode(c.Hash, c.Raw, scratch[:0])
			if err == nil && c.Raw.Enc != cas.EncRaw { // a raw chunk decodes to its own bytes: never reuse those
				scratch = out
			}
		}
		if err != nil {
			return nil, &Error{Kind: KindCorrupt, Err: fmt.Errorf("batch rejected, nothing stored: %w", err)}
		}
	}
	put := l.In.Chunks.NewBatch()
	var stored []cas.Hash
	for i, c := range cs {
		var err error
		if groups[i] != nil {
			_, err = put.PutGroup(ctx, groups[i])
			stored = append(stored, groups[i].Chunks()...)
		} else {
			_, err = put.PutEncoded(ctx, c.Hash, c.Raw)
			stored = append(stored, c.Hash)
		}
		if err != nil {
			return nil, err
		}
	}
	return stored, put.Flush(ctx)
}

func (l LocalEndpoint) Commit(ctx context.Context, project string, vs []api.CommitVersion) error {
	return l.CommitLoaded(ctx, project, vs, nil)
}

// CommitLoaded is Commit with the manifests the caller has loaded already (a server,
// which checked them for access).
func (l LocalEndpoint) CommitLoaded(ctx context.Context, project string, vs []api.CommitVersion, loaded map[cas.Hash]*cas.Manifest) error {
	if err := l.project(project); err != nil {
		return err
	}
	if len(vs) > MaxCommitVersions {
		return Errorf(KindTooLarge, "copy fewer versions at once", "commit of %d versions: %d at most", len(vs), MaxCommitVersions)
	}
	// Each manifest is loaded, checked and kept once per commit, however many versions name
	// it, and the entries of all the distinct manifests are bounded: the CPU of one commit
	// is bounded by what it may claim, not by how often it repeats a claim.
	type checked struct {
		m       *cas.Manifest
		py      string
		bundled bool
	}
	seen := map[cas.Hash]*checked{}
	entries := 0
	var evs []ledger.Event
	for _, c := range vs {
		c.Runtime = NormalizeName(c.Runtime)
		if !ledger.ValidName(c.Runtime) {
			return Errorf(KindUsage, "", "commit: invalid runtime name %q", Truncate(c.Runtime))
		}
		if VersionID(c.Manifest) != c.Version {
			return Errorf(KindUsage, "", "commit %s: version id does not match manifest %s", Truncate(c.Version), c.Manifest)
		}
		ck := seen[c.Manifest]
		if ck == nil {
			m, ok := loaded[c.Manifest]
			if !ok {
				var err error
				if m, err = LoadCommitManifest(ctx, l.In.Chunks, c); err != nil {
					return err
				}
			}
			if entries += len(m.Entries); entries > MaxCommitEntries {
				return Errorf(KindTooLarge, "copy fewer versions at once", "commit: its manifests hold over %d entries", MaxCommitEntries)
			}
			missing, err := l.In.Chunks.Keep(ctx, append(m.Chunks(), c.Manifest)) // revives what a gc condemned
			if err != nil {
				return err
			}
			if len(missing) > 0 {
				return Errorf(KindExists, "run the copy again: it sends what is missing", "commit %s/%s: %d chunks not there yet", c.Runtime, c.Version, len(missing))
			}
			ck = &checked{m: m}
			ck.py, ck.bundled = bundledPython(ctx, l.In.Chunks, m)
			seen[c.Manifest] = ck
		}
		m := ck.m
		d, err := deriveCommit(m, c, ck.py, ck.bundled)
		if err != nil {
			return err
		}
		e, err := ledger.New(ledger.RuntimeCopied, project, c.Runtime, c.Version, ledger.CopiedData{
			BuiltData: ledger.BuiltData{Files: d.Files, Manifest: c.Manifest, Mode: d.Mode, Origin: d.Origin, Python: d.Python, Size: d.Size, ToolVersion: l.In.ToolVersion},
			Source:    d.Source, SourceActor: d.SourceActor, Tags: formats.NonNil(c.Tags)})
		if err != nil {
			return err
		}
		e.Actor, e.Instance = l.In.Actor, l.In.Name
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return nil
	}
	_, err := l.In.Ledger.Append(ctx, evs...)
	return LedgerErr(err)
}

func (l LocalEndpoint) Close() error { return l.In.Close() }

// LoadCommitManifest loads the manifest a commit names: one not stored yet is "run the copy
// again" (exists), one that is no manifest is the client's fault (invalid).
func LoadCommitManifest(ctx context.Context, st cas.Getter, c api.CommitVersion) (*cas.Manifest, error) {
	m, err := cas.LoadManifest(ctx, st, c.Manifest)
	if errors.Is(err, cas.ErrNotFound) {
		return nil, Errorf(KindExists, "run the copy again: it sends what is missing", "commit %s/%s: manifest not there yet", c.Runtime, c.Version)
	} else if err != nil {
		return nil, Errorf(KindInvalid, "", "commit %s/%s: manifest %s is not a manifest: %v", c.Runtime, c.Version, c.Manifest, err)
	}
	return m, nil
}

// Limits on what a commit may claim.
const (
	MaxCommitVersions = 10000   // versions one commit makes
	MaxCommitEntries  = 4 << 20 // entries of the distinct manifests one commit names
	MaxTags           = 64      // user tags one version carries
	MaxTextField      = 256     // bytes of a free-text field (source, actor)
)

// deriveCommit is what a commit records: sizes and file counts from the manifest, the
// python version from the bundled venv when there is one, and only checked values from
// the client (mode, python, source, tags), never its word on anything it can prove.
func deriveCommit(m *cas.Manifest, c api.CommitVersion, py string, bundled bool) (api.CommitVersion, error) {
	t := m.Totals()
	d := c
	d.Size, d.Files = t.Size, int64(t.Files)
	bad := func(field, why string) error {
		return Errorf(KindUsage, "", "commit %s/%s: %s %s", c.Runtime, c.Version, field, why)
	}
	if d.Mode != "" && d.Mode != "venv" && d.Mode != "conda" {
		return d, bad("mode", fmt.Sprintf("%q is neither venv nor conda", Truncate(d.Mode)))
	}
	if bundled {
		d.Python = py
	} else if d.Python != "" && !pythonVersionRE.MatchString(d.Python) {
		return d, bad("python", fmt.Sprintf("%q is not a version", Truncate(d.Python)))
	}
	for field, v := range map[string]string{"source": d.Source, "source_actor": d.SourceActor} {
		if err := CheckText(v); err != nil {
			return d, bad(field, err.Error())
		}
	}
	if d.Origin != "" {
		if err := ledger.CheckOrigin(d.Origin, d.Version); err != nil {
			return d, bad("origin", fmt.Sprintf("%q is not an id", Truncate(d.Origin)))
		}
	}
	if len(d.Tags) > MaxTags {
		return d, bad("tags", fmt.Sprintf("are %d; a version carries %d at most", len(d.Tags), MaxTags))
	}
	return d, nil
}

var pythonVersionRE = regexp.MustCompile(`^3\.[0-9]{1,2}(\.[0-9]{1,3})?$`)

// CheckText refuses free text that is long, or holds control characters (ANSI escapes
// among them) or markup.
func CheckText(s string) error {
	if len(s) > MaxTextField {
		return fmt.Errorf("is %d bytes; %d at most", len(s), MaxTextField)
	}
	if !utf8.ValidString(s) {
		return errors.New("is not UTF-8")
	}
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == '<' || r == '>' || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("holds %U, which is not allowed", r)
		}
	}
	return nil
}

func Truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// bundledPython reads the python version of a bundled venv (export/venv/pyvenv.cfg).
func bundledPython(ctx context.Context, st cas.Getter, m *cas.Manifest) (string, bool) {
	for _, e := range m.Entries {
		if e.Path != "export/venv/pyvenv.cfg" || e.Kind != cas.KindFile || e.Size > 64<<10 {
			continue
		}
		b, err := ReadEntry(ctx, st, e)
		if err != nil {
			return "", false
		}
		if mm := formats.PyvenvVersionRE.FindSubmatch(b); mm != nil {
			return string(mm[1]), true
		}
	}
	return "", false
}
