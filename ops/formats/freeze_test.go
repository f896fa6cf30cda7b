package formats

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swcli/swcli/internal/corpus"
)

// Freeze prints, byte for byte, what pip freeze prints, or declines: each case is a real
// venv (made by the corpus's python, with the corpus's pip linked in) and real pip run in
// it, with the same environment given to both.
func TestFreezeIsPipFreeze(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the corpus's venvs")
	}
	dir, err := corpus.Dir()
	if err != nil {
		t.Fatal(err)
	}
	corpusVenv := filepath.Join(dir, "ml-v1", "venv")
	sites, _ := filepath.Glob(filepath.Join(corpusVenv, "lib", "python3.*", "site-packages"))
	if len(sites) != 1 {
		t.Fatalf("site-packages in %s: %v", corpusVenv, sites)
	}
	corpusSite := sites[0]
	home := t.TempDir()
	baseEnv := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}

	// check runs VenvCheck and pip freeze in venv from cwd, and returns what each gives.
	check := func(t *testing.T, venv, cwd string, env []string) (fast, pip []byte, declined error) {
		t.Helper()
		py := filepath.Join(venv, "bin", "python")
		cmd := exec.Command(py, "-c", VenvCheck)
		cmd.Dir, cmd.Env = cwd, env
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("VenvCheck: %v", err)
		}
		v, err := ParseVenvCheck(out)
		if err != nil {
			t.Fatal(err)
		}
		fast, declined = Freeze(v, env)
		cmd = exec.Command(py, "-m", "pip", "freeze", "--exclude-editable")
		cmd.Dir, cmd.Env = cwd, env
		if pip, err = cmd.Output(); err != nil {
			t.Fatalf("pip freeze: %v", err)
		}
		return fast, pip, declined
	}
	minor, _ := pythonMinor(strings.TrimPrefix(filepath.Base(filepath.Dir(corpusSite)), "python"))
	supported := minor >= 11

	t.Run("the corpus's venv", func(t *testing.T) {
		fast, pip, declined := check(t, corpusVenv, t.TempDir(), baseEnv)
		if !supported {
			if declined == nil {
				t.Fatalf("python 3.%d: Freeze did not decline", minor)
			}
			return
		}
		if machineConfig(declined) {
			t.Skipf("this machine's pip configuration: %v", declined)
		}
		if declined != nil {
			t.Fatalf("declined: %v", declined)
		}
		if !bytes.Equal(fast, pip) || len(pip) == 0 {
			t.Fatalf("Freeze:\n%s\npip freeze:\n%s", fast, pip)
		}
	})

	meta := func(name, version string) string {
		return "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version + "\nSummary: x\n\nA: not a header\n"
	}
	extra := t.TempDir() // a directory a .pth file puts on sys.path
	for n, body := range map[string]string{"baz-3.0.dist-info/METADATA": meta("baz", "3.0")} {
		writeFile(t, filepath.Join(extra, n), body)
	}
	cases := []struct {
		name  string
		site  map[string]string // files in site-packages
		cwd   map[string]string // files in the working directory
		prefx map[string]string // files in the venv's directory
		env   []string
		pip   []string // wheels made by make-wheel.py ("name version"), then pip install's arguments
		fast  bool
	}{
		{name: "wheels pip installed by name", fast: true,
			pip: []string{"Dotted.Name 1.0.post1", "under_score 2.0rc1", "plain 3", "install", "--no-index", "--find-links", "WHEELS", "Dotted.Name", "under-score", "plain"}},
		{name: "a wheel pip installed by its path",
			pip: []string{"plain 3", "install", "--no-index", "WHEELS/plain-3-py3-none-any.whl"}},
		{name: "plain distributions, names as written", fast: true, site: map[string]string{
			"Foo_Bar-1.0.dist-info/METADATA":           meta("Foo_Bar", "1.0"),
			"zope.interface-5.4.0.dist-info/METADATA":  meta("zope.interface", "5.4.0"),
			"alpha-2.0rc1.egg-info/PKG-INFO":           meta("alpha", "2.0rc1"),
			"Zeta-1!0.1.post2.dev3.dist-info/METADATA": meta("Zeta", "1!0.1.post2.dev3"),
			"loc-1.0+ubuntu.1.dist-info/METADATA":      meta("loc", "1.0+ubuntu.1"),
			"hdr-1.0.dist-info/METADATA":               "name:hdr\nVERSION:\t1.0\nName: other\n",
			"crlf-1.0.dist-info/METADATA":              "Name: crlf\r\nVersion: 1.0\r\n\r\nbody\r\n",
			"cr-1.0.dist-info/METADATA":                "Name: cr\rVersion: 1.0\r",
		}},
		{name: "build backends hidden below 3.12", fast: true, site: map[string]string{
			"setuptools-65.5.0.dist-info/METADATA": meta("setuptools", "65.5.0"),
			"wheel-0.40.0.dist-info/METADATA":      meta("wheel", "0.40.0"),
			"x-1.dist-info/METADATA":               meta("x", "1"),
		}},
		{name: "the working directory is not searched", fast: true,
			site: map[string]string{"x-1.dist-info/METADATA": meta("x", "1")},
			cwd:  map[string]string{"y-2.dist-info/METADATA": meta("y", "2")}},
		{name: "a .pth file's directory is searched", fast: true,
			site: map[string]string{"x-1.dist-info/METADATA": meta("x", "1"), "extra.pth": extra + "\n"}},
		{name: "pip's download options, by variable and file", fast: true, env: []string{"PIP_INDEX_URL=http://127.0.0.1:9/simple", "PIP_NO_CACHE_DIR=1"},
			prefx: map[string]string{"pip.conf": "# a mirror\n[global]\nindex-url = https://mirror.example/simple\ntimeout: 60\ntrusted-host =\n  mirror.example\n[install]\nuser = true\n"},
			site:  map[string]string{"x-1.dist-info/METADATA": meta("x", "1")}},
		{name: "site-packages twice, by a link", fast: true,
			site: map[string]string{"x-1.dist-info/METADATA": meta("x", "1"), "again.pth": "LINK\n"}},
		{name: "a version pip would rewrite", site: map[string]string{
			"foo-1.0.0-rc1.dist-info/METADATA": meta("foo", "1.0.0-rc1")}},
		{name: "installed from a path", site: map[string]string{
			"foo-1.0.dist-info/METADATA":        meta("foo", "1.0"),
			"foo-1.0.dist-info/direct_url.json": `{"url": "file:///tmp/foo-1.0-py3-none-any.whl", "archive_info": {}}`}},
		{name: "an egg-link", site: map[string]string{
			"foo-1.0.dist-info/METADATA": meta("foo", "1.0"), "foo.egg-link": "/tmp/foo\n."}},
		{name: "one distribution twice", site: map[string]string{
			"foo-1.0.dist-info/METADATA": meta("foo", "1.0"), "Foo-2.0.dist-info/METADATA": meta("Foo", "2.0")}},
		{name: "a folded name", site: map[string]string{
			"foo-1.0.dist-info/METADATA": "Name: foo\n  bar\nVersion: 1.0\n"}},
		{name: "a version its directory does not give", site: map[string]string{
			"foo-1.0.dist-info/METADATA": meta("foo", "1.0.0")}},
		{name: "a name its directory does not give", site: map[string]string{
			"foo-1.0.dist-info/METADATA": meta("bar", "1.0")}},
		{name: "no metadata", site: map[string]string{"foo-1.0.dist-info/RECORD": ""}},
		{name: "a name with a space after it", site: map[string]string{
			"foo-1.0.dist-info/METADATA": meta("foo ", "1.0")}},
		{name: "pip told by its environment", env: []string{"PIP_ALL=1"},
			site: map[string]string{"x-1.dist-info/METADATA": meta("x", "1")}},
		{name: "pip told by the venv's pip.conf", prefx: map[string]string{"pip.conf": "[freeze]\nall = true\n"},
			site: map[string]string{"x-1.dist-info/METADATA": meta("x", "1")}},
		{name: "pip asked for by the user", env: []string{FreezeEnv + "=pip"},
			site: map[string]string{"x-1.dist-info/METADATA": meta("x", "1")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			venv := filepath.Join(t.TempDir(), "venv")
			mk := exec.Command(filepath.Join(corpusVenv, "bin", "python"), "-m", "venv", "--without-pip", venv)
			if out, err := mk.CombinedOutput(); err != nil {
				t.Fatalf("venv: %v: %s", err, out)
			}
			site := filepath.Join(venv, "lib", filepath.Base(filepath.Dir(corpusSite)), "site-packages")
			links, _ := filepath.Glob(filepath.Join(corpusSite, "pip*"))
			for _, l := range links {
				if err := os.Symlink(l, filepath.Join(site, filepath.Base(l))); err != nil {
					t.Fatal(err)
				}
			}
			cwd := t.TempDir()
			link := filepath.Join(t.TempDir(), "lib64")
			if err := os.Symlink(site, link); err != nil {
				t.Fatal(err)
			}
			for n, body := range c.site {
				writeFile(t, filepath.Join(site, n), strings.ReplaceAll(body, "LINK", link))
			}
			for n, body := range c.cwd {
				writeFile(t, filepath.Join(cwd, n), body)
			}
			for n, body := range c.prefx {
				writeFile(t, filepath.Join(venv, n), body)
			}
			env := append(append([]string{}, baseEnv...), c.env...)
			if len(c.pip) > 0 {
				installWheels(t, venv, env, c.pip)
			}
			fast, pip, declined := check(t, venv, cwd, env)
			switch {
			case !c.fast || !supported:
				if declined == nil {
					t.Fatalf("Freeze did not decline; it gave:\n%s\npip freeze:\n%s", fast, pip)
				}
				if c.fast || strings.HasPrefix(declined.Error(), "python ") {
					return
				}
				// What it declined, pip prints otherwise than name==version, or is told to.
				t.Logf("declined: %v\npip freeze:\n%s", declined, pip)
			case machineConfig(declined):
				t.Skipf("this machine's pip configuration: %v", declined)
			case declined != nil:
				t.Fatalf("declined: %v\npip freeze:\n%s", declined, pip)
			case !bytes.Equal(fast, pip) || len(pip) == 0:
				t.Fatalf("Freeze:\n%s\npip freeze:\n%s", fast, pip)
			}
		})
	}
}

