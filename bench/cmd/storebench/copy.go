package main

import (
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/swcli/swcli/bench"
)

// copyFigures are what the copy targets compare.
type copyFigures struct {
	wall, resticWall time.Duration // ml-v1 to an empty destination
	wireV2, resticV2 int64         // ml-v2 after ml-v1: bytes sent, restic's growth
	tripsNothing     int           // round trips when nothing is missing
}

// copyBench copies ml-v1 then ml-v2 to an empty swcli server on loopback, beside restic
// copy and rsync of the same trees.
func copyBench(log io.Writer, work, swcli string, benv, renv []string, v1, v2 string) ([][]string, copyFigures, error) {
	var none copyFigures
	rows := [][]string{{"tool", "step", "wall", "wire bytes", "round trips", "destination grew"}}
	srvRoot := filepath.Join(work, "server")
	tok, err := exec.Command(swcli, "--root", srvRoot, "server", "user", "add", "bench").Output()
	if err != nil {
		return nil, none, fmt.Errorf("server user add: %w", err)
	}
	if out, err := exec.Command(swcli, "--root", srvRoot, "server", "project", "create", "p", "--member", "bench").CombinedOutput(); err != nil {
		return nil, none, fmt.Errorf("server project create: %v %s", err, out)
	}
	srv, err := bench.StartServer(swcli, srvRoot, nil)
	if err != nil {
		return nil, none, err
	}
	defer srv.Stop()
	steps, err := bench.RunCopySteps(log, swcli, benv, srv, "bench", strings.TrimSpace(string(tok)),
		func() int64 { return bench.DirBytes(filepath.Join(srvRoot, "store")) })
	if err != nil {
		return nil, none, err
	}
	rows = append(rows, steps.Rows("swcli")...)
	wall, wire, trips := steps.Wall, steps.Wire, steps.Trips

	// restic copy of the same snapshots into a second repository.
	rwall, rgrow, err := bench.ResticCopy(log, renv, filepath.Join(work, "restic-copy"), filepath.Join(work, "restic-cache"), v1, v2)
	if err != nil {
		return nil, none, err
	}
	for i, dir := range []string{v1, v2} {
		rows = append(rows, []string{"restic copy", filepath.Base(dir), bench.Secs(rwall[i]), "(local)", "", "+" + bench.MB(rgrow[i])})
	}

	// rsync: ml-v1 to an empty directory, then ml-v2 over it with the delta algorithm.
	rdst := filepath.Join(work, "rsync-dst")
	for i, dir := range []string{v1, v2} {
		cmd := exec.Command("rsync", "-a", "--delete", "--no-whole-file", "--stats", dir+"/", rdst+"/")
		start := time.Now()
		outb, err := cmd.Output()
		if err != nil {
			return nil, none, fmt.Errorf("rsync: %w", err)
		}
		m := regexp.MustCompile(`Total bytes sent: ([0-9,]+)`).FindSubmatch(outb)
		sent := int64(0)
		if m != nil {
			sent, _ = strconv.ParseInt(strings.ReplaceAll(string(m[1]), ",", ""), 10, 64)
		}
		rows = append(rows, []string{"rsync", filepath.Base(dir), bench.Secs(time.Since(start)), bench.MB(sent), "", ""})
		_ = i
	}
	figs := copyFigures{wall: wall[0], resticWall: rwall[0], wireV2: wire[1], resticV2: rgrow[1], tripsNothing: trips[2]}
	return rows, figs, nil
}
