package ops

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/swcli/swcli/cas"
)

// StoreTree stores the directory dir as one tree and returns what was stored.
func StoreTree(ctx context.Context, in *Instance, dir string, p cas.Progress) (*cas.IngestResult, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, Errorf(KindNotFound, "", "store %s: %w", dir, unwrapPathErr(err))
	}
	if !fi.IsDir() {
		return nil, Errorf(KindUsage, "give a directory", "store %s: not a directory", dir)
	}
	return cas.Ingest(ctx, in.Store, []cas.Input{{Src: dir}}, cas.IngestOptions{Progress: p})
}

// ExtractTree writes the stored tree h into dir, which must be missing or empty.
func ExtractTree(ctx context.Context, in *Instance, h cas.Hash, dir string, p cas.Progress) (*cas.Manifest, error) {
	m, err := cas.LoadManifest(ctx, in.Store, h)
	if errors.Is(err, cas.ErrNotFound) {
		return nil, Errorf(KindNotFound, "swcli store put prints the tree's hash", "no tree %s in %s", h, in.Root)
	}
	if err != nil {
		return nil, err
	}
	if err := cas.Materialize(ctx, in.Store, m, dir, cas.MaterializeOptions{Progress: p}); err != nil {
		if errors.Is(err, cas.ErrNotEmpty) {
			return nil, Errorf(KindExists, "choose an empty or new directory", "%w", err)
		}
		return nil, err
	}
	return m, nil
}

// Fsck re-hashes every stored chunk.
func Fsck(ctx context.Context, in *Instance) (cas.VerifyReport, error) {
	rep, err := cas.VerifyAll(ctx, in.Store)
	if err != nil {
		return rep, err
	}
	if len(rep.Corrupt) > 0 {
		return rep, &Error{Kind: KindCorrupt, Err: fmt.Errorf("%d of %d chunks failed verification; first: %w", len(rep.Corrupt), rep.Chunks, rep.Corrupt[0])}
	}
	return rep, nil
}

func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// GC deletes every chunk that no live or removed version uses (purged versions' chunks,
// and trees stored with 'swcli store put').
func GC(ctx context.Context, in *Instance) (cas.ReclaimReport, error) {
	roots, err := in.Ledger.Manifests()
	if err != nil {
		return cas.ReclaimReport{}, err
	}
	return cas.Reclaim(ctx, in.Store, roots)
}