// installWheels makes the wheels args names ("name version", up to "install") with
// make-wheel.py and runs pip install in venv with the rest, WHEELS their directory.
func installWheels(t *testing.T, venv string, env, args []string) {
	t.Helper()
	script, err := corpus.Script()
	if err != nil {
		t.Fatal(err)
	}
	wheels := t.TempDir()
	for len(args) > 0 && args[0] != "install" {
		name, version, _ := strings.Cut(args[0], " ")
		mk := exec.Command("python3", filepath.Join(filepath.Dir(script), "make-wheel.py"), name, version, wheels)
		if out, err := mk.CombinedOutput(); err != nil {
			t.Fatalf("make-wheel.py %s: %v: %s", args[0], err, out)
		}
		args = args[1:]
	}
	cmd := exec.Command(filepath.Join(venv, "bin", "python"), append([]string{"-m", "pip", "-q"}, args...)...)
	for i, a := range cmd.Args {
		cmd.Args[i] = strings.ReplaceAll(a, "WHEELS", wheels)
	}
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pip %v: %v: %s", args, err, out)
	}
}

// machineConfig says whether Freeze declined for a pip configuration file of the
// machine's own (not one a test wrote): a case that reads cannot be shown there.
func machineConfig(err error) bool {
	return err != nil && (strings.HasPrefix(err.Error(), "pip's configuration /etc/") ||
		strings.HasPrefix(err.Error(), "pip's configuration /Library/"))
}

