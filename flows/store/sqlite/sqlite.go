// Package sqlite is keystep's default store: one SQLite file, through the
// pure-Go modernc.org/sqlite driver, on the shared SQL implementation in
// flows/store/sqlstore.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// BusyTimeoutMillis is how long a statement waits for another process's lock
// on the file before it fails. Within one process writers never wait on each
// other: the store has a single connection.
const BusyTimeoutMillis = 10000

// ReadConns is how many read-only connections serve reads outside
// transactions.
const ReadConns = 4

// Dialect returns the SQLite dialect of the shared SQL store.
func Dialect() sqlstore.Dialect {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(fmt.Sprintf("sqlite migrations: %v", err)) // cannot happen: the directory is embedded
	}
	return sqlstore.Dialect{
		Name:                  "sqlite",
		IsUniqueViolation:     isCode(sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY),
		IsForeignKeyViolation: isCode(sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY),
		Migrations:            sub,
		// Every transaction is BEGIN IMMEDIATE (see dsn), which already
		// serialises writers, the audit chain's and migrations included.
	}
}

func isCode(codes ...int) func(error) bool {
	return func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		for _, c := range codes {
			if e.Code() == c {
				return true
			}
		}
		return false
	}
}

// Open opens (creating if need be) the SQLite database at path and migrates
// it. A new parent directory gets mode 0700 and a new file mode 0600; the
// file runs in WAL mode with synchronous=NORMAL and foreign keys on. The
// store uses a single connection, so writers in this process queue in Go
// instead of failing with SQLITE_BUSY; a transaction (InTx) holds that
// connection until it ends.
func Open(ctx context.Context, path string) (flows.Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open sqlite store: %w: empty path", flows.ErrInvalid)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %q: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open sqlite store: create directory: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store: create file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open sqlite store: create file: %w", err)
	}
	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %q: %w", abs, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	// Readers outside transactions get their own connections, which WAL
	// lets run beside the writer, so a waiter re-reading a sign-in never
	// queues behind a write.
	reader, err := sql.Open("sqlite", dsn(abs)+"&_pragma=query_only(1)")
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", abs, err)
	}
	reader.SetMaxOpenConns(ReadConns)
	reader.SetMaxIdleConns(ReadConns)
	s, err := sqlstore.NewWithReader(ctx, db, reader, Dialect())
	if err != nil {
		_ = reader.Close()
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite store %q: %w", abs, err)
	}
	return s, nil
}

// dsn is the modernc.org/sqlite name for the file at the absolute path abs:
// a file: URI (so any character in the path is safe) with the settings every
// connection gets.
func dsn(abs string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeoutMillis))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	return u.String() + "?" + q.Encode()
}
