package ops_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/client"
	"github.com/swcli/swcli/ops/server"
)

// TestLoad16Clients: 16 clients for 60 s (SWCLI_LOAD_SECONDS) against a server process on
// loopback, each copying new versions up, listing, resolving and copying down; no request
// may fail and the server's memory stays bounded. It prints throughput and latencies.
func TestLoad16Clients(t *testing.T) {
	if testing.Short() {
		t.Skip("a minute of load; CI runs it")
	}
	secs := 60
	if s, err := strconv.Atoi(os.Getenv("SWCLI_LOAD_SECONDS")); err == nil && s > 0 {
		secs = s
	}
	c := newCloud(t)
	cmd, url := startChild(t, c.root)
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	c.url = url

	type sample struct {
		op   string
		took time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	var failures []string
	var bytesUp int64
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	var wg sync.WaitGroup
	for n := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := openInstance(t, t.TempDir())
			remote := client.NewRemote("team", url, c.tokens["alice"])
			defer remote.Close()
			name := fmt.Sprintf("rt%d", n)
			record := func(op string, start time.Time, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, fmt.Sprintf("client %d %s: %v", n, op, err))
					return
				}
				samples = append(samples, sample{op, time.Since(start)})
			}
			for i := 0; time.Now().Before(deadline); i++ {
				files := map[string]string{"runtime.yaml": "name: " + name + "\n", "big.bin": fmt.Sprintf("%d-%d ", n, i) + string(noiseBytes(256<<10))}
				for j := range 20 {
					files[fmt.Sprintf("pkg/m%d.py", j)] = fmt.Sprintf("# client %d round %d file %d\n", n, i, j)
				}
				bundle(t, local, name, files, nil, nil)
				start := time.Now()
				res, err := ops.Copy(ctx, copyReq(ops.LocalEndpoint{In: local}, "self", ops.RuntimeURI{Name: name, Version: "latest"}, remote, "mnist"))
				record("copy up", start, err)
				if err == nil {
					mu.Lock()
					bytesUp += res.SentBytes
					mu.Unlock()
				}
				start = time.Now()
				_, _, err = remote.Versions(ctx, "mnist", name, ledger.ListOptions{Size: 20})
				record("list", start, err)
				start = time.Now()
				_, err = remote.Resolve(ctx, "mnist", name, "latest")
				record("resolve", start, err)
				if i%4 == 3 {
					fresh := openInstance(t, t.TempDir())
					start = time.Now()
					_, err = ops.Copy(ctx, copyReq(remote, "mnist", ops.RuntimeURI{Name: name, Version: "latest"}, ops.LocalEndpoint{In: fresh}, "self"))
					record("copy down", start, err)
					fresh.Close()
				}
			}
		}()
	}
	wg.Wait()
	rss := peakRSS(cmd.Process.Pid)
	if len(failures) > 0 {
		t.Fatalf("%d requests failed; first: %s", len(failures), failures[0])
	}
	byOp := map[string][]time.Duration{}
	for _, s := range samples {
		byOp[s.op] = append(byOp[s.op], s.took)
	}
	t.Logf("16 clients, %d s: %d operations, 0 failures, %.1f MB sent up; server peak RSS %d MiB",
		secs, len(samples), float64(bytesUp)/1e6, rss>>20)
	for _, op := range []string{"copy up", "list", "resolve", "copy down"} {
		d := byOp[op]
		slices.Sort(d)
		if len(d) == 0 {
			continue
		}
		t.Logf("  %-9s %5d ops, %6.1f/s, p50 %7.1f ms, p99 %7.1f ms", op, len(d), float64(len(d))/float64(secs),
			float64(d[len(d)/2].Microseconds())/1000, float64(d[len(d)*99/100].Microseconds())/1000)
	}
	if bound := int64(server.MaxUploads*(server.MaxBatchBody+api.MaxBatchDecoded) + 256<<20); rss > bound && !raceEnabled {
		t.Fatalf("server peak RSS %d MiB over its bound %d MiB", rss>>20, bound>>20)
	}
	packs, _ := filepath.Glob(filepath.Join(c.root, "store", "packs", "*.pack"))
	t.Logf("  the server holds %d packs", len(packs))
}
