package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ledger"
)

// Extraction. Invariants:
//   - A version is materialised into a fresh sibling of the target (TARGET.swcli-tmp-PID-RANDOM,
//     made by mkdir, mode 0700),
//     its marker (MarkerName) written and synced last, and then renamed into place: the
//     target is either absent, or a complete extraction, or what was there before.
//   - An existing extraction is recognised by its marker only. Without -f one of the same
//     version is kept; -f replaces an extraction (of any version) or an empty directory,
//     never a directory that holds anything else.
//   - Temporary siblings of processes that are gone are removed by the next extract.

// MarkerName is the file that marks a complete extraction, written last.
const MarkerName = ".swcli-extracted"

// marker is the content of MarkerName.
type marker struct {
	Runtime  string   `json:"runtime"`
	Version  string   `json:"version"`
	Manifest cas.Hash `json:"manifest"`
}

// ExtractResult says where a version was extracted.
type ExtractResult struct {
	Version *ledger.Version
	Dir     string
	Kept    bool // an existing extraction was kept
}

// DefaultExtractDir is where extract puts a version without --target-dir.
func (in *Instance) DefaultExtractDir(project, name, id string) string {
	return filepath.Join(in.Root, "workdir", project, name, id[:2], id)
}

// Extract writes a version's files to dir (default: the instance's workdir area). An
// existing extraction of the same version is kept unless force; see the invariants above.
func Extract(ctx context.Context, in *Instance, project, name, ref, dir string, force bool, p cas.Progress) (*ExtractResult, error) {
	v, err := in.Resolve(project, name, ref)
	if err != nil {
		return nil, err
	}
	if v.Status != ledger.StatusLive {
		return nil, Errorf(KindNotFound, "recover it first", "version %s is %s", v.ID, v.Status)
	}
	if dir == "" {
		dir = in.DefaultExtractDir(project, name, v.ID)
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	res := &ExtractResult{Version: v, Dir: dir}
	want := marker{Runtime: v.Runtime, Version: v.ID, Manifest: v.Manifest}
	state, got, err := extractionAt(dir)
	if err != nil {
		return nil, err
	}
	switch {
	case state == dirExtraction && got.Manifest == want.Manifest && !force:
		res.Kept = true
		return res, nil
	case state == dirExtraction && !force:
		return nil, Errorf(KindExists, "pass -f to replace it", "%s holds an extraction of %s/version/%s", dir, got.Runtime, got.Version)
	case state == dirOther:
		return nil, Errorf(KindExists, "give an empty or new directory with --target-dir", "%s is not empty and is not an extraction: not replaced", dir)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, fmt.Errorf("extract to %s: %w", dir, err)
	}
	removeStaleTemps(dir)
	// The temporary is made by mkdir with a random name (0700, exclusive: an existing name,
	// or a link planted there by another user of a shared directory, fails it, and nobody
	// else can put anything inside it).
	tmp, err := os.MkdirTemp(parent, fmt.Sprintf("%s.swcli-tmp-%d-*", filepath.Base(dir), os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("extract to %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	m, err := cas.OpenManifest(ctx, in.Chunks, v.Manifest)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if err := cas.MaterializeStream(ctx, in.Chunks, m, tmp, cas.MaterializeOptions{Progress: p}); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil { // interrupted: nothing is published
		return nil, err
	}
	if err := writeMarker(tmp, want); err != nil {
		return nil, err
	}
	if state == dirExtraction || state == dirEmpty {
		// Move the old one aside first: rename cannot replace a non-empty directory.
		old := tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return nil, fmt.Errorf("replace %s: %w", dir, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process may have put the same version there meanwhile.
		if st, got, _ := extractionAt(dir); st == dirExtraction && got.Manifest == want.Manifest {
			res.Kept = true
			return res, nil
		}
		return nil, fmt.Errorf("extract to %s: %w", dir, err)
	}
	if err := fsutil.SyncDir(parent); err != nil {
		return nil, err
	}
	return res, nil
}

type dirState int

const (
	dirAbsent dirState = iota
	dirEmpty
	dirExtraction
	dirOther
)

// extractionAt says what dir holds: nothing, an empty directory, an extraction (with its
// marker), or something else.
func extractionAt(dir string) (dirState, marker, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return dirAbsent, marker{}, nil
	}
	if err != nil {
		return 0, marker{}, fmt.Errorf("extract to %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return dirOther, marker{}, nil
	}
	f, err := os.Open(dir)
	if err != nil {
		return 0, marker{}, fmt.Errorf("extract to %s: %w", dir, err)
	}
	names, err := f.Readdirnames(1)
	f.Close()
	if errors.Is(err, io.EOF) || (err == nil && len(names) == 0) {
		return dirEmpty, marker{}, nil
	}
	if err != nil {
		return 0, marker{}, fmt.Errorf("extract to %s: %w", dir, err)
	}
	mf, err := os.OpenFile(filepath.Join(dir, MarkerName), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return dirOther, marker{}, nil
	}
	defer mf.Close()
	var m marker
	if err := json.NewDecoder(io.LimitReader(mf, 4096)).Decode(&m); err != nil || m.Version == "" {
		return dirOther, marker{}, nil
	}
	return dirExtraction, m, nil
}

func writeMarker(dir string, m marker) error {
	b, _ := json.Marshal(m)
	f, err := os.OpenFile(filepath.Join(dir, MarkerName), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("mark extraction: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("mark extraction: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("mark extraction: %w", err)
	}
	return f.Close()
}

// removeStaleTemps removes temporary siblings of dir left by extracts that were killed.
func removeStaleTemps(dir string) {
	matches, _ := filepath.Glob(dir + ".swcli-tmp-*")
	for _, m := range matches {
		rest := strings.TrimPrefix(m, dir+".swcli-tmp-")
		pidText, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidText); err == nil && fsutil.ProcessGone(pid) {
			os.RemoveAll(m)
		}
	}
}
