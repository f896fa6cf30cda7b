package formats

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"
)

// A build pins a venv with the lines `python -m pip freeze` prints. pip takes half a
// second of CPU to print them, most of it importing itself, on every first build and every
// build after a package changed. For a venv of plain distributions (a *.dist-info or
// *.egg-info directory each, installed from an index or a wheel by name) those lines are
// name==version of each, sorted: Freeze reads them here, byte for byte what pip prints,
// and for anything else it declines and the build runs pip. What it reads is what
// pip 23.2 to 26 read on Python 3.11 and later (importlib.metadata, PEP 610's
// direct_url.json, egg-links, eggs, pip's options from its environment variables and
// configuration files); what it cannot vouch for, it names as the reason it declined.

// VenvCheck is the python a build runs in a venv before anything is stored. It fails when
// python or pip cannot start, and its last line says what Freeze reads: the python's
// version, pip's, the sys.path pip would search (after site and .pth files), the prefix
// and the standard library's directory. It costs what `import pip` alone cost (~40 ms).
const VenvCheck = `import sys, json, os, pip
print(json.dumps({"python": "%d.%d.%d" % sys.version_info[:3], "pip": pip.__version__, "path": sys.path, "prefix": sys.prefix, "stdlib": os.path.dirname(os.__file__)}))`

// Venv is what VenvCheck printed.
type Venv struct {
	Python string   `json:"python"`
	Pip    string   `json:"pip"`
	Path   []string `json:"path"`
	Prefix string   `json:"prefix"`
	Stdlib string   `json:"stdlib"`
}

