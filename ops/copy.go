package ops

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/formats"
)

// CopyRequest is `swcli runtime copy`.
type CopyRequest struct {
	Src        api.Endpoint
	SrcProject string
	SrcURI     RuntimeURI // Name "" copies the whole project
	Dst        api.Endpoint
	DstProject string
	DstName    string       // the runtime's name at the destination (a rename; one runtime only)
	IgnoreTags bool         // leave the user tags behind (Starwhale's --ignore-tag)
	Force      bool         // copy versions the destination has already
	Progress   cas.Progress // bytes sent
	// Step, if set, hears each step as it starts ("listing …", "checking …", "sending …"),
	// so that a copy shows what it does before the first chunk moves.
	Step       func(string)
	BatchBytes int // default 16 MiB per request
	InFlight   int // default 4 requests at once
}

// CopyResult counts what a copy did.
type CopyResult struct {
	Versions   []string // copied
	Skipped    []string // at the destination already
	Files      int64    // files in the copied versions
	Bytes      int64    // their content bytes
	Chunks     int      // chunks they use
	SentChunks int      // chunks that travelled
	SentBytes  int64    // stored bytes that travelled
}

// allVersions lists every live version of a runtime (of the project when runtime is "")
// at ep, page by page: a server answers a page at most api.MaxPageSize long, api.DefaultPageSize
// when asked for all. With missingOK a runtime ep lacks has none.
func allVersions(ctx context.Context, ep api.Endpoint, project, runtime string, missingOK bool) ([]*ledger.Version, error) {
	var out []*ledger.Version
	for page := 1; ; page++ {
		vs, total, err := ep.Versions(ctx, project, runtime, ledger.ListOptions{Page: page, Size: api.MaxPageSize, MissingOK: missingOK})
		if err != nil {
			return nil, err
		}
		out = append(out, vs...)
		if len(vs) == 0 || len(out) >= total {
			return out, nil
		}
	}
}

// Copy copies versions from one endpoint to another, sending only the chunks the
// destination lacks: one request lists what the destination has, one asks which chunks it
// lacks, the missing chunks travel as stored in large batches with several in flight, and
// one request commits the versions once everything is durable. Re-running an interrupted
// copy sends only what did not arrive.
func Copy(ctx context.Context, req CopyRequest) (*CopyResult, error) {
	if req.BatchBytes <= 0 {
		req.BatchBytes = api.BatchBytes
	}
	if req.InFlight <= 0 {
		req.InFlight = 4
	}
	step := func(format string, args ...any) {
		if req.Step != nil {
			req.Step(fmt.Sprintf(format, args...))
		}
	}
	step("finding %s on %s", req.SrcURI, req.Src.Name())
	vs, err := copySources(ctx, req.Src, req.SrcProject, req.SrcURI)
	if err != nil {
		return nil, err
	}
	if req.DstName != "" {
		if !ledger.ValidName(req.DstName) {
			return nil, Errorf(KindUsage, "", "invalid runtime name %q at the destination", req.DstName)
		}
		for _, v := range vs {
			if v.Runtime != vs[0].Runtime {
				return nil, Errorf(KindUsage, "copy one runtime at a time to rename it", "a destination runtime name needs a source of one runtime; %s has several", req.SrcURI)
			}
		}
	}
	dstName := func(v *ledger.Version) string {
		if req.DstName != "" {
			return req.DstName
		}
		return v.Runtime
	}
	// 1. What the destination has of the runtimes copied (one listing each: a copy of one
	// runtime into a project of thousands lists that runtime, not the project).
	step("listing what %s has", req.Dst.Name())
	have := map[string]bool{}
	listed := map[string]bool{}
	for _, v := range vs {
		name := dstName(v)
		if listed[name] {
			continue
		}
		listed[name] = true
		dvs, err := allVersions(ctx, req.Dst, req.DstProject, name, true)
		if err != nil {
			return nil, err
		}
		for _, v := range dvs {
			have[v.Runtime+"/"+v.ID] = true
		}
	}
	res := &CopyResult{}
	var todo []*ledger.Version
	for _, v := range vs {
		if have[dstName(v)+"/"+v.ID] && !req.Force {
			res.Skipped = append(res.Skipped, v.ID)
			continue
		}
		todo = append(todo, v)
	}
	if len(todo) == 0 {
		return res, nil
	}
	// 2. The manifests, from the source (a remote one sends those this side lacks).
	step("reading %s", counted(len(todo), "manifest"))
	manifests, err := loadManifests(ctx, req.Src, todo)
	if err != nil {
		return nil, err
	}
	need := map[cas.Hash]bool{}
	var all []cas.Hash
	for _, v := range todo {
		m := manifests[v.Manifest]
		for _, h := range append([]cas.Hash{v.Manifest}, m.Chunks()...) {
			if !need[h] {
				need[h] = true
				all = append(all, h)
			}
		}
		res.Files += int64(m.Totals().Files)
		res.Bytes += v.Size
	}
	res.Chunks = len(all)
	// 3. What the destination lacks, in batches of hashes.
	step("checking which of %s %s lacks", counted(len(all), "chunk"), req.Dst.Name())
	var missing []cas.Hash
	for start := 0; start < len(all); start += 500_000 {
		m, err := req.Dst.Missing(ctx, all[start:min(start+500_000, len(all))])
		if err != nil {
			return nil, err
		}
		missing = append(missing, m...)
	}
	// Send in the manifests' order (a store reads neighbouring chunks together: small ones
	// share compressed groups), and manifests last, so that a manifest at the destination
	// means its chunks are there.
	lacks := make(map[cas.Hash]bool, len(missing))
	for _, h := range missing {
		lacks[h] = true
	}
	missing = missing[:0]
	for _, h := range all {
		if lacks[h] {
			missing = append(missing, h)
		}
	}
	slices.SortStableFunc(missing, func(a, b cas.Hash) int {
		_, am := manifests[a]
		_, bm := manifests[b]
		switch {
		case am == bm:
			return 0
		case am:
			return 1
		}
		return -1
	})
	// 4. Send them.
	if req.Progress != nil {
		req.Progress.Planned(len(missing), 0)
	}
	step("sending %s", counted(len(missing), "chunk"))
	if err := send(ctx, req, missing, res); err != nil {
		return nil, err
	}
	// 5. Commit: the single point where versions appear at the destination.
	var commits []api.CommitVersion
	for _, v := range todo {
		tags := formats.NonNil(v.Tags)
		if req.IgnoreTags {
			tags = []string{}
		}
		commits = append(commits, api.CommitVersion{Runtime: dstName(v), Version: v.ID, Manifest: v.Manifest,
			Size: v.Size, Files: v.Files, Python: v.Python, Mode: v.Mode,
			Source:      fmt.Sprintf("%s/project/%s/runtime/%s/version/%s", req.Src.Name(), req.SrcProject, v.Runtime, v.ID),
			SourceActor: v.Actor, Tags: tags, Origin: v.Origin})
		res.Versions = append(res.Versions, v.ID)
	}
	step("committing %s", counted(len(commits), "version"))
	if err := req.Dst.Commit(ctx, req.DstProject, commits); err != nil {
		return nil, err
	}
	return res, nil
}

