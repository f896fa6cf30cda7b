package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/swcli/swcli/ledger"
	"github.com/swcli/swcli/ops/api"
	"github.com/swcli/swcli/ops/server"
)

// jsonOut reports whether -o json was given.
func (e *env) jsonOut() bool { return e.g.Output == "json" }

// printJSON writes v as one indented JSON document.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; the first row is the header.
func (e *env) table(rows [][]string) {
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = printable(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// printable is s as a terminal shows it safely: quoted with escapes when it holds a
// control character (an escape sequence or a newline from a stored field must not drive
// the terminal or forge lines of output).
func printable(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// humanBytes formats n as every page and table of swcli does (ops.HumanBytes).
func humanBytes(n int64) string { return server.HumanBytes(n) }

// humanCount writes n with thousands separators: 14,046.
func humanCount(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// humanTime formats t for tables, in local time.
func humanTime(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") }

func sortStrings(s []string) { sort.Strings(s) }

// plural is "1 file", "2 files", "1,024 files".
func plural[N int | int64](n N, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return humanCount(int(n)) + " " + word + "s"
}

// localURI is a version's complete URI on the standalone instance.
func localURI(project, name, version string) string {
	return fmt.Sprintf("local/project/%s/runtime/%s/version/%s", project, name, version)
}

// uriOf is a runtime's (or version's) complete URI on an endpoint.
func (e *env) uriOf(ep api.Endpoint, project, name, version string) string {
	s := fmt.Sprintf("%s/project/%s/runtime/%s", ep.Name(), project, name)
	if version != "" {
		s += "/version/" + version
	}
	return s
}

// newLine says what a version added to this instance's store.
func newLine(v *ledger.Version) string {
	if v.Source != "" {
		return "copied in from " + v.Source + " (only the chunks this instance lacked travelled)"
	}
	return humanBytes(v.NewBytes) + " stored when built (the rest was there already)"
}

// errDeclined is a confirmation the user did not give: nothing done, exit 1.
var errDeclined = errors.New("not confirmed: nothing removed")
