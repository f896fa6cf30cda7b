package cas

import "testing"

// A prefetched snapshot serves an ingest whose inputs all lie in the directories it
// loaded, named as the walk names them.
func TestCovers(t *testing.T) {
	for _, c := range []struct {
		dirs, roots []string
		want        bool
	}{
		{[]string{"/w"}, []string{"/w/venv", "/w/req.txt"}, true},
		{[]string{"/w/"}, []string{"/w/venv"}, true},
		{[]string{"/w"}, []string{"/w"}, true},
		{[]string{"/w"}, []string{"/wx/venv"}, false},
		{[]string{"/w"}, []string{"/w/venv", "/elsewhere/venv"}, false},
		{[]string{"/w"}, []string{"/w/../x"}, false},
		{[]string{"/w"}, []string{"/w//venv"}, false},
		{[]string{"/a", "/w"}, []string{"/w/venv"}, true},
		{nil, []string{"/w"}, false},
	} {
		if got := covers(c.dirs, c.roots); got != c.want {
			t.Errorf("covers(%q, %q) = %v, want %v", c.dirs, c.roots, got, c.want)
		}
	}
}
