package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/errs"
)

// Remote is the Endpoint of a server, reached over HTTP(S) with a token.
type Remote struct {
	Alias string // how the user named it (cloud://ALIAS)
	URL   string // http(s)://host:port
	Token string
	HTTP  *http.Client

	Socket string // the root, for a client of a server's admin socket
}

var _ api.Endpoint = (*Remote)(nil)

// NewRemote returns a client of the server at base.
func NewRemote(alias, base, token string) *Remote {
	return &Remote{Alias: alias, URL: base, Token: token, HTTP: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 8, ResponseHeaderTimeout: 5 * time.Minute, IdleConnTimeout: 90 * time.Second,
	}}}
}

func (c *Remote) Name() string {
	if c.Socket != "" {
		return "the server of " + c.Socket
	}
	if c.Alias != "" {
		return "cloud://" + c.Alias
	}
	return c.URL
}

func (c *Remote) Close() error { c.HTTP.CloseIdleConnections(); return nil }

// maxBusyRetries bounds how often a request is sent again to a server that answers 429.
const maxBusyRetries = 60

// Do sends a request and turns error answers into *Error with the server's words. A
// server that is busy (429) is asked again after the pause it names (at most a few seconds
// each, for about a minute in all).
func (c *Remote) Do(ctx context.Context, method, path string, payload []byte, ctype string) (*http.Response, error) {
	if payload == nil {
		return c.do(ctx, method, path, nil, 0, ctype)
	}
	return c.do(ctx, method, path, func() io.Reader { return bytes.NewReader(payload) }, int64(len(payload)), ctype)
}

// do is Do with a body of size bytes that body reads afresh for each attempt.
func (c *Remote) do(ctx context.Context, method, path string, body func() io.Reader, size int64, ctype string) (*http.Response, error) {
	var resp *http.Response
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.URL+path, nil)
		if err != nil {
			return nil, errs.Errorf(errs.KindUsage, "", "bad server URL %s: %v", c.URL, err)
		}
		switch {
		case body == nil:
		case size == 0:
			req.Body = http.NoBody
		default:
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body()), nil }
			req.Body, _ = req.GetBody()
			req.ContentLength = size
		}
		req.Header.Set("Authorization", "Bearer "+c.Token)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err = c.HTTP.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, &errs.Error{Kind: errs.KindRemote, Err: fmt.Errorf("%s: %v", c.Name(), unwrapURLErr(err)), Hint: "is the server running and the URL right? 'swcli instance list' shows it"}
		}
		if resp.StatusCode != http.StatusTooManyRequests || attempt >= maxBusyRetries {
			break
		}
		pause := time.Second
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			pause = time.Duration(min(secs, 5)) * time.Second
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
	}
	if resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	var eb api.ErrorBody
	json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb)
	msg := eb.Error
	if msg == "" {
		msg = resp.Status
	}
	kind := KindFromAnswer(resp.StatusCode, eb.Kind)
	hint := eb.Hint
	if resp.StatusCode == 413 && hint == "" {
		hint = "the server's request limit is lower than this client's batches"
	}
	if resp.StatusCode == http.StatusUnauthorized && c.Alias != "" && c.Socket == "" {
		// The server cannot know how this client names it: say it with the real URL and alias.
		hint = fmt.Sprintf("log in again: swcli instance login %s --alias %s --token-stdin (the token on stdin)", c.URL, c.Alias)
	}
	return nil, &errs.Error{Kind: kind, Err: fmt.Errorf("%s: %s", c.Name(), msg), Hint: hint}
}

// KindFromAnswer is the kind of an error answer: the kind the server named when it is one
// this client knows and agrees with the status, otherwise the status's.
func KindFromAnswer(status int, name string) errs.Kind {
	for k, st := range api.KindStatus {
		if k.String() == name && st == status {
			return k
		}
	}
	for k, st := range api.KindStatus {
		if st == status && k != errs.KindInvalid && k != errs.KindBusy {
			return k
		}
	}
	if status == http.StatusServiceUnavailable {
		return errs.KindBusy
	}
	if status >= 500 {
		return errs.KindRemote
	}
	return errs.KindFailure
}

func unwrapURLErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (c *Remote) GetJSON(ctx context.Context, path string, v any) error {
	resp, err := c.Do(ctx, "GET", path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *Remote) PostJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	resp, err := c.Do(ctx, "POST", path, b, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Whoami checks the token and returns the user's name.
func (c *Remote) Whoami(ctx context.Context) (string, bool, error) {
	var out struct {
		User  string `json:"user"`
		Admin bool   `json:"admin"`
	}
	err := c.GetJSON(ctx, api.RouteWhoami.URL(), &out)
	return out.User, out.Admin, err
}

// Projects lists the projects the user can see.
func (c *Remote) Projects(ctx context.Context) ([]string, error) {
	names, _, err := c.ProjectIDs(ctx)
	return names, err
}

// ProjectIDs lists the projects the user can see, with their ids.
func (c *Remote) ProjectIDs(ctx context.Context) ([]string, map[string]int, error) {
	var out struct {
		Projects []string       `json:"projects"`
		IDs      map[string]int `json:"ids"`
	}
	err := c.GetJSON(ctx, api.RouteProjects.URL(), &out)
	return out.Projects, out.IDs, err
}

func fromDTOs(ds []api.VersionDTO) []*ledger.Version {
	out := make([]*ledger.Version, len(ds))
	for i, d := range ds {
		out[i] = api.FromDTO(d)
	}
	return out
}

func (c *Remote) Versions(ctx context.Context, project, runtime string, opt ledger.ListOptions) ([]*ledger.Version, int, error) {
	q := url.Values{"runtime": {runtime}, "page": {strconv.Itoa(opt.Page)}, "size": {strconv.Itoa(opt.Size)}}
	if opt.ShowRemoved {
		q.Set("show_removed", "1")
	}
	if opt.MissingOK {
		q.Set("missing_ok", "1")
	}
	var out struct {
		Total    int              `json:"total"`
		Versions []api.VersionDTO `json:"versions"`
	}
	err := c.GetJSON(ctx, api.RouteVersions.URL(project)+"?"+q.Encode(), &out)
	return fromDTOs(out.Versions), out.Total, err
}

func (c *Remote) History(ctx context.Context, project, runtime string) ([]*ledger.Version, error) {
	var out struct {
		Versions []api.VersionDTO `json:"versions"`
	}
	err := c.GetJSON(ctx, api.RouteHistory.URL(project, runtime), &out)
	return fromDTOs(out.Versions), err
}

func (c *Remote) Resolve(ctx context.Context, project, runtime, ref string) (*ledger.Version, error) {
	if ref == "" {
		ref = "latest"
	}
	var out api.VersionDTO
	if err := c.GetJSON(ctx, api.RouteResolve.URL(project, runtime, ref), &out); err != nil {
		return nil, err
	}
	return api.FromDTO(out), nil
}

func (c *Remote) Info(ctx context.Context, project, runtime, ref string) (*api.Info, error) {
	if ref == "" {
		ref = "latest"
	}
	var out api.InfoDTO
	if err := c.GetJSON(ctx, api.RouteInfo.URL(project, runtime, ref), &out); err != nil {
		return nil, err
	}
	return &api.Info{Version: api.FromDTO(out.Version), Totals: cas.Totals{Files: out.Files, Dirs: out.Dirs, Links: out.Links, Size: out.Size},
		Lock: out.Lock, YAML: out.YAML}, nil
}

func (c *Remote) Tag(ctx context.Context, project, runtime, ref string, tags []string, remove, quiet, force bool) (*api.TagResult, error) {
	var out struct {
		Changed []string `json:"changed"`
		Skipped []string `json:"skipped"`
	}
	err := c.PostJSON(ctx, api.RouteTag.URL(project, runtime),
		api.TagRequest{Version: ref, Tags: tags, Remove: remove, Quiet: quiet, Force: force}, &out)
	return &api.TagResult{Changed: out.Changed, Skipped: out.Skipped}, err
}

func (c *Remote) removeCall(ctx context.Context, op, project, runtime, ref string, purge, dry bool) ([]*ledger.Version, error) {
	var out struct {
		Versions []api.VersionDTO `json:"versions"`
	}
	route := api.RouteRemove
	if op == "recover" {
		route = api.RouteRecover
	}
	err := c.PostJSON(ctx, route.URL(project, runtime),
		api.RemoveRequest{Version: ref, Purge: purge, DryRun: dry}, &out)
	return fromDTOs(out.Versions), err
}

func (c *Remote) RemoveTargets(ctx context.Context, project, runtime, ref string, purge bool) ([]*ledger.Version, error) {
	return c.removeCall(ctx, "remove", project, runtime, ref, purge, true)
}

func (c *Remote) Remove(ctx context.Context, project, runtime, ref string, purge bool) ([]*ledger.Version, error) {
	return c.removeCall(ctx, "remove", project, runtime, ref, purge, false)
}

func (c *Remote) Recover(ctx context.Context, project, runtime, ref string) ([]*ledger.Version, error) {
	return c.removeCall(ctx, "recover", project, runtime, ref, false, false)
}

func (c *Remote) Missing(ctx context.Context, hs []cas.Hash) ([]cas.Hash, error) {
	resp, err := c.Do(ctx, api.RouteMissing.Method, api.RouteMissing.URL(), api.EncodeHashes(hs), "application/octet-stream")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &errs.Error{Kind: errs.KindRemote, Err: err}
	}
	return api.DecodeHashes(b)
}

// getBatch is how many hashes one /chunks/get asks for: enough that most groups on the
// server have all their chunks in one request (it then sends them whole).
const getBatch = 16384

// GetChunks asks in batches. The server answers a batch in order, a group whole where the
// batch names all its chunks (fn then gets the group's name and Raw{Enc: cas.EncGroup}),
// and may answer part of a batch (it bounds each answer): it is asked again for the rest.
// A group is checked as it arrives and handed on without its content (api.Chunk.Group).
func (c *Remote) GetChunks(ctx context.Context, hs []cas.Hash, fn func(api.Chunk) error) error {
	return c.getAll(ctx, hs, false, fn)
}

// getAll is GetChunks; with keep, a group keeps its content (cas.Group.Chunk answers).
func (c *Remote) getAll(ctx context.Context, hs []cas.Hash, keep bool, fn func(api.Chunk) error) error {
	for len(hs) > 0 {
		n, err := c.getChunks(ctx, hs[:min(getBatch, len(hs))], keep, fn)
		if err != nil {
			return err
		}
		if n == 0 {
			return &errs.Error{Kind: errs.KindRemote, Err: fmt.Errorf("%s: answered none of %d chunks", c.Name(), len(hs)), Hint: "run the copy again: it resumes"}
		}
		hs = hs[n:]
	}
	return nil
}

// getChunks makes one request and returns how many of hs the server answered.
func (c *Remote) getChunks(ctx context.Context, hs []cas.Hash, keep bool, fn func(api.Chunk) error) (int, error) {
	resp, err := c.Do(ctx, api.RouteGetChunks.Method, api.RouteGetChunks.URL(), api.EncodeHashes(hs), "application/octet-stream")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// Only what was asked, each once: a server cannot make this client store (or decode)
	// anything else. A group is verified here, its chunks checked against what was asked.
	asked := make(map[cas.Hash]bool, len(hs)) // true until answered
	for _, h := range hs {
		asked[h] = true
	}
	take := func(h cas.Hash) error {
		if !asked[h] {
			return fmt.Errorf("%w: server sent %s, which was not asked for (or twice)", api.ErrBadFrame, h)
		}
		asked[h] = false
		return nil
	}
	answered := -1
	var scratch []byte // unless kept, groups are checked here one at a time in one buffer
	err = api.ReadFrames(resp.Body, func(h cas.Hash, r cas.Raw) error {
		switch {
		case answered >= 0:
			return fmt.Errorf("%w: frames after the end frame", api.ErrBadFrame)
		case h.IsZero():
			if answered = int(r.Len); answered < 0 || answered > len(hs) {
				return fmt.Errorf("%w: end frame says %d of %d", api.ErrBadFrame, answered, len(hs))
			}
			for _, a := range hs[:answered] {
				if asked[a] {
					return fmt.Errorf("%w: end frame covers %s, which was not sent", api.ErrBadFrame, a)
				}
			}
			return nil
		case r.Enc == cas.EncGroup:
			var g *cas.Group
			var err error
			if keep {
				g, err = cas.VerifyGroup(h, r)
			} else {
				g, scratch, err = cas.CheckGroup(h, r, scratch)
			}
			if err != nil {
				return err
			}
			for _, c := range g.Chunks() {
				if err := take(c); err != nil {
					return err
				}
			}
			r.Count = len(g.Chunks())
			return fn(api.Chunk{Hash: h, Raw: r, Group: g})
		}
		if err := take(h); err != nil {
			return err
		}
		return fn(api.Chunk{Hash: h, Raw: r})
	})
	if err == nil && answered < 0 {
		err = fmt.Errorf("%w: the answer was cut short", api.ErrBadFrame)
	}
	if err != nil {
		return 0, &errs.Error{Kind: errs.KindRemote, Err: fmt.Errorf("%s: %w", c.Name(), err), Hint: "run the copy again: it resumes"}
	}
	return answered, nil
}

// PutChunks sends cs to the server in one request. The body is the frames' headers and
// the chunks' own bytes, read where they lie: a batch copied into one buffer cost more
// than the rest of a copy (16 MiB batches grown by doubling, each a fresh run of pages to
// fault in).
func (c *Remote) PutChunks(ctx context.Context, cs []api.Chunk) error {
	hdrs := make([][api.FrameHeader]byte, len(cs))
	parts := make([][]byte, 0, 2*len(cs))
	var size int64
	for i, ch := range cs {
		hdrs[i] = api.FrameHeaderOf(ch.Hash, ch.Raw)
		parts = append(parts, hdrs[i][:], ch.Raw.Data)
		size += api.FrameHeader + int64(len(ch.Raw.Data))
	}
	body := func() io.Reader {
		b := net.Buffers(slices.Clone(parts)) // reading consumes the slice, not the bytes
		return &b
	}
	resp, err := c.do(ctx, api.RoutePutChunks.Method, api.RoutePutChunks.URL(), body, size, "application/octet-stream")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

func (c *Remote) Commit(ctx context.Context, project string, vs []api.CommitVersion) error {
	return c.PostJSON(ctx, api.RouteCommit.URL(project), vs, nil)
}

// LedgerKey is the server's checkpoint verifier key ("" and no error if it publishes none).
func (c *Remote) LedgerKey(ctx context.Context) (string, error) {
	var out struct {
		Key string `json:"key"`
	}
	err := c.GetJSON(ctx, api.RouteLedgerKey.URL(), &out)
	if errs.KindOf(err) == errs.KindNotFound {
		return "", nil
	}
	return out.Key, err
}

// Checkpoint is the server's signed checkpoint, as sent.
func (c *Remote) Checkpoint(ctx context.Context) ([]byte, error) {
	resp, err := c.Do(ctx, "GET", api.RouteCheckpoint.URL(), nil, "")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}

// Consistency asks the server to prove that its tree of from events is a prefix of its
// tree of to events.
func (c *Remote) Consistency(ctx context.Context, from, to uint64) (*api.Consistency, error) {
	var out api.Consistency
	return &out, c.GetJSON(ctx, fmt.Sprintf("%s?from=%d&to=%d", api.RouteConsistency.URL(), from, to), &out)
}

// PostCosignature sends a witness's cosigned checkpoint to the server; it returns the
// name the server filed it under.
func (c *Remote) PostCosignature(ctx context.Context, msg []byte) (string, error) {
	resp, err := c.Do(ctx, "POST", api.RouteCosign.URL(), msg, "text/plain")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Witness string `json:"witness"`
	}
	return out.Witness, json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out)
}
