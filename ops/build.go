package ops

import (
	"context"
	"encoding/base32"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/formats"
)

// VersionID derives a version id from a bundle's tree hash: lowercase, unpadded base32 of
// its first 20 bytes (32 characters of a-z2-7).
func VersionID(tree cas.Hash) string {
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(tree[:20]))
}

// BuildRequest is `swcli runtime build`.
type BuildRequest struct {
	Workdir         string
	Project         string
	YAML            string // default WORKDIR/runtime.yaml
	GenAllBundles   bool
	IncludeEditable bool
	Progress        cas.Progress
	Warn            func(string) // told about unknown runtime.yaml keys
	// EnvDir, if set, is the environment to lock and bundle instead of WORKDIR/venv (or
	// WORKDIR/conda): build --venv, --conda, --shell and lock -p.
	EnvDir string
	// IncludeLocalWheel keeps lock lines that pin files of this host (Starwhale's -ilw).
	IncludeLocalWheel bool
	// Say, if set, hears each step of making the environment (a workdir without one).
	Say func(string)
	// Start, if set, is what StartBuild began before the instance opened; Build takes
	// what applies to it and stops the rest.
	Start *BuildStart
}

// BuildResult is what a build stored.
type BuildResult struct {
	Project, Runtime, Version string
	Manifest                  cas.Hash
	Files                     int
	Size                      int64 // content bytes of the bundle
	NewBytes                  int64 // content bytes not stored before
	NewStored                 int64 // stored (compressed) bytes added
	Python                    string
	VN                        int
	New                       bool // a new version (false: a rebuild of an existing one)
	Seq                       uint64
	LockBy                    string // how the lock was made: "cache", "metadata", or the command (and why)
}

