package ledger

import (
	"bytes"
	"testing"
)

// Every key kind has its own prefix, and keys of one kind never start like keys of another:
// scans by prefix see their kind and nothing else.
func TestKeyPrefixesAreDistinct(t *testing.T) {
	seen := map[byte]bool{}
	for _, p := range allPrefixes {
		if seen[p] {
			t.Fatalf("prefix %q is used twice", p)
		}
		seen[p] = true
	}
	for _, p := range projectionPrefixes {
		if !seen[p] {
			t.Fatalf("projection prefix %q is not listed in allPrefixes", p)
		}
	}
	// Each constructor's keys start with its own prefix and no other.
	keys := map[byte][]byte{
		keyEvent: eventKey(7), keyProject: projectKey("p"), keyRuntime: runtimeKey("p", "r"),
		keyVersion: versionKey("p", "r", "id"), keyOrder: orderKey("p", "r", 3), keyTag: tagKey("p", "r", "prod"),
	}
	for want, k := range keys {
		for _, p := range allPrefixes {
			if bytes.HasPrefix(k, []byte{p}) != (p == want) {
				t.Fatalf("key %q and prefix %q", k, p)
			}
		}
	}
}
