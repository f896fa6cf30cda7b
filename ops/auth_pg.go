package ops

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/swcli/swcli/cas"
)

// PGAuth keeps a server's Auth in PostgreSQL (0003_auth.sql), shared by its replicas.
// Updates lock auth_version's row, so they are serialised across replicas, and bump it,
// which is the stamp every replica's cache checks.
type PGAuth struct{ DB *pgxpool.Pool }

// Stamp is auth_version.
func (p PGAuth) Stamp(ctx context.Context) (string, error) {
	var n int64
	if err := p.DB.QueryRow(ctx, "SELECT n FROM auth_version").Scan(&n); err != nil {
		return "", fmt.Errorf("read users: %w", err)
	}
	return strconv.FormatInt(n, 10), nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Load reads the tables.
func (p PGAuth) Load(ctx context.Context) (*Auth, error) {
	var a *Auth
	err := pgx.BeginTxFunc(ctx, p.DB, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		a, err = loadAuthTables(ctx, tx)
		return err
	})
	return a, err
}

func loadAuthTables(ctx context.Context, q querier) (*Auth, error) {
	a := &Auth{Users: map[string]*AuthUser{}, Projects: map[string]*AuthProject{}}
	scan := func(sql string, fn func(rows pgx.Rows) error) error {
		rows, err := q.Query(ctx, sql)
		if err != nil {
			return fmt.Errorf("read users: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err := scan("SELECT name, admin FROM auth_users", func(rows pgx.Rows) error {
		var name string
		u := &AuthUser{}
		err := rows.Scan(&name, &u.Admin)
		a.Users[name] = u
		return err
	})
	if err == nil {
		err = scan("SELECT username, hash FROM auth_tokens ORDER BY username, hash", func(rows pgx.Rows) error {
			var name string
			var h []byte
			if err := rows.Scan(&name, &h); err != nil {
				return err
			}
			if u := a.Users[name]; u != nil && len(h) == cas.HashSize {
				u.Tokens = append(u.Tokens, cas.Hash(h))
			}
			return nil
		})
	}
	if err == nil {
		err = scan("SELECT name, id, created FROM auth_projects", func(rows pgx.Rows) error {
			var name string
			ap := &AuthProject{Members: []string{}}
			err := rows.Scan(&name, &ap.ID, &ap.Created)
			ap.Created = ap.Created.UTC()
			a.Projects[name] = ap
			return err
		})
	}
	if err == nil {
		err = scan("SELECT project, username FROM auth_members ORDER BY project, username", func(rows pgx.Rows) error {
			var project, name string
			if err := rows.Scan(&project, &name); err != nil {
				return err
			}
			if ap := a.Projects[project]; ap != nil {
				ap.Members = append(ap.Members, name)
			}
			return nil
		})
	}
	return a, err
}

// Update changes the tables in one transaction: the Auth is read, changed by fn and
// written back whole (a server has hundreds of users, not millions).
func (p PGAuth) Update(ctx context.Context, fn func(*Auth) error) error {
	return pgx.BeginFunc(ctx, p.DB, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE auth_version SET n = n + 1"); err != nil {
			return fmt.Errorf("lock users: %w", err)
		}
		a, err := loadAuthTables(ctx, tx)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
		for _, q := range []string{"DELETE FROM auth_members", "DELETE FROM auth_projects", "DELETE FROM auth_tokens", "DELETE FROM auth_users"} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		names := make([]string, 0, len(a.Users))
		for n := range a.Users {
			names = append(names, n)
		}
		sort.Strings(names)
		b := &pgx.Batch{}
		for _, n := range names {
			u := a.Users[n]
			b.Queue("INSERT INTO auth_users (name, admin) VALUES ($1, $2)", n, u.Admin)
			for _, t := range u.Tokens {
				b.Queue("INSERT INTO auth_tokens (hash, username) VALUES ($1, $2) ON CONFLICT DO NOTHING", t[:], n)
			}
		}
		for n, ap := range a.Projects {
			created := ap.Created
			if created.IsZero() {
				created = time.Now().UTC()
			}
			b.Queue("INSERT INTO auth_projects (name, id, created) VALUES ($1, $2, $3)", n, ap.ID, created)
			for _, m := range ap.Members {
				b.Queue("INSERT INTO auth_members (project, username) VALUES ($1, $2) ON CONFLICT DO NOTHING", n, m)
			}
		}
		if b.Len() == 0 {
			return nil
		}
		return tx.SendBatch(ctx, b).Close()
	})
}
