package cli

import (
	"bytes"
	"strings"
	"testing"
)

// A stored field with control characters (python "3.11\x1b[31m\nforged line") drove the
// terminal and forged lines of `info` (issue 25): table cells print them escaped.
func TestTablesEscapeControlCharacters(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out}
	e.table([][]string{{"mode:", "venv, python 3.11\x1b[31m\nversion: forged"}, {"name:", "plain"}})
	got := out.String()
	if strings.Contains(got, "\x1b") || strings.Count(got, "\n") != 2 {
		t.Fatalf("table printed %q", got)
	}
	if !strings.Contains(got, `\x1b[31m\nversion: forged`) || !strings.Contains(got, "plain") {
		t.Fatalf("table printed %q, want the field escaped and the rest as it is", got)
	}
}
