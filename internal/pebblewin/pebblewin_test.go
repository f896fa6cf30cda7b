package pebblewin

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/swcli/swcli/internal/flock"
)

func config(dir string, schema uint64) Config {
	return Config{What: "test db", Dir: filepath.Join(dir, "db"), LockPath: filepath.Join(dir, "lock"), FreeDir: dir,
		SchemaKey: []byte("schema"), Schema: schema, LockTimeout: 100 * time.Millisecond}
}

// A write window writes the schema; a reader with another schema is refused with both
// numbers; a reader of a database that does not exist yet sees it empty.
func TestSchemaIsCheckedOnFirstOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := New(config(dir, 3))
	if err := w.In(ctx, true, func(db *pebble.DB) error { return db.Set([]byte("k"), []byte("v"), pebble.Sync) }); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r := New(config(dir, 3))
	if err := r.In(ctx, false, func(db *pebble.DB) error {
		v, c, err := db.Get([]byte("k"))
		if err == nil {
			defer c.Close()
			if string(v) != "v" {
				t.Fatalf("read %q", v)
			}
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	other := New(config(dir, 4))
	err := other.In(ctx, false, func(*pebble.DB) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "has schema 3; this swcli reads schema 4") {
		t.Fatalf("another schema: %v", err)
	}
	other.Close()
}

// Two windows over one database take turns: while one process (here: one Window) has it
// open, another waits, and times out with a BusyError that names the holder.
func TestWindowsTakeTurns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, b := New(config(dir, 1)), New(config(dir, 1))
	defer a.Close()
	defer b.Close()
	db, err := a.Enter(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	_ = db
	if err := b.In(ctx, false, func(*pebble.DB) error { return nil }); !errors.Is(err, flock.ErrBusy) {
		t.Fatalf("a window while another is open: %v, want busy", err)
	}
	if err := a.Leave(); err != nil {
		t.Fatal(err)
	}
	if err := b.In(ctx, false, func(*pebble.DB) error { return nil }); err != nil {
		t.Fatalf("a window after the other closed: %v", err)
	}
}

// A held window stays open between uses and closes with Close.
func TestHeldWindowStaysOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := config(dir, 1)
	cfg.Held = true
	h := New(cfg)
	if err := h.In(ctx, false, func(*pebble.DB) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if h.DB() == nil {
		t.Fatal("a held window closed after its use")
	}
	other := New(config(dir, 1))
	defer other.Close()
	if err := other.In(ctx, false, func(*pebble.DB) error { return nil }); !errors.Is(err, flock.ErrBusy) {
		t.Fatalf("beside a held window: %v, want busy", err)
	}
	h.Close()
	if err := other.In(ctx, false, func(*pebble.DB) error { return nil }); err != nil {
		t.Fatalf("after Close of the held window: %v", err)
	}
}
