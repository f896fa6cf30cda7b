package cli

import (
	"strings"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
)

// RtCopyCmd is `runtime copy`.
type RtCopyCmd struct {
	Quiet
	Src              string `arg:"" help:"Runtime URI: a version, a whole runtime, or PROJECT/runtime for a whole project."`
	Dest             string `arg:"" help:"Project URI at the destination (name or id), '.' for the local selected project, or PROJECT/runtime/NAME (or PROJECT_URI/NAME) to give the runtime another name there."`
	Force            bool   `short:"f" help:"Copy versions the destination has already (replaces them)."`
	DestLocalProject string `name:"dest-local-project" help:"With DEST '.': this local project instead of the selected one (Starwhale's -dlp)." placeholder:"PROJECT"`
	IgnoreTag        bool   `name:"ignore-tag" short:"i" help:"Leave the user tags behind."`
}

// parseCopyDest reads DEST as the reference does: '.', a project URI (name or id), or a
// project URI with a runtime name (P/runtime/NAME, or INSTANCE/project/P/NAME).
func parseCopyDest(dest, dlp string) (ops.ProjectURI, string, error) {
	if dest == "." {
		if dlp == "" {
			return ops.ProjectURI{Instance: ops.InstanceRef{Alias: "local"}}, "", nil
		}
		u, err := ops.ParseProjectURI(dlp)
		if err == nil && !u.Instance.IsLocal("local") {
			err = ops.Errorf(ops.KindUsage, "", "--dest-local-project must be a local project, not %s", dlp)
		}
		u.Instance = ops.InstanceRef{Alias: "local"}
		return u, "", err
	}
	if dlp != "" {
		return ops.ProjectURI{}, "", ops.Errorf(ops.KindUsage, "use it with DEST '.'", "--dest-local-project names the local project for DEST '.'")
	}
	if p, name, ok := strings.Cut(dest, "/runtime/"); ok {
		u, err := ops.ParseProjectURI(p)
		return u, ops.NormalizeName(name), err
	}
	if i := strings.LastIndex(dest, "/project/"); i >= 0 {
		if p, name, ok := strings.Cut(dest[i+len("/project/"):], "/"); ok {
			u, err := ops.ParseProjectURI(dest[:i] + "/project/" + p)
			return u, ops.NormalizeName(name), err
		}
	}
	u, err := ops.ParseProjectURI(dest)
	return u, "", err
}

// Run copies.
func (c *RtCopyCmd) Run(e *env) error {
	src, err := parseCopySource(c.Src)
	if err != nil {
		return err
	}
	dstURI, dstName, err := parseCopyDest(c.Dest, c.DestLocalProject)
	if err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	src = copySourceInstance(src, dstURI)
	// The bar first: opening an instance or a connection may take a moment, and the user
	// sees what happens from the start.
	c.Quiet.apply(e)
	b := e.newBar("copying", "chunks", false)
	var p cas.Progress
	var step func(string)
	if b != nil {
		p, step = b, b.Step
	}
	b.Step("opening " + instanceName(src.Instance, cfg.CurrentInstance))
	srcEP, srcProject, err := e.endpoint(src.ProjectURI)
	if err != nil {
		b.finish(false)
		return err
	}
	defer srcEP.Close()
	var dstEP api.Endpoint
	var dstProject string
	if l, ok := srcEP.(ops.LocalEndpoint); ok && dstURI.Instance.IsLocal(cfg.CurrentInstance) {
		// One standalone instance: both sides share it (it is opened once).
		dstEP, dstProject = l, dstURI.Project
		if dstProject == "" {
			dstProject = cfg.Project("local")
		}
		if dstProject, err = l.In.ProjectName(dstProject); err != nil {
			b.finish(false)
			return err
		}
	} else {
		b.Step("opening " + instanceName(dstURI.Instance, cfg.CurrentInstance))
		if dstEP, dstProject, err = e.endpoint(dstURI); err != nil {
			b.finish(false)
			return err
		}
		defer dstEP.Close()
	}
	res, err := ops.Copy(e.ctx, ops.CopyRequest{Src: srcEP, SrcProject: srcProject, SrcURI: src,
		Dst: dstEP, DstProject: dstProject, DstName: dstName, IgnoreTags: c.IgnoreTag, Force: c.Force, Progress: p, Step: step})
	b.finish(err == nil)
	if err != nil {
		return err
	}
	_, down := dstEP.(ops.LocalEndpoint)
	_, fromLocal := srcEP.(ops.LocalEndpoint)
	return e.copySummary(res, down && !fromLocal)
}

// instanceName is how a URI's instance is shown: the selected one by its name.
func instanceName(r ops.InstanceRef, selected string) string {
	if r == (ops.InstanceRef{}) && selected != "" {
		r.Alias = selected
	}
	return r.String()
}

// copySourceInstance applies the copy rule of SPEC: a source that names no instance is
// local when the destination names a cloud instance (an upload: what you build is local,
// whichever instance is selected); otherwise it is on the selected instance.
func copySourceInstance(src ops.RuntimeURI, dst ops.ProjectURI) ops.RuntimeURI {
	if src.Instance == (ops.InstanceRef{}) && !dst.Instance.IsLocal("local") {
		src.Instance = ops.InstanceRef{Alias: "local"}
	}
	return src
}

// parseCopySource accepts a runtime URI, or a project URI ending in /runtime (every
// runtime of a project).
func parseCopySource(s string) (ops.RuntimeURI, error) {
	if p, ok := strings.CutSuffix(strings.TrimSuffix(s, "/"), "/runtime"); ok {
		pu, err := ops.ParseProjectURI(p)
		return ops.RuntimeURI{ProjectURI: pu}, err
	}
	return ops.ParseRuntimeURI(s)
}

func (e *env) copySummary(res *ops.CopyResult, download bool) error {
	if e.jsonOut() {
		return e.printJSON(map[string]any{"versions": nonNil(res.Versions), "skipped": nonNil(res.Skipped),
			"files": res.Files, "bytes": res.Bytes, "chunks": res.Chunks, "sent_chunks": res.SentChunks,
			"sent_bytes": res.SentBytes})
	}
	there := 100.0
	if res.Chunks > 0 {
		there = 100 * float64(res.Chunks-res.SentChunks) / float64(res.Chunks)
	}
	verb := "sent"
	if download {
		verb = "received"
	}
	e.printf("%s %s for %s of %s (%.0f%% already there): %s copied, %d already there\n",
		verb, humanBytes(res.SentBytes), humanBytes(res.Bytes), plural(res.Files, "file"), there, plural(len(res.Versions), "version"), len(res.Skipped))
	return nil
}
