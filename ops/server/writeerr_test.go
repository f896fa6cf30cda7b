package server

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/swcli/swcli/ops/api"
)

// An engine that stopped answered 500 with the database's host, port and user in the
// message. The answer now keeps the text back (503 when an engine is unreachable, 500
// otherwise) with a reference, and the server's log has the whole error.
func TestErrorsKeepInternalsBack(t *testing.T) {
	down := fmt.Errorf("ledger append: failed to connect to `user=swcli_admin database=swcli`: %w",
		&net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5432}, Err: syscall.ECONNREFUSED})
	disk := fmt.Errorf("write /srv/swcli/store/packs/00ab.pack: %w", syscall.EIO)
	for _, c := range []struct {
		err    error
		status int
	}{{down, http.StatusServiceUnavailable}, {disk, http.StatusInternalServerError}} {
		var logged string
		rec := httptest.NewRecorder()
		writeErr(&countingWriter{ResponseWriter: rec, internal: func(s string) { logged = s }}, c.err)
		var body api.ErrorBody
		json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != c.status {
			t.Errorf("%v: status %d, want %d", c.err, rec.Code, c.status)
		}
		for _, secret := range []string{"10.1.2.3", "5432", "swcli_admin", "/srv/swcli"} {
			if strings.Contains(rec.Body.String(), secret) {
				t.Errorf("the answer tells %q: %s", secret, rec.Body.String())
			}
		}
		ref := strings.TrimSuffix(body.Error[strings.Index(body.Error, "ref ")+4:], ")")
		if !strings.Contains(logged, ref) || !strings.Contains(logged, c.err.Error()) {
			t.Errorf("the log has %q, want the reference %s and the whole error", logged, ref)
		}
	}
}
