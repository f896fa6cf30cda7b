// Command scalebench asks how swcli's figures scale: it makes a workdir of -x times the ml
// corpus (ml-v1 plus x-1 transformed copies of its environment: every byte XORed with a
// per-copy constant, so no chunk repeats but each compresses as the original does), then
// measures build, unchanged rebuild and extract of ml-v1 and of the large tree in one run,
// with restic backup and tar -x of both beside them, and prints how time and peak memory
// grew against how the bytes grew.
package main

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/bench"
	"github.com/swcli/swcli/internal/corpus"
)

func main() {
	x := flag.Int("x", 10, "how many times the corpus")
	verbose := flag.Bool("v", false, "show the commands' output")
	only := flag.String("make", "", "only make the tree in this directory (for profiling), and stop")
	flag.Parse()
	if *only != "" {
		dir, err := corpus.Dir()
		if err == nil {
			_, _, err = generate(filepath.Join(dir, "ml-v1"), *only, *x)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "scalebench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*x, *verbose); err != nil {
		fmt.Fprintln(os.Stderr, "scalebench:", err)
		os.Exit(1)
	}
}

// generate makes dst: a hard-linked copy of src (the workdir, as it is), with x-1 copies of
// src/venv under dst/venv/share/scale-N whose bytes are XORed with N. It returns the files and
// bytes of dst.
func generate(src, dst string, x int) (files int, size int64, err error) {
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(t, out)
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files++
			size += fi.Size()
			return os.Link(p, out)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	venv := filepath.Join(src, "venv")
	buf := make([]byte, 1<<20)
	for n := 1; n < x; n++ {
		key := byte(n*37 + 1)
		base := filepath.Join(dst, "venv", "share", fmt.Sprintf("scale-%d", n))
		err := filepath.WalkDir(venv, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(venv, p)
			out := filepath.Join(base, rel)
			if d.IsDir() {
				return os.MkdirAll(out, 0o755)
			}
			if !d.Type().IsRegular() {
				return nil
			}
			k, err := xorCopy(p, out, key, buf)
			files++
			size += k
			return err
		})
		if err != nil {
			return 0, 0, err
		}
	}
	return files, size, nil
}

func xorCopy(src, dst string, key byte, buf []byte) (int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		k, rerr := in.Read(buf)
		for i := range buf[:k] {
			buf[i] ^= key
		}
		if _, err := out.Write(buf[:k]); err != nil {
			out.Close()
			return n, err
		}
		n += int64(k)
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			out.Close()
			return n, rerr
		}
	}
	return n, out.Close()
}

// figures are one tree's measurements.
type figures struct {
	build, rebuild, extract, restic, tarx bench.Result
	stored, resticStored                  int64
	// other: extract of the other tree given to measure from this tree's store (A) and
	// from a store of its own (B), by turns.
	other bench.Pair
}