// ParseVenvCheck reads VenvCheck's line: the last that is one (a .pth file may print
// before it, a warning on stderr after it).
func ParseVenvCheck(out []byte) (*Venv, error) {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	for i := len(lines) - 1; i >= 0; i-- {
		var v Venv
		if json.Unmarshal(lines[i], &v) == nil && v.Python != "" {
			return &v, nil
		}
	}
	return nil, fmt.Errorf("the venv's python printed %q, not what was asked", firstLine(out))
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// FreezeEnv names the environment variable that sends every build to pip itself:
// SWCLI_PIP_FREEZE=pip.
const FreezeEnv = "SWCLI_PIP_FREEZE"

// Freeze gives what `python -m pip freeze [--exclude-editable]` prints in v's venv with
// environ as its environment (the same with or without the flag: it declines editables),
// or the first reason it cannot vouch for that.
func Freeze(v *Venv, environ []string) ([]byte, error) {
	if err := freezable(v, environ); err != nil {
		return nil, err
	}
	dists := map[string]dist{} // by canonical name
	seen := map[string]bool{}
	for _, loc := range v.Path[1:] {
		// A directory met again, by its name or through a link (lib64 to lib), holds only
		// names pip has found already, and it keeps the first of each.
		real, err := filepath.EvalSymlinks(loc)
		if err != nil {
			real = loc
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		if err := findDists(loc, dists); err != nil {
			return nil, err
		}
	}
	skip := []string{"python", "wsgiref", "argparse", "pip"} // pip's stdlib_pkgs and _dev_pkgs
	if minor, _ := pythonMinor(v.Python); minor < 12 {
		skip = append(skip, "setuptools", "distribute", "wheel")
	}
	for _, s := range skip {
		delete(dists, s)
	}
	list := make([]dist, 0, len(dists))
	for _, d := range dists {
		list = append(list, d)
	}
	sort.Slice(list, func(i, j int) bool { return strings.ToLower(list[i].name) < strings.ToLower(list[j].name) })
	var out bytes.Buffer
	for _, d := range list {
		fmt.Fprintf(&out, "%s==%s\n", d.name, d.version)
	}
	return out.Bytes(), nil
}

type dist struct{ name, version, dir string }

// freezable checks what decides pip's behaviour beyond the distributions themselves.
func freezable(v *Venv, environ []string) error {
	minor, ok := pythonMinor(v.Python)
	if !ok || minor < 11 {
		return fmt.Errorf("python %s: pip reads its distributions with pkg_resources before 3.11", v.Python)
	}
	if !pipKnown(v.Pip) {
		return fmt.Errorf("pip %s: only pip 23.2 to 26 are followed here", v.Pip)
	}
	for _, kv := range environ {
		k, val, _ := strings.Cut(kv, "=")
		if k == FreezeEnv && val == "pip" {
			return fmt.Errorf("%s=pip", FreezeEnv)
		}
		if k == "PIP_CONFIG_FILE" || strings.HasPrefix(k, "_PIP_") ||
			strings.HasPrefix(k, "PIP_") && !freezeNeutral[strings.ReplaceAll(strings.ToLower(k[4:]), "_", "-")] {
			return fmt.Errorf("%s is set: it may change what pip freeze prints", k)
		}
	}
	if getenv(environ, "HOME") == "" {
		return errors.New("HOME is not set: where pip's configuration is cannot be told")
	}
	for _, f := range pipConfigFiles(v.Prefix, environ) {
		if err := neutralConfig(f); err != nil {
			return err
		}
	}
	// A distributor may tell pip to use pkg_resources on 3.11 and later by a constant in
	// importlib.metadata (pip's _should_use_importlib_metadata).
	src, err := os.ReadFile(filepath.Join(v.Stdlib, "importlib", "metadata", "__init__.py"))
	if err != nil || bytes.Contains(src, []byte("_PIP_USE_IMPORTLIB_METADATA")) {
		return errors.New("the standard library's importlib.metadata is not the usual one")
	}
	cfg, err := os.ReadFile(filepath.Join(v.Prefix, "pyvenv.cfg"))
	if err != nil {
		return fmt.Errorf("no pyvenv.cfg in %s: not a venv", v.Prefix)
	}
	if cfgValue(cfg, "include-system-site-packages") != "false" {
		return errors.New("the venv sees the system's site-packages (and the user's)")
	}
	// python -c puts "" first, python -m the working directory, which pip takes out.
	if len(v.Path) == 0 || v.Path[0] != "" {
		return errors.New("sys.path does not begin with the working directory")
	}
	for _, p := range v.Path[1:] {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("sys.path holds %q, relative to the working directory", p)
		}
	}
	return nil
}

// pipConfigFiles lists where pip reads its configuration (pip's configuration.py and
// appdirs.py), on Linux and macOS.
func pipConfigFiles(prefix string, environ []string) []string {
	home := getenv(environ, "HOME")
	xdgDirs := getenv(environ, "XDG_CONFIG_DIRS")
	if xdgDirs == "" {
		xdgDirs = "/etc/xdg"
	}
	xdgHome := getenv(environ, "XDG_CONFIG_HOME")
	if xdgHome == "" {
		xdgHome = filepath.Join(home, ".config")
	}
	files := []string{filepath.Join(prefix, "pip.conf"), "/etc/pip.conf",
		filepath.Join(home, ".pip", "pip.conf"), filepath.Join(xdgHome, "pip", "pip.conf"),
		filepath.Join(home, ".config", "pip", "pip.conf")}
	for _, d := range strings.Split(xdgDirs, ":") {
		files = append(files, filepath.Join(d, "pip", "pip.conf"))
	}
	if runtime.GOOS == "darwin" {
		files = append(files, "/Library/Application Support/pip/pip.conf",
			filepath.Join(home, "Library", "Application Support", "pip", "pip.conf"))
	}
	return files
}

// freezeNeutral are pip's options, in a configuration file's [global] or [freeze] or as
// PIP_* variables, that change nothing pip freeze prints: where and how to download and
// install. Any other option there (--all, --exclude, --path, --user, --requirement,
// --isolated, --verbose, --python and the rest) sends the build to pip.
var freezeNeutral = map[string]bool{
	"index-url": true, "extra-index-url": true, "no-index": true, "find-links": true,
	"trusted-host": true, "cert": true, "client-cert": true, "proxy": true, "retries": true,
	"timeout": true, "default-timeout": true, "cache-dir": true, "no-cache-dir": true,
	"disable-pip-version-check": true, "no-color": true, "no-input": true, "progress-bar": true,
	"root-user-action": true, "break-system-packages": true, "keyring-provider": true,
	"no-python-version-warning": true, "exists-action": true, "pre": true, "prefer-binary": true,
	"only-binary": true, "no-binary": true, "require-virtualenv": true, "no-build-isolation": true,
	"use-pep517": true, "no-use-pep517": true, "upgrade-strategy": true, "src": true,
}

// neutralConfig reads one of pip's configuration files (configparser's INI) and says
// whether what it sets for freeze is all neutral. A file that is not there is neutral.
func neutralConfig(f string) error {
	b, err := readSmall(f, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pip's configuration %s: %v", f, err)
	}
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#' || t[0] == ';':
		case line[0] == ' ' || line[0] == '\t':
			// a value's continuation
		case t[0] == '[' && t[len(t)-1] == ']':
			section = strings.ToLower(strings.TrimSpace(t[1 : len(t)-1]))
		default:
			k, _, ok := strings.Cut(t, "=")
			if k2, _, ok2 := strings.Cut(t, ":"); ok2 && (!ok || len(k2) < len(k)) {
				k, ok = k2, true
			}
			if !ok {
				return fmt.Errorf("pip's configuration %s:%d is not an option", f, i+1)
			}
			key := strings.TrimPrefix(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "_", "-"), "--")
			if (section == "global" || section == "freeze") && !freezeNeutral[key] {
				return fmt.Errorf("pip's configuration %s sets %s.%s: it may change what pip freeze prints", f, section, key)
			}
		}
	}
	return nil
}

