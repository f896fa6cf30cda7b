package corpus

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var swOnce struct {
	sync.Once
	path string
	err  error
}

// StarwhaleClient finds Starwhale's own client (its `swcli`, run from source): the
// program $SWCLI_STARWHALE_CLIENT names, or shared/starwhale-client/bin/starwhale beside
// the repository; and checks once that it runs (its Debian packages installed: its
// setup.sh). The error says what is missing.
func StarwhaleClient() (string, error) {
	swOnce.Do(func() {
		p := os.Getenv("SWCLI_STARWHALE_CLIENT")
		if p == "" {
			wd, _ := os.Getwd()
			for d := wd; ; d = filepath.Dir(d) {
				c := filepath.Join(d, "..", "shared", "starwhale-client", "bin", "starwhale")
				if _, err := os.Stat(c); err == nil {
					p = filepath.Clean(c)
					break
				}
				if filepath.Dir(d) == d {
					swOnce.err = errors.New("the Starwhale client was not found: set SWCLI_STARWHALE_CLIENT")
					return
				}
			}
		}
		tmp, err := os.MkdirTemp("", "swcli-sw-check-")
		if err != nil {
			swOnce.err = err
			return
		}
		defer os.RemoveAll(tmp)
		cmd := exec.Command(p, "--version")
		cmd.Env = append(os.Environ(), "SW_CLI_CONFIG="+filepath.Join(tmp, "config.yaml"), "SW_LOCAL_STORAGE="+filepath.Join(tmp, "store"))
		if out, err := cmd.CombinedOutput(); err != nil {
			swOnce.err = errors.New("the Starwhale client does not run (its setup.sh installs what it needs): " + lastLine(out))
			return
		}
		swOnce.path = p
	})
	return swOnce.path, swOnce.err
}

func lastLine(b []byte) string {
	s := strings.TrimRight(string(b), "\r\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}