// measure measures tree; if other is set, it also builds other into tree's store and
// measures its extract there (what an extract costs in a store larger than its tree).
func measure(log io.Writer, work, swcli, tree, other, name string) (figures, error) {
	var f figures
	root := filepath.Join(work, name+"-root")
	env := []string{"SWCLI_ROOT=" + root, "SWCLI_CONFIG=" + filepath.Join(work, "config.yaml")}
	var err error
	// Three runs of each swcli step (the large tree's steps take seconds each); restic
	// and tar once.
	med := func(prep func() error, step func() (bench.Result, error)) (bench.Result, error) {
		return bench.MedianN(3, prep, step)
	}
	if f.build, err = med(func() error { return os.RemoveAll(root) }, func() (bench.Result, error) {
		return bench.Run(log, env, swcli, "runtime", "build", "--gen-all-bundles", tree)
	}); err != nil {
		return f, err
	}
	f.stored = bench.DirBytes(filepath.Join(root, "store"))
	if f.rebuild, err = med(func() error { return nil }, func() (bench.Result, error) {
		return bench.Run(log, env, swcli, "runtime", "build", "--gen-all-bundles", tree)
	}); err != nil {
		return f, err
	}
	ext := filepath.Join(work, name+"-extract")
	if f.extract, err = med(func() error { return os.RemoveAll(ext) }, func() (bench.Result, error) {
		return bench.Run(log, env, swcli, "runtime", "extract", "ml-v1", "--target-dir", ext)
	}); err != nil {
		return f, err
	}
	if err := os.RemoveAll(ext); err != nil {
		return f, err
	}
	if other != "" {
		if f.other, err = measureOther(log, work, swcli, root, other); err != nil {
			return f, err
		}
	}
	repo := filepath.Join(work, name+"-restic")
	renv := []string{"RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY=" + repo, "RESTIC_CACHE_DIR=" + filepath.Join(work, name+"-restic-cache")}
	if _, err := bench.Run(log, renv, "restic", "init", "-q"); err != nil {
		return f, err
	}
	if f.restic, err = bench.Run(log, renv, "restic", "backup", "-q", tree); err != nil {
		return f, err
	}
	f.resticStored = bench.DirBytes(repo)
	tarFile := filepath.Join(work, name+".tar")
	if _, err := bench.Run(log, nil, "tar", "-C", tree, "-cf", tarFile, "."); err != nil {
		return f, err
	}
	tarOut := filepath.Join(work, name+"-tar-out")
	if err := os.MkdirAll(tarOut, 0o755); err != nil {
		return f, err
	}
	if f.tarx, err = bench.Run(log, nil, "tar", "-C", tarOut, "-xf", tarFile); err != nil {
		return f, err
	}
	for _, p := range []string{tarFile, tarOut, repo, root} {
		if err := os.RemoveAll(p); err != nil {
			return f, err
		}
	}
	return f, nil
}

// measureOther builds tree into root, where another tree is, and into a root of its own,
// then extracts it from each by turns, three times.
func measureOther(log io.Writer, work, swcli, root, tree string) (bench.Pair, error) {
	config := "SWCLI_CONFIG=" + filepath.Join(work, "config.yaml")
	ownRoot := filepath.Join(work, "other-root")
	env := []string{"SWCLI_ROOT=" + root, config}
	own := []string{"SWCLI_ROOT=" + ownRoot, config}
	for _, e := range [][]string{env, own} {
		if _, err := bench.Run(log, e, swcli, "runtime", "build", "--gen-all-bundles", tree); err != nil {
			return bench.Pair{}, err
		}
		if _, err := bench.Run(log, e, swcli, "runtime", "tag", "ml-v1", "other"); err != nil {
			return bench.Pair{}, err
		}
	}
	ext := filepath.Join(work, "other-extract")
	step := func(e []string) bench.Step {
		return bench.Step{
			Prep: func() error { return os.RemoveAll(ext) },
			Run: func() (bench.Result, error) {
				return bench.Run(log, e, swcli, "runtime", "extract", "ml-v1/version/other", "--target-dir", ext)
			},
		}
	}
	p, err := bench.MedianPair(3, step(env), step(own))
	if err == nil {
		err = os.RemoveAll(ext)
	}
	if err == nil {
		err = os.RemoveAll(ownRoot)
	}
	return p, err
}

