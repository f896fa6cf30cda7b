package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ResticRepo makes a restic repository at repo holding a snapshot of each of dirs, and
// returns its environment.
func ResticRepo(log io.Writer, repo, cache string, dirs ...string) ([]string, error) {
	renv := []string{"RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY=" + repo, "RESTIC_CACHE_DIR=" + cache}
	if _, err := Run(log, renv, "restic", "init", "-q"); err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if _, err := Run(log, renv, "restic", "backup", "-q", d); err != nil {
			return nil, err
		}
	}
	return renv, nil
}

// ResticCopy runs `restic copy` of the newest snapshot of each of dirs, in order, from the
// repository of renv into a new one at dst (same chunker parameters), and returns each
// copy's wall time and how much dst grew.
func ResticCopy(log io.Writer, renv []string, dst, cache string, dirs ...string) ([]time.Duration, []int64, error) {
	src := ""
	for _, e := range renv {
		if v, ok := strings.CutPrefix(e, "RESTIC_REPOSITORY="); ok {
			src = v
		}
	}
	cenv := []string{"RESTIC_PASSWORD=bench", "RESTIC_REPOSITORY=" + dst, "RESTIC_FROM_REPOSITORY=" + src,
		"RESTIC_FROM_PASSWORD=bench", "RESTIC_CACHE_DIR=" + cache}
	if _, err := Run(log, cenv, "restic", "init", "-q", "--copy-chunker-params", "--from-repo", src); err != nil {
		return nil, nil, err
	}
	var walls []time.Duration
	var grew []int64
	for _, dir := range dirs {
		id, err := snapshotOf(renv, dir)
		if err != nil {
			return nil, nil, err
		}
		before := DirBytes(dst)
		r, err := Run(log, cenv, "restic", "copy", "-q", id)
		if err != nil {
			return nil, nil, err
		}
		walls, grew = append(walls, r.Wall), append(grew, DirBytes(dst)-before)
	}
	return walls, grew, nil
}

// snapshotOf returns the id of the newest restic snapshot of dir.
func snapshotOf(renv []string, dir string) (string, error) {
	cmd := exec.Command("restic", "snapshots", "--json", "--path", dir)
	cmd.Env = append(os.Environ(), renv...)
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("restic snapshots: %w", err)
	}
	var snaps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(out, &snaps); err != nil || len(snaps) == 0 {
		return "", fmt.Errorf("no restic snapshot of %s", dir)
	}
	return snaps[len(snaps)-1].ID, nil
}
