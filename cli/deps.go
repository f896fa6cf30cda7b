package cli

import (
	"fmt"

	"github.com/swcli/swcli/ops"
)

// open opens the standalone instance named by the globals, telling the user on stderr when
// another process holds it.
func (e *env) open() (*ops.Instance, error) {
	return ops.Open(e.ctx, e.g.root(), ops.OpenOptions{OnWait: func(what string, pid int) {
		fmt.Fprintf(e.stderr, "swcli: %s in use by pid %d, waiting…\n", what, pid)
	}})
}

func (e *env) printf(format string, args ...any) { fmt.Fprintf(e.stdout, format, args...) }