// Build locks the workdir's environment, stores the bundle and records runtime.built.
func Build(ctx context.Context, in *Instance, req BuildRequest) (*BuildResult, error) {
	defer req.Start.Stop()
	wd, err := filepath.Abs(req.Workdir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(wd); err != nil || !fi.IsDir() {
		return nil, Errorf(KindNotFound, "give the workdir that holds runtime.yaml", "workdir %s does not exist", req.Workdir)
	}
	yml := runtimeYAMLPath(wd, req.YAML)
	ry, raw, err := formats.LoadRuntimeYAML(yml, wd)
	if err != nil {
		if req.YAML != "" && KindOf(err) == KindNotFound {
			return nil, Errorf(KindNotFound, "swcli runtime build "+req.Workdir+" -f FILE, with FILE in the current directory or in the workdir",
				"-f %s: no such file (looked for %s)", req.YAML, yml)
		}
		return nil, err
	}
	if req.Warn != nil {
		for _, w := range ry.Warnings {
			req.Warn(w)
		}
	}
	if _, read, err := in.Ledger.OpenProject(req.Project); !read {
		if _, err := in.Ledger.Project(req.Project); err != nil {
			return nil, LedgerErr(err)
		}
	} else if err != nil {
		return nil, LedgerErr(err)
	}
	envDir := filepath.Join(wd, ry.Mode)
	if req.EnvDir != "" {
		envDir = req.EnvDir
	} else if _, err := os.Stat(filepath.Join(envDir, "bin", "python")); err != nil {
		// No environment in the workdir: build makes one where Starwhale's build does, with
		// runtime.yaml's python and dependencies (or takes the one made before).
		say := req.Say
		if say == nil {
			say = func(string) {}
		}
		if envDir, err = formats.BuildEnv(ctx, wd, ry, raw, say); err != nil {
			return nil, err
		}
	}
	py := filepath.Join(envDir, "bin", "python")
	if _, err := os.Stat(py); err != nil {
		return nil, Errorf(KindNotFound, "give the directory that holds bin/python",
			"%s environment %s not found", ry.Mode, envDir)
	}
	var python string
	var lock []byte
	key := ""
	if ry.Mode == "venv" {
		key = formats.LockKey(envDir, req.IncludeEditable)
	}
	lockInput := cas.Input{Dest: formats.LockName(ry.Mode)}
	var lockErr error
	lockBy := "cache"      // the environment is as the last build found it
	var done chan struct{} // closed when the lock is made, if it is made during the ingest
	if e, ok := formats.ReadLockCache(in.Root, key); ok {
		python, lock = e.Python, e.Lock
		lockInput.Data = lock
	} else {
		// What makes locking fail is checked here, before anything is stored: the
		// interpreter runs, pip imports (venv), conda is there (conda). The lock itself
		// (read at once for a plain venv; pip freeze ~0.5 s, conda env export longer) is
		// then made while the bundle is stored, and added to it last.
		if ry.Mode != "venv" {
			if _, err := formats.LookConda(); err != nil {
				return nil, err
			}
		}
		var venv *formats.Venv
		var err error
		if c, ok := req.Start.checked(ry.Mode, envDir, key); ok {
			python, venv, err = c.python, c.venv, c.err
		} else {
			python, venv, err = checkEnv(ctx, ry.Mode, wd, envDir)
		}
		if err != nil {
			return nil, err
		}
		done = make(chan struct{})
		go func() {
			defer close(done)
			lock, lockBy, lockErr = lockEnv(ctx, ry.Mode, wd, envDir, py, venv, req.IncludeEditable)
		}()
		lockInput.Later = func() ([]byte, error) {
			<-done
			return lock, lockErr
		}
	}

	if err := checkEnvPython(ry, yml, envDir, python); err != nil {
		if done != nil {
			<-done
		}
		return nil, err
	}
	filter := func(lock []byte) []byte {
		if req.IncludeLocalWheel {
			return lock
		}
		out, dropped := formats.TravellingLock(lock)
		if req.Warn != nil {
			for _, w := range formats.DescribeDropped(dropped, ry) {
				req.Warn(w)
			}
		}
		return out
	}
	if lockInput.Later == nil { // from the lock cache (nil Data: an empty lock, an empty file)
		lockInput.Data = filter(lockInput.Data)
	} else {
		later := lockInput.Later
		lockInput.Later = func() ([]byte, error) {
			b, err := later()
			if err != nil {
				return nil, err
			}
			return filter(b), nil
		}
	}
	manifest := formats.NewBundleManifest(ry, python, true, req.GenAllBundles)
	inputs := []cas.Input{
		{Data: raw, Dest: "runtime.yaml"},
		{Data: manifest.Encode(), Dest: formats.ManifestName},
		lockInput,
	}
	if ry.Condarc != "" {
		// As Starwhale does: restore points CONDARC at it. Channels reach conda through
		// the lock (conda env export lists them) and, without a lock, --channel.
		inputs = append(inputs, cas.Input{Data: []byte(ry.Condarc), Dest: "configs/condarc"})
	}
	// Paths are taken as LoadRuntimeYAML checked them: resolved, inside the workdir, so the
	// bundle holds the files themselves, never a link.
	resolve := func(rel string) string {
		if p, err := filepath.EvalSymlinks(filepath.Join(wd, rel)); err == nil {
			return p
		}
		return filepath.Join(wd, rel)
	}
	for _, d := range ry.Dependencies {
		if d.File != "" {
			dest := path.Join("dependencies", path.Clean(filepath.ToSlash(d.File)))
			if dest == formats.LockName(ry.Mode) {
				// Starwhale's lock (before --disable-auto-inject) named its own lock in
				// runtime.yaml: the lock made now takes its place.
				if req.Warn != nil {
					req.Warn(fmt.Sprintf("%s names the lock file %s: the lock made by this build takes its place", yml, d.File))
				}
				continue
			}
			inputs = append(inputs, cas.Input{Src: resolve(d.File), Dest: dest})
		}
		for _, w := range d.Wheels {
			inputs = append(inputs, cas.Input{Src: resolve(w), Dest: formats.WheelDest(w)})
		}
		for _, f := range d.Files {
			inputs = append(inputs, cas.Input{Src: resolve(f.Src), Dest: formats.FileDest(f)})
		}
	}
	if req.GenAllBundles {
		// A workdir's environment may be a link to one elsewhere: the bundle holds the
		// environment itself, never the link (restore would write through it).
		src, err := filepath.EvalSymlinks(envDir)
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", envDir, err)
		}
		inputs = append(inputs, cas.Input{Src: src, Dest: path.Join("export", ry.Mode)})
	}
	if t, ok := req.Progress.(interface{ Total(int, int64) }); ok {
		t.Total(cas.PlanInputs(inputs)) // a bar's total before the work starts
	}
	// The ledger is opened for the build's event while the manifest is made and the last
	// pack sealed (a writer's open is ~7 ms of synced writes), if no other process has it:
	// from the walk's end to the event, so other processes' events wait at most that long
	// (for a small tree the tree cache vouches for, from the start of its ~45 ms walk).
	var prepared chan func()
	defer func() {
		if prepared != nil {
			(<-prepared)()
		}
	}()
	walked := func() {
		prepared = make(chan func(), 1)
		go func() { prepared <- in.Ledger.PrepareWrite() }()
	}
	unwalked := func() { // readied beside the tree cache's walk, which found the tree changed
		if prepared != nil {
			(<-prepared)()
			prepared = nil
		}
	}
	res, err := cas.Ingest(ctx, in.Store, inputs, cas.IngestOptions{Progress: req.Progress, Walked: walked, Unwalked: unwalked,
		Prewalk: req.Start.prewalk()})
	if done != nil {
		<-done // an ingest that failed early never asked for the lock
		if lockErr != nil {
			return nil, lockErr
		}
		if err == nil {
			formats.WriteLockCache(in.Root, key, formats.LockEntry{Python: python, Lock: lock})
		}
	}
	if err != nil {
		return nil, err
	}
	id := VersionID(res.Hash)
	host, _ := os.Hostname()
	ev, err := in.Append(ctx, ledger.RuntimeBuilt, req.Project, ry.Name, id, ledger.BuiltData{
		Files: int64(res.Files), GenAllBundles: req.GenAllBundles, Host: host, Manifest: res.Hash,
		Mode: ry.Mode, NewBytes: res.NewStored, Python: python, Size: res.Size,
		ToolVersion: in.ToolVersion, Workdir: workdirOf(wd, req.EnvDir),
	})
	if err != nil {
		return nil, err
	}
	v, err := in.Ledger.Resolve(req.Project, ry.Name, id)
	if err != nil {
		return nil, LedgerErr(err)
	}
	return &BuildResult{Project: req.Project, Runtime: ry.Name, Version: id, Manifest: res.Hash,
		Files: res.Files, Size: res.Size, NewBytes: res.NewBytes, NewStored: res.NewStored,
		Python: python, VN: v.VN, New: v.Seq == ev.Seq, Seq: ev.Seq, LockBy: lockBy}, nil
}

