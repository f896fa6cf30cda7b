package ledger

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// The model: what a user should see after any sequence of operations.
type mVersion struct {
	status Status
	vn     int
	tags   []string
	seq    int // creation order
}

type mRuntime struct {
	versions map[string]*mVersion
	nextVN   int
	latest   string
}

type model struct {
	rts map[string]*mRuntime
}

func (m *model) rt(name string) *mRuntime {
	r := m.rts[name]
	if r == nil {
		r = &mRuntime{versions: map[string]*mVersion{}}
		m.rts[name] = r
	}
	return r
}

// TestModel runs 10k random operations against the ledger and a plain in-memory model,
// checks the ledger's views against the model as it goes, and at the end that a replay of
// the log equals the projections built incrementally.
func TestModel(t *testing.T) { onBoth(t, testModel) }

func testModel(t *testing.T) {
	n := 10_000
	if testing.Short() || onPostgres(t) {
		n = 2_000 // on PostgreSQL every read of apply is a round trip
	}
	l, _ := openTest(t)
	if pb, ok := l.be.(*pebbleBackend); ok {
		pb.sync = pebble.NoSync
	}
	mustAppend(t, l, ev(t, ProjectCreated, "self", "", "", EmptyData{}))
	m := &model{rts: map[string]*mRuntime{}}
	rng := rand.New(rand.NewPCG(7, 11))
	runtimes := []string{"mnist", "bert", "yolo"}
	userTags := []string{"prod", "test", "exp", "gold"}
	pick := func(r *mRuntime, want func(*mVersion) bool) string {
		var ids []string
		for id, v := range r.versions {
			if want(v) {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		if len(ids) == 0 {
			return vid(fmt.Sprint("none", rng.IntN(5)))
		}
		return ids[rng.IntN(len(ids))]
	}
	for i := range n {
		name := runtimes[rng.IntN(len(runtimes))]
		r := m.rt(name)
		var e Event
		var ok bool // whether the model accepts it
		var effect func()
		switch op := rng.IntN(10); op {
		case 0, 1, 2:
			seed := fmt.Sprint(name, rng.IntN(40))
			e, ok = built(t, name, seed), true
			id := vid(seed)
			effect = func() {
				v := r.versions[id]
				if v == nil || v.status == StatusPurged {
					v = &mVersion{vn: r.nextVN, seq: i}
					r.nextVN++
					r.versions[id] = v
				}
				v.status = StatusLive
				r.latest = id
			}
		case 3, 4:
			id := pick(r, func(v *mVersion) bool { return v.status == StatusLive })
			tag := userTags[rng.IntN(len(userTags))]
			e = ev(t, RuntimeTagged, "self", name, id, TagsData{Tags: []string{tag}})
			v := r.versions[id]
			ok = v != nil && v.status == StatusLive
			effect = func() {
				for _, o := range r.versions {
					o.tags = slices.DeleteFunc(o.tags, func(s string) bool { return s == tag })
				}
				v.tags = append(v.tags, tag)
				slices.Sort(v.tags)
			}
		case 5:
			id := pick(r, func(v *mVersion) bool { return v.status == StatusLive && len(v.tags) > 0 })
			v := r.versions[id]
			ok = v != nil && v.status == StatusLive && len(v.tags) > 0
			tag := "prod"
			if ok {
				tag = v.tags[rng.IntN(len(v.tags))]
			}
			e = ev(t, RuntimeUntagged, "self", name, id, TagsData{Tags: []string{tag}})
			effect = func() { v.tags = slices.DeleteFunc(v.tags, func(s string) bool { return s == tag }) }
		case 6:
			id := pick(r, func(v *mVersion) bool { return v.status == StatusLive })
			v := r.versions[id]
			e, ok = ev(t, RuntimeRemoved, "self", name, id, EmptyData{}), v != nil && v.status == StatusLive
			effect = func() { v.status = StatusRemoved }
		case 7:
			id := pick(r, func(v *mVersion) bool { return v.status == StatusRemoved })
			v := r.versions[id]
			e, ok = ev(t, RuntimeRecovered, "self", name, id, EmptyData{}), v != nil && v.status == StatusRemoved
			effect = func() { v.status = StatusLive }
		case 8:
			id := pick(r, func(v *mVersion) bool { return v.status != StatusPurged })
			v := r.versions[id]
			e, ok = ev(t, RuntimePurged, "self", name, id, EmptyData{}), v != nil && v.status != StatusPurged
			effect = func() {
				v.status, v.tags = StatusPurged, nil
				if r.latest == id {
					r.latest = ""
				}
			}
		case 9:
			e, ok = ev(t, RuntimeRemoved, "self", name, "", EmptyData{}), len(r.versions) > 0
			effect = func() {
				for _, v := range r.versions {
					if v.status == StatusLive {
						v.status = StatusRemoved
					}
				}
			}
		}
		_, err := l.Append(ctx, e)
		if ok != (err == nil) {
			t.Fatalf("op %d %s %s/%s: model accepts %v, ledger says %v", i, e.Type, name, e.Version, ok, err)
		}
		if ok {
			effect()
		}
		if i%500 == 0 || i == n-1 {
			l.be.read(ctx, func(r reader) error { compareModel(t, viewOf(r), m, i); return nil })
		}
	}
	verifyOK(t, l)
	snap, err := l.Replay(ctx, ReplayTo{})
	if err != nil {
		t.Fatal(err)
	}
	compareModel(t, snap.view, m, n)
}

func compareModel(t *testing.T, v view, m *model, step int) {
	t.Helper()
	for name, r := range m.rts {
		if len(r.versions) == 0 {
			continue
		}
		got, _, err := v.Versions("self", name, ListOptions{ShowRemoved: true})
		if err != nil {
			t.Fatalf("step %d: list %s: %v", step, name, err)
		}
		var want []string
		type row struct {
			id  string
			seq int
		}
		var rows []row
		for id, mv := range r.versions {
			if mv.status != StatusPurged {
				rows = append(rows, row{id, mv.seq})
			}
		}
		slices.SortFunc(rows, func(a, b row) int { return b.seq - a.seq })
		for _, rw := range rows {
			mv := r.versions[rw.id]
			tags := []string{}
			if r.latest == rw.id && mv.status == StatusLive {
				tags = append(tags, "latest")
			}
			tags = append(tags, fmt.Sprintf("v%d", mv.vn))
			tags = append(tags, mv.tags...)
			want = append(want, fmt.Sprintf("%s %s %s", rw.id[:8], mv.status, strings.Join(tags, ",")))
		}
		var have []string
		for _, x := range got {
			have = append(have, fmt.Sprintf("%s %s %s", x.ID[:8], x.Status, strings.Join(x.AllTags(), ",")))
		}
		if !slices.Equal(have, want) {
			t.Fatalf("step %d, runtime %s:\nledger %v\nmodel  %v", step, name, have, want)
		}
	}
}
