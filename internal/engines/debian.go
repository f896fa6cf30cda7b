package engines

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// debianEngines are the Debian packages of the engines the tests start, each with how it
// is found.
var debianEngines = []struct {
	pkg  string
	find func() (string, error)
}{{"postgresql", PostgresBin}, {"nginx", NginxBin}}

// InstallDebian installs the packages of debianEngines missing here, as the corpus script
// installs Python's: only as root, with apt-get. It says what it did or, without the right
// to install, what is missing (the tests that need it then fail, naming it).
func InstallDebian(ctx context.Context) (string, error) {
	var missing []string
	for _, e := range debianEngines {
		if _, err := e.find(); err != nil {
			missing = append(missing, e.pkg)
		}
	}
	if len(missing) == 0 {
		return "installed already", nil
	}
	names := strings.Join(missing, " ")
	apt, err := exec.LookPath("apt-get")
	if err != nil || os.Geteuid() != 0 {
		return fmt.Sprintf("missing: %s (as root: apt-get install %s; until then the tests that start them fail, naming what is missing)", names, names), nil
	}
	for _, args := range [][]string{{"update", "-qq"}, append([]string{"install", "-y", "-qq", "--no-install-recommends"}, missing...)} {
		cmd := exec.CommandContext(ctx, apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get %s: %v\n%s", args[0], err, lastLines(out, 10))
		}
	}
	for _, e := range debianEngines {
		if _, err := e.find(); err != nil {
			return "", fmt.Errorf("after apt-get install %s: %w", names, err)
		}
	}
	return "installed " + names, nil
}