// counted is "1 chunk", "2 chunks".
func counted(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// copySources lists what a copy source names: one version, every live version of a
// runtime, or of the project; oldest first and each runtime's latest last, so that latest
// ends at the destination where it is at the source.
func copySources(ctx context.Context, src api.Endpoint, project string, u RuntimeURI) ([]*ledger.Version, error) {
	if u.Version != "" {
		v, err := src.Resolve(ctx, project, u.Name, u.Version)
		if err != nil {
			return nil, err
		}
		if v.Status != ledger.StatusLive {
			return nil, Errorf(KindNotFound, "recover it first", "version %s is %s", v.ID, v.Status)
		}
		return []*ledger.Version{v}, nil
	}
	vs, err := allVersions(ctx, src, project, u.Name, false)
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, Errorf(KindNotFound, "", "nothing to copy in %s", u)
	}
	var rest, latest []*ledger.Version
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Latest {
			latest = append(latest, vs[i])
		} else {
			rest = append(rest, vs[i])
		}
	}
	return append(rest, latest...), nil
}

// chunkSource is implemented by endpoints that can read a manifest directly.
type chunkSource interface {
	GetChunks(ctx context.Context, hs []cas.Hash, fn func(api.Chunk) error) error
}

func loadManifests(ctx context.Context, src chunkSource, vs []*ledger.Version) (map[cas.Hash]*cas.Manifest, error) {
	out := map[cas.Hash]*cas.Manifest{}
	var hs []cas.Hash
	for _, v := range vs {
		if _, ok := out[v.Manifest]; !ok {
			out[v.Manifest] = nil
			hs = append(hs, v.Manifest)
		}
	}
	err := src.GetChunks(ctx, hs, func(c api.Chunk) error {
		h := c.Hash
		if c.Raw.Enc == cas.EncGroup {
			return fmt.Errorf("manifest %s: sent as a group", h)
		}
		b, err := cas.Decode(h, c.Raw, nil)
		if err != nil {
			return err
		}
		m, err := cas.DecodeManifest(b)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", h, err)
		}
		out[h] = m
		return nil
	})
	return out, err
}

// send moves chunks from source to destination in batches, several in flight.
func send(ctx context.Context, req CopyRequest, missing []cas.Hash, res *CopyResult) error {
	if len(missing) == 0 {
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	batches := make(chan []api.Chunk, req.InFlight)
	var sent atomic.Int64 // stored bytes the destination acknowledged
	for range req.InFlight {
		g.Go(func() error {
			for b := range batches {
				if err := req.Dst.PutChunks(gctx, b); err != nil {
					return err
				}
				var n int64
				chunks := 0
				for _, c := range b {
					n += int64(len(c.Raw.Data))
					chunks += max(c.Raw.Count, 1) // a group counts its chunks
				}
				if req.Progress != nil {
					req.Progress.Done(chunks, n)
				}
				sent.Add(n)
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(batches)
		var cur []api.Chunk
		size := 0
		// One call for the lot: a local source sends a group whole only when it sees all of
		// its chunks asked for; a remote one asks its server in bounded requests itself.
		err := req.Src.GetChunks(gctx, missing, func(c api.Chunk) error {
			cur = append(cur, c)
			size += len(c.Raw.Data) + api.FrameHeader
			if size >= req.BatchBytes {
				select {
				case batches <- cur:
				case <-gctx.Done():
					return gctx.Err()
				}
				cur, size = nil, 0
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(cur) > 0 {
			select {
			case batches <- cur:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return err
	}
	res.SentChunks, res.SentBytes = len(missing), sent.Load()
	return nil
}
