// Command lockbench measures how long `swcli runtime list` takes while a
// `--gen-all-bundles` build of ml-v1 runs in the same root, against the build's own time,
// and the build's time alone and with the lists beside it.
//
//	go run ./bench/cmd/lockbench [-swcli PATH] [-runs 3]
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/swcli/swcli/bench"
)

func main() {
	bin := flag.String("swcli", "", "swcli binary to measure (default: build ./cmd/swcli)")
	runs := flag.Int("runs", 3, "builds per measurement")
	flag.Parse()
	if err := run(*bin, *runs); err != nil {
		fmt.Fprintln(os.Stderr, "lockbench:", err)
		os.Exit(1)
	}
}

func run(swcli string, runs int) error {
	ses, err := bench.Start("lockbench", swcli, false)
	if err != nil {
		return err
	}
	defer ses.Close()
	v1, work, swcli := ses.Path("ml-v1"), ses.Work, ses.Swcli
	// Warm the page cache, as storebench does.
	if _, err := bench.Run(io.Discard, nil, "sh", "-c", fmt.Sprintf("tar -C %q -cf - . | cat >/dev/null", v1)); err != nil {
		return err
	}
	var alone, beside []time.Duration
	var lists []time.Duration
	var worst []float64
	for i := range runs {
		root := filepath.Join(work, fmt.Sprintf("alone%d", i))
		env := []string{"SWCLI_ROOT=" + root}
		bench.Run(io.Discard, env, swcli, "project", "list") // the root exists before the build starts
		r, err := bench.Run(io.Discard, env, swcli, "runtime", "build", "--gen-all-bundles", v1)
		if err != nil {
			return err
		}
		alone = append(alone, r.Wall)

		root = filepath.Join(work, fmt.Sprintf("beside%d", i))
		env = []string{"SWCLI_ROOT=" + root}
		bench.Run(io.Discard, env, swcli, "project", "list")
		cmd := exec.Command(swcli, "runtime", "build", "--gen-all-bundles", v1)
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return err
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.Sleep(100 * time.Millisecond) // the build is under way
		var mine []time.Duration
		var buildErr error
	loop:
		for {
			select {
			case buildErr = <-done:
				break loop
			default:
			}
			l, err := bench.Run(io.Discard, env, swcli, "runtime", "list")
			if err != nil {
				return err
			}
			mine = append(mine, l.Wall)
			time.Sleep(50 * time.Millisecond)
		}
		if buildErr != nil {
			return fmt.Errorf("build beside lists: %w", buildErr)
		}
		b := time.Since(start)
		beside = append(beside, b)
		lists = append(lists, mine...)
		if len(mine) > 0 {
			worst = append(worst, slices.Max(mine).Seconds()/b.Seconds())
		}
	}
	slices.Sort(lists)
	med := func(ds []time.Duration) time.Duration { s := slices.Clone(ds); slices.Sort(s); return s[len(s)/2] }
	rows := [][]string{{"measure", "value", "target"}}
	rows = append(rows,
		[]string{"build --gen-all-bundles ml-v1 alone (median)", bench.Secs(med(alone)), ""},
		[]string{"same build with lists beside it (median)", bench.Secs(med(beside)), "(the lists take CPU too)"},
		[]string{"runtime list during the build: count", fmt.Sprint(len(lists)), ""},
		[]string{"runtime list during the build: median", fmt.Sprintf("%.0f ms", float64(lists[len(lists)/2].Microseconds())/1000), ""},
		[]string{"runtime list during the build: slowest", fmt.Sprintf("%.0f ms", float64(lists[len(lists)-1].Microseconds())/1000), ""},
		[]string{"slowest list / build time (worst run)", fmt.Sprintf("%.3f", slices.Max(worst)), "≤ 0.1"},
	)
	bench.Table(os.Stdout, rows)
	return nil
}
