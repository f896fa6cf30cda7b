package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Server is a `swcli server` process on a loopback port, logging its requests.
type Server struct {
	Addr    string // host:port
	cmd     *exec.Cmd
	logPath string
}

// StartServer runs `swcli --root ROOT -v server --listen 127.0.0.1:0` with env added and
// waits for the address it prints.
func StartServer(swcli, root string, env []string) (*Server, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	s := &Server{logPath: root + ".log"} // beside the root: the server owns what is inside
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(swcli, "--root", root, "-v", "server", "--listen", "127.0.0.1:0")
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stderr = logf
	out, _ := s.cmd.StdoutPipe()
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.Stop()
		b, _ := os.ReadFile(s.logPath)
		return nil, fmt.Errorf("server: %v: %s", err, b)
	}
	addr := regexp.MustCompile(`http://(\S+)`).FindStringSubmatch(line)
	if addr == nil {
		s.Stop()
		return nil, fmt.Errorf("server said %q", line)
	}
	s.Addr = addr[1]
	return s, nil
}

// Requests counts the requests the server has logged.
func (s *Server) Requests() int {
	b, _ := os.ReadFile(s.logPath)
	return strings.Count(string(b), "request")
}

// Stop interrupts the server and waits for it.
func (s *Server) Stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
}

// CopySteps are the three copies of the copy benchmark, each measured.
type CopySteps struct {
	Wall  [3]time.Duration
	Wire  [3]int64 // bytes both ways at the socket
	Trips [3]int   // requests the server logged
	Grew  [3]int64 // what the server's store grew by
}

// CopyStepNames name the steps of CopySteps.
var CopyStepNames = [3]string{"copy ml-v1 to an empty server", "copy ml-v2", "copy ml-v1 again (nothing missing)"}

// RunCopySteps logs in to srv through a byte-counting proxy as alias (env holds the
// client's root and config) and copies ml-v1, ml-v2, then ml-v1 again into project p.
func RunCopySteps(log io.Writer, swcli string, env []string, srv *Server, alias, token string, storeBytes func() int64) (*CopySteps, error) {
	proxy, err := NewProxy(srv.Addr)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()
	if out, err := exec.Command("env", append(env, swcli, "instance", "login", "http://"+proxy.Addr(), "--alias", alias, "--token", token)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("login: %v %s", err, out)
	}
	c := &CopySteps{}
	for i, step := range []string{"ml-v1/version/latest", "ml-v2/version/latest", "ml-v1/version/latest"} {
		u0, d0 := proxy.Bytes()
		q0, s0 := srv.Requests(), storeBytes()
		r, err := Run(log, env, swcli, "runtime", "copy", step, "cloud://"+alias+"/project/p")
		if err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond) // let the log and the proxy counters settle
		u1, d1 := proxy.Bytes()
		c.Wall[i], c.Wire[i], c.Trips[i], c.Grew[i] = r.Wall, (u1-u0)+(d1-d0), srv.Requests()-q0, storeBytes()-s0
	}
	return c, nil
}

// Rows are the table rows of the steps, for tool.
func (c *CopySteps) Rows(tool string) [][]string {
	var rows [][]string
	for i := range c.Wall {
		rows = append(rows, []string{tool, CopyStepNames[i], Secs(c.Wall[i]), MB(c.Wire[i]), strconv.Itoa(c.Trips[i]), "+" + MB(c.Grew[i])})
	}
	return rows
}
