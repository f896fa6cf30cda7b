package ops

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/swcli/swcli/cas"
)

// Instance is an open standalone instance: a root directory holding the chunk store and
// the ledger.
//
//	ROOT/store/    chunk store (packs + pebble index)
//	ROOT/cache/    the stat cache (safe to delete)
//	ROOT/ledger/   the ledger (pebble)
//	ROOT/workdir/  default extraction area: workdir/<project>/<runtime>/<version>
type Instance struct {
	Root  string
	Store *cas.Local
}

// OpenOptions tune Open.
type OpenOptions struct {
	// OnWait is told when another process holds the instance for more than a second.
	OnWait func(what string, pid int)
}

// Open opens (creating) the standalone instance at root.
func Open(ctx context.Context, root string, opt OpenOptions) (*Instance, error) {
	if root == "" {
		return nil, Errorf(KindUsage, "set --root or SWCLI_ROOT", "no instance root given")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open instance %s: %w", root, err)
	}
	var onWait func(int)
	if opt.OnWait != nil {
		onWait = func(pid int) { opt.OnWait("store", pid) }
	}
	st, err := cas.OpenLocalWith(ctx, filepath.Join(root, "store"), cas.LocalOptions{
		OnWait: onWait, CacheDir: filepath.Join(root, "cache", "stat"),
	})
	if err != nil {
		return nil, err
	}
	return &Instance{Root: root, Store: st}, nil
}

// Close flushes and closes the instance.
func (in *Instance) Close() error {
	return in.Store.Close()
}