// getenv is os.Getenv over environ.
func getenv(environ []string, k string) string {
	for _, kv := range environ {
		if key, v, _ := strings.Cut(kv, "="); key == k {
			return v
		}
	}
	return ""
}

// cfgValue reads key from pyvenv.cfg as Python's site module does: the last line that
// sets it wins; "" if none does.
func cfgValue(cfg []byte, key string) string {
	val := ""
	for _, line := range strings.Split(string(cfg), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.ToLower(strings.TrimSpace(k)) == key {
			val = strings.ToLower(strings.TrimSpace(v))
		}
	}
	return val
}

func pythonMinor(ver string) (int, bool) {
	f := strings.Split(ver, ".")
	if len(f) < 2 || f[0] != "3" {
		return 0, false
	}
	n, err := strconv.Atoi(f[1])
	return n, err == nil
}

// pipKnown says whether pip's version is one whose freeze Freeze follows.
func pipKnown(ver string) bool {
	f := strings.Split(ver, ".")
	if len(f) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(f[0])
	minor, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return (major == 23 && minor >= 2) || major >= 24 && major <= 26
}

// findDists reads the distributions importlib.metadata finds in one entry of sys.path.
func findDists(loc string, dists map[string]dist) error {
	fi, err := os.Stat(loc)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil // importlib.metadata and pip skip it
	}
	if err != nil {
		return fmt.Errorf("sys.path entry %s: %v", loc, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("sys.path entry %s is a file (a zip pip would look into)", loc)
	}
	if strings.HasSuffix(strings.ToLower(loc), ".egg") {
		return fmt.Errorf("sys.path entry %s is an egg", loc)
	}
	ents, err := os.ReadDir(loc)
	if err != nil {
		return fmt.Errorf("sys.path entry %s: %v", loc, err)
	}
	for _, e := range ents {
		n := e.Name()
		low := strings.ToLower(n)
		switch {
		case strings.HasSuffix(low, ".egg") || strings.HasSuffix(low, ".egg-link"):
			return fmt.Errorf("%s: eggs and egg-links are pip's to read", filepath.Join(loc, n))
		case strings.HasSuffix(low, ".dist-info") || strings.HasSuffix(low, ".egg-info"):
			d, err := readDist(filepath.Join(loc, n))
			if err != nil {
				return err
			}
			key := normProject(d.name)
			if prev, ok := dists[key]; ok {
				return fmt.Errorf("%s and %s are one distribution twice", prev.dir, d.dir)
			}
			dists[key] = d
		}
	}
	return nil
}

