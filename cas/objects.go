package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/internal/fsutil"
)

// ObjectStore is what a pack backend must do: keep whole, immutable objects by name, as
// S3, GCS, Azure Blob or a directory do. The pack store over it (ObjectPacks: objects named
// by the blake3 of their bytes, index in PostgreSQL, gc and repack) is written once; a new
// backend implements these five methods and passes cas/storetest through ObjectPacks.
// Names are slash-separated, relative, without "." or ".." components.
type ObjectStore interface {
	// Put writes the object name with the size bytes of r, whole: once Put returns nil the
	// object is durable and every read sees all of it; on an error no part of it is
	// visible under name. Putting a name that exists replaces it (packs are named by
	// their content, so a replacement holds the same bytes).
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// GetRange reads length bytes from offset off of the object (length < 0: to its end).
	// An absent object is ErrNoObject; a range past its end is an error.
	GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	// Stat returns the object's size; an absent object is ErrNoObject.
	Stat(ctx context.Context, name string) (int64, error)
	// List calls fn for every object whose name starts with prefix, in no promised order.
	List(ctx context.Context, prefix string, fn func(name string, size int64) error) error
	// Delete removes the object; deleting an absent object is not an error.
	Delete(ctx context.Context, name string) error
}

// ErrNoObject reports an object that is not in the object store.
var ErrNoObject = errors.New("no such object")

// DirObjects is an ObjectStore in a local directory: each object a file, written to a
// temporary name, synced and renamed. It serves tests of ObjectPacks without an S3 server,
// and a shared file system (NFS) as a pack backend.
type DirObjects struct{ Dir string }

func (d DirObjects) path(name string) (string, error) {
	if name == "" || path.IsAbs(name) || !fs.ValidPath(name) {
		return "", fmt.Errorf("object name %q: %w", name, fs.ErrInvalid)
	}
	return filepath.Join(d.Dir, filepath.FromSlash(name)), nil
}

func (d DirObjects) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".put-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if err == nil && n != size {
		err = fmt.Errorf("put %s: %d bytes, want %d", name, n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(p))
}

func (d DirObjects) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("object %s: %w", name, ErrNoObject)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if length < 0 {
		length = fi.Size() - off
	}
	if off < 0 || off+length > fi.Size() {
		f.Close()
		return nil, fmt.Errorf("object %s: range %d+%d past its %d bytes", name, off, length, fi.Size())
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, length), f}, nil
}

func (d DirObjects) Stat(ctx context.Context, name string) (int64, error) {
	p, err := d.path(name)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("object %s: %w", name, ErrNoObject)
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (d DirObjects) List(ctx context.Context, prefix string, fn func(name string, size int64) error) error {
	err := filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".put-") {
			return nil
		}
		rel, _ := filepath.Rel(d.Dir, p)
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		return fn(name, fi.Size())
	})
	return err
}

func (d DirObjects) Delete(ctx context.Context, name string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
