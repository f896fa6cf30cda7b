package formats

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/swcli/swcli/cas"
)

// The lock cache saves a rebuild of an unchanged environment from running python and
// pip freeze (half a second): the lock is reused while pyvenv.cfg and every package's
// metadata directory in site-packages are as they were. Installing, upgrading or removing
// a package adds or removes such a directory, so the key changes. A venv changed as the
// key is made has no key: a change in the same tick of its filesystem's clock would leave
// every time and size as they were (cas.Racy).

type LockEntry struct {
	Python string `json:"python"`
	Lock   []byte `json:"lock"`
}

// LockKey names the state of a venv's package metadata, or "" if it cannot be read or
// changed too recently to be named.
func LockKey(envDir string, includeEditable bool) string {
	var parts []string
	now := cas.FSClock()
	racy := false
	add := func(p string) bool {
		fi, err := os.Stat(p)
		if err != nil {
			return false
		}
		mtime := fi.ModTime().UnixNano()
		racy = racy || cas.Racy(mtime, now)
		parts = append(parts, fmt.Sprintf("%s %d %d", p, mtime, fi.Size()))
		return true
	}
	if !add(filepath.Join(envDir, "pyvenv.cfg")) {
		return ""
	}
	sites, _ := filepath.Glob(filepath.Join(envDir, "lib", "python*", "site-packages"))
	if len(sites) == 0 {
		return ""
	}
	for _, site := range sites {
		add(site)
		ents, err := os.ReadDir(site)
		if err != nil {
			return ""
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasSuffix(n, ".dist-info") || strings.HasSuffix(n, ".egg-info") || strings.HasSuffix(n, ".pth") || strings.HasSuffix(n, ".egg-link") {
				add(filepath.Join(site, n))
				if e.IsDir() {
					add(filepath.Join(site, n, "METADATA"))
				}
			}
		}
	}
	if racy {
		return ""
	}
	sort.Strings(parts)
	parts = append(parts, fmt.Sprint("editable ", includeEditable))
	return cas.Sum([]byte(strings.Join(parts, "\n"))).Short(32)
}

func lockCachePath(root, key string) string {
	return filepath.Join(root, "cache", "lock", key+".json")
}

func ReadLockCache(root, key string) (*LockEntry, bool) {
	if key == "" {
		return nil, false
	}
	b, err := os.ReadFile(lockCachePath(root, key))
	if err != nil {
		return nil, false
	}
	var e LockEntry
	if json.Unmarshal(b, &e) != nil || e.Python == "" {
		return nil, false
	}
	return &e, true
}

func WriteLockCache(root, key string, e LockEntry) {
	if key == "" {
		return
	}
	p := lockCachePath(root, key)
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	b, _ := json.Marshal(e)
	tmp := p + ".tmp"
	if os.WriteFile(tmp, b, 0o644) == nil {
		os.Rename(tmp, p)
	}
}
