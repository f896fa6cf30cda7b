package ops

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Private places. A server's root holds every tenant's runtimes, its users' token hashes
// (auth.json) and its admin socket: another local user who can write there could plant a
// socket link, an auth.json that makes them admin, or read what is not theirs. So a server
// creates its root 0700 (and everything in it with umask 077), tightens a root it finds
// readable by others, and refuses one that others may write or that it does not own.

// privateFile refuses a file (of path, described by fi) that another user owns or may write.
func privateFile(path string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return Errorf(KindForbidden, fmt.Sprintf("only the server's own user may write it: chown it or remove it (%s)", path),
			"%s belongs to uid %d, not to this user (uid %d): refused", path, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return Errorf(KindForbidden, "chmod go-w "+path,
			"%s is writable by other users (mode %04o): refused", path, fi.Mode().Perm())
	}
	return nil
}

// PrepareServerRoot makes root a private directory for a server: created 0700 when
// missing; refused when it is a link, another user's, or writable by other users; made
// 0700 when others may read it (it says so through warn).
func PrepareServerRoot(root string, warn func(string)) error {
	fi, err := os.Lstat(root)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(root, 0o700); err != nil {
			return fmt.Errorf("create server root %s: %w", root, err)
		}
		fi, err = os.Lstat(root)
	}
	if err != nil {
		return fmt.Errorf("server root %s: %w", root, err)
	}
	if !fi.IsDir() {
		return Errorf(KindUsage, "give --root a directory of your own", "server root %s is not a directory (%s)", root, fi.Mode().Type())
	}
	if err := privateFile(root, fi); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return &Error{Kind: KindUsage, Err: e.Err, Hint: e.Hint} // a bad --root
		}
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(root, 0o700); err != nil {
			return fmt.Errorf("make server root %s private: %w", root, err)
		}
		if warn != nil {
			warn(fmt.Sprintf("server root %s was readable by other users (mode %04o): made 0700", root, fi.Mode().Perm()))
		}
	}
	return nil
}
