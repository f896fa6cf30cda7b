package ops

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"gopkg.in/yaml.v3"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/fsutil"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/formats"
)

// .swrt files: Starwhale's unit of exchange, an uncompressed PAX tar of a bundle with
// _manifest.yaml at its root. Export writes the current layout (see ops/formats/bundle.go); import reads
// it and the 2022 one (dep/python/…, dep/conda/…, no runtime.yaml). Import regenerates
// _manifest.yaml the way build writes it, so exporting a version and importing the file
// yields the same version id.

// Limits on what an import accepts (a .swrt comes from outside).
const (
	MaxSwrtEntries  = 1 << 20
	MaxSwrtPath     = 4096
	maxSwrtManifest = 4 << 20
	// maxNameComponent is what every file system we support holds in one path component.
	maxNameComponent = 255
)

// ExportResult says what export wrote.
type ExportResult struct {
	Version *ledger.Version
	File    string
	Files   int   // the version's files, as info counts them
	Bytes   int64 // the version's content bytes
}

// ExportSwrt writes version ref of project/name to file as a .swrt (tar), atomically.
func ExportSwrt(ctx context.Context, in *Instance, project, name, ref, file string) (*ExportResult, error) {
	v, err := in.Resolve(project, name, ref)
	if err != nil {
		return nil, err
	}
	if v.Status != ledger.StatusLive {
		return nil, Errorf(KindNotFound, "recover it first", "version %s is %s", v.ID, v.Status)
	}
	file, err = filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	tmp := fmt.Sprintf("%s.swcli-tmp-%d", file, os.Getpid())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, Errorf(KindUsage, "give -o a path in a directory you can write", "export: %v", formats.UnwrapPathErr(err))
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	res, err := WriteSwrt(ctx, in, v, f)
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", file, err)
	}
	res.File = file
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return nil, err
	}
	ok = true
	return res, nil
}

// ExportManifest is the _manifest.yaml a .swrt of version v carries: the one stored with
// it (or one made for a version built before bundles carried it), with the fields only an
// export has: version (the id the version had where it was made, if it came from
// elsewhere, else its id here), created_at (kept from there, else the version's) and build
// (kept, with swcli's version added). Keys are written sorted, as Starwhale writes them.
func ExportManifest(ctx context.Context, in *Instance, v *ledger.Version, m *cas.Manifest) ([]byte, error) {
	var raw []byte
	for _, e := range m.Entries {
		if e.Path == formats.ManifestName && e.Kind == cas.KindFile && e.Size <= maxSwrtManifest {
			b, err := ReadEntry(ctx, in.Chunks, e)
			if err != nil {
				return nil, err
			}
			raw = b
		}
	}
	if raw == nil { // a version built before bundles carried a manifest
		bm, err := manifestForOldBundle(ctx, in, m, v)
		if err != nil {
			return nil, err
		}
		raw = bm.Encode()
	}
	doc := map[string]any{}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, Errorf(KindCorrupt, "", "%s of %s: %v", formats.ManifestName, v.ID, err)
	}
	doc["version"] = v.ID
	if _, ok := doc["created_at"].(string); !ok || v.Origin == "" {
		doc["created_at"] = v.Created.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	if v.Origin != "" {
		doc["version"] = v.Origin
	}
	build, _ := doc["build"].(map[string]any)
	if build == nil {
		build = map[string]any{}
	}
	defaults := map[string]any{"os": "Linux", "sw_version": formats.StarwhaleVersion, "python": v.Python}
	for k, val := range defaults {
		if _, ok := build[k]; !ok {
			build[k] = val
		}
	}
	build["swcli_version"] = in.ToolVersion
	doc["build"] = build
	return encodeYAML(doc), nil
}

// encodeYAML is v as YAML, indented by two (map keys sorted).
func encodeYAML(v any) []byte {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		panic(err) // maps of what YAML decoded always encode
	}
	enc.Close()
	return buf.Bytes()
}

// mergeManifests lays the fields of an imported bundle's manifest over the one import
// made: every field Starwhale (or another tool) wrote is kept as written, those only swcli
// writes are added, and local_packaged_env says what the bundle holds.
func mergeManifests(ours *formats.BundleManifest, theirs []byte) ([]byte, error) {
	var base, over map[string]any
	if err := yaml.Unmarshal(ours.Encode(), &base); err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(theirs, &over); err != nil {
		return nil, err
	}
	merged := mergeMaps(base, over)
	if deps, ok := merged["dependencies"].(map[string]any); ok {
		deps["local_packaged_env"] = ours.Deps.LocalPackagedEnv
	}
	return encodeYAML(merged), nil
}

