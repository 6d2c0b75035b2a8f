package postgres_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/postgres"
	"github.com/keystep/keystep/flows/storetest"
	"github.com/keystep/keystep/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t testing.TB, dsn string) flows.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) flows.Store { return open(t, pgtest.DSN(t)) })
}

// TestReopen checks that opening a migrated database keeps its data and
// applies no migration twice, also when instances open it together.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	first := make(chan error, 4)
	for range cap(first) {
		go func() {
			s, err := postgres.Open(ctx, dsn)
			if err == nil {
				err = s.Close()
			}
			first <- err
		}()
	}
	for range cap(first) {
		if err := <-first; err != nil {
			t.Fatalf("concurrent open: %v", err)
		}
	}
	s := open(t, dsn)
	if err := s.CreateAccount(ctx, flows.Account{ID: "acc-1", Username: "alice", State: flows.AccountActive}); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dsn)
	a, err := s2.GetAccount(ctx, "acc-1")
	if err != nil || a.Username != "alice" {
		t.Fatalf("after reopening: %+v, %v", a, err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var applied int
	if err := db.QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 || applied != len(files) {
		t.Errorf("schema_migrations has %d rows for %d migration files", applied, len(files))
	}
}

func TestOpenBadDSN(t *testing.T) {
	if _, err := postgres.Open(context.Background(), "host=/nonexistent-keystep-socket-dir user=nobody dbname=none connect_timeout=2"); err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
}

func BenchmarkSignInStoreOps(b *testing.B) {
	storetest.BenchSignIn(b, open(b, pgtest.DSN(b)))
}

func BenchmarkSignInStoreOpsParallel(b *testing.B) {
	storetest.BenchSignInParallel(b, open(b, pgtest.DSN(b)), 8)
}

// BenchmarkDirectoryPage reads and marks a page of 1,000 entries of a
// 100,000-user directory.
func BenchmarkDirectoryPage(b *testing.B) {
	storetest.BenchDirectoryPage(b, open(b, pgtest.DSN(b)), 100000)
}
