package engines

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// S3 is a running SeaweedFS server with its S3 gateway on loopback.
type S3 struct {
	Dir               string
	Endpoint          string // http://127.0.0.1:PORT
	AccessKey, Secret string
	cmd               *exec.Cmd
	exited            chan struct{} // closed when weed has exited (and been waited for)
	log               *bytes.Buffer
	sockets           []string // weed's own, outside Dir (weedSockets)
}

// WeedBin finds or builds the weed binary (scripts/engine-weed.sh, cached per version).
func WeedBin(repo string) (string, error) {
	if b := os.Getenv("SWCLI_WEED"); b != "" {
		return b, nil
	}
	out, err := exec.Command("bash", filepath.Join(repo, "scripts", "engine-weed.sh")).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("build SeaweedFS: %v: %s", err, lastLines(ee.Stderr, 5))
		}
		return "", fmt.Errorf("build SeaweedFS: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StartS3 starts `weed server -s3` in a new temporary directory, with one identity
// (AccessKey, Secret) allowed everything, and waits until the gateway answers. A weed that
// exits while starting (one of its eight ports taken meanwhile by another process) is
// started once more on new ports.
func StartS3(ctx context.Context, weed string) (*S3, error) {
	s, err := startS3(ctx, weed)
	if errors.Is(err, errWeedExited) && ctx.Err() == nil {
		s, err = startS3(ctx, weed)
	}
	return s, err
}

var errWeedExited = errors.New("weed exited while starting")

func startS3(ctx context.Context, weed string) (*S3, error) {
	dir, err := os.MkdirTemp("", "swcli-s3-")
	if err != nil {
		return nil, err
	}
	s := &S3{Dir: dir, AccessKey: "swcli", Secret: "swcli-test-secret", log: &bytes.Buffer{}}
	cfg := fmt.Sprintf(`{"identities":[{"name":"swcli","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","Write","List","Tagging"]}]}`, s.AccessKey, s.Secret)
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	// -logdir: its glog files go into its directory (removed with it), not $TMPDIR.
	// -volume.max: a fixed number of volume slots. With 0 (auto) weed allows free disk /
	// volume size limit, and every bucket takes seven volumes at once: with 40 GB free a
	// package's twelfth bucket found none and every PUT to it failed with 500. Volumes
	// grow as they are written, so slots cost no disk.
	args := []string{"-logdir=" + dir, "server", "-dir=" + filepath.Join(dir, "data"), "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		fmt.Sprintf("-master.port=%d", ports[0]), fmt.Sprintf("-master.port.grpc=%d", ports[1]),
		fmt.Sprintf("-volume.port=%d", ports[2]), fmt.Sprintf("-volume.port.grpc=%d", ports[3]),
		"-filer", fmt.Sprintf("-filer.port=%d", ports[4]), fmt.Sprintf("-filer.port.grpc=%d", ports[5]),
		"-s3", fmt.Sprintf("-s3.port=%d", ports[6]), fmt.Sprintf("-s3.port.grpc=%d", ports[7]), "-s3.config=" + filepath.Join(dir, "s3.json"),
		"-volume.max=1000", "-master.volumeSizeLimitMB=512", "-filer.maxMB=16"}
	s.cmd = exec.Command(weed, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	s.cmd.SysProcAttr = Detach(nil)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	s.sockets = weedSockets(ports)
	if err := Reap(s.cmd.Process.Pid, dir, s.sockets...); err != nil {
		s.Stop()
		return nil, err
	}
	s.Endpoint = fmt.Sprintf("http://127.0.0.1:%d", ports[6])
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			s.Stop()
			return nil, fmt.Errorf("SeaweedFS S3 on %s: %w: %s", s.Endpoint, errWeedExited, weedFatal(s.log.Bytes()))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return nil, fmt.Errorf("SeaweedFS S3 did not answer on %s: %s", s.Endpoint, weedFatal(s.log.Bytes()))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop ends weed: SIGTERM, then SIGKILL after a short grace (it takes over 20 s to stop on
// SIGTERM alone), and removes its directory.
func (s *S3) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(2 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
	os.RemoveAll(s.Dir)
	for _, p := range s.sockets {
		os.Remove(p)
	}
}

// weedFatal is the line of weed's log that says why it stopped (glog's "F" lines come
// before a stack dump of every goroutine), else its last lines.
func weedFatal(log []byte) string {
	for _, l := range strings.Split(string(log), "\n") {
		if len(l) > 1 && l[0] == 'F' && l[1] >= '0' && l[1] <= '9' {
			return l
		}
	}
	return lastLines(log, 10)
}

// weedSockets are the unix sockets weed binds beside its ports, in /tmp whatever its
// directory (its own default: the filer's, the gateway's and one per gRPC port), named by
// the ports it was given: Stop and the reaper remove them.
func weedSockets(ports []int) []string {
	return []string{
		fmt.Sprintf("/tmp/seaweedfs-master-grpc-%d.sock", ports[1]),
		fmt.Sprintf("/tmp/seaweedfs-volume-grpc-%d.sock", ports[3]),
		fmt.Sprintf("/tmp/seaweedfs-filer-%d.sock", ports[4]),
		fmt.Sprintf("/tmp/seaweedfs-filer-grpc-%d.sock", ports[5]),
		fmt.Sprintf("/tmp/seaweedfs-s3-%d.sock", ports[6]),
		fmt.Sprintf("/tmp/seaweedfs-s3-grpc-%d.sock", ports[7]),
	}
}

// Sockets are the files weed makes outside its directory (weedSockets).
func (s *S3) Sockets() []string { return s.sockets }

// Pid is the engine's process id (the leader of its process group).
func (s *S3) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