func run(x int, verbose bool) error {
	if x < 2 {
		return fmt.Errorf("-x %d: give 2 or more", x)
	}
	log := bench.Log(verbose)
	ses, err := bench.Start("scale", "", false)
	if err != nil {
		return err
	}
	defer ses.Close()
	v1, work, swcli := ses.Path("ml-v1"), ses.Work, ses.Swcli
	big := filepath.Join(work, fmt.Sprintf("ml-v1-x%d", x))
	fmt.Fprintf(os.Stderr, "scalebench: making %s ...\n", filepath.Base(big))
	files, size, err := generate(v1, big, x)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	small := bench.DirBytes(v1)
	fmt.Printf("ml-v1: %s; ml-v1 x%d: %s in %d files\n\n", bench.MB(small), x, bench.MB(size), files)
	// Warm the page cache with both trees, as storebench does (24 GiB hold them).
	for _, d := range []string{v1, big} {
		if _, err := bench.Run(io.Discard, nil, "sh", "-c", fmt.Sprintf("tar -C %q -cf - . | cat >/dev/null", d)); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "scalebench: ml-v1 ...")
	a, err := measure(log, work, swcli, v1, "", "v1")
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "scalebench: ml-v1 x%d ...\n", x)
	b, err := measure(log, work, swcli, big, v1, "big")
	if err != nil {
		return err
	}
	grow := float64(size) / float64(small)
	rows := [][]string{{"step", "ml-v1", fmt.Sprintf("x%d", x), "grew", "per byte (1.00 = linear)", "peak RSS", fmt.Sprintf("x%d", x)}}
	line := func(step string, p, q bench.Result) {
		g := q.Wall.Seconds() / p.Wall.Seconds()
		rows = append(rows, []string{step, bench.Secs(p.Wall), bench.Secs(q.Wall), fmt.Sprintf("%.1f x", g),
			fmt.Sprintf("%.2f", g/grow), bench.MiB(p.PeakRSS), bench.MiB(q.PeakRSS)})
	}
	line("swcli build", a.build, b.build)
	line("swcli rebuild (unchanged)", a.rebuild, b.rebuild)
	line("swcli extract", a.extract, b.extract)
	line("restic backup", a.restic, b.restic)
	line("tar -x", a.tarx, b.tarx)
	bench.Table(os.Stdout, rows)
	fmt.Printf("(bytes grew %.1f x; swcli steps: median of 3 runs, restic and tar: one)\n\n", grow)
	fmt.Printf("stored: ml-v1 %s (%.3f x restic), x%d %s (%.3f x restic)\n\n",
		bench.MB(a.stored), float64(a.stored)/float64(a.resticStored), x, bench.MB(b.stored), float64(b.stored)/float64(b.resticStored))
	o := b.other
	fmt.Printf("extract of ml-v1 from a store holding ml-v1 x%d besides: %s, %s; from a store of its own: %s, %s\n(by turns, median of 3)\n\n",
		x, bench.Secs(o.A.Wall), bench.MiB(o.A.PeakRSS), bench.Secs(o.B.Wall), bench.MiB(o.B.PeakRSS))
	fmt.Println("at scale:")
	g := &bench.Gate{W: os.Stdout, Width: 48}
	noise := bench.Noise(a.build, a.rebuild, a.extract, b.build, b.rebuild, b.extract)
	g.Ratio("build time per byte <= 1.25 x ml-v1's", b.build.Wall.Seconds()/grow, a.build.Wall.Seconds(), 1.25, noise)
	g.Times("unchanged rebuild <= 0.05 x first build", b.rebuild, b.build, 0.05)
	g.Ratio("build peak RSS <= 1.25 x ml-v1's (flat)", float64(b.build.PeakRSS), float64(a.build.PeakRSS), 1.25, 0)
	g.Ratio("extract peak RSS <= 1.25 x ml-v1's (flat)", float64(b.extract.PeakRSS), float64(a.extract.PeakRSS), 1.25, 0)
	// An extract reads its own tree's chunks: a store ten times larger costs it nothing.
	g.Ratio("extract ml-v1 in the large store <= 1.25 x", o.Ratio, 1, 1.25, o.Spread)
	g.Ratio("  its peak RSS <= 1.25 x in its own store", float64(o.A.PeakRSS), float64(o.B.PeakRSS), 1.25, 0)
	if f := g.Failed(); len(f) > 0 {
		return fmt.Errorf("%d target(s) missed by more than the noise: %s", len(f), strings.Join(f, "; "))
	}
	return nil
}
