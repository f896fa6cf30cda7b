package formats

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/swcli/swcli/ops/errs"
)

// RestoredName marks an extraction whose restore finished; it holds the environment's
// path. A restore that failed or was interrupted leaves no marker, and the next activate or
// run restores again (Starwhale's .runtime_restore_status).
const RestoredName = ".swcli-restored"

// ActivateCommand is the shell command that activates the environment env of mode, its
// path quoted for sh: a space, a quote or a $ in a path is a character of the path, never
// shell syntax.
func ActivateCommand(mode, env string) string {
	if mode == "conda" {
		return "conda activate " + ShellQuote(env)
	}
	return ". " + ShellQuote(filepath.Join(env, "bin", "activate"))
}

// ShellQuote quotes s for a POSIX shell: one word, taken literally.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%=,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ReadLimited reads f whole, refusing one over limit bytes without reading it all.
func ReadLimited(f *os.File, name string, limit int64) ([]byte, error) {
	if fi, err := f.Stat(); err != nil {
		return nil, err
	} else if !fi.Mode().IsRegular() {
		return nil, errs.Errorf(errs.KindInvalid, "", "%s is not a regular file", name)
	} else if fi.Size() > limit {
		return nil, errs.Errorf(errs.KindInvalid, "", "%s is %d bytes, over the limit of %d", name, fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err == nil && int64(len(b)) > limit {
		return nil, errs.Errorf(errs.KindInvalid, "", "%s is over the limit of %d bytes", name, limit)
	}
	return b, err
}

// UnwrapPathErr is the cause under an *os.PathError, for messages that name the path
// themselves.
func UnwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