// canonicalVersionRE matches a version as packaging's str(Version) writes it: what pip
// prints for a version already in this form is the version itself. Compiled when a lock
// is first read, not at every command's start.
var canonicalVersionRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*((a|b|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?(\+(0|[1-9][0-9]*|[a-z0-9]*[a-z][a-z0-9]*)(\.(0|[1-9][0-9]*|[a-z0-9]*[a-z][a-z0-9]*))*)?$`)
})

// validName says whether n is a PEP 508 name, as pip checks them (iter_all_distributions):
// letters and digits, with '.', '_' and '-' inside.
func validName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		inner := c == '.' || c == '_' || c == '-'
		if !alnum && (!inner || i == 0 || i == len(n)-1) {
			return false
		}
	}
	return n != ""
}

// headerName returns a line's header name as Python's email parser (compat32) finds one:
// printable ASCII other than ':' up to the first ':' (feedparser's headerRE, less its
// continuation and "From " cases, handled apart).
func headerName(line string) (string, bool) {
	k, _, ok := strings.Cut(line, ":")
	for i := 0; ok && i < len(k); i++ {
		ok = k[i] >= 0x21 && k[i] <= 0x7e
	}
	return k, ok
}

// metadataMax bounds what is read of one METADATA (a long description is most of it).
const metadataMax = 16 << 20

// readDist reads one distribution's name and version as pip would, or declines.
func readDist(dir string) (dist, error) {
	base := filepath.Base(dir)
	stem := strings.TrimSuffix(strings.TrimSuffix(base, ".dist-info"), ".egg-info")
	if stem == base {
		return dist{}, fmt.Errorf("%s: a metadata directory's suffix in capitals", dir)
	}
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return dist{}, fmt.Errorf("%s is not a directory", dir)
	}
	if _, err := os.Lstat(filepath.Join(dir, "direct_url.json")); !errors.Is(err, fs.ErrNotExist) {
		return dist{}, fmt.Errorf("%s: installed from a URL or a path, or editable (direct_url.json)", dir)
	}
	var text []byte
	for _, f := range []string{"METADATA", "PKG-INFO"} { // importlib.metadata's order
		b, err := readSmall(filepath.Join(dir, f), metadataMax)
		if err == nil && len(b) > 0 {
			text = b
			break
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EISDIR) {
			return dist{}, fmt.Errorf("%s: %v", filepath.Join(dir, f), err)
		}
	}
	if text == nil {
		return dist{}, fmt.Errorf("%s has no METADATA or PKG-INFO", dir)
	}
	name, version, err := metadataHeaders(text)
	if err != nil {
		return dist{}, fmt.Errorf("%s: %v", dir, err)
	}
	if !validName(name) {
		return dist{}, fmt.Errorf("%s: name %q", dir, name)
	}
	dirName, _, _ := strings.Cut(stem, "-")
	if normProject(dirName) != normProject(name) {
		return dist{}, fmt.Errorf("%s names %q in its metadata", dir, name)
	}
	if !canonicalVersionRE().MatchString(version) {
		return dist{}, fmt.Errorf("%s: version %q is not written as pip would print it", dir, version)
	}
	// pip from 24.2 takes a .dist-info's version from its directory's name, before from
	// its metadata: the two must agree.
	if _, dirVersion, ok := strings.Cut(stem, "-"); ok && strings.HasSuffix(base, ".dist-info") && dirVersion != version {
		return dist{}, fmt.Errorf("%s: its name says version %q, its metadata %q", dir, dirVersion, version)
	}
	return dist{name: name, version: version, dir: dir}, nil
}

// metadataHeaders finds the first Name and Version headers as Python's email parser
// (compat32) gives them from the text Python reads, declining what that parser would
// change: a value folded over lines, a byte-order mark, text not UTF-8.
func metadataHeaders(text []byte) (name, version string, err error) {
	if !utf8.Valid(text) {
		return "", "", errors.New("metadata is not UTF-8")
	}
	if bytes.HasPrefix(text, []byte("\ufeff")) || bytes.HasPrefix(text, []byte("From ")) {
		return "", "", errors.New("metadata begins with what the email parser reads apart")
	}
	// Python reads the file with universal newlines: \r\n and \r are \n.
	lines := strings.Split(strings.ReplaceAll(strings.ReplaceAll(string(text), "\r\n", "\n"), "\r", "\n"), "\n")
	var last string // the header the previous line began
	var haveName, haveVersion bool
	for _, line := range lines {
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "name" || last == "version" {
				return "", "", fmt.Errorf("metadata's %s is folded over lines", last)
			}
			continue
		}
		k, ok := headerName(line)
		if !ok {
			break
		}
		val := strings.TrimLeft(line[len(k)+1:], " \t")
		last = ""
		switch strings.ToLower(k) {
		case "name":
			if !haveName {
				name, haveName, last = val, true, "name"
			}
		case "version":
			if !haveVersion {
				version, haveVersion, last = val, true, "version"
			}
		}
	}
	if !haveName || !haveVersion {
		return "", "", errors.New("metadata has no Name or no Version")
	}
	return name, version, nil
}

// readSmall reads a regular file of at most max bytes (ReadLimited). A FIFO or a device
// in its place is refused, not waited on (opened without blocking, then looked at).
func readSmall(p string, max int64) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, syscall.EISDIR
	}
	return ReadLimited(f, p, max)
}
