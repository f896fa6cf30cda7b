package server

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/ops"
	"github.com/swcli/swcli/ops/client"
)

// Every kind travels as its own status and name and comes back as itself; statuses come
// from kinds and sentinels, never from the text of a message.
func TestErrorKindsTravel(t *testing.T) {
	cases := []struct {
		err    error
		status int
		kind   ops.Kind
	}{
		{ops.Errorf(ops.KindUsage, "", "bad name"), http.StatusBadRequest, ops.KindUsage},
		{ops.Errorf(ops.KindInvalid, "", "runtime.yaml:3: bad key"), http.StatusBadRequest, ops.KindInvalid},
		{ops.Errorf(ops.KindNotFound, "", "no access to nothing"), http.StatusNotFound, ops.KindNotFound},
		{ops.Errorf(ops.KindExists, "", "x"), http.StatusConflict, ops.KindExists},
		{ops.Errorf(ops.KindCorrupt, "", "x"), http.StatusUnprocessableEntity, ops.KindCorrupt},
		{ops.Errorf(ops.KindTooLarge, "", "x"), http.StatusRequestEntityTooLarge, ops.KindTooLarge},
		{ops.Errorf(ops.KindAuth, "", "no access to project p"), http.StatusUnauthorized, ops.KindAuth},
		{ops.Errorf(ops.KindForbidden, "", "the server refused the token"), http.StatusForbidden, ops.KindForbidden},
		{ops.Errorf(ops.KindBusy, "", "x"), http.StatusServiceUnavailable, ops.KindBusy},
		{fmt.Errorf("read: %w", &cas.CorruptError{Reason: "x"}), http.StatusUnprocessableEntity, ops.KindCorrupt},
		{fmt.Errorf("get: %w", &cas.NotFoundError{}), http.StatusNotFound, ops.KindNotFound},
		{errors.New("no access"), http.StatusInternalServerError, ops.KindRemote},
	}
	for _, c := range cases {
		st := statusOf(c.err)
		if st != c.status {
			t.Errorf("%v: status %d, want %d", c.err, st, c.status)
		}
		if k := client.KindFromAnswer(st, ops.KindOf(c.err).String()); k != c.kind {
			t.Errorf("%v: back as kind %v, want %v", c.err, k, c.kind)
		}
	}
}
