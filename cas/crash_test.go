package cas_test

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/swcli/swcli/cas"
)

// The crash test re-runs this test binary as a child that stores trees in a loop, kills
// it with SIGKILL at a random moment, and checks what the store looks like after.
const crashChildEnv = "SWCLI_CAS_CRASH_CHILD"

func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashChildEnv)
	if spec == "" {
		t.Skip("run by TestCrashDuringIngest")
	}
	var storeDir, srcDir string
	for i, p := range filepath.SplitList(spec) {
		if i == 0 {
			storeDir = p
		} else {
			srcDir = p
		}
	}
	// The child uses the store as commands do: shared, its index open only in windows.
	s, err := cas.OpenLocalWith(context.Background(), storeDir, cas.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		// Each round edits the tree so that there is always something new to store.
		os.WriteFile(filepath.Join(srcDir, "round"), noise(int64(i), 700<<10), 0o644)
		if _, err := cas.Ingest(context.Background(), s, []cas.Input{{Src: srcDir}}, cas.IngestOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCrashDuringIngest(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; CI runs it")
	}
	src := t.TempDir()
	for i := range 40 {
		os.WriteFile(filepath.Join(src, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))), noise(int64(1000+i), 1<<20), 0o644)
	}
	storeDir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 6 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+storeDir+string(filepath.ListSeparator)+src)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(200+rng.IntN(1500)) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()

		s, err := cas.OpenLocal(storeDir)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		rep, err := cas.VerifyAll(context.Background(), s)
		if err != nil || len(rep.Corrupt) > 0 {
			t.Fatalf("round %d: after kill: %v, corrupt %v", round, err, rep.Corrupt)
		}
		if _, err := cas.Ingest(context.Background(), s, []cas.Input{{Src: src}}, cas.IngestOptions{}); err != nil {
			t.Fatalf("round %d: storing again after kill: %v", round, err)
		}
		leftovers, _ := filepath.Glob(filepath.Join(storeDir, "packs", "*.tmp"))
		if len(leftovers) > 0 {
			t.Fatalf("round %d: temp packs left after open: %v", round, leftovers)
		}
		t.Logf("round %d: %d chunks verified", round, rep.Chunks)
		s.Close()
	}
}