func mergeMaps(base, over map[string]any) map[string]any {
	for k, v := range over {
		bm, ok1 := base[k].(map[string]any)
		om, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			base[k] = mergeMaps(bm, om)
			continue
		}
		base[k] = v
	}
	return base
}

// WriteSwrt streams version v as a .swrt (tar) to w, as it reads the chunks: nothing is
// held whole. File is left empty in the result.
func WriteSwrt(ctx context.Context, in *Instance, v *ledger.Version, w io.Writer) (*ExportResult, error) {
	m, err := cas.LoadManifest(ctx, in.Chunks, v.Manifest)
	if err != nil {
		return nil, err
	}
	mb, err := ExportManifest(ctx, in, v, m)
	if err != nil {
		return nil, err
	}
	res := &ExportResult{Version: v}
	mtime := time.Unix(v.Created.Unix(), 0)
	// A bundled environment travels as Starwhale carries it: packed into one tarball
	// (export/venv_env.tar.gz), made first in a held temporary of the root, since its
	// size goes before it. The store keeps it file by file.
	var packed *os.File
	envDir := ""
	for _, mode := range []string{"venv", "conda"} {
		for _, e := range m.Entries {
			if e.Path == "export/"+mode && e.Kind == cas.KindDir {
				envDir = e.Path
			}
		}
		if envDir != "" {
			tmp, err := NewWorkTemp(in.Root, "export")
			if err != nil {
				return nil, err
			}
			defer tmp.Remove()
			if packed, err = packEnv(ctx, in, m, envDir, mtime, filepath.Join(tmp.Dir, "env.tar.gz")); err != nil {
				return nil, err
			}
			defer packed.Close()
			break
		}
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: formats.ManifestName, Mode: 0o644, Size: int64(len(mb)), ModTime: mtime, Format: tar.FormatPAX, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(mb); err != nil {
		return nil, err
	}
	for _, e := range m.Entries {
		if e.Path == formats.ManifestName || envDir != "" && (e.Path == envDir || strings.HasPrefix(e.Path, envDir+"/")) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := writeEntry(ctx, in, tw, e, e.Path, mtime); err != nil {
			return nil, err
		}
	}
	if packed != nil {
		fi, err := packed.Stat()
		if err != nil {
			return nil, err
		}
		name := PackedEnvName(strings.TrimPrefix(envDir, "export/"))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), ModTime: mtime, Format: tar.FormatPAX, Typeflag: tar.TypeReg, Uname: "root", Gname: "root"}); err != nil {
			return nil, err
		}
		if _, err := io.Copy(tw, packed); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	// The version's files and bytes, as info counts them (whatever form they travel in).
	t := m.Totals()
	res.Files, res.Bytes = t.Files, t.Size
	return res, nil
}

