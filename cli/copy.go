package cli

import (
	"strings"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
)

// RtCopyCmd is `runtime copy`.
type RtCopyCmd struct {
	Src   string `arg:"" help:"Runtime URI: a version, a whole runtime, or PROJECT/runtime for a whole project."`
	Dest  string `arg:"" help:"Project URI at the destination."`
	Force bool   `short:"f" help:"Copy versions the destination has already (replaces them)."`
}

// Run copies.
func (c *RtCopyCmd) Run(e *env) error {
	src, err := parseCopySource(c.Src)
	if err != nil {
		return err
	}
	dstURI, err := ops.ParseProjectURI(c.Dest)
	if err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	srcEP, srcProject, err := e.endpoint(src.ProjectURI)
	if err != nil {
		return err
	}
	defer srcEP.Close()
	var dstEP ops.Endpoint
	var dstProject string
	if l, ok := srcEP.(ops.LocalEndpoint); ok && dstURI.Instance.IsLocal(cfg.CurrentInstance) {
		// One standalone instance: both sides share it (it is opened once).
		dstEP, dstProject = l, dstURI.Project
		if dstProject == "" {
			dstProject = cfg.Project("local")
		}
		if dstProject, err = l.In.ProjectName(dstProject); err != nil {
			return err
		}
	} else {
		if dstEP, dstProject, err = e.endpoint(dstURI); err != nil {
			return err
		}
		defer dstEP.Close()
	}
	b := newBar(e.stderr, "copying")
	var p cas.Progress
	if b != nil {
		p = b
	}
	res, err := ops.Copy(e.ctx, ops.CopyRequest{Src: srcEP, SrcProject: srcProject, SrcURI: src,
		Dst: dstEP, DstProject: dstProject, Force: c.Force, Progress: p})
	b.finish()
	if err != nil {
		return err
	}
	return e.copySummary(res)
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

func (e *env) copySummary(res *ops.CopyResult) error {
	if e.jsonOut() {
		return e.printJSON(map[string]any{"versions": nonNil(res.Versions), "skipped": nonNil(res.Skipped),
			"files": res.Files, "bytes": res.Bytes, "chunks": res.Chunks, "sent_chunks": res.SentChunks,
			"sent_bytes": res.SentBytes})
	}
	there := 100.0
	if res.Chunks > 0 {
		there = 100 * float64(res.Chunks-res.SentChunks) / float64(res.Chunks)
	}
	e.printf("sent %s of %s (%s files, %.0f%% already there): %d version(s) copied, %d already there\n",
		humanBytes(res.SentBytes), humanBytes(res.Bytes), humanCount(int(res.Files)), there, len(res.Versions), len(res.Skipped))
	return nil
}
