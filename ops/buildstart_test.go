package ops

import "testing"

// What StartBuild checked before the instance opened is taken only for the environment
// Build checks, in the same mode, and only while its lock key is the one it had then (a
// package added meanwhile changes the key: Build checks again).
func TestBuildStartCheckTakenOnlyForTheSameEnvironment(t *testing.T) {
	b := &BuildStart{mode: "venv", envDir: "/w/venv", check: make(chan envCheck, 1), cancel: func() {}}
	b.check <- envCheck{key: "k1", python: "3.11.7"}
	for _, c := range []struct{ mode, envDir, key string }{
		{"conda", "/w/venv", "k1"},
		{"venv", "/w/other", "k1"},
		{"venv", "/w/venv", "k2"},
		{"venv", "/w/venv", ""},
	} {
		if _, ok := b.checked(c.mode, c.envDir, c.key); ok {
			t.Fatalf("the early check was taken for %+v", c)
		}
	}
	for range 2 {
		if got, ok := b.checked("venv", "/w/venv", "k1"); !ok || got.python != "3.11.7" {
			t.Fatalf("the early check for the same environment: %+v %v", got, ok)
		}
	}
	b.Stop()
	var none *BuildStart
	if _, ok := none.checked("venv", "/w/venv", "k1"); ok || none.prewalk() != nil {
		t.Fatal("nothing started, something taken")
	}
	none.Stop()
}
