package formats

import (
	"os"
	"path/filepath"
	"testing"
)

// _manifest.yaml is part of every bundle, so its bytes are part of every version id: a new
// field, a renamed one or another order changes the id of every version built after it
// (the same content would no longer dedup against versions built before). This pins the
// bytes; change testdata/golden_manifest.yaml only on purpose, knowing that.
func TestGoldenBundleManifest(t *testing.T) {
	y := []byte(`api_version: "1.1"
name: golden
mode: venv
environment:
  python: "3.11"
  arch: [amd64]
configs:
  pip:
    index_url: https://pypi.example/simple
    trusted_host: [pypi.example]
  conda:
    channels: [conda-forge]
dependencies:
  - requirements.txt
  - pip: [numpy==1.26.4]
  - wheels: [dist/a-1.0-py3-none-any.whl]
  - files:
      - {name: cfg, src: conf/app.cfg, dest: etc/app.cfg}
  - commands: [echo hi]
`)
	ry, err := ParseRuntimeYAML("runtime.yaml", y, "")
	if err != nil {
		t.Fatal(err)
	}
	got := NewBundleManifest(ry, "3.11.7", true, false).Encode()
	golden := filepath.Join("testdata", "golden_manifest.yaml")
	if os.Getenv("SWCLI_UPDATE_GOLDEN") == "1" {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("_manifest.yaml changed: every version id changes with it\n got:\n%s\nwant:\n%s", got, want)
	}
}
