package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/swcli/swcli/cas"
	"github.com/swcli/swcli/internal/pgschema"
)

// pgBackend keeps the ledger in PostgreSQL (internal/pgschema, 0001_ledger.sql): events in
// ledger_events, the head in ledger_head, projections in ledger_projections under the same
// keys and values as the pebble backend. Every key of keys.go maps to one row, so apply,
// the queries, replay and verify run unchanged.
//
// Appends of every process and replica are serialised by the head row: a write starts by
// locking it (SELECT ... FOR UPDATE) and ends by updating it, in one READ COMMITTED
// transaction; a transaction the database aborts (serialisation failure, deadlock) is run
// again. Reads run in REPEATABLE READ transactions, so a query or an audit sees one state.
type pgBackend struct {
	pool *pgxpool.Pool
	own  bool // close the pool with the ledger
}

// OpenPostgres opens the ledger in the PostgreSQL database dsn names, applying migrations.
func OpenPostgres(ctx context.Context, dsn string, opt Options) (*Ledger, error) {
	pool, err := pgschema.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open ledger: %w", err)
	}
	return newLedger(&pgBackend{pool: pool, own: true}, opt), nil
}

// OnPostgres opens the ledger over a pool the caller owns (and has migrated).
func OnPostgres(pool *pgxpool.Pool, opt Options) *Ledger {
	return newLedger(&pgBackend{pool: pool}, opt)
}

func (b *pgBackend) close() error {
	if b.own {
		b.pool.Close()
	}
	return nil
}

func (b *pgBackend) read(ctx context.Context, fn func(reader) error) error {
	return pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		return fn(&pgKV{ctx: ctx, tx: tx})
	})
}

func (b *pgBackend) longRead(ctx context.Context, fn func(reader) error) error {
	return b.read(ctx, fn) // MVCC: a long repeatable-read transaction holds no writer up
}

// maxTries bounds the retries of a write the database aborted.
const maxTries = 10

func (b *pgBackend) write(ctx context.Context, fn func(writer) error) error {
	for try := 1; ; try++ {
		err := pgx.BeginTxFunc(ctx, b.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT seq FROM ledger_head FOR UPDATE"); err != nil {
				return fmt.Errorf("lock ledger head: %w", err)
			}
			w := &pgKV{ctx: ctx, tx: tx}
			if err := fn(w); err != nil {
				return err
			}
			if w.err != nil {
				return fmt.Errorf("write ledger: %w", w.err)
			}
			return nil
		})
		var pe *pgconn.PgError
		if try < maxTries && errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") {
			time.Sleep(time.Duration(try) * 5 * time.Millisecond)
			continue
		}
		return err
	}
}

// pgKV maps keys to rows within one transaction. Writes are sent at once, so that later
// reads of the same transaction see them.
type pgKV struct {
	ctx context.Context
	tx  pgx.Tx
	err error // the first write error
}

func (k *pgKV) get(key []byte) ([]byte, bool, error) {
	if len(key) == 0 {
		return nil, false, nil
	}
	var err error
	var v []byte
	switch key[0] {
	case keySchema:
		return nil, false, nil // pgschema keeps the version
	case keyHead:
		var seq int64
		var hash []byte
		err = k.tx.QueryRow(k.ctx, "SELECT seq, hash FROM ledger_head").Scan(&seq, &hash)
		if err == nil && seq == 0 {
			return nil, false, nil
		}
		v = binary.BigEndian.AppendUint64(nil, uint64(seq))
		v = append(v, hash...)
	case keyEvent:
		seq, ok := eventSeq(key)
		if !ok {
			return nil, false, nil
		}
		var hash, body []byte
		err = k.tx.QueryRow(k.ctx, "SELECT hash, body FROM ledger_events WHERE seq = $1", seq).Scan(&hash, &body)
		v = append(hash, body...)
	default:
		err = k.tx.QueryRow(k.ctx, "SELECT v FROM ledger_projections WHERE k = $1", key).Scan(&v)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read ledger: %w", err)
	}
	return v, true, nil
}

