package formats

import (
	"context"
	"strings"
	"testing"

	"github.com/swcli/swcli/ops/errs"
)

// Restore takes the interpreter the build used when it is still there, else one of the
// same full version, else the same major.minor, and says which.
func TestPreferPython(t *testing.T) {
	if testing.Short() {
		t.Skip("asks every python on PATH (seconds through pyenv)")
	}
	ctx := context.Background()
	all := FindPythons(ctx)
	if len(all) == 0 {
		t.Skip("no python3 on PATH")
	}
	p := all[0]
	got, how, err := PreferPython(ctx, p.Version, p.Path)
	if err != nil || got.Path != p.Path || how != "the interpreter the build used" {
		t.Fatalf("the build's own: %+v %q %v", got, how, err)
	}
	got, how, err = PreferPython(ctx, p.Version, "/nonexistent/bin/python3")
	if err != nil || got.Version != p.Version || how != "the version the build used" {
		t.Fatalf("the build's version elsewhere: %+v %q %v", got, how, err)
	}
	gone := p.MajorMinor() + ".99"
	got, how, err = PreferPython(ctx, gone, "")
	if err != nil || got.MajorMinor() != p.MajorMinor() || !strings.Contains(how, "the build used "+gone) {
		t.Fatalf("a version the host lacks: %+v %q %v", got, how, err)
	}
	if _, _, err := PreferPython(ctx, "3.2.1", ""); errs.KindOf(err) != errs.KindEnv {
		t.Fatalf("no such major.minor: %v", err)
	}
}
