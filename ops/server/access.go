package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
)

// Tenant isolation on a server. A chunk's hash is not a capability: a user reads a chunk,
// or learns that the server holds it, only if
//
//   - a version of a project the user may read uses it (the version's manifest, or one of
//     its files' chunks), or
//   - the user uploaded it (proof of possession: sending the bytes).
//
// So /chunks/missing answers "missing" for a chunk the user may not know about, even when
// the server holds it: the client sends it, the server checks it and stores nothing new
// (the bytes are there already), and from then on the user may use it. A commit may only
// name chunks the user may use. Cross-project dedup thus costs the wire bytes of one upload
// for a user who cannot read the other project; within a user's own projects (the common
// path: ml-v2 after ml-v1) answers are exact and nothing is sent twice.
//
// The membership is kept in memory: built from the ledger's versions and their manifests
// the first time the server needs it, and updated by every commit and upload. Uploads are
// also appended to ROOT/access/USER.uploads (synced before the upload is acknowledged),
// so that a copy cut short by a server restart resumes without sending again what the
// server acknowledged.
//
// Replicas (a server on PostgreSQL) share what they must: uploads are rows of
// server_uploads, inserted before the upload is acknowledged; the membership of chunks in
// projects follows the shared ledger. A hash the memory does not allow is asked about
// again after catching up with the ledger's new events, then in server_uploads: what one
// replica acknowledged or committed, every other one allows at its next request.
type access struct {
	dir      string // ROOT/access
	fileMu   sync.Mutex
	once     sync.Once
	err      error
	mu       sync.RWMutex
	projects map[cas.Hash][]string            // projects whose versions use the chunk
	uploads  map[string]map[cas.Hash]struct{} // chunks each user sent and has not committed yet

	in       *ops.Instance
	db       *pgxpool.Pool // replicas: uploads live in server_uploads
	followMu sync.Mutex
	seen     uint64            // the ledger event the membership covers (replicas)
	retry    map[followed]bool // versions followed whose manifests could not be read yet

	beforeRead func() // tests: runs before each of allowed's reads of the shared database
}

// load builds the membership from every live or removed version.
func (a *access) load(ctx context.Context, in *ops.Instance) error {
	a.once.Do(func() {
		a.projects = map[cas.Hash][]string{}
		a.uploads = map[string]map[cas.Hash]struct{}{}
		a.dir = filepath.Join(in.Root, "access")
		a.in, a.db = in, in.DB
		if a.db == nil {
			if err := a.loadUploads(); err != nil {
				a.err = err
				return
			}
		} else {
			h, err := in.Ledger.Head()
			if err != nil {
				a.err = err
				return
			}
			a.seen = h.Seq // AllVersions below covers at least this far
		}
		vs, err := in.Ledger.AllVersions()
		if err != nil {
			a.err = err
			return
		}
		a.followMu.Lock()
		for _, v := range vs {
			a.addFollowed(ctx, followed{project: v.Project, manifest: v.Manifest})
		}
		a.followMu.Unlock()
		a.err = a.compactUploads()
	})
	if a.err != nil {
		return fmt.Errorf("load chunk access: %w", a.err)
	}
	return nil
}

// addVersion records that project uses a version's manifest and chunks.
func (a *access) addVersion(project string, manifest cas.Hash, m *cas.Manifest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	add := func(h cas.Hash) {
		if ps := a.projects[h]; !slices.Contains(ps, project) {
			a.projects[h] = append(ps, project)
		}
	}
	add(manifest)
	for _, e := range m.Entries {
		for _, h := range e.Chunks {
			add(h)
		}
	}
}

// loadUploads reads every user's upload log.
func (a *access) loadUploads() error {
	ents, err := os.ReadDir(a.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		user, ok := strings.CutSuffix(e.Name(), ".uploads")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(a.dir, e.Name()))
		if err != nil {
			return err
		}
		b = b[:len(b)-len(b)%cas.HashSize] // a torn last record is dropped
		set := map[cas.Hash]struct{}{}
		for i := 0; i < len(b); i += cas.HashSize {
			set[cas.Hash(b[i:i+cas.HashSize])] = struct{}{}
		}
		a.uploads[user] = set
	}
	return nil
}

// compactUploads rewrites the upload logs without the chunks that commits made part of a
// project since: the logs hold what was sent and not yet committed.
func (a *access) compactUploads() error {
	for user, set := range a.uploads {
		var keep []cas.Hash
		for h := range set {
			if len(a.projects[h]) > 0 {
				delete(set, h)
			} else {
				keep = append(keep, h)
			}
		}
		p := filepath.Join(a.dir, user+".uploads")
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, api.EncodeHashes(keep), 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, p); err != nil {
			return err
		}
	}
	return nil
}