func writeFile(t *testing.T, p, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Versions as packaging writes them pass; any pip would write otherwise do not.
func TestCanonicalVersions(t *testing.T) {
	for _, v := range []string{"0", "1.0", "2022.7.1", "1.0a1", "1.0b2", "1.0rc10", "1.0.post1", "1.0.dev0",
		"1!2.0", "1.0a1.post2.dev3", "1.0+ubuntu.1", "1.0+abc01.0", "0.0.0"} {
		if !canonicalVersionRE().MatchString(v) {
			t.Errorf("%q refused", v)
		}
	}
	for _, v := range []string{"01.0", "1.0-rc1", "1.0.0rc", "1.0alpha1", "1.0c1", "1.0-1", "1.0_post1", "v1.0", "0!1.0",
		"1.0+01", "1.0+Ubuntu", "1.0+a-b", "1.0 ", " 1.0", "1.0.dev", "1.0pre1", "1.0.a1", "1.0rc01", ""} {
		if canonicalVersionRE().MatchString(v) {
			t.Errorf("%q accepted", v)
		}
	}
}

// The check's line is found among what else python printed; without it the build stops.
func TestParseVenvCheck(t *testing.T) {
	line := `{"python": "3.11.7", "pip": "23.2.1", "path": ["", "/x"], "prefix": "/v", "stdlib": "/l"}`
	for _, out := range []string{line + "\n", "a .pth says hello\n" + line + "\n", line + "\nWarning: a warning\n"} {
		v, err := ParseVenvCheck([]byte(out))
		if err != nil || v.Python != "3.11.7" || v.Pip != "23.2.1" || len(v.Path) != 2 {
			t.Errorf("%q: %+v, %v", out, v, err)
		}
	}
	for _, out := range []string{"", "3.11.7\n", `{"pip": "23.2.1"}`} {
		if v, err := ParseVenvCheck([]byte(out)); err == nil {
			t.Errorf("%q: %+v", out, v)
		}
	}
}

// What a venv holds in place of a file, or says twice, is declined at once: a FIFO where
// METADATA should be is not waited on, and pyvenv.cfg's last word is the one taken, as
// Python's site module takes it. No python is run: the venv is described by hand.
func TestFreezeDeclinesStrangeVenvs(t *testing.T) {
	venv := t.TempDir()
	site := filepath.Join(venv, "lib", "python3.11", "site-packages")
	stdlib := filepath.Join(t.TempDir(), "python3.11")
	writeFile(t, filepath.Join(stdlib, "importlib", "metadata", "__init__.py"), "# the usual one\n")
	writeFile(t, filepath.Join(site, "x-1.dist-info", "METADATA"), "Name: x\nVersion: 1\n")
	v := &Venv{Python: "3.11.7", Pip: "23.2.1", Path: []string{"", stdlib, site}, Prefix: venv, Stdlib: stdlib}
	env := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_DIRS=" + t.TempDir()}
	cfg := filepath.Join(venv, "pyvenv.cfg")

	writeFile(t, cfg, "home = /usr/bin\ninclude-system-site-packages = false\n")
	if out, err := Freeze(v, env); machineConfig(err) {
		t.Skipf("this machine's pip configuration: %v", err)
	} else if err != nil || string(out) != "x==1\n" {
		t.Fatalf("a plain venv: %q, %v", out, err)
	}
	writeFile(t, cfg, "include-system-site-packages = false\nInclude-System-Site-Packages = True\n")
	if out, err := Freeze(v, env); err == nil {
		t.Fatalf("pyvenv.cfg saying true last: %q", out)
	}
	writeFile(t, cfg, "include-system-site-packages = false\n")
	fifo := filepath.Join(site, "y-2.dist-info", "METADATA")
	if err := os.MkdirAll(filepath.Dir(fifo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Freeze(v, env); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("a FIFO for METADATA: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Freeze waits on a FIFO")
	}
}

// Names compare as pip compares them (PEP 503), and only PEP 508 names are read.
func TestProjectNames(t *testing.T) {
	for in, want := range map[string]string{"Foo_Bar": "foo-bar", "zope.interface": "zope-interface",
		"a__b.-C": "a-b-c", "x": "x", "Ünï_x": "ünï-x"} {
		if got := normProject(in); got != want {
			t.Errorf("normProject(%q) = %q, want %q", in, got, want)
		}
	}
	for n, ok := range map[string]bool{"x": true, "Foo_Bar.baz-2": true, "": false, "-x": false, "x.": false,
		"a b": false, "foo ": false, "ü": false} {
		if validName(n) != ok {
			t.Errorf("validName(%q) = %v", n, !ok)
		}
	}
}
