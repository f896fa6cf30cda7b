package cli

import (
	"fmt"
	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
)

// StoreCmd is plumbing over the content-addressed store.
type StoreCmd struct {
	Put StorePutCmd `cmd:"" help:"Store a directory; print the tree's hash."`
	Get StoreGetCmd `cmd:"" help:"Write a stored tree into an empty or new directory."`
}

// StorePutCmd stores a directory.
type StorePutCmd struct {
	Dir string `arg:"" help:"Directory to store." type:"path"`
}

// Run stores the directory.
func (c *StorePutCmd) Run(e *env) error {
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	res, err := ops.StoreTree(e.ctx, in, c.Dir, nil)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{
			"tree": res.Hash, "files": res.Files, "dirs": res.Dirs, "links": res.Links,
			"bytes": res.Size, "bytes_read": res.BytesRead, "new_chunks": res.NewChunks,
			"new_bytes": res.NewBytes, "new_stored_bytes": res.NewStored,
		})
	}
	e.printf("%s\n", res.Hash)
	e.log.Info().Int("files", res.Files).Int64("bytes", res.Size).Int64("new_stored_bytes", res.NewStored).Msg("stored")
	return nil
}

// StoreGetCmd materialises a tree.
type StoreGetCmd struct {
	Tree string `arg:"" help:"Tree hash printed by 'swcli store put'."`
	Dir  string `arg:"" help:"Target directory (missing or empty)." type:"path"`
}

// Run materialises the tree.
func (c *StoreGetCmd) Run(e *env) error {
	h, err := cas.ParseHash(c.Tree)
	if err != nil {
		return ops.Errorf(ops.KindUsage, "a tree hash looks like blake3:<64 hex digits>", "%v", err)
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	t, err := ops.ExtractTree(e.ctx, in, h, c.Dir, nil)
	if err != nil {
		return err
	}
	if e.jsonOut() {
		return e.printJSON(map[string]any{"tree": h, "dir": c.Dir, "files": t.Files, "bytes": t.Size})
	}
	e.printf("extracted %s: %s in %s files to %s\n", h.Short(12), humanBytes(t.Size), humanCount(t.Files), c.Dir)
	return nil
}

// FsckCmd verifies every stored chunk.
type FsckCmd struct{}

// Run verifies the store: packs present, every chunk re-hashed; bad ones are named with the
// versions and files that use them.
func (c *FsckCmd) Run(e *env) error {
	if ops.Serving(e.g.root()) {
		return (&ServerFsckCmd{}).Run(e) // a served root: its server checks, online
	}
	in, err := e.open()
	if err != nil {
		return err
	}
	defer in.Close()
	rep, err := ops.Fsck(e.ctx, in)
	if rep == nil {
		return err
	}
	if e.jsonOut() {
		problems := []map[string]any{}
		for _, p := range rep.Problems {
			uses := []string{}
			for _, u := range p.Uses {
				uses = append(uses, u.String())
			}
			problems = append(problems, map[string]any{"hash": p.Hash, "reason": p.Reason, "used_by": uses})
		}
		if jerr := e.printJSON(map[string]any{"chunks": rep.Chunks, "bytes": rep.Bytes, "corrupt": len(rep.Problems),
			"lost_packs": len(rep.Packs), "problems": problems}); jerr != nil {
			return jerr
		}
		return err
	}
	for _, p := range rep.Packs {
		fmt.Fprintf(e.stderr, "swcli: pack %016x %s: %d chunks lost\n", p.Pack, p.Reason, len(p.Chunks))
	}
	for _, p := range rep.Problems {
		if len(p.Uses) == 0 {
			fmt.Fprintf(e.stderr, "swcli: chunk %s: %s; no version uses it\n", p.Hash, p.Reason)
		}
		for _, u := range p.Uses {
			fmt.Fprintf(e.stderr, "swcli: chunk %s: %s; used by %s\n", p.Hash, p.Reason, u)
		}
	}
	if err != nil {
		return err
	}
	e.printf("checked %s chunks (%s): all verified\n", humanCount(int(rep.Chunks)), humanBytes(rep.Bytes))
	return nil
}
