// Package sqlstore implements flows.Store once, over database/sql. The SQLite
// and PostgreSQL backends (flows/store/sqlite, flows/store/postgres) differ
// only in the Dialect they hand to New: placeholder style, how a write
// transaction begins, how the audit chain is locked, how a unique violation
// looks, and their migrations.
//
// Storage conventions shared by every dialect: times are BIGINT unix
// nanoseconds with 0 for the zero time.Time (read back in UTC), method lists
// are comma-joined text, byte slices are BLOB/BYTEA, and usernames are unique
// case-insensitively among accounts that are not removed (a lower-cased
// username_key column under a partial unique index).
package sqlstore

import (
	"context"
	"database/sql"
	"io/fs"
	"strconv"
	"strings"
)

// Dialect is what one SQL engine needs to differ in. The zero value of each
// optional field means "nothing special".
type Dialect struct {
	// Name names the engine in errors ("sqlite", "postgres").
	Name string
	// NumberedPlaceholders rewrites the "?" placeholders the queries are
	// written with into $1, $2, ... (PostgreSQL).
	NumberedPlaceholders bool
	// BeginTx begins a transaction that will write. Nil means
	// db.BeginTx(ctx, nil). (SQLite gets BEGIN IMMEDIATE from its DSN.)
	BeginTx func(ctx context.Context, db *sql.DB) (*sql.Tx, error)
	// LockAuditChain is a statement run inside the transaction before the
	// head of the audit chain is read, serialising appenders until the
	// transaction ends. Empty when the write transaction is already
	// exclusive (SQLite).
	LockAuditChain string
	// LockMigrations is a statement run at the start of every migration
	// transaction so that instances starting together migrate one at a
	// time. Empty when the write transaction is already exclusive.
	LockMigrations string
	// IsUniqueViolation reports whether err is a unique or primary-key
	// constraint violation.
	IsUniqueViolation func(err error) bool
	// IsForeignKeyViolation reports whether err is a foreign-key violation
	// (a row referring to an account that does not exist).
	IsForeignKeyViolation func(err error) bool
	// ArrayParams says that the engine takes a []string as one array
	// parameter (PostgreSQL's text[]): the statements that take a list of
	// ids use their array form (queryArrayText, "= ANY(?)"). Without it a
	// list goes as one JSON array, read with json_each (SQLite).
	ArrayParams bool
	// Migrations holds the schema as numbered files at its root, named
	// NNNN_description.sql, applied in numeric order.
	Migrations fs.FS
}

// rebind rewrites the "?" placeholders of query for the dialect. The queries
// in this package never contain "?" inside string literals.
func (d Dialect) rebind(query string) string {
	if !d.NumberedPlaceholders || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// text returns the statement q as the dialect runs it, before rebind; ""
// when the dialect has none.
func (d Dialect) text(q query) string {
	if q == qAuditLock {
		return d.LockAuditChain
	}
	if d.ArrayParams && queryArrayText[q] != "" {
		return queryArrayText[q]
	}
	return queryText[q]
}

// list passes a list of strings as the one parameter the statements that
// take a list expect: an array (ArrayParams) or a JSON array.
func (d Dialect) list(ss []string) any {
	if d.ArrayParams {
		if ss == nil {
			return []string{}
		}
		return ss
	}
	return joinList(ss)
}

func (d Dialect) isUnique(err error) bool {
	return err != nil && d.IsUniqueViolation != nil && d.IsUniqueViolation(err)
}

func (d Dialect) isForeignKey(err error) bool {
	return err != nil && d.IsForeignKeyViolation != nil && d.IsForeignKeyViolation(err)
}