// lockEnv pins the environment: pip freeze of the venv (read by formats.Freeze when it
// can vouch for what pip would print), or conda env export. It says how, and for pip why.
func lockEnv(ctx context.Context, mode, wd, envDir, py string, venv *formats.Venv, includeEditable bool) ([]byte, string, error) {
	if mode == "conda" {
		conda, err := formats.LookConda()
		if err != nil {
			return nil, "", err
		}
		out, err := formats.RunCommand(ctx, wd, nil, conda, "env", "export", "--prefix", envDir)
		if err != nil {
			return nil, "", &Error{Kind: KindEnv, Err: err}
		}
		return out, "conda env export", nil
	}
	by := "pip freeze"
	if venv != nil {
		lock, err := formats.Freeze(venv, os.Environ())
		if err == nil {
			return lock, "metadata", nil
		}
		by = "pip freeze (" + err.Error() + ")"
	}
	args := []string{"-m", "pip", "freeze"}
	if !includeEditable {
		args = append(args, "--exclude-editable")
	}
	// Output, not CombinedOutput: a pip warning on stderr must not end up in the lock.
	cmd := exec.CommandContext(ctx, py, args...)
	cmd.Dir = wd
	out, err := cmd.Output()
	if err != nil {
		return nil, "", &Error{Kind: KindEnv, Err: fmt.Errorf("pip freeze in %s: %v", envDir, err), Hint: "the venv needs pip (python -m ensurepip)"}
	}
	return out, by, nil
}

// checkEnv runs the environment's python before anything is stored or locked: it must
// start, and a venv's pip must import. It gives python's version and, for a venv, what
// formats.Freeze reads.
func checkEnv(ctx context.Context, mode, wd, envDir string) (string, *formats.Venv, error) {
	py := filepath.Join(envDir, "bin", "python")
	if mode != "venv" {
		python, err := EnvPython(ctx, envDir)
		return python, nil, err
	}
	out, err := formats.RunCommand(ctx, wd, nil, py, "-c", formats.VenvCheck)
	if err != nil {
		// Named by the interpreter and what it said last, not by the check's program.
		if tail := formats.LastLine(out); tail != "" {
			err = fmt.Errorf("%s: %s", py, tail)
		}
		return "", nil, &Error{Kind: KindEnv, Err: err, Hint: "the venv's python and its pip must run (python -m ensurepip)"}
	}
	venv, err := formats.ParseVenvCheck(out)
	if err != nil {
		return "", nil, &Error{Kind: KindEnv, Err: fmt.Errorf("%s: %w", py, err)}
	}
	return venv.Python, venv, nil
}

