package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/internal/flock"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
)

// open opens the standalone instance named by the globals, shared with other processes,
// telling the user on stderr when another process holds what it waits for. Commands that
// read only the ledger set e.ledgerOnly first: the store is then not opened.
func (e *env) open() (*ops.Instance, error) {
	return e.openWith(ops.OpenOptions{LedgerOnly: e.ledgerOnly})
}

// openWith opens the standalone instance with the globals' lock settings added to opt.
func (e *env) openWith(opt ops.OpenOptions) (*ops.Instance, error) {
	opt.LockTimeout = e.g.LockTimeout
	opt.ToolVersion = Version
	opt.OnWait = func(what string, h flock.Holder) {
		fmt.Fprintf(e.stderr, "swcli: %s in use by %s, waiting…\n", what, h)
	}
	opt.OnError = func(msg string) { e.log.Error().Msg(msg) }
	opt.Ledger, opt.Packs = e.backend.Ledger, e.backend.Packs
	return ops.Open(e.ctx, e.g.root(), opt)
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }

// config loads the client configuration.
func (e *env) config() (*ops.Config, error) {
	if e.g.Config != "" {
		return ops.LoadConfig(e.g.Config)
	}
	return ops.LoadConfig(ops.DefaultConfigPath())
}

// localProject returns the project a project URI names on the standalone instance.
func (e *env) localProject(u ops.ProjectURI) (string, error) {
	cfg, err := e.config()
	if err != nil {
		return "", err
	}
	// This command works on the standalone instance: a URI that names no instance means it,
	// whichever instance is selected.
	if !u.Instance.IsLocal("local") {
		return "", ops.Errorf(ops.KindUsage, "copy it to the standalone instance first: swcli runtime copy "+u.Instance.String()+"/project/PROJECT/runtime/NAME .",
			"this command works on the standalone instance, not on %s", u.Instance)
	}
	if u.Project != "" {
		return u.Project, nil
	}
	return cfg.Project("local"), nil
}

// openProject opens the instance and resolves a project URI ("" for the selected one).
func (e *env) openProject(uri string) (*ops.Instance, string, error) {
	u, err := ops.ParseProjectURI(uri)
	if err != nil {
		return nil, "", err
	}
	project, err := e.localProject(u)
	if err != nil {
		return nil, "", err
	}
	read := project // a name is read as the ledger opens; an id is resolved after
	if ops.IsProjectID(project) {
		read = ""
	}
	in, err := e.openWith(ops.OpenOptions{LedgerOnly: e.ledgerOnly, Project: read})
	if err != nil {
		return nil, "", err
	}
	if project, err = in.ProjectName(project); err != nil {
		in.Close()
		return nil, "", err
	}
	return in, project, nil
}

// openRuntime parses a runtime URI and opens its instance.
func (e *env) openRuntime(uri string) (ops.RuntimeURI, *ops.Instance, string, error) {
	u, err := ops.ParseRuntimeURI(uri)
	if err != nil {
		return u, nil, "", err
	}
	project, err := e.localProject(u.ProjectURI)
	if err != nil {
		return u, nil, "", err
	}
	in, err := e.open()
	if err != nil {
		return u, nil, "", err
	}
	if project, err = in.ProjectName(project); err != nil {
		in.Close()
		return u, nil, "", err
	}
	return u, in, project, nil
}

// restoreDir turns restore's TARGET into an extracted directory: a directory with a
// runtime.yaml is used as it is; anything else is a runtime URI, extracted first.
func (e *env) restoreDir(target string) (string, error) {
	if _, err := os.Stat(filepath.Join(target, "runtime.yaml")); err == nil {
		return target, nil
	}
	if fi, err := os.Stat(target); err == nil && fi.IsDir() {
		return "", ops.Errorf(ops.KindNotFound, "give a directory made by 'swcli runtime extract', or a runtime URI", "%s has no runtime.yaml", target)
	}
	if looksLikePath(target) {
		return "", ops.Errorf(ops.KindNotFound, "give a directory made by 'swcli runtime extract', or a runtime URI", "directory %s does not exist", target)
	}
	u, in, project, err := e.openRuntime(target)
	if err != nil {
		return "", err
	}
	defer in.Close()
	res, err := ops.Extract(e.ctx, in, project, u.Name, u.Version, "", false, nil)
	if err != nil {
		return "", err
	}
	return res.Dir, nil
}

// followLedger checks, at each contact with a server, that its signed checkpoint extends
// the last one this client saw (ops.Remote.FollowLedger), and remembers the new one.
func (e *env) followLedger(cfg *ops.Config, r *client.Remote) error {
	ic := cfg.Instances[r.Alias]
	if ic == nil {
		return nil
	}
	key, cp, err := ops.FollowLedger(e.ctx, r, ic.LedgerKey, ic.Checkpoint)
	if err != nil || key == "" {
		return err
	}
	if ic.MinCosignatures > 0 {
		if _, err := ops.CheckWitnesses(e.ctx, r, key, cp, ic.Witnesses, ic.MinCosignatures); err != nil {
			return err
		}
	}
	if key == ic.LedgerKey && cp.Note == ic.Checkpoint {
		return nil
	}
	if ic.LedgerKey == "" {
		e.log.Warn().Str("key", key).Msgf("pinned the ledger key of cloud://%s (first contact since it published one)", r.Alias)
	}
	ic.LedgerKey, ic.Checkpoint = key, cp.Note
	return cfg.Save()
}

// looksLikePath says whether an argument that may be a directory or a runtime URI is
// written as a path: ".", "..", or starting with "./", "../", "/" or "~".
func looksLikePath(s string) bool {
	return s == "." || s == ".." || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~")
}

// endpoint opens the instance a project URI names: the standalone one, or a server the
// user logged in to (ops.OpenEndpoint). The project defaults to the instance's selected one.
func (e *env) endpoint(u ops.ProjectURI) (api.Endpoint, string, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, "", err
	}
	ep, project, err := ops.OpenEndpoint(cfg, u, e.open)
	if err != nil {
		return nil, "", err
	}
	if r, ok := ep.(*client.Remote); ok {
		if err := e.followLedger(cfg, r); err != nil {
			ep.Close()
			return nil, "", err
		}
	}
	if l, ok := ep.(ops.LocalEndpoint); ok {
		if project, err = l.In.ProjectName(project); err != nil {
			ep.Close()
			return nil, "", err
		}
	}
	return ep, project, nil
}

// runtimeEndpoint parses a runtime URI and opens its instance.
func (e *env) runtimeEndpoint(uri string) (ops.RuntimeURI, api.Endpoint, string, error) {
	u, err := ops.ParseRuntimeURI(uri)
	if err != nil {
		return u, nil, "", err
	}
	ep, p, err := e.endpoint(u.ProjectURI)
	return u, ep, p, err
}
