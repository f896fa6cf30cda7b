// Command cloudbench measures a server on PostgreSQL and S3 (SeaweedFS) against the same
// server on local disk and against restic copy, in one run, and then 16 clients for 60 s
// against one and two replicas. `just bench-cloud` runs it.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/minio/minio-go/v7"
	"github.com/swcli/swcli/bench"
	"github.com/swcli/swcli/internal/engines"
	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/client"
)

func main() {
	verbose := flag.Bool("v", false, "show the tools' output")
	clients := flag.Int("clients", 16, "clients of the load test")
	dur := flag.Duration("duration", 60*time.Second, "length of each load test")
	flag.Parse()
	if err := run(*verbose, *clients, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "cloudbench:", err)
		os.Exit(1)
	}
}

var ctx = context.Background()

// cloud is one instance on the engines: a database and a bucket.
type cloud struct {
	pg   *engines.Postgres
	s3   *engines.S3
	name string
}

func newCloud(pg *engines.Postgres, s3 *engines.S3, name string) (*cloud, error) {
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, err
	}
	mc, err := s3.Client()
	if err != nil {
		return nil, err
	}
	if err := mc.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		return nil, err
	}
	// SeaweedFS allocates a bucket's volumes on its first write (seconds): write one object
	// first, as the disk server is measured with a warm page cache.
	warm := bytes.Repeat([]byte("warm"), 1<<18)
	if _, err := mc.PutObject(ctx, name, "warm", bytes.NewReader(warm), int64(len(warm)), minio.PutObjectOptions{}); err != nil {
		return nil, err
	}
	if err := mc.RemoveObject(ctx, name, "warm", minio.RemoveObjectOptions{}); err != nil {
		return nil, err
	}
	return &cloud{pg: pg, s3: s3, name: name}, nil
}

// env is what a server process of the instance needs.
func (c *cloud) env() []string {
	return append(c.s3.Env(), "SWCLI_LEDGER="+c.pg.URL(c.name), "SWCLI_PACKS=s3://"+c.name+"/swcli")
}

// packBytes is what the packs in the bucket hold.
func (c *cloud) packBytes() int64 {
	conn, err := pgx.Connect(ctx, c.pg.URL(c.name))
	if err != nil {
		return 0
	}
	defer conn.Close(ctx)
	var n int64
	conn.QueryRow(ctx, "SELECT coalesce(sum(bytes), 0) FROM cas_packs").Scan(&n)
	return n
}

