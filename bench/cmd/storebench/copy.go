package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/swcli/swcli/bench"
)

type checkRow struct {
	name   string
	ok     bool
	detail string
}

// copyBench copies ml-v1 then ml-v2 to an empty swcli server on loopback, beside restic
// copy and rsync of the same trees.
func copyBench(log io.Writer, work, swcli string, benv, renv []string, v1, v2 string) ([][]string, []checkRow, error) {
	rows := [][]string{{"tool", "step", "wall", "wire bytes", "round trips", "destination grew"}}
	srvRoot := filepath.Join(work, "server")
	tok, err := exec.Command(swcli, "--root", srvRoot, "server", "user", "add", "bench").Output()
	if err != nil {
		return nil, nil, fmt.Errorf("server user add: %w", err)
	}
	if out, err := exec.Command(swcli, "--root", srvRoot, "server", "project", "create", "p", "--member", "bench").CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("server project create: %v %s", err, out)
	}
	logPath := filepath.Join(work, "server.log")
	logf, _ := os.Create(logPath)
	srv := exec.Command(swcli, "--root", srvRoot, "-v", "server", "--listen", "127.0.0.1:0")
	srv.Stderr = logf
	out, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		return nil, nil, err
	}
	defer func() { srv.Process.Signal(os.Interrupt); srv.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return nil, nil, fmt.Errorf("server: %v", err)
	}
	addr := regexp.MustCompile(`http://(\S+)`).FindStringSubmatch(line)
	if addr == nil {
		return nil, nil, fmt.Errorf("server said %q", line)
	}
	proxy, err := bench.NewProxy(addr[1])
	if err != nil {
		return nil, nil, err
	}
	defer proxy.Close()
	if out, err := exec.Command("env", append(benv, swcli, "instance", "login", "http://"+proxy.Addr(), "--alias", "bench", "--token", strings.TrimSpace(string(tok)))...).CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("login: %v %s", err, out)
	}
	requests := func() int {
		b, _ := os.ReadFile(logPath)
		return strings.Count(string(b), "request")
	}
	storeBytes := func() int64 { return bench.DirBytes(filepath.Join(srvRoot, "store")) }
	var wall [3]time.Duration
	var wire [3]int64
	var trips [3]int
	for i, step := range []string{"ml-v1/version/latest", "ml-v2/version/latest", "ml-v1/version/latest"} {
		u0, d0 := proxy.Bytes()
		q0, s0 := requests(), storeBytes()
		r, err := bench.Run(log, benv, swcli, "runtime", "copy", step, "cloud://bench/project/p")
		if err != nil {
			return nil, nil, err
		}
		time.Sleep(100 * time.Millisecond) // let the log and the proxy counters settle
		u1, d1 := proxy.Bytes()
		wall[i], wire[i], trips[i] = r.Wall, (u1-u0)+(d1-d0), requests()-q0
		name := []string{"copy ml-v1 to an empty server", "copy ml-v2", "copy ml-v1 again (nothing missing)"}[i]
		rows = append(rows, []string{"swcli", name, bench.Secs(r.Wall), bench.MB(wire[i]), strconv.Itoa(trips[i]), "+" + bench.MB(storeBytes()-s0)})
	}

	// restic copy of the same snapshots into a second repository.
	src := ""
	for _, e := range renv {
		if v, ok := strings.CutPrefix(e, "RESTIC_REPOSITORY="); ok {
			src = v
		}
	}
	dst := filepath.Join(work, "restic-copy")
	cenv := []string{"RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY=" + dst, "RESTIC_FROM_REPOSITORY=" + src,
		"RESTIC_FROM_PASSWORD=bench", "RESTIC_CACHE_DIR=" + filepath.Join(work, "restic-cache")}
	if _, err := bench.Run(log, cenv, "restic", "init", "-q", "--copy-chunker-params", "--from-repo", src); err != nil {
		return nil, nil, err
	}
	var rwall [2]time.Duration
	var rgrow [2]int64
	for i, dir := range []string{v1, v2} {
		id, err := snapshotOf(renv, dir)
		if err != nil {
			return nil, nil, err
		}
		before := bench.DirBytes(dst)
		r, err := bench.Run(log, cenv, "restic", "copy", "-q", id)
		if err != nil {
			return nil, nil, err
		}
		rwall[i], rgrow[i] = r.Wall, bench.DirBytes(dst)-before
		rows = append(rows, []string{"restic copy", filepath.Base(dir), bench.Secs(r.Wall), "(local)", "", "+" + bench.MB(rgrow[i])})
	}

	// rsync: ml-v1 to an empty directory, then ml-v2 over it with the delta algorithm.
	rdst := filepath.Join(work, "rsync-dst")
	for i, dir := range []string{v1, v2} {
		cmd := exec.Command("rsync", "-a", "--delete", "--no-whole-file", "--stats", dir+"/", rdst+"/")
		start := time.Now()
		outb, err := cmd.Output()
		if err != nil {
			return nil, nil, fmt.Errorf("rsync: %w", err)
		}
		m := regexp.MustCompile(`Total bytes sent: ([0-9,]+)`).FindSubmatch(outb)
		sent := int64(0)
		if m != nil {
			sent, _ = strconv.ParseInt(strings.ReplaceAll(string(m[1]), ",", ""), 10, 64)
		}
		rows = append(rows, []string{"rsync", filepath.Base(dir), bench.Secs(time.Since(start)), bench.MB(sent), "", ""})
		_ = i
	}
	checks := []checkRow{
		{"ml-v2 wire bytes <= 1.1 x restic copy growth", float64(wire[1]) <= 1.1*float64(rgrow[1]), fmt.Sprintf("%s vs %s", bench.MB(wire[1]), bench.MB(rgrow[1]))},
		{"ml-v1 to empty server <= 0.5 x restic copy", wall[0].Seconds() <= 0.5*rwall[0].Seconds(), fmt.Sprintf("%.2f x", wall[0].Seconds()/rwall[0].Seconds())},
		{"nothing missing <= 3 round trips", trips[2] <= 3, fmt.Sprintf("%d", trips[2])},
	}
	return rows, checks, nil
}

// snapshotOf returns the id of the newest restic snapshot of dir.
func snapshotOf(renv []string, dir string) (string, error) {
	cmd := exec.Command("restic", "snapshots", "--json", "--path", dir)
	cmd.Env = append(os.Environ(), renv...)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("restic snapshots: %w", err)
	}
	var snaps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &snaps); err != nil || len(snaps) == 0 {
		return "", fmt.Errorf("no restic snapshot of %s", dir)
	}
	return snaps[len(snaps)-1].ID, nil
}
