package cli

import (
	"strings"

	"github.com/swcli/swcli/ops"
)

// RtCopyCmd is `runtime copy`.
type RtCopyCmd struct {
	Src   string `arg:"" help:"Runtime URI: a version, a whole runtime, or PROJECT/runtime/ for a whole project."`
	Dest  string `arg:"" help:"Project URI at the destination."`
	Force bool   `short:"f" help:"Replace a version that exists at the destination."`
}

// Run copies.
func (c *RtCopyCmd) Run(e *env) error {
	src, err := parseCopySource(c.Src)
	if err != nil {
		return err
	}
	dst, err := ops.ParseProjectURI(c.Dest)
	if err != nil {
		return err
	}
	srcProject, err := e.localProject(src.ProjectURI)
	if err != nil {
		return err
	}
	dstProject, err := e.localProject(dst)
	if err != nil {
		return err
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	res, err := ops.CopyLocal(e.ctx, in, src, srcProject, dstProject, c.Force)
	if err != nil {
		return err
	}
	return e.copySummary(res)
}

// parseCopySource accepts a runtime URI, or a project URI ending in /runtime/ (or
// PROJECT/runtime) for every runtime of a project.
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
			"files": res.Files, "bytes": res.Bytes, "sent_bytes": res.SentBytes, "sent_files": res.SentFiles})
	}
	there := 100.0
	if res.Bytes > 0 {
		there = 100 * float64(res.Bytes-res.SentBytes) / float64(res.Bytes)
	}
	e.printf("sent %s of %s (%s files, %.0f%% already there): %d version(s) copied, %d already there\n",
		humanBytes(res.SentBytes), humanBytes(res.Bytes), humanCount(int(res.Files)), there, len(res.Versions), len(res.Skipped))
	return nil
}