// admin runs a `swcli server …` admin command on root with env and returns its output.
func admin(swcli, root string, env []string, args ...string) (string, error) {
	cmd := exec.Command(swcli, append([]string{"--root", root, "server"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		return "", fmt.Errorf("swcli server %s: %v: %s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}

// setUp adds the user bench and the project p, and returns bench's token.
func setUp(swcli, root string, env []string) (string, error) {
	tok, err := admin(swcli, root, env, "user", "add", "bench")
	if err != nil {
		return "", err
	}
	_, err = admin(swcli, root, env, "project", "create", "p", "--member", "bench")
	return tok, err
}

func run(verbose bool, clients int, dur time.Duration) error {
	log := bench.Log(verbose)
	ses, err := bench.Start("cloudbench", "", os.Getenv("KEEP") != "")
	if err != nil {
		return err
	}
	defer ses.Close()
	v1, v2, small := ses.Path("ml-v1"), ses.Path("ml-v2"), ses.Path("small")
	work, swcli := ses.Work, ses.Swcli
	if _, err := exec.LookPath("restic"); err != nil {
		return fmt.Errorf("restic is not installed (apt-get install restic)")
	}
	pg, err := engines.StartPostgres(ctx)
	if err != nil {
		return err
	}
	defer pg.Stop()
	weed, err := engines.WeedBin(".")
	if err != nil {
		return err
	}
	s3, err := engines.StartS3(ctx, weed)
	if err != nil {
		return err
	}
	defer s3.Stop()

	// The client's root: ml-v1 and ml-v2 built as the copy benchmark builds them.
	cenv := []string{"SWCLI_ROOT=" + filepath.Join(work, "client"), "SWCLI_CONFIG=" + filepath.Join(work, "config.yaml")}
	for _, d := range []string{v1, v2} {
		if _, err := bench.Run(log, cenv, swcli, "runtime", "build", "--gen-all-bundles", d); err != nil {
			return err
		}
	}

	// The same three copies to a server on local disk and to one on PostgreSQL + S3, each
	// on fresh servers bench.Reps times; the table shows the median run of each.
	rows := [][]string{{"server", "step", "wall", "wire bytes", "round trips", "destination grew"}}
	var disks, clouds []*bench.CopySteps
	for rep := range bench.Reps {
		diskRoot := filepath.Join(work, fmt.Sprintf("srv-disk%d", rep))
		tok, err := setUp(swcli, diskRoot, nil)
		if err != nil {
			return err
		}
		srv, err := bench.StartServer(swcli, diskRoot, nil)
		if err != nil {
			return err
		}
		disk, err := bench.RunCopySteps(log, swcli, cenv, srv, fmt.Sprint("disk", rep), tok, func() int64 { return bench.DirBytes(filepath.Join(diskRoot, "store")) })
		srv.Stop()
		if err != nil {
			return err
		}
		cc, err := newCloud(pg, s3, fmt.Sprint("copybench", rep))
		if err != nil {
			return err
		}
		s3Root := filepath.Join(work, fmt.Sprintf("srv-s3-%d", rep))
		if tok, err = setUp(swcli, s3Root, cc.env()); err != nil {
			return err
		}
		if srv, err = bench.StartServer(swcli, s3Root, cc.env()); err != nil {
			return err
		}
		onS3, err := bench.RunCopySteps(log, swcli, cenv, srv, fmt.Sprint("s3-", rep), tok, cc.packBytes)
		srv.Stop()
		if err != nil {
			return err
		}
		disks, clouds = append(disks, disk), append(clouds, onS3)
	}
	disk, onS3 := medianSteps(disks), medianSteps(clouds)
	rows = append(rows, disk.Rows("local disk")...)
	rows = append(rows, onS3.Rows("PostgreSQL + S3")...)
	renv, err := bench.ResticRepo(log, filepath.Join(work, "restic"), filepath.Join(work, "restic-cache"), v1, v2)
	if err != nil {
		return err
	}
	rwall, rgrow, err := bench.ResticCopy(log, renv, filepath.Join(work, "restic-copy"), filepath.Join(work, "restic-cache"), v1, v2)
	if err != nil {
		return err
	}
	for i, d := range []string{v1, v2} {
		rows = append(rows, []string{"restic copy", filepath.Base(d), bench.Secs(rwall[i]), "(local)", "", "+" + bench.MB(rgrow[i])})
	}
	fmt.Printf("copy on loopback (wire bytes counted at the socket by a proxy; round trips from the server's log;\n")
	fmt.Printf("each server's run with the median first copy of %d, on fresh servers):\n\n", bench.Reps)
	bench.Table(os.Stdout, rows)
	fmt.Println()
	check := func(name string, ok bool, detail string) { bench.Check(os.Stdout, 58, name, ok, detail) }
	fmt.Println("targets, copy to PostgreSQL + S3:")
	check("ml-v2 wire bytes <= 1.1 x restic copy growth", float64(onS3.Wire[1]) <= 1.1*float64(rgrow[1]),
		fmt.Sprintf("%s vs %s", bench.MB(onS3.Wire[1]), bench.MB(rgrow[1])))
	check("ml-v1 to an empty server <= 2 x the same to local disk", onS3.Wall[0] <= 2*disk.Wall[0],
		fmt.Sprintf("%.2f x (%s vs %s)", onS3.Wall[0].Seconds()/disk.Wall[0].Seconds(), bench.Secs(onS3.Wall[0]), bench.Secs(disk.Wall[0])))
	check("nothing missing = 1 round trip", onS3.Trips[2] == 1, fmt.Sprintf("%d", onS3.Trips[2]))
	fmt.Println()

	// Load: clients for dur, split across one and then two replicas.
	sroot := filepath.Join(work, "small-client")
	if _, err := bench.Run(log, []string{"SWCLI_ROOT=" + sroot}, swcli, "runtime", "build", small); err != nil {
		return err
	}
	fmt.Printf("load: %d clients for %s, each a loop of 'runtime copy small/version/latest' to a new runtime name\n", clients, dur)
	fmt.Printf("then 'runtime info' of it, clients split across the replicas:\n\n")
	lrows := [][]string{{"replicas", "copies", "infos", "errors", "operations/s", "versions seen through each replica", "fsck", "ledger verify"}}
	var rates []float64
	for _, n := range []int{1, 2} {
		r, err := load(log, swcli, work, pg, s3, sroot, n, clients, dur)
		if err != nil {
			return err
		}
		rates = append(rates, r.rate)
		lrows = append(lrows, []string{fmt.Sprint(n), fmt.Sprint(r.copies), fmt.Sprint(r.infos), fmt.Sprint(r.errors),
			fmt.Sprintf("%.1f", r.rate), strings.Join(r.seen, ", "), r.fsck, r.verify})
		if r.firstErr != "" {
			fmt.Fprintf(os.Stderr, "first error with %d replicas: %s\n", n, r.firstErr)
		}
	}
	bench.Table(os.Stdout, lrows)
	fmt.Println()
	fmt.Println("targets, replicas:")
	check("2 replicas do not collapse (>= 0.8 x one replica's rate)", rates[1] >= 0.8*rates[0], fmt.Sprintf("%.2f x", rates[1]/rates[0]))
	return nil
}

// medianSteps is the run whose first copy took the median time.
func medianSteps(runs []*bench.CopySteps) *bench.CopySteps {
	sorted := append([]*bench.CopySteps(nil), runs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Wall[0] < sorted[j].Wall[0] })
	return sorted[len(sorted)/2]
}

type loadResult struct {
	copies, infos, errors int64
	rate                  float64
	seen                  []string
	fsck, verify          string
	firstErr              string
}

// load runs clients against n replicas of a fresh instance for dur.
func load(log io.Writer, swcli, work string, pg *engines.Postgres, s3 *engines.S3, sroot string, n, clients int, dur time.Duration) (*loadResult, error) {
	c, err := newCloud(pg, s3, fmt.Sprintf("load%d", n))
	if err != nil {
		return nil, err
	}
	var srvs []*bench.Server
	defer func() {
		for _, s := range srvs {
			s.Stop()
		}
	}()
	root0 := filepath.Join(work, fmt.Sprintf("load%d-replica0", n))
	tok, err := setUp(swcli, root0, c.env())
	if err != nil {
		return nil, err
	}
	for i := range n {
		s, err := bench.StartServer(swcli, filepath.Join(work, fmt.Sprintf("load%d-replica%d", n, i)), c.env())
		if err != nil {
			return nil, err
		}
		srvs = append(srvs, s)
	}
	envs := make([][]string, clients)
	for i := range clients {
		root := filepath.Join(work, fmt.Sprintf("load%d-client%d", n, i))
		if out, err := exec.Command("cp", "-a", sroot, root).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("cp: %v %s", err, out)
		}
		envs[i] = []string{"SWCLI_ROOT=" + root, "SWCLI_CONFIG=" + root + ".yaml"}
		url := "http://" + srvs[i%n].Addr
		if _, err := bench.Run(log, envs[i], swcli, "instance", "login", url, "--alias", "r", "--token", tok); err != nil {
			return nil, err
		}
	}
	res := &loadResult{}
	var firstErr atomic.Value
	fail := func(err error) {
		atomic.AddInt64(&res.errors, 1)
		firstErr.CompareAndSwap(nil, err.Error())
	}
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline); k++ {
				name := fmt.Sprintf("c%d-%d", i, k)
				if _, err := bench.Run(log, envs[i], swcli, "runtime", "copy", "small/version/latest", "cloud://r/project/p/runtime/"+name); err != nil {
					fail(err)
					continue
				}
				atomic.AddInt64(&res.copies, 1)
				if _, err := bench.Run(log, envs[i], swcli, "runtime", "info", "cloud://r/project/p/runtime/"+name+"/version/latest"); err != nil {
					fail(err)
					continue
				}
				atomic.AddInt64(&res.infos, 1)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	res.rate = float64(res.copies+res.infos) / took.Seconds()
	if v, ok := firstErr.Load().(string); ok {
		res.firstErr = v
	}
	for _, s := range srvs {
		_, total, err := client.NewRemote("r", "http://"+s.Addr, tok).Versions(ctx, "p", "", ledger.ListOptions{Size: 1, Page: 1})
		if err != nil {
			return nil, err
		}
		res.seen = append(res.seen, fmt.Sprint(total))
	}
	res.fsck, res.verify = "clean", "clean"
	if _, err := admin(swcli, root0, c.env(), "fsck"); err != nil {
		res.fsck = "FAILED: " + err.Error()
	}
	vcmd := exec.Command(swcli, "--root", root0, "ledger", "verify")
	vcmd.Env = append(os.Environ(), c.env()...)
	if out, err := vcmd.CombinedOutput(); err != nil {
		res.verify = fmt.Sprintf("FAILED: %v %s", err, out)
	}
	return res, nil
}
