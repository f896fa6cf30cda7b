package ops_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/swcli/swcli/ops"
)

// TestConfigSavesDoNotLoseEachOther: commands that load the config, change different things
// and save at once (a copy remembering a checkpoint while another logs in, or selects a
// project) keep every change, and leave no temporary file beside it.
func TestConfigSavesDoNotLoseEachOther(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	c, err := ops.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	c.Instances["team"] = &ops.InstanceConfig{URL: "http://127.0.0.1:1", Token: "t"}
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}

	a, _ := ops.LoadConfig(path) // remembers a checkpoint
	b, _ := ops.LoadConfig(path) // selects a project on the same instance
	d, _ := ops.LoadConfig(path) // logs in to another instance and selects it
	a.Instances["team"].Checkpoint = "cp-42"
	b.Instances["team"].CurrentProject = "mnist"
	d.Instances["other"] = &ops.InstanceConfig{URL: "http://127.0.0.1:2"}
	d.CurrentInstance = "other"
	var wg sync.WaitGroup
	for _, c := range []*ops.Config{a, b, d} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Save(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, err := ops.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	team := got.Instances["team"]
	if team == nil || team.Checkpoint != "cp-42" || team.CurrentProject != "mnist" || team.Token != "t" {
		t.Fatalf("team after three saves: %+v", team)
	}
	if got.Instances["other"] == nil || got.CurrentInstance != "other" {
		t.Fatalf("the login was lost: %+v, current %q", got.Instances["other"], got.CurrentInstance)
	}
	if left, _ := filepath.Glob(path + ".*.tmp"); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}

	// A logout removes the instance even though another process still holds it loaded
	// and saves a change to a third one.
	e, _ := ops.LoadConfig(path)
	f, _ := ops.LoadConfig(path)
	delete(e.Instances, "other")
	e.CurrentInstance = "local"
	f.Instances["team"].CurrentProject = "cifar"
	if err := e.Save(); err != nil {
		t.Fatal(err)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
	got, _ = ops.LoadConfig(path)
	if got.Instances["other"] != nil || got.CurrentInstance != "local" || got.Instances["team"].CurrentProject != "cifar" {
		t.Fatalf("after a logout and a select: %+v current %q", got.Instances, got.CurrentInstance)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", fi.Mode(), err)
	}
}