// addUploads records chunks a user sent, durably before it returns.
func (a *access) addUploads(ctx context.Context, user string, hs []cas.Hash) error {
	if a.db != nil {
		if _, err := a.db.Exec(ctx, `INSERT INTO server_uploads (username, hash)
			SELECT $1, h FROM unnest($2::bytea[]) AS h ON CONFLICT DO NOTHING`, user, cas.HashBytes(hs)); err != nil {
			return fmt.Errorf("record uploads of %s: %w", user, err)
		}
		return nil
	}
	a.fileMu.Lock()
	err := func() error {
		if err := os.MkdirAll(a.dir, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(a.dir, user+".uploads"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(api.EncodeHashes(hs)); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}()
	a.fileMu.Unlock()
	if err != nil {
		return fmt.Errorf("record uploads of %s: %w", user, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.uploads[user]
	if set == nil {
		set = map[cas.Hash]struct{}{}
		a.uploads[user] = set
	}
	for _, h := range hs {
		set[h] = struct{}{}
	}
	return nil
}

// forgetUploads drops a user's uploads that a commit has made part of a project.
func (a *access) forgetUploads(ctx context.Context, user string, hs []cas.Hash) error {
	if a.db != nil {
		_, err := a.db.Exec(ctx, "DELETE FROM server_uploads WHERE username = $1 AND hash = ANY($2)", user, cas.HashBytes(hs))
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	set := a.uploads[user]
	for _, h := range hs {
		delete(set, h)
	}
	return nil
}

// follow adds the versions the shared ledger has gained since the membership was built
// (committed through other replicas). A version whose manifest cannot be read for a
// reason that may pass (the bucket or the database did not answer) is tried again at
// every follow until it is read; one that is not there or is no manifest is left out, as
// in load. Skipped for good, a moment's failure to read one would have refused its
// chunks on this replica until it restarted, "run the copy again" notwithstanding.
func (a *access) follow(ctx context.Context) error {
	a.followMu.Lock()
	defer a.followMu.Unlock()
	retry := a.retry
	a.retry = nil
	for v := range retry {
		a.addFollowed(ctx, v)
	}
	h, err := a.in.Ledger.Head()
	if err != nil || h.Seq <= a.seen {
		return err
	}
	err = a.in.Ledger.Log(ctx, ledger.Filter{FromSeq: a.seen + 1, Types: []ledger.Type{ledger.RuntimeBuilt, ledger.RuntimeCopied}},
		func(e ledger.Event) error {
			var d ledger.BuiltData
			if e.Decode(&d) != nil {
				return nil
			}
			a.addFollowed(ctx, followed{project: e.Project, manifest: d.Manifest})
			return nil
		})
	if err == nil {
		a.seen = h.Seq
	}
	return err
}

// followed is a version follow adds: its project and manifest.
type followed struct {
	project  string
	manifest cas.Hash
}

// addFollowed adds a version's chunks to the membership, or keeps it in a.retry when its
// manifest could not be read for a reason that may pass (replicas read it again at their
// next follow); a.followMu is held.
func (a *access) addFollowed(ctx context.Context, v followed) {
	m, err := cas.LoadManifest(ctx, a.in.Chunks, v.manifest)
	switch {
	case err == nil:
		a.addVersion(v.project, v.manifest, m)
	case errors.Is(err, cas.ErrNotFound), errors.Is(err, cas.ErrCorrupt), errors.Is(err, cas.ErrBadManifest),
		errors.Is(err, cas.ErrNoObject):
		// not there, or its pack lost: fsck's and ledger verify's to report; nothing of
		// it is served
	default:
		if a.retry == nil {
			a.retry = map[followed]bool{}
		}
		a.retry[v] = true
	}
}

// uploaded returns which of hs user has sent and not committed, by server_uploads.
func (a *access) uploaded(ctx context.Context, user string, hs []cas.Hash) (map[cas.Hash]bool, error) {
	out, err := ops.QueryHashes(ctx, a.in, "SELECT hash FROM server_uploads WHERE username = $1 AND hash = ANY($2)", user, cas.HashBytes(hs))
	if err != nil {
		return nil, fmt.Errorf("read uploads of %s: %w", user, err)
	}
	return out, nil
}

// allowed returns, for each hash, whether u may use it; readable says which projects u
// may read.
//
// Replicas ask the shared database about what this process does not allow: first the
// uploads, then the ledger. The order matters: a commit appends its versions to the
// ledger before it forgets the uploads they use (server.commit), so a chunk whose upload
// row is gone when the first is read is in the ledger when the second is. Read the other
// way round, a commit through another replica between the two reads was missed by both,
// and a copy racing it to the same version was told "manifest not there yet".
func (a *access) allowed(ctx context.Context, u principal, readable func(string) bool, hs []cas.Hash) ([]bool, error) {
	out := a.allowedNow(u, readable, hs)
	if a.db == nil || !slices.Contains(out, false) {
		return out, nil
	}
	var ask []cas.Hash
	for i, ok := range out {
		if !ok {
			ask = append(ask, hs[i])
		}
	}
	a.reading()
	up, err := a.uploaded(ctx, u.name, ask)
	if err != nil {
		return nil, err
	}
	for i, h := range hs {
		out[i] = out[i] || up[h]
	}
	if !slices.Contains(out, false) {
		return out, nil
	}
	a.reading()
	if err := a.follow(ctx); err != nil {
		return nil, err
	}
	for i, ok := range a.allowedNow(u, readable, hs) {
		out[i] = out[i] || ok
	}
	return out, nil
}

// reading runs the tests' hook, if set, before a read of the shared database.
func (a *access) reading() {
	if a.beforeRead != nil {
		a.beforeRead()
	}
}

// allowedNow is allowed by what this process knows.
func (a *access) allowedNow(u principal, readable func(string) bool, hs []cas.Hash) []bool {
	out := make([]bool, len(hs))
	a.mu.RLock()
	defer a.mu.RUnlock()
	mine := a.uploads[u.name]
	for i, h := range hs {
		if u.admin {
			out[i] = true
			continue
		}
		if _, ok := mine[h]; ok {
			out[i] = true
			continue
		}
		for _, p := range a.projects[h] {
			if readable(p) {
				out[i] = true
				break
			}
		}
	}
	return out
}

// pending reports whether some user sent h and has not committed a version using it yet.
func (a *access) pending(h cas.Hash) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for _, set := range a.uploads {
		if _, ok := set[h]; ok {
			return true
		}
	}
	return false
}
