package cas

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// A pack's upload that S3 answers with a 500 once (SeaweedFS does, under load) is sent
// again, whole: the body putPack gives can be rewound, which is what the S3 client needs
// to retry.
func TestPackUploadRetriedAfterAServerError(t *testing.T) {
	parts := [][]byte{[]byte("first part;"), {}, bytes.Repeat([]byte("second "), 1000), []byte("end")}
	want := bytes.Join(parts, nil)

	var mu sync.Mutex
	var puts int
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodHead || r.Method == http.MethodGet && strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0:
			w.WriteHeader(http.StatusOK) // the bucket exists
		case r.Method == http.MethodPut:
			mu.Lock()
			puts++
			first := puts == 1
			if !first {
				got = body
			}
			mu.Unlock()
			if first {
				w.Header().Set("Content-Type", "application/xml")
				w.WriteHeader(http.StatusInternalServerError)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error, please try again.</Message></Error>`)
				return
			}
			w.Header().Set("ETag", `"0"`)
			w.WriteHeader(http.StatusOK)
		default:
			w.WriteHeader(http.StatusNotImplemented)
		}
	}))
	defer srv.Close()

	objs, err := NewS3Objects(context.Background(), S3Config{Endpoint: srv.URL, AccessKey: "k", SecretKey: "s",
		Region: "us-east-1", PathStyle: true, Bucket: "bkt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := objs.Put(context.Background(), "packs/x", packBody(parts, int64(len(want))), int64(len(want))); err != nil {
		t.Fatalf("put after one 500: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if puts != 2 || !bytes.Equal(got, want) {
		t.Fatalf("%d PUTs, the last with %d bytes: want 2, the second with the %d bytes of the parts", puts, len(got), len(want))
	}
}

func TestPartsAtReadsThePartsAsOne(t *testing.T) {
	parts := [][]byte{[]byte("ab"), nil, []byte("cde"), []byte("f")}
	all := bytes.Join(parts, nil)
	for off := range len(all) + 2 {
		for n := range len(all) + 2 {
			p := make([]byte, n)
			got, err := partsAt(parts).ReadAt(p, int64(off))
			wantN := max(0, min(n, len(all)-off))
			if got != wantN || !bytes.Equal(p[:got], all[min(off, len(all)):min(off, len(all))+wantN]) {
				t.Fatalf("ReadAt(%d bytes, %d) = %d %q, want %d", n, off, got, p[:got], wantN)
			}
			if short := got < n; n > 0 && short != (err == io.EOF) {
				t.Fatalf("ReadAt(%d bytes, %d): %d read, err %v", n, off, got, err)
			}
		}
	}
}
