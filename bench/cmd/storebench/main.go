// Command storebench stores the ml corpus with swcli and with its peers in one run and
// prints wall time, stored bytes, growth from ml-v1 to ml-v2 and peak RSS, with the targets.
// Steps that start from nothing run bench.Reps times (median reported); their spread is
// the run's noise, and storebench exits 1 when a target is missed by more than it.
// Materialise and extract each run by turns with tar -x, and their targets are the median
// of the rounds' ratios.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/bench"
)

func main() {
	verbose := flag.Bool("v", false, "show the commands' output")
	flag.Parse()
	if err := run(*verbose); err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}

// noPrep is the preparation of steps that can simply run again (re-storing unchanged data).
func noPrep() error { return nil }

func run(verbose bool) error {
	log := bench.Log(verbose)
	ses, err := bench.Start("bench", "", false)
	if err != nil {
		return err
	}
	defer ses.Close()
	dir, work, swcli := ses.Corpus, ses.Work, ses.Swcli
	v1, v2 := ses.Path("ml-v1"), ses.Path("ml-v2")
	for _, tool := range []string{"restic", "tar", "zstd", "rsync"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install restic zstd rsync)", tool)
		}
	}
	// Warm the page cache so that every tool reads from memory, as in PRIOR-ART's figures.
	for _, d := range []string{v1, v2} {
		if _, err := bench.Run(io.Discard, nil, "sh", "-c", fmt.Sprintf("tar -C %q -cf - . | cat >/dev/null", d)); err != nil {
			return err
		}
	}

	rows := [][]string{{"tool", "step", "wall", "(min – max)", "stored", "growth", "peak RSS"}}
	add := func(tool, step string, r bench.Result, stored, growth string) {
		spread := ""
		if r.Max > r.Min {
			spread = fmt.Sprintf("(%.2f – %.2f)", r.Min.Seconds(), r.Max.Seconds())
		}
		rows = append(rows, []string{tool, step, bench.Secs(r.Wall), spread, stored, growth, bench.MiB(r.PeakRSS)})
	}

	// swcli
	root := filepath.Join(work, "swcli-root")
	storeDir := filepath.Join(root, "store") // the cache beside it is not counted, as restic's is not
	env := []string{"SWCLI_ROOT=" + root}
	sw1, err := bench.Median(func() error { return os.RemoveAll(root) }, func() (bench.Result, error) {
		return bench.Run(log, env, swcli, "store", "put", v1)
	})
	if err != nil {
		return err
	}
	swS1 := bench.DirBytes(storeDir)
	add("swcli", "store ml-v1", sw1, bench.MB(swS1), "")
	sw2, err := bench.Run(log, env, swcli, "store", "put", v2)
	if err != nil {
		return err
	}
	swS2 := bench.DirBytes(storeDir)
	add("swcli", "store ml-v2", sw2, bench.MB(swS2), "+"+bench.MB(swS2-swS1))
	swRe, err := bench.Median(noPrep, func() (bench.Result, error) { return bench.Run(log, env, swcli, "store", "put", v1) })
	if err != nil {
		return err
	}
	add("swcli", "re-store ml-v1", swRe, "", "")
	treeOut, err := exec.Command(swcli, "--root", root, "store", "put", v1).Output()
	if err != nil {
		return err
	}
	// Materialise and extract each run by turns with tar -x of the same tree: all three
	// create 11k files, each into a directory of its own (bench.Fresh: how fast a file
	// system creates files swings with what was deleted just before).
	tarFile := filepath.Join(work, "v1.tar")
	if _, err := bench.Run(log, nil, "tar", "-C", v1, "-cf", tarFile, "."); err != nil {
		return err
	}
	// Materialise and tar -x, extract and tar -x by turns, then restore's extracts.
	fresh, err := bench.NewFresh(filepath.Join(work, "out"), 5*bench.Reps, bench.DirBytes(v1))
	if err != nil {
		return err
	}
	var tarOut string
	tarX := bench.Step{Prep: func() (err error) {
		if tarOut, err = fresh.Next("tar-x"); err != nil {
			return err
		}
		return os.MkdirAll(tarOut, 0o755)
	}, Run: func() (bench.Result, error) { return bench.Run(log, nil, "tar", "-C", tarOut, "-xf", tarFile) }}
	var swOut string
	pm, err := bench.MedianPair(bench.Reps,
		bench.Step{Prep: func() (err error) { swOut, err = fresh.Next("materialise"); return err }, Run: func() (bench.Result, error) {
			return bench.Run(log, env, swcli, "store", "get", strings.TrimSpace(string(treeOut)), swOut)
		}}, tarX)
	if err != nil {
		return err
	}
	swX := pm.A
	add("swcli", "materialise ml-v1", swX, "", "")

	// swcli runtime build --gen-all-bundles through the CLI, then extract + restore.
	broot := filepath.Join(work, "swcli-build-root")
	bstore := filepath.Join(broot, "store")
	benv := []string{"SWCLI_ROOT=" + broot, "SWCLI_CONFIG=" + filepath.Join(work, "config.yaml")}
	b1, err := bench.Median(func() error { return os.RemoveAll(broot) }, func() (bench.Result, error) {
		return bench.Run(log, benv, swcli, "runtime", "build", "--gen-all-bundles", v1)
	})
	if err != nil {
		return err
	}
	bS1 := bench.DirBytes(bstore)
	add("swcli rt", "build ml-v1", b1, bench.MB(bS1), "")
	b2, err := bench.Run(log, benv, swcli, "runtime", "build", "--gen-all-bundles", v2)
	if err != nil {
		return err
	}
	bS2 := bench.DirBytes(bstore)
	add("swcli rt", "build ml-v2", b2, bench.MB(bS2), "+"+bench.MB(bS2-bS1))
	bRe, err := bench.Median(noPrep, func() (bench.Result, error) {
		return bench.Run(log, benv, swcli, "runtime", "build", "--gen-all-bundles", v1)
	})
	if err != nil {
		return err
	}
	add("swcli rt", "rebuild ml-v1", bRe, "", "")
	var ext string
	newExt := func() (err error) { ext, err = fresh.Next("extract"); return err }
	extract := func() (bench.Result, error) {
		return bench.Run(log, benv, swcli, "runtime", "extract", "ml-v1", "--target-dir", ext)
	}
	px, err := bench.MedianPair(bench.Reps, bench.Step{Prep: newExt, Run: extract}, tarX)
	if err != nil {
		return err
	}
	bx, tx := px.A, px.B
	add("swcli rt", "extract ml-v1", bx, "", "")
	br, err := bench.Median(func() error { // restore changes the workdir: start each from an extract
		if err := newExt(); err != nil {
			return err
		}
		_, err := extract()
		return err
	}, func() (bench.Result, error) { return bench.Run(log, benv, swcli, "runtime", "restore", ext) })
	if err != nil {
		return err
	}
	add("swcli rt", "restore ml-v1", br, "", "")

	// restic
	repo := filepath.Join(work, "restic")
	renv := []string{"RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY=" + repo, "RESTIC_CACHE_DIR=" + filepath.Join(work, "restic-cache")}
	r1, err := bench.Median(func() error {
		if err := os.RemoveAll(repo); err != nil {
			return err
		}
		_, err := bench.Run(log, renv, "restic", "init", "-q")
		return err
	}, func() (bench.Result, error) { return bench.Run(log, renv, "restic", "backup", "-q", v1) })
	if err != nil {
		return err
	}
	rS1 := bench.DirBytes(repo)
	add("restic", "backup ml-v1", r1, bench.MB(rS1), "")
	r2, err := bench.Run(log, renv, "restic", "backup", "-q", v2)
	if err != nil {
		return err
	}
	rS2 := bench.DirBytes(repo)
	add("restic", "backup ml-v2", r2, bench.MB(rS2), "+"+bench.MB(rS2-rS1))
	rRe, err := bench.Median(noPrep, func() (bench.Result, error) { return bench.Run(log, renv, "restic", "backup", "-q", v1) })
	if err != nil {
		return err
	}
	add("restic", "re-backup ml-v1", rRe, "", "")

	// tar | zstd -3, and tar -x of the same tree
	tz1 := filepath.Join(work, "v1.tar.zst")
	t1, err := bench.Median(func() error { return os.RemoveAll(tz1) }, func() (bench.Result, error) {
		return bench.Run(log, nil, "sh", "-c", fmt.Sprintf("tar -C %q -cf - . | zstd -3 -q -o %q", v1, tz1))
	})
	if err != nil {
		return err
	}
	tS1 := bench.DirBytes(tz1)
	add("tar|zstd -3", "ml-v1", t1, bench.MB(tS1), "")
	tz2 := filepath.Join(work, "v2.tar.zst")
	t2, err := bench.Run(log, nil, "sh", "-c", fmt.Sprintf("tar -C %q -cf - . | zstd -3 -q -o %q", v2, tz2))
	if err != nil {
		return err
	}
	tS2 := bench.DirBytes(tz2)
	add("tar|zstd -3", "ml-v2", t2, bench.MB(tS2), "+"+bench.MB(tS2))
	add("tar -x", "ml-v1 (by turns with materialise)", pm.B, "", "")
	add("tar -x", "ml-v1 (by turns with extract)", tx, "", "")

	copyRows, cf, err := copyBench(log, work, swcli, benv, renv, v1, v2)
	if err != nil {
		return err
	}

	fmt.Printf("ml-v1: %s, ml-v2: %s (corpus %s)\n\n", bench.MB(bench.DirBytes(v1)), bench.MB(bench.DirBytes(v2)), dir)
	bench.Table(os.Stdout, rows)
	fmt.Printf("(steps that start from nothing and re-runs: median of %d runs, the largest peak RSS of them)\n", bench.Reps)
	if fresh.Reusing() {
		fmt.Println("(materialise, extract and tar -x: too little free disk for an output of each run: each deleted the last, and a file system just after a deletion makes files several times slower, more for some runs than others)")
	} else {
		fmt.Println("(materialise, extract and tar -x: each run into a directory of its own, nothing deleted meanwhile)")
	}
	fmt.Println()
	fmt.Println("copy on loopback (wire bytes counted at the socket by a proxy; round trips from the server's log):")
	fmt.Println()
	bench.Table(os.Stdout, copyRows)
	fmt.Println()
	// The noise of a ratio of two timed steps is the sum of their spreads (half their
	// range over five runs, relative to the median); the copy steps run once, and take
	// the largest spread of this run.
	noise := bench.Noise(sw1, swRe, swX, b1, bRe, bx, br, r1, rRe, t1, tx, pm.B)
	fmt.Printf("targets (a miss within the noise of its steps is ~noise; largest spread of a step in this run: ±%.0f%%):\n", 100*noise)
	g := &bench.Gate{W: os.Stdout, Width: 44}
	g.Times("build ml-v1 <= 0.25 x restic backup", b1, r1, 0.25)
	g.Times("unchanged rebuild <= 0.05 x first build", bRe, b1, 0.05)
	g.Ratio("stored <= 0.9 x restic's repository", float64(bS1), float64(rS1), 0.9, 0)
	g.Ratio("v2 growth <= 0.9 x restic's", float64(bS2-bS1), float64(rS2-rS1), 0.9, 0)
	g.Ratio("ml-v1 to an empty server <= 0.25 x restic copy", cf.wall.Seconds(), cf.resticWall.Seconds(), 0.25, 2*noise)
	g.Ratio("extract ml-v1 <= 1.0 x tar -x (by turns)", px.Ratio, 1, 1.0, px.Spread)
	bpeak := max(b1.PeakRSS, b2.PeakRSS, bRe.PeakRSS)
	g.AtMost("peak RSS of a build <= 160 MiB", float64(bpeak), 160<<20, 0.05, bench.MiB(bpeak))
	g.AtMost("peak RSS of an extract <= 200 MiB", float64(bx.PeakRSS), 200<<20, 0.05, bench.MiB(bx.PeakRSS))
	g.Ratio("ml-v2 wire bytes <= 1.1 x restic copy growth", float64(cf.wireV2), float64(cf.resticV2), 1.1, 0)
	g.AtMost("nothing missing <= 3 round trips", float64(cf.tripsNothing), 3, 0, fmt.Sprint(cf.tripsNothing))
	fmt.Println("the store alone ('swcli store put/get'), round one's targets:")
	g.Times("store ml-v1 <= 0.4 x restic", sw1, r1, 0.4)
	g.Times("re-store <= 0.1 x first store", swRe, sw1, 0.1)
	g.Ratio("materialise <= 1.5 x tar -x (by turns)", pm.Ratio, 1, 1.5, pm.Spread)
	peak := max(sw1.PeakRSS, sw2.PeakRSS, swRe.PeakRSS, swX.PeakRSS)
	g.AtMost("peak RSS <= 200 MiB", float64(peak), 200<<20, 0.05, bench.MiB(peak))
	if f := g.Failed(); len(f) > 0 {
		return fmt.Errorf("%d target(s) missed by more than the noise: %s", len(f), strings.Join(f, "; "))
	}
	return nil
}