// eventSeq reads an event key's sequence number, as an int64 column holds it.
func eventSeq(key []byte) (int64, bool) {
	if len(key) != 9 || key[0] != keyEvent {
		return 0, false
	}
	seq := binary.BigEndian.Uint64(key[1:])
	return int64(min(seq, 1<<63-1)), true
}

func (k *pgKV) scan(p []byte, fn func(k, v []byte) error) error {
	return k.scanRange(p, upper(p), fn)
}

func (k *pgKV) scanRange(lo, hi []byte, fn func(k, v []byte) error) error {
	if len(lo) > 0 && lo[0] == keyEvent {
		from, to := int64(0), int64(1<<63-1)
		if s, ok := eventSeq(lo); ok {
			from = s
		}
		if s, ok := eventSeq(hi); ok {
			to = s
		} else if hi != nil && !bytes.Equal(hi, []byte{keyEvent + 1}) {
			return fmt.Errorf("ledger: scan of events up to %x", hi)
		}
		rows, err := k.tx.Query(k.ctx, "SELECT seq, hash, body FROM ledger_events WHERE seq >= $1 AND seq < $2 ORDER BY seq", from, to)
		if err != nil {
			return fmt.Errorf("read ledger events: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			var hash, body []byte
			if err := rows.Scan(&seq, &hash, &body); err != nil {
				return err
			}
			if err := fn(eventKey(uint64(seq)), append(hash, body...)); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	if len(lo) == 0 || lo[0] == keyHead || lo[0] == keySchema {
		return fmt.Errorf("ledger: scan from %x", lo)
	}
	var rows pgx.Rows
	var err error
	if hi == nil {
		rows, err = k.tx.Query(k.ctx, "SELECT k, v FROM ledger_projections WHERE k >= $1 ORDER BY k", lo)
	} else {
		rows, err = k.tx.Query(k.ctx, "SELECT k, v FROM ledger_projections WHERE k >= $1 AND k < $2 ORDER BY k", lo, hi)
	}
	if err != nil {
		return fmt.Errorf("read ledger projections: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, v []byte
		if err := rows.Scan(&key, &v); err != nil {
			return err
		}
		if err := fn(key, v); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (k *pgKV) exec(sql string, args ...any) {
	if k.err != nil {
		return
	}
	if _, err := k.tx.Exec(k.ctx, sql, args...); err != nil {
		k.err = err
	}
}

func (k *pgKV) set(key, v []byte) {
	switch key[0] {
	case keySchema:
	case keyHead:
		if len(v) != 8+cas.HashSize {
			k.err = fmt.Errorf("ledger head of %d bytes", len(v))
			return
		}
		k.exec("UPDATE ledger_head SET seq = $1, hash = $2", int64(binary.BigEndian.Uint64(v)), v[8:])
	case keyEvent:
		seq, ok := eventSeq(key)
		if !ok || len(v) < cas.HashSize {
			k.err = fmt.Errorf("ledger: bad event record %x", key)
			return
		}
		k.exec(`INSERT INTO ledger_events (seq, hash, body) VALUES ($1, $2, $3)
			ON CONFLICT (seq) DO UPDATE SET hash = excluded.hash, body = excluded.body`, seq, v[:cas.HashSize], v[cas.HashSize:])
	default:
		k.exec(`INSERT INTO ledger_projections (k, v) VALUES ($1, $2)
			ON CONFLICT (k) DO UPDATE SET v = excluded.v`, key, v)
	}
}

func (k *pgKV) del(key []byte) {
	switch key[0] {
	case keySchema, keyHead:
	case keyEvent:
		if seq, ok := eventSeq(key); ok {
			k.exec("DELETE FROM ledger_events WHERE seq = $1", seq)
		}
	default:
		k.exec("DELETE FROM ledger_projections WHERE k = $1", key)
	}
}