// checkEnvPython refuses an environment whose python contradicts runtime.yaml.
func checkEnvPython(ry *formats.RuntimeYAML, yml, envDir, python string) error {
	if ry.Python == "" || formats.MajorMinorOf(python) == ry.Python {
		return nil
	}
	return Errorf(KindInvalid, "make the environment with python "+ry.Python+", or change environment.python",
		"%s says python %s, but the environment %s has python %s", yml, ry.Python, envDir, python)
}

func workdirOf(wd, envDir string) string {
	if envDir != "" {
		return envDir
	}
	return wd
}

// runtimeYAMLPath is the runtime.yaml a build of the workdir wd reads: WORKDIR/runtime.yaml,
// or -f's file as given if it exists, else in the workdir.
func runtimeYAMLPath(wd, yml string) string {
	if yml == "" {
		return filepath.Join(wd, "runtime.yaml")
	}
	if !filepath.IsAbs(yml) {
		if _, err := os.Stat(yml); err != nil {
			return filepath.Join(wd, yml)
		}
	}
	return yml
}

// BuildStart is what a build of a workdir begins before its instance is open (StartBuild),
// for Build to take when it applies (req.Start): the tree cache's walk of the environment
// (a rebuild's check, cas.Prewalk), and, when the environment's lock is not in the lock
// cache, the environment's check (its python run, ~50 ms), which a first build otherwise
// runs after the instance's creation.
type BuildStart struct {
	walk   *cas.Prewalk
	cancel context.CancelFunc
	mode   string
	envDir string
	check  chan envCheck // the check's result, once; nil for an environment not a venv
	got    *envCheck
}

// envCheck is the environment's check made early, for its lock cache key then ("" when
// none was made: the lock was cached, or the environment changing).
type envCheck struct {
	key    string
	python string
	venv   *formats.Venv
	err    error
}

// StartBuild starts what a build of workdir (runtime.yaml yml, -f's) into the instance at
// root can begin before the instance opens. Nothing starts when runtime.yaml does not
// load or the environment is not in the workdir: Build says why, or makes it. The caller
// stops it (Stop) if Build is not called.
func StartBuild(ctx context.Context, root, workdir, yml string, genAllBundles, includeEditable bool) *BuildStart {
	if workdir == "" {
		return nil
	}
	wd, err := filepath.Abs(workdir)
	if err != nil {
		return nil
	}
	ry, _, err := formats.LoadRuntimeYAML(runtimeYAMLPath(wd, yml), wd)
	if err != nil {
		return nil
	}
	envDir := filepath.Join(wd, ry.Mode)
	if _, err := os.Stat(filepath.Join(envDir, "bin", "python")); err != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	b := &BuildStart{cancel: cancel, mode: ry.Mode, envDir: envDir}
	if genAllBundles {
		if src, err := filepath.EvalSymlinks(envDir); err == nil {
			b.walk = cas.StartPrewalk(ctx, src, path.Join("export", ry.Mode))
		}
	}
	if ry.Mode == "venv" { // the lock cache looked up beside the instance's opening too
		b.check = make(chan envCheck, 1)
		go func() {
			key := formats.LockKey(envDir, includeEditable)
			if _, cached := formats.ReadLockCache(root, key); key == "" || cached {
				b.check <- envCheck{}
				return
			}
			python, venv, err := checkEnv(ctx, ry.Mode, wd, envDir)
			b.check <- envCheck{key, python, venv, err}
		}()
	}
	return b
}

// prewalk is the walk begun, if any.
func (b *BuildStart) prewalk() *cas.Prewalk {
	if b == nil {
		return nil
	}
	return b.walk
}

// checked returns the environment's check begun by StartBuild, if it checked envDir in
// mode and the environment's lock key is still key (nothing in it changed since).
func (b *BuildStart) checked(mode, envDir, key string) (*envCheck, bool) {
	if b == nil || b.check == nil || mode != b.mode || envDir != b.envDir || key == "" {
		return nil, false
	}
	if c := b.wait(); c.key == key {
		return c, true
	}
	return nil, false
}

// wait returns the early check's result, once it is there.
func (b *BuildStart) wait() *envCheck {
	if b.got == nil {
		c := <-b.check
		b.got = &c
	}
	return b.got
}

// Stop ends what is still running and waits for it. A nil BuildStart stops at once.
func (b *BuildStart) Stop() {
	if b == nil {
		return
	}
	b.cancel()
	b.walk.Stop()
	if b.check != nil {
		b.wait()
	}
}
