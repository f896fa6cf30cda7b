package ops_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/server"
)

// The Starwhale API speaks Starwhale's envelope over HTTP; these tests drive it as
// Starwhale's client 0.6.15 does (its requests, headers and forms; see swapi.go). The
// same client itself runs against a server in cli/testdata/script/starwhale_client.txtar.

const swOrigin = "wqbfjzhqbcl3pzamsul3jd6ro36wv3o3izv5g5px" // a Starwhale version id

// swBundle is a small .swrt as Starwhale's build writes it.
func swBundle(t *testing.T, name, origin string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	add := func(path, body string) {
		tw.WriteHeader(&tar.Header{Name: path, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	add("_manifest.yaml", "name: "+name+"\nversion: "+origin+"\nenvironment:\n  mode: venv\n  python: '3.11'\n  lock:\n    python_version: 3.11.2\n    starwhale_version: 0.6.15\n")
	add("runtime.yaml", "name: "+name+"\nmode: venv\nenvironment:\n  python: '3.11'\ndependencies:\n  - pip:\n      - requests\n")
	add("dependencies/.starwhale/lock/requirements-sw-lock.txt", "requests==2.28.1\n")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

type swAnswer struct {
	Status int
	Code   string          `json:"code"`
	Msg    string          `json:"message"`
	Data   json.RawMessage `json:"data"`
	Header http.Header
	Body   []byte
}

// sw sends one request as Starwhale's client does: the bare token in Authorization.
func (c *cloud) sw(t *testing.T, user, method, path string, body io.Reader, ctype string) swAnswer {
	t.Helper()
	req, err := http.NewRequest(method, c.url+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.Header.Set("Authorization", c.tokens[user])
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := swAnswer{Status: resp.StatusCode, Header: resp.Header}
	a.Body, _ = io.ReadAll(resp.Body)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && method != "HEAD" {
		if err := json.Unmarshal(a.Body, &a); err != nil {
			t.Fatalf("%s %s: not JSON: %v: %s", method, path, err, a.Body)
		}
	}
	return a
}

func (c *cloud) swJSON(t *testing.T, user, method, path string, body any) swAnswer {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	return c.sw(t, user, method, path, r, "application/json")
}

// upload sends a bundle as Starwhale's BundleCopy does: multipart fields runtime, project
// and force, then the file.
func (c *cloud) upload(t *testing.T, user, project, name, version string, bundle []byte) swAnswer {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("runtime", name+":"+version)
	mw.WriteField("project", project)
	mw.WriteField("force", "0")
	fw, _ := mw.CreateFormFile("file", version+".swrt")
	fw.Write(bundle)
	mw.Close()
	return c.sw(t, user, "POST", fmt.Sprintf("/api/v1/project/%s/runtime/%s/version/%s/file", project, name, version), &b, mw.FormDataContentType())
}

func decode[T any](t *testing.T, a swAnswer) T {
	t.Helper()
	var v T
	if a.Status != 200 || a.Code != "success" {
		t.Fatalf("answer %d %q: %s", a.Status, a.Code, a.Body)
	}
	if err := json.Unmarshal(a.Data, &v); err != nil {
		t.Fatalf("data: %v: %s", err, a.Data)
	}
	return v
}

func TestStarwhaleAPIRoundTrip(t *testing.T) {
	c := newCloud(t)
	c.serve(t)
	base := "/api/v1/project/1/runtime/hello"

	// Login: the token alone, or the user name with the token for a password.
	me := decode[map[string]any](t, c.swJSON(t, "alice", "GET", "/api/v1/user/current", nil))
	if me["name"] != "alice" {
		t.Fatalf("current user: %v", me)
	}
	form := url.Values{"userName": {"alice"}, "userPwd": {c.tokens["alice"]}}
	a := c.sw(t, "", "POST", "/api/v1/login", strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
	if a.Status != 200 || a.Header.Get("Authorization") != c.tokens["alice"] {
		t.Fatalf("login with the token for a password: %d %s", a.Status, a.Body)
	}
	form.Set("userName", "bob")
	if a := c.sw(t, "", "POST", "/api/v1/login", strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"); a.Status != 401 || a.Code != "accessDenied" {
		t.Fatalf("login as bob with alice's token: %d %s", a.Status, a.Body)
	}

	// Projects: alice sees hers, by name or number.
	page := decode[struct {
		Total int `json:"total"`
		List  []struct{ ID, Name string }
	}](t, c.swJSON(t, "alice", "GET", "/api/v1/project?pageNum=1&pageSize=20", nil))
	if page.Total != 1 || page.List[0].Name != "mnist" || page.List[0].ID != "1" {
		t.Fatalf("project list: %+v", page)
	}
	if p := decode[map[string]any](t, c.swJSON(t, "alice", "GET", "/api/v1/project/mnist", nil)); p["id"] != "1" {
		t.Fatalf("project by name: %v", p)
	}

	// Upload, then the version answers to Starwhale's id.
	if a := c.swJSON(t, "alice", "HEAD", base+"/version/"+swOrigin, nil); a.Status != 404 {
		t.Fatalf("HEAD before upload: %d", a.Status)
	}
	up := decode[struct{ Version, Origin string }](t, c.upload(t, "alice", "1", "hello", swOrigin, swBundle(t, "hello", swOrigin)))
	if up.Origin != swOrigin || up.Version == swOrigin {
		t.Fatalf("upload: %+v", up)
	}
	if a := c.swJSON(t, "alice", "HEAD", base+"/version/"+swOrigin, nil); a.Status != 200 {
		t.Fatalf("HEAD by Starwhale's id after upload: %d", a.Status)
	}
	again := decode[struct {
		Version string
		New     bool
	}](t, c.upload(t, "alice", "1", "hello", swOrigin, swBundle(t, "hello", swOrigin)))
	if again.Version != up.Version || again.New {
		t.Fatalf("the same bundle twice: %+v, first %+v", again, up)
	}
	info := decode[struct {
		Name        string `json:"name"`
		VersionName string `json:"versionName"`
		Manifest    string `json:"manifest"`
		Files       []struct{ Name, Size string }
	}](t, c.swJSON(t, "alice", "GET", base+"?versionUrl="+swOrigin, nil))
	if info.Name != "hello" || info.VersionName != up.Version || !strings.Contains(info.Manifest, "mode: venv") || len(info.Files) != 1 {
		t.Fatalf("info: %+v", info)
	}

	// Tags: add, list, remove.
	decode[any](t, c.swJSON(t, "alice", "POST", base+"/version/"+swOrigin+"/tag", map[string]any{"tag": "prod", "force": false}))
	if tags := decode[[]string](t, c.swJSON(t, "alice", "GET", base+"/version/latest/tag", nil)); strings.Join(tags, ",") != "prod" {
		t.Fatalf("tags: %v", tags)
	}
	decode[any](t, c.swJSON(t, "alice", "DELETE", base+"/version/prod/tag/prod", nil))
	if tags := decode[[]string](t, c.swJSON(t, "alice", "GET", base+"/version/latest/tag", nil)); len(tags) != 0 {
		t.Fatalf("tags after remove: %v", tags)
	}

	// Lists and history, in Starwhale's pages.
	rts := decode[struct {
		Total int `json:"total"`
		List  []struct {
			Name    string
			Version struct{ Name, Alias string }
		}
	}](t, c.swJSON(t, "alice", "GET", "/api/v1/project/1/runtime?pageNum=1&pageSize=20", nil))
	if rts.Total != 1 || rts.List[0].Version.Name != up.Version || rts.List[0].Version.Alias != "v0" {
		t.Fatalf("runtime list: %+v", rts)
	}
	hist := decode[struct {
		Total int `json:"total"`
		List  []struct{ Name string }
	}](t, c.swJSON(t, "alice", "GET", base+"/version?pageNum=1&pageSize=10", nil))
	if hist.Total != 1 || hist.List[0].Name != up.Version {
		t.Fatalf("history: %+v", hist)
	}

	// Download: a .swrt of the version, as export writes it.
	a = c.sw(t, "alice", "GET", base+"/version/"+swOrigin+"/file?runtime=hello:"+swOrigin+"&project=1", nil, "")
	if a.Status != 200 {
		t.Fatalf("download: %d %s", a.Status, a.Body)
	}
	names := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(a.Body))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[h.Name] = true
	}
	if !names["runtime.yaml"] || !names["_manifest.yaml"] || !names["dependencies/.starwhale/lock/requirements-sw-lock.txt"] {
		t.Fatalf("downloaded bundle holds %v", names)
	}

	// Remove and recover, also by the paths Starwhale's client 0.6.15 sends.
	decode[any](t, c.swJSON(t, "alice", "DELETE", base, nil))
	if a := c.swJSON(t, "alice", "HEAD", base+"/version/"+swOrigin, nil); a.Status != 404 {
		t.Fatalf("HEAD of a removed version: %d", a.Status)
	}
	decode[any](t, c.swJSON(t, "alice", "PUT", base+"/recover", nil))
	decode[any](t, c.swJSON(t, "alice", "DELETE", "/api/v1/project/http:/127.0.0.1:1/project/1/ResourceType.runtime/hello", nil))
	decode[any](t, c.swJSON(t, "alice", "PUT", "/api/v1/project/http:/127.0.0.1:1/project/1/ResourceType.runtime/hello/recover", nil))
	if a := c.swJSON(t, "alice", "HEAD", base+"/version/"+swOrigin, nil); a.Status != 200 {
		t.Fatalf("HEAD after recover: %d", a.Status)
	}

	// The same version through swcli's own API.
	v, err := c.client("alice").Resolve(ctx, "mnist", "hello", swOrigin)
	if err != nil || v.ID != up.Version || v.Origin != swOrigin {
		t.Fatalf("swcli resolves Starwhale's id: %+v, %v", v, err)
	}
}

func TestStarwhaleAPIRefuses(t *testing.T) {
	c := newCloud(t)
	c.serve(t, func(s *server.Server) { s.MaxUpload = 64 << 10 })
	base := "/api/v1/project/mnist/runtime/hello"
	for _, tc := range []struct {
		name, user, method, path string
		status                   int
		code                     string
	}{
		{"no token", "", "GET", "/api/v1/project", 401, "accessDenied"},
		{"another's project by name", "bob", "GET", "/api/v1/project/mnist", 403, "accessDenied"},
		{"another's project by number", "bob", "GET", "/api/v1/project/1/runtime", 403, "accessDenied"},
		{"a version that is not there", "alice", "GET", base + "/version/nosuchversion/tag", 404, "validationException"},
		{"models", "alice", "GET", "/api/v1/project/1/model", 404, "validationException"},
		{"project create by a user", "alice", "POST", "/api/v1/project", 403, "accessDenied"},
	} {
		if a := c.swJSON(t, tc.user, tc.method, tc.path, nil); a.Status != tc.status || a.Code != tc.code || a.Msg == "" {
			t.Errorf("%s: %d %q %q, want %d %q", tc.name, a.Status, a.Code, a.Msg, tc.status, tc.code)
		}
	}

	// Uploads that store nothing: each a clear 4xx.
	big := swBundle(t, "hello", swOrigin)
	big = append(big, make([]byte, 70<<10)...)
	var junk bytes.Buffer
	mw := multipart.NewWriter(&junk)
	mw.WriteField("runtime", "hello:x")
	mw.Close()
	for _, tc := range []struct {
		name   string
		send   func() swAnswer
		status int
		says   string
	}{
		{"over the size limit", func() swAnswer { return c.upload(t, "alice", "mnist", "hello", swOrigin, big) }, 413, "limit"},
		{"not a tar", func() swAnswer {
			return c.upload(t, "alice", "mnist", "hello", swOrigin, []byte(strings.Repeat("not a tar ", 100)))
		}, 400, ""},
		{"a bundle of another runtime", func() swAnswer {
			return c.upload(t, "alice", "mnist", "hello", swOrigin, swBundle(t, "other", swOrigin))
		}, 400, "is runtime other, not hello"},
		{"not multipart", func() swAnswer {
			return c.sw(t, "alice", "POST", base+"/version/x/file", strings.NewReader("x"), "application/json")
		}, 400, "multipart"},
		{"a cut multipart body", func() swAnswer {
			return c.sw(t, "alice", "POST", base+"/version/x/file", strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nabc"), "multipart/form-data; boundary=b")
		}, 400, "malformed"},
		{"no file", func() swAnswer {
			return c.sw(t, "alice", "POST", base+"/version/x/file", &junk, mw.FormDataContentType())
		}, 400, "no file part"},
		{"another's project", func() swAnswer { return c.upload(t, "bob", "mnist", "hello", swOrigin, swBundle(t, "hello", swOrigin)) }, 403, ""},
	} {
		a := tc.send()
		if a.Status != tc.status || !strings.Contains(a.Msg, tc.says) || strings.Contains(a.Msg, c.root) {
			t.Errorf("%s: %d %q, want %d saying %q (and no server path)", tc.name, a.Status, a.Msg, tc.status, tc.says)
		}
	}
	vs, _, err := c.client("alice").Versions(ctx, "mnist", "", ledger.ListOptions{ShowRemoved: true})
	if err != nil || len(vs) != 0 {
		t.Fatalf("refused uploads stored %d versions (%v)", len(vs), err)
	}
	left, _ := filepath.Glob(filepath.Join(c.root, "upload-*"))
	if len(left) != 0 {
		t.Fatalf("uploads left %v", left)
	}
	if _, err := os.Stat(c.root); err != nil {
		t.Fatal(err)
	}
}

// vmHWM is a process's peak resident memory (Linux), in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc: peak memory unknown here")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// An upload is streamed to disk and imported chunk by chunk: a server process that takes
// a 384 MiB bundle (sent as it is made, never whole in the test either) stays far below it
// in memory, and a cut one stores nothing.
func TestStarwhaleUploadMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 384 MiB to a server process")
	}
	c := newCloud(t)
	cmd, url := startChild(t, c.root)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c.url = url
	const size = 384 << 20
	send := func(cut bool) swAnswer {
		pr, pw := io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			mw.WriteField("runtime", "big:"+swOrigin)
			fw, _ := mw.CreateFormFile("file", swOrigin+".swrt")
			tw := tar.NewWriter(fw)
			small := swBundle(t, "big", swOrigin)
			tr := tar.NewReader(bytes.NewReader(small))
			for {
				h, err := tr.Next()
				if err != nil {
					break
				}
				tw.WriteHeader(h)
				io.Copy(tw, tr)
			}
			tw.WriteHeader(&tar.Header{Name: "files/model.bin", Mode: 0o644, Size: size, Typeflag: tar.TypeReg})
			rnd := rand.NewChaCha8([32]byte{7})
			buf := make([]byte, 1<<20)
			for n := 0; n < size; n += len(buf) {
				rnd.Read(buf)
				if _, err := tw.Write(buf); err != nil {
					pw.CloseWithError(err)
					return
				}
				if cut && n > size/2 {
					pw.CloseWithError(errors.New("cut"))
					return
				}
			}
			tw.Close()
			mw.Close()
			pw.Close()
		}()
		path := "/api/v1/project/mnist/runtime/big/version/" + swOrigin + "/file"
		if !cut {
			return c.sw(t, "alice", "POST", path, pr, mw.FormDataContentType())
		}
		req, _ := http.NewRequest("POST", c.url+path, pr)
		req.Header.Set("Authorization", c.tokens["alice"])
		req.Header.Set("Content-Type", mw.FormDataContentType())
		if resp, err := http.DefaultClient.Do(req); err == nil { // the client may see the connection end instead
			resp.Body.Close()
		}
		return swAnswer{}
	}
	before := vmHWM(t, cmd.Process.Pid)
	if a := send(false); a.Status != 200 {
		t.Fatalf("upload: %d %s", a.Status, a.Body)
	}
	peak := vmHWM(t, cmd.Process.Pid)
	t.Logf("server peak RSS: %d MiB before, %d MiB after a %d MiB upload", before>>20, peak>>20, size>>20)
	if peak > 192<<20 {
		t.Fatalf("server peak RSS %d MiB for a %d MiB upload: not streamed", peak>>20, size>>20)
	}
	// A body cut half-way: refused, nothing stored, nothing left in the root.
	send(true)
	// The server ends its side a moment after the client's: wait for it, a while at most.
	var left []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left, _ = filepath.Glob(filepath.Join(c.root, "upload-*")); len(left) == 0 {
			break
		}
	}
	if len(left) != 0 {
		t.Fatalf("a cut upload left %v", left)
	}
	vs, _, err := c.client("alice").Versions(ctx, "mnist", "big", ledger.ListOptions{ShowRemoved: true})
	if err != nil || len(vs) != 1 {
		t.Fatalf("after a cut upload: %d versions (%v), want the first only", len(vs), err)
	}
}
