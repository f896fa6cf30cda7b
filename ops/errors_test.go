package ops

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops/client"
)

// Every kind travels as its own status and name and comes back as itself; statuses come
// from kinds and sentinels, never from the text of a message.
func TestErrorKindsTravel(t *testing.T) {
	cases := []struct {
		err    error
		status int
		kind   Kind
	}{
		{Errorf(KindUsage, "", "bad name"), http.StatusBadRequest, KindUsage},
		{Errorf(KindInvalid, "", "runtime.yaml:3: bad key"), http.StatusBadRequest, KindInvalid},
		{Errorf(KindNotFound, "", "no access to nothing"), http.StatusNotFound, KindNotFound},
		{Errorf(KindExists, "", "x"), http.StatusConflict, KindExists},
		{Errorf(KindCorrupt, "", "x"), http.StatusUnprocessableEntity, KindCorrupt},
		{Errorf(KindTooLarge, "", "x"), http.StatusRequestEntityTooLarge, KindTooLarge},
		{Errorf(KindAuth, "", "no access to project p"), http.StatusUnauthorized, KindAuth},
		{Errorf(KindForbidden, "", "the server refused the token"), http.StatusForbidden, KindForbidden},
		{Errorf(KindBusy, "", "x"), http.StatusServiceUnavailable, KindBusy},
		{fmt.Errorf("read: %w", &cas.CorruptError{Reason: "x"}), http.StatusUnprocessableEntity, KindCorrupt},
		{fmt.Errorf("get: %w", &cas.NotFoundError{}), http.StatusNotFound, KindNotFound},
		{errors.New("no access"), http.StatusInternalServerError, KindRemote},
	}
	for _, c := range cases {
		st := statusOf(c.err)
		if st != c.status {
			t.Errorf("%v: status %d, want %d", c.err, st, c.status)
		}
		if k := client.KindFromAnswer(st, KindOf(c.err).String()); k != c.kind {
			t.Errorf("%v: back as kind %v, want %v", c.err, k, c.kind)
		}
	}
}
