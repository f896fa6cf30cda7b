package cli_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestReadmeTeamDay runs every command of README's "Cloud instances: a team's day" as
// printed: the admin's, Alice's and Bob's, each with a config and a local root of their
// own, against a real server process. Only what stands for a real host is replaced: the
// server's root (/srv/swcli), its address (http://host:8080, 0.0.0.0:8080, no TLS), the
// tokens (captured when the admin prints them) and Alice's ./mnist (a workdir with a venv).
func TestReadmeTeamDay(t *testing.T) {
	if testing.Short() {
		t.Skip("builds, copies and restores a runtime on a real server")
	}
	if ok, why := hostVenv(); !ok {
		t.Skip(why)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := teamDayBlocks(t, string(readme))
	if len(blocks) != 3 {
		t.Fatalf("README's team day has %d shell blocks; this test knows three (the admin, Alice, Bob)", len(blocks))
	}
	var s strings.Builder
	tokens := map[string]string{"root": "ADMIN_TOKEN", "alice": "ALICE_TOKEN", "bob": "BOB_TOKEN"}
	person := func(name string) {
		fmt.Fprintf(&s, "\n# %s\ncd $WORK/%s\nenv SWCLI_CONFIG=$WORK/%s/config.yaml\nenv SWCLI_ROOT=$WORK/%s/root\nenv HOME=$WORK/%s\n", name, name, name, name, name)
	}
	person("admin")
	run := func(line string) {
		if strings.Contains(line, "'") {
			t.Fatalf("README line with a single quote: %s", line)
		}
		if cmd, ok := strings.CutSuffix(line, " &"); ok {
			fmt.Fprintf(&s, "exec %s &server&\nwaitfor $WORK/srv/server.url\ncapture URL '(http://[0-9.:]+)' $WORK/srv/server.url\n", cmd)
			return
		}
		fmt.Fprintf(&s, "exec sh -c '%s'\n", line)
		if m := regexp.MustCompile(`server user add (\w+)`).FindStringSubmatch(line); m != nil {
			fmt.Fprintf(&s, "capture %s '(swt_[0-9a-z]+)'\n", tokens[m[1]])
		}
	}
	for _, line := range blocks[0] {
		run(line)
	}
	person("alice")
	s.WriteString("env TOKEN=$ALICE_TOKEN\nworkdir mnist $WORK/alice/mnist\n")
	for _, line := range blocks[1] {
		run(line)
	}
	s.WriteString("exec swcli runtime ls -o json\nstdout '\"user_tags\": \\[\\s*\"prod\"'\n")
	person("bob")
	s.WriteString("env TOKEN=$BOB_TOKEN\n")
	for _, line := range blocks[2] {
		run(line)
	}
	s.WriteString("stdout 'trained on mnist'\nkill -INT server\n")
	s.WriteString("-- admin/.keep --\n-- alice/.keep --\n-- bob/train.py --\nprint('trained on mnist')\n")

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "team_day.txtar"), []byte(s.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("the script made of README:\n%s", s.String())
	t.Setenv("GOTMPDIR", t.TempDir()) // see TestScripts
	testscript.Run(t, scriptParams(dir))
}

// teamDayBlocks returns the commands of each shell block of README's team day, with the
// stand-ins for a real host put in, comments and blank lines left out.
func teamDayBlocks(t *testing.T, readme string) [][]string {
	_, sec, ok := strings.Cut(readme, "\n## Cloud instances: a team's day\n")
	if !ok {
		t.Fatal("README has no section \"Cloud instances: a team's day\"")
	}
	sec, _, _ = strings.Cut(sec, "\n### ")
	sec, _, _ = strings.Cut(sec, "\n## ")
	repl := strings.NewReplacer("/srv/swcli", "$WORK/srv", "http://host:8080", "$URL", "0.0.0.0:8080", "127.0.0.1:0",
		" [--tls-cert F --tls-key F]", "")
	var blocks [][]string
	parts := strings.Split(sec, "```")
	for i := 1; i < len(parts); i += 2 {
		body, ok := strings.CutPrefix(parts[i], "sh\n")
		if !ok {
			continue
		}
		var cmds []string
		for _, line := range strings.Split(body, "\n") {
			line = strings.TrimSpace(line)
			if c, _, ok := strings.Cut(line, "  #"); ok {
				line = strings.TrimSpace(c)
			}
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			cmds = append(cmds, repl.Replace(line))
		}
		blocks = append(blocks, cmds)
	}
	return blocks
}