// writeEntry writes one entry of a version to tw under name, its content read chunk by
// chunk; it returns the content bytes written.
func writeEntry(ctx context.Context, in *Instance, tw *tar.Writer, e cas.Entry, name string, mtime time.Time) (int64, error) {
	h := &tar.Header{Name: name, Mode: int64(e.Mode), ModTime: mtime, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
	switch e.Kind {
	case cas.KindDir:
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
	case cas.KindLink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
	case cas.KindFile:
		h.Typeflag, h.Size = tar.TypeReg, e.Size
	}
	if err := tw.WriteHeader(h); err != nil {
		return 0, err
	}
	var n int64
	if e.Kind == cas.KindFile {
		for _, c := range e.Chunks {
			d, err := in.Chunks.Get(ctx, c)
			if err != nil {
				return n, err
			}
			if _, err := tw.Write(d); err != nil {
				return n, err
			}
			n += int64(len(d))
		}
	}
	return n, nil
}

// packEnv writes the entries under dir as a gzipped tar (paths relative to dir, as
// venv-pack and conda-pack write them) to path, and returns it open at its start.
func packEnv(ctx context.Context, in *Instance, m *cas.Manifest, dir string, mtime time.Time, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	zw, err := kgzip.NewWriterLevel(f, kgzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, e := range m.Entries {
		rel, inside := strings.CutPrefix(e.Path, dir+"/")
		if !inside {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := writeEntry(ctx, in, tw, e, rel, mtime); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	ok = true
	return f, nil
}

// manifestForOldBundle describes a version built before bundles carried _manifest.yaml.
func manifestForOldBundle(ctx context.Context, in *Instance, m *cas.Manifest, v *ledger.Version) (*formats.BundleManifest, error) {
	var ry *formats.RuntimeYAML
	locked, packaged := false, false
	for _, e := range m.Entries {
		switch {
		case e.Path == "runtime.yaml" && e.Kind == cas.KindFile:
			b, err := ReadEntry(ctx, in.Chunks, e)
			if err != nil {
				return nil, err
			}
			if ry, err = formats.ParseRuntimeYAML("runtime.yaml of "+v.ID, b, ""); err != nil {
				return nil, err
			}
		case e.Path == formats.LegacyLockName("venv") || e.Path == formats.LegacyLockName("conda") || e.Path == formats.LockName("venv") || e.Path == formats.LockName("conda"):
			locked = true
		case e.Path == "export/venv" || e.Path == "export/conda":
			packaged = true
		}
	}
	if ry == nil {
		return nil, Errorf(KindCorrupt, "", "version %s has no runtime.yaml", v.ID)
	}
	return formats.NewBundleManifest(ry, v.Python, locked, packaged), nil
}

// ImportRequest is `swcli runtime import`.
type ImportRequest struct {
	File    string
	Project string
	Name    string // overrides the runtime's name (a 2022 bundle may not carry one)
	// Runtime, when set, is the runtime the bundle must be: a bundle of another is refused
	// before anything is stored (a 2022 bundle takes it as its name).
	Runtime string
	// Label is what errors and the ledger call the file (default: its absolute path); a
	// server gives the name the client sent, never a path of its own.
	Label string
	Warn  func(string)
}

// ImportResult says what import stored.
type ImportResult struct {
	Project, Runtime, Version string
	Layout                    string // "current" or "2022"
	Origin                    string // the id the bundle had where it was made, if another
	Files                     int
	Size, NewBytes            int64
	New                       bool
}

// incomingManifest is what import reads of a bundle's _manifest.yaml (current and 2022).
type incomingManifest struct {
	Name        string `yaml:"name"`
	Version     string `yaml:"version"`
	Environment struct {
		Python string `yaml:"python"`
		Mode   string `yaml:"mode"`
		Lock   struct {
			PythonVersion string `yaml:"python_version"`
			Shell         struct {
				PythonVersion string `yaml:"python_version"` // Starwhale's exact version
			} `yaml:"shell"`
		} `yaml:"lock"`
	} `yaml:"environment"`
	Build map[string]any `yaml:"build"`
	Dep   struct {       // 2022
		Env          string `yaml:"env"`
		ExpectedMode string `yaml:"expected_mode"`
		Python       string `yaml:"python"`
		LocalGenEnv  bool   `yaml:"local_gen_env"`
	} `yaml:"dep"`
}

// madeBySwcli says whether swcli exported the bundle (its build names swcli's version).
func (m *incomingManifest) madeBySwcli() bool {
	_, ok := m.Build["swcli_version"]
	return ok
}

// ImportSwrt reads a .swrt, unpacks it (checked, inside a temporary directory of the
// instance), maps the 2022 layout onto the current one, and stores it as a version.
func ImportSwrt(ctx context.Context, in *Instance, req ImportRequest) (*ImportResult, error) {
	if _, err := in.Ledger.Project(req.Project); err != nil {
		return nil, LedgerErr(err)
	}
	src, err := filepath.Abs(req.File)
	if err != nil {
		return nil, err
	}
	shown := src // what errors and the ledger call the bundle
	if req.Label != "" {
		shown = req.Label
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, Errorf(KindNotFound, "give the path of a .swrt file", "import: %s: %v", req.File, formats.UnwrapPathErr(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		return nil, Errorf(KindInvalid, "give the path of a .swrt file", "import: %s is a directory", req.File)
	}
	tmp, err := NewWorkTemp(in.Root, "import")
	if err != nil {
		return nil, err
	}
	defer tmp.Remove()
	raw := filepath.Join(tmp.Dir, "raw")
	if err := untar(f, raw, shown); err != nil {
		return nil, err
	}
	// Every step below works inside raw through an os.Root: a link the bundle carried can
	// lead nowhere outside it.
	rr, err := os.OpenRoot(raw)
	if err != nil {
		return nil, err
	}
	defer rr.Close()
	res := &ImportResult{Project: req.Project, Layout: "current"}
	var incoming incomingManifest

	var incomingRaw []byte
	if b, err := readInRoot(rr, formats.ManifestName, maxSwrtManifest); err == nil {
		incomingRaw = b
		if err := yaml.Unmarshal(b, &incoming); err != nil {
			return nil, Errorf(KindInvalid, "give a .swrt made by Starwhale or 'swcli runtime export'", "%s: %s: %v", shown, formats.ManifestName, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, Errorf(KindInvalid, "give a .swrt made by Starwhale or 'swcli runtime export'", "%s: %s: %v", shown, formats.ManifestName, err)
	}
	rr.Remove(formats.ManifestName)
	python := incoming.Environment.Lock.PythonVersion
	if python == "" {
		python = incoming.Environment.Lock.Shell.PythonVersion
	}
	if python == "" || formats.MajorMinorOf(python) != formats.MajorMinorOf(incoming.Environment.Python) && incoming.Environment.Python != "" {
		python = incoming.Environment.Python
	}
	if _, err := rr.Lstat("runtime.yaml"); errors.Is(err, os.ErrNotExist) {
		if _, err := rr.Lstat("dep"); err != nil {
			return nil, Errorf(KindInvalid, "give a .swrt made by Starwhale or 'swcli runtime export'",
				"%s: neither runtime.yaml (current layout) nor dep/ (2022 layout) in the bundle", shown)
		}
		res.Layout = "2022"
		name := req.Name
		if name == "" {
			name = req.Runtime
		}
		if name == "" {
			name = incoming.Name
		}
		if name == "" {
			return nil, Errorf(KindUsage, "pass --name NAME", "%s: a 2022 bundle does not say its runtime's name", shown)
		}
		python = incoming.Dep.Python
		mode := incoming.Dep.Env
		if mode != "conda" {
			mode = "venv"
		}
		if err := from2022(rr, strings.ToLower(name), mode, python, req.Warn); err != nil {
			return nil, err
		}
	} else if req.Name != "" {
		return nil, Errorf(KindUsage, "leave out --name: the bundle's runtime.yaml names it", "%s: --name is for 2022 bundles, which carry no runtime.yaml", shown)
	}
	yb, err := readInRoot(rr, "runtime.yaml", formats.MaxRuntimeYAML)
	if err != nil {
		return nil, Errorf(KindInvalid, "", "%s: runtime.yaml: %v", shown, err)
	}
	ry, err := formats.ParseRuntimeYAML(shown+"!runtime.yaml", yb, "")
	if err != nil {
		return nil, err
	}
	if req.Runtime != "" && ry.Name != req.Runtime {
		return nil, Errorf(KindUsage, "copy it to a runtime of its own name", "%s: the bundle is runtime %s, not %s", shown, ry.Name, req.Runtime)
	}
	if python != "" && !pythonVersionRE.MatchString(python) {
		return nil, Errorf(KindInvalid, "", "%s: %s: python version %q is not a version (digits and dots)", shown, formats.ManifestName, python)
	}
	if p := formats.MajorMinorOf(python); ry.Python != "" && p != "" && p != ry.Python {
		return nil, Errorf(KindInvalid, "", "%s: runtime.yaml says python %s, the manifest %s", shown, ry.Python, python)
	}
	if err := unpackPackagedEnv(rr, raw, ry.Mode, shown); err != nil {
		return nil, err
	}
	locked := regularInRoot(rr, formats.LockName(ry.Mode))
	packaged := dirInRoot(rr, "export/"+ry.Mode)
	bm := formats.NewBundleManifest(ry, python, locked, packaged)
	manifest := bm.Encode()
	if incomingRaw != nil && res.Layout == "current" && !incoming.madeBySwcli() {
		// Keep what another maker (Starwhale) wrote: a re-export gives its manifest back.
		// A bundle swcli exported is the version it came from: its manifest is made again.
		if manifest, err = mergeManifests(bm, incomingRaw); err != nil {
			return nil, Errorf(KindInvalid, "", "%s: %s: %v", shown, formats.ManifestName, err)
		}
	}
	inputs := []cas.Input{{Src: raw, Dest: ""}, {Data: manifest, Dest: formats.ManifestName}}
	ing, err := cas.Ingest(ctx, in.Store, inputs, cas.IngestOptions{})
	if err != nil {
		return nil, err
	}
	id := VersionID(ing.Hash)
	// The id the bundle had where it was made: the version answers to it too (a bundle
	// swcli exported carries its own id, and one that is not an id is not kept).
	origin := strings.ToLower(incoming.Version)
	if ledger.CheckOrigin(origin, id) != nil {
		origin = ""
	}
	host, _ := os.Hostname()
	ev, err := in.Append(ctx, ledger.RuntimeBuilt, req.Project, ry.Name, id, ledger.BuiltData{
		Files: int64(ing.Files), GenAllBundles: packaged, Host: host, Manifest: ing.Hash,
		Mode: ry.Mode, NewBytes: ing.NewStored, Origin: origin, Python: python, Size: ing.Size,
		ToolVersion: in.ToolVersion, Workdir: shown,
	})
	if err != nil {
		return nil, err
	}
	v, err := in.Ledger.Resolve(req.Project, ry.Name, id)
	if err != nil {
		return nil, LedgerErr(err)
	}
	res.Runtime, res.Version, res.Files, res.Size, res.NewBytes, res.New = ry.Name, id, ing.Files, ing.Size, ing.NewStored, v.Seq == ev.Seq
	res.Origin = v.Origin
	return res, nil
}

// from2022 rearranges an unpacked 2022 bundle (dep/python/requirements-lock.txt,
// dep/python/requirements.txt, dep/python/venv/, dep/conda/env-lock.yaml) into the
// current layout, with a runtime.yaml made from its manifest.
func from2022(raw *os.Root, name, mode, python string, warn func(string)) error {
	move := func(from, to string) (bool, error) {
		if _, err := raw.Lstat(from); err != nil {
			return false, nil
		}
		if err := raw.MkdirAll(path.Dir(to), 0o755); err != nil {
			return false, bundlePathErr(err)
		}
		return true, bundlePathErr(raw.Rename(from, to))
	}
	var deps []string
	for _, m := range []struct{ from, to string }{
		{"dep/python/requirements-lock.txt", formats.LockName("venv")},
		{"dep/python/pip-req-lock.txt", formats.LockName("venv")},
		{"dep/conda/env-lock.yaml", formats.LockName("conda")},
		{"dep/python/venv", "export/venv"},
	} {
		if _, err := move(m.from, m.to); err != nil {
			return err
		}
	}
	for _, r := range []string{"requirements.txt", "pip-req.txt"} {
		ok, err := move("dep/python/"+r, "dependencies/"+r)
		if err != nil {
			return err
		}
		if ok {
			deps = append(deps, r)
		}
	}
	var left []string
	fs.WalkDir(raw.FS(), "dep", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 && warn != nil {
		warn(fmt.Sprintf("2022 bundle: left out %s (not part of the current layout)", strings.Join(left, ", ")))
	}
	if err := raw.RemoveAll("dep"); err != nil {
		return err
	}
	y := map[string]any{"api_version": formats.RuntimeAPIVersion, "name": name, "mode": mode}
	if mm := formats.MajorMinorOf(python); mm != "" {
		y["environment"] = map[string]any{"python": mm}
	}
	if len(deps) > 0 {
		y["dependencies"] = deps
	}
	b, err := yaml.Marshal(y)
	if err != nil {
		return err
	}
	f, err := raw.OpenFile("runtime.yaml", os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return bundlePathErr(err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// bundlePathErr says that a path of the bundle led outside it (through a link it carried).
func bundlePathErr(err error) error {
	if err == nil || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return err
	}
	return &Error{Kind: KindInvalid, Err: fmt.Errorf("2022 bundle: %w", err),
		Hint: "the bundle's links lead outside it: give a .swrt made by Starwhale or 'swcli runtime export'"}
}

// readInRoot reads a regular file of r (not a link, at most limit bytes).
func readInRoot(r *os.Root, name string, limit int64) ([]byte, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return formats.ReadLimited(f, name, limit)
}

func regularInRoot(r *os.Root, name string) bool {
	fi, err := r.Lstat(name)
	return err == nil && fi.Mode().IsRegular()
}

func dirInRoot(r *os.Root, name string) bool {
	fi, err := r.Lstat(name)
	return err == nil && fi.IsDir()
}

// PackedEnvName is where Starwhale's bundles carry a packed environment (venv-pack or
// conda-pack, with dependencies.local_packaged_env).
func PackedEnvName(mode string) string {
	if mode == "conda" {
		return "export/conda_env.tar.gz"
	}
	return "export/venv_env.tar.gz"
}

// maxPackedExpansion bounds what a packed environment may expand to, as a multiple of its
// compressed size (environments compress 3–5 times; a bomb is refused, not unpacked).
const maxPackedExpansion = 64

// unpackPackagedEnv unpacks a Starwhale bundle's packed environment into export/MODE/, as
// swcli's own bundles hold it (the store keeps it file by file, deduplicated), and drops the
// tarball: export writes it again. Unpacking is checked as the bundle's own is.
func unpackPackagedEnv(rr *os.Root, raw, mode, shown string) error {
	name := PackedEnvName(mode)
	if !regularInRoot(rr, name) {
		return nil
	}
	bad := func(format string, args ...any) error {
		return Errorf(KindInvalid, "give a .swrt made by Starwhale or 'swcli runtime export'", "%s: %s: %s", shown, name, fmt.Sprintf(format, args...))
	}
	if fi, err := rr.Lstat("export"); err != nil || !fi.IsDir() {
		return bad("export is not a directory")
	}
	if _, err := rr.Lstat("export/" + mode); err == nil {
		return bad("the bundle holds both export/%s and its packed form", mode)
	}
	f, err := rr.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		return bad("not gzip: %v", err)
	}
	limit := max(fi.Size()*maxPackedExpansion, 64<<20)
	if err := untar(&expansionLimit{r: gz, left: limit, name: name, limit: limit}, filepath.Join(raw, "export", mode), shown+"!"+name); err != nil {
		return err
	}
	// The environment's own directory, as a build stores it (the packs' root entry,
	// "/" or "./", is not unpacked).
	if err := rr.Chmod("export/"+mode, 0o755); err != nil {
		return err
	}
	return rr.Remove(name)
}

// expansionLimit fails a read past limit bytes, naming the file.
type expansionLimit struct {
	r           io.Reader
	left, limit int64
	name        string
}

func (e *expansionLimit) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, Errorf(KindInvalid, "", "%s expands past %d bytes (%d times its size): refused", e.name, e.limit, maxPackedExpansion)
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	return n, err
}

// untar unpacks a .swrt into dir, refusing what could write outside it or is not part of a
// bundle: absolute or escaping paths, paths through a symbolic link, devices, hard links
// out of the archive, duplicate paths, more than MaxSwrtEntries entries, sparse entries.
// What it writes is bounded by what it reads: an entry's bytes are counted as they stream,
// and the total written never exceeds the bytes read from r (a tar's holes, sparse maps or
// lying headers cannot make it write more than the bundle carries).
func untar(r io.Reader, dir, name string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return Errorf(KindInvalid, "give a .swrt made by Starwhale or 'swcli runtime export'", "%s: %s", name, fmt.Sprintf(format, args...))
	}
	in := &countingReader{r: r}
	tr := tar.NewReader(in)
	seen := map[string]bool{}
	var written int64
	var dirModes []struct {
		p    string
		mode os.FileMode
	}
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return bad("not a tar archive: %v", err)
		}
		if n >= MaxSwrtEntries {
			return bad("more than %d entries", MaxSwrtEntries)
		}
		p := strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(h.Name, "./")), "/")
		if h.Name == "./" || h.Name == "." || p == "" {
			continue
		}
		if len(h.Name) > MaxSwrtPath || strings.HasPrefix(h.Name, "/") || cas.ValidPath(p) != nil || strings.Contains(h.Name, "..") {
			return bad("entry %q is not a relative path inside the bundle", h.Name)
		}
		for _, part := range strings.Split(p, "/") {
			if len(part) > maxNameComponent {
				return bad("entry %q: a path component of %d bytes (at most %d)", Truncate(p), len(part), maxNameComponent)
			}
		}
		if h.Typeflag == tar.TypeGNUSparse || isSparse(h) {
			return bad("entry %q is a sparse file; a bundle holds regular files only", p)
		}
		if seen[p] {
			return bad("entry %q appears twice", p)
		}
		seen[p] = true
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := parentsInside(dir, p); err != nil {
			return bad("entry %q: %v", p, err)
		}
		mode := os.FileMode(h.Mode) & 0o777
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.Mkdir(full, 0o700); err != nil && !os.IsExist(err) {
				return err
			}
			if fi, err := os.Lstat(full); err != nil || !fi.IsDir() {
				return bad("entry %q is a directory and something else", p)
			}
			dirModes = append(dirModes, struct {
				p    string
				mode os.FileMode
			}{full, mode})
		case tar.TypeReg, '\x00': // and the old TypeRegA
			if h.Size < 0 {
				return bad("entry %q: negative size", p)
			}
			out, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
			if err != nil {
				return fmt.Errorf("import %s: %w", p, err)
			}
			err = copyBounded(out, tr, in, &written)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			var re *ReadErr
			switch {
			case errors.As(err, &re):
				return bad("entry %q: %v", p, re.Err)
			case err != nil:
				return fmt.Errorf("import %s: %w", p, err) // the disk: ENOSPC is exit 11
			}
			if err := os.Chmod(full, mode); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if len(h.Linkname) > MaxSwrtPath {
				return bad("link %q: its target is longer than %d bytes", p, MaxSwrtPath)
			}
			if err := os.Symlink(h.Linkname, full); err != nil {
				return fmt.Errorf("import %s: %w", p, err)
			}
		case tar.TypeLink:
			t := strings.TrimPrefix(path.Clean("/"+h.Linkname), "/")
			if !seen[t] || cas.ValidPath(t) != nil {
				return bad("hard link %q to %q, which is not an earlier file of the bundle", p, h.Linkname)
			}
			if err := parentsInside(dir, t); err != nil {
				return bad("entry %q: %v", p, err)
			}
			// A hard link costs its target's size again on disk, from no bytes of input:
			// it is charged to the budget like a file.
			fi, err := os.Lstat(filepath.Join(dir, filepath.FromSlash(t)))
			if err != nil || !fi.Mode().IsRegular() {
				return bad("hard link %q to %q, which is not a regular file of the bundle", p, h.Linkname)
			}
			if written+fi.Size() > in.n {
				return bad("hard link %q: its copies would write more than the bundle's %d bytes", p, in.n)
			}
			written += fi.Size()
			if err := copyRegular(filepath.Join(dir, filepath.FromSlash(t)), full, os.O_EXCL); err != nil {
				if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
					return fmt.Errorf("import %s: %w", p, err)
				}
				return bad("hard link %q: %v", p, err)
			}
		case tar.TypeXGlobalHeader:
			continue
		default:
			return bad("entry %q is of a kind a bundle does not hold (type %q)", p, h.Typeflag)
		}
	}
	for i := len(dirModes) - 1; i >= 0; i-- {
		if err := os.Chmod(dirModes[i].p, dirModes[i].mode|0o700); err != nil {
			return err
		}
	}
	return nil
}

// isSparse reports a PAX or GNU sparse entry (its holes would be written as zeros that the
// archive does not carry).
func isSparse(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ReadErr marks an error of the archive (not of the disk).
type ReadErr struct{ Err error }

func (e *ReadErr) Error() string { return e.Err.Error() }

// copyBounded copies an entry from tr to out, keeping *written (the bytes written so far)
// at most the bytes read from the archive: an entry cannot write what the bundle does not
// carry.
func copyBounded(out io.Writer, tr io.Reader, in *countingReader, written *int64) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := tr.Read(buf)
		if n > 0 {
			if *written+int64(n) > in.n {
				return &ReadErr{fmt.Errorf("it expands to more bytes than the bundle carries (%d read so far)", in.n)}
			}
			if _, werr := out.Write(buf[:n]); werr != nil {
				return werr
			}
			*written += int64(n)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return &ReadErr{err}
		}
	}
}

// parentsInside makes the directories above rel in dir, refusing to pass through a link.
func parentsInside(dir, rel string) error {
	at := dir
	parts := strings.Split(rel, "/")
	for _, part := range parts[:len(parts)-1] {
		at = filepath.Join(at, part)
		fi, err := os.Lstat(at)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(at, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("its directory %s is a symbolic link in the bundle", strings.TrimPrefix(at, dir+"/"))
		case !fi.IsDir():
			return fmt.Errorf("its directory %s is a file", strings.TrimPrefix(at, dir+"/"))
		}
	}
	return nil
}

// copyRegular copies a regular file (not a link) to to, never through a link: flag is
// os.O_EXCL (a new file) or os.O_TRUNC (replace one).
func copyRegular(from, to string, flag int) error {
	return fsutil.CopyRegular(os.OpenFile, from, os.OpenFile, to, flag, filepath.Base(from))
}
