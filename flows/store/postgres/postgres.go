// Package postgres is keystep's store for several instances that share one
// organization: PostgreSQL through pgx's database/sql driver, on the shared
// SQL implementation in flows/store/sqlstore.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Advisory lock keys (pg_advisory_xact_lock), held until the transaction
// that takes them ends.
const (
	auditLockKey     = 0x6b657973_74657001 // "keystep" 01: the audit chain
	migrationLockKey = 0x6b657973_74657002 // "keystep" 02: schema migrations
)

// Pool limits of the connection pool Open makes.
const (
	MaxOpenConns    = 20
	MaxIdleConns    = 10
	ConnMaxIdleTime = 5 * time.Minute
	ConnMaxLifetime = time.Hour
)

// Dialect returns the PostgreSQL dialect of the shared SQL store.
func Dialect() sqlstore.Dialect {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(fmt.Sprintf("postgres migrations: %v", err)) // cannot happen: the directory is embedded
	}
	return sqlstore.Dialect{
		Name:                  "postgres",
		NumberedPlaceholders:  true,
		ArrayParams:           true,
		LockAuditChain:        fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(auditLockKey)),
		LockMigrations:        fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", int64(migrationLockKey)),
		IsUniqueViolation:     isCode("23505"),
		IsForeignKeyViolation: isCode("23503"),
		Migrations:            sub,
	}
}

func isCode(code string) func(error) bool {
	return func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == code
	}
}

// Open connects to the PostgreSQL database named by dsn (a libpq
// keyword/value string or a postgres:// URL, as pgx reads them), migrates it,
// and returns the store. Several instances may share one database: the audit
// chain and migrations are serialised with advisory locks.
func Open(ctx context.Context, dsn string) (flows.Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	db.SetMaxOpenConns(MaxOpenConns)
	db.SetMaxIdleConns(MaxIdleConns)
	db.SetConnMaxIdleTime(ConnMaxIdleTime)
	db.SetConnMaxLifetime(ConnMaxLifetime)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open postgres store: connect: %w", err)
	}
	s, err := sqlstore.New(ctx, db, Dialect())
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open postgres store: %w", err)
	}
	return s, nil
}
