package pgtest_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/keystep/keystep/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatalf("connect to %s: %v", dsn, err)
	}
	return db
}

func TestDSN(t *testing.T) {
	var name string
	t.Run("fresh", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		db := connect(t, dsn)
		if err := db.QueryRow("SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		var tables int
		if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables); err != nil {
			t.Fatal(err)
		}
		if tables != 0 {
			t.Errorf("new database %s has %d tables", name, tables)
		}
		if _, err := db.Exec("CREATE TABLE t (x int)"); err != nil {
			t.Fatal(err)
		}
		// A second DSN is another database.
		other := connect(t, pgtest.DSN(t))
		var otherName string
		if err := other.QueryRow("SELECT current_database()").Scan(&otherName); err != nil {
			t.Fatal(err)
		}
		if otherName == name {
			t.Errorf("two DSNs name the same database %s", name)
		}
	})
	if name == "" {
		t.Fatal("no database name")
	}
	// The subtest's databases were dropped when it ended.
	db := connect(t, pgtest.DSN(t))
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}
