package engines

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Nginx is Debian's nginx in front of upstream servers: one URL for several replicas.
type Nginx struct {
	Dir string
	URL string
	cmd *exec.Cmd
}

// NginxBin finds nginx, or says how to get it.
func NginxBin() (string, error) {
	for _, p := range []string{os.Getenv("SWCLI_NGINX"), "nginx", "/usr/sbin/nginx"} {
		if p == "" {
			continue
		}
		if b, err := exec.LookPath(p); err == nil {
			return b, nil
		}
	}
	return "", fmt.Errorf("no nginx here: apt-get install nginx (or set SWCLI_NGINX)")
}

// StartNginx proxies a loopback port to the upstreams (host:port each), round robin;
// a request that cannot reach one (connection refused) goes to the next. Request and
// answer bodies stream through unbuffered.
func StartNginx(ctx context.Context, upstreams []string) (*Nginx, error) {
	bin, err := NginxBin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "swcli-nginx-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	var ups strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&ups, "    server %s max_fails=1 fail_timeout=60s;\n", u)
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root root;" // workers may use the temporary directory
	}
	conf := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  client_max_body_size 0;
  proxy_request_buffering off;
  proxy_buffering off;
  upstream swcli {
%[3]s  }
  server {
    listen 127.0.0.1:%[4]d;
    location / {
      proxy_pass http://swcli;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }
  }
}
`, user, dir, ups.String(), port)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	n := &Nginx{Dir: dir, URL: fmt.Sprintf("http://127.0.0.1:%d", port)}
	n.cmd = exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"))
	n.cmd.SysProcAttr = Detach(nil)
	if err := n.cmd.Start(); err != nil {
		return nil, err
	}
	if err := Reap(n.cmd.Process.Pid, dir); err != nil {
		n.Stop()
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return n, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			n.Stop()
			return nil, fmt.Errorf("nginx did not listen: %s", lastLines(log, 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops nginx (SIGQUIT, then SIGKILL) and removes its directory.
func (n *Nginx) Stop() {
	if n == nil || n.cmd == nil || n.cmd.Process == nil {
		return
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGQUIT)
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	os.RemoveAll(n.Dir)
}

// Pid is the engine's process id (the leader of its process group).
func (n *Nginx) Pid() int {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}
