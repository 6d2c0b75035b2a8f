package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/keystep/keystep/flows"
)

// Store is flows.Store over a *sql.DB. Build one with New.
type Store struct {
	ops
	db     *sql.DB
	reader *sql.DB // optional: read-only connections for reads outside transactions
	d      Dialect
	stmts  [numQueries]*sql.Stmt
	reads  [numQueries]*sql.Stmt // SELECTs prepared on reader
}

var (
	_ flows.Store = (*Store)(nil)
	_ flows.Tx    = ops{}
)

// New migrates db to the dialect's latest schema and prepares every
// statement. The Store owns db from then on: Close closes it. On error db is
// left open for the caller to close.
func New(ctx context.Context, db *sql.DB, d Dialect) (*Store, error) {
	if d.Migrations == nil {
		return nil, fmt.Errorf("%s store: dialect has no migrations", d.Name)
	}
	if err := migrate(ctx, db, d); err != nil {
		return nil, fmt.Errorf("%s store: %w", d.Name, err)
	}
	s := &Store{db: db, d: d}
	s.ops = ops{s: s}
	for q := range numQueries {
		text := d.text(q)
		if text == "" {
			continue
		}
		st, err := db.PrepareContext(ctx, d.rebind(text))
		if err != nil {
			s.closeStmts()
			return nil, fmt.Errorf("%s store: prepare %q: %w", d.Name, text, err)
		}
		s.stmts[q] = st
	}
	return s, nil
}

// NewWithReader is New with a second pool of read-only connections on the
// same database (SQLite in WAL mode lets readers run beside the single
// writer). Reads outside a transaction go to reader; everything else, and
// every read inside InTx, goes to db. The Store owns both from then on.
func NewWithReader(ctx context.Context, db, reader *sql.DB, d Dialect) (*Store, error) {
	s, err := New(ctx, db, d)
	if err != nil {
		return nil, err
	}
	s.reader = reader
	for q := range numQueries {
		text := d.text(q)
		if q == qAuditLock || !strings.HasPrefix(text, "SELECT") {
			continue
		}
		st, err := reader.PrepareContext(ctx, d.rebind(text))
		if err != nil {
			s.closeStmts()
			return nil, fmt.Errorf("%s store: prepare %q for reading: %w", d.Name, text, err)
		}
		s.reads[q] = st
	}
	return s, nil
}

// DB returns the database the store runs on, for maintenance and tests.
func (s *Store) DB() *sql.DB { return s.db }

// Close releases the prepared statements and closes the database.
func (s *Store) Close() error {
	s.closeStmts()
	if s.reader != nil {
		if err := s.reader.Close(); err != nil {
			return fmt.Errorf("close %s store reader: %w", s.d.Name, err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close %s store: %w", s.d.Name, err)
	}
	return nil
}

func (s *Store) closeStmts() {
	for _, set := range [][numQueries]*sql.Stmt{s.stmts, s.reads} {
		for _, st := range set {
			if st != nil {
				_ = st.Close() // kept: a closed statement answers "statement is closed"
			}
		}
	}
}

// InTx runs fn in one transaction and commits it if fn returns nil. It rolls
// back if fn returns an error (which InTx returns as is) or panics (the panic
// goes on). fn must use only the Tx it is given: on SQLite the store has a
// single connection, which the transaction holds until InTx returns.
//
// A duplicate insert (ErrConflict, ErrReplay) or a failed conditional update
// leaves the transaction usable on every engine. Any other statement error
// (a unique violation from UpdateAccount, a missing account behind
// CreateDevice) aborts the transaction on PostgreSQL: fn should return it.
func (s *Store) InTx(ctx context.Context, fn func(tx flows.Tx) error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	if err := fn(ops{s: s, tx: tx}); err != nil {
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %s transaction: %w", s.d.Name, err)
	}
	return nil
}

// AppendAudit seals ev onto the audit chain in a transaction of its own.
func (s *Store) AppendAudit(ctx context.Context, ev flows.AuditEvent) (flows.AuditEvent, error) {
	var out flows.AuditEvent
	err := s.InTx(ctx, func(tx flows.Tx) error {
		var err error
		out, err = tx.AppendAudit(ctx, ev)
		return err
	})
	return out, err
}

func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	var (
		tx  *sql.Tx
		err error
	)
	if s.d.BeginTx != nil {
		tx, err = s.d.BeginTx(ctx, s.db)
	} else {
		tx, err = s.db.BeginTx(ctx, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("begin %s transaction: %w", s.d.Name, err)
	}
	return tx, nil
}

// ops carries out the flows.Tx operations, inside a transaction when tx is
// set and as single autocommitted statements otherwise.
type ops struct {
	s  *Store
	tx *sql.Tx
}

// stmt returns the prepared statement q, bound to the transaction if any.
func (o ops) stmt(ctx context.Context, q query) *sql.Stmt {
	st := o.s.stmts[q]
	if o.tx != nil {
		return o.tx.StmtContext(ctx, st)
	}
	if r := o.s.reads[q]; r != nil {
		return r
	}
	return st
}

func (o ops) exec(ctx context.Context, q query, args ...any) (sql.Result, error) {
	return o.stmt(ctx, q).ExecContext(ctx, args...)
}

// execN runs q and returns how many rows it affected.
func (o ops) execN(ctx context.Context, q query, args ...any) (int64, error) {
	res, err := o.exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rows affected: %w", err)
	}
	return n, nil
}

func (o ops) queryRow(ctx context.Context, q query, args ...any) *sql.Row {
	return o.stmt(ctx, q).QueryRowContext(ctx, args...)
}

// queryAll runs q and scans every row with scan, closing the rows before it
// returns (SQLite has one connection; open rows would hold it).
func queryAll[T any](ctx context.Context, o ops, q query, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := o.stmt(ctx, q).QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// notFound turns sql.ErrNoRows into flows.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return flows.ErrNotFound
	}
	return err
}
