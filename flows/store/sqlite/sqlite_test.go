package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/flows/store/sqlstore"
	"github.com/keystep/keystep/flows/storetest"
)

func open(t testing.TB, path string) flows.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
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
	storetest.Run(t, func(t *testing.T) flows.Store {
		return open(t, filepath.Join(t.TempDir(), "keystep.db"))
	})
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keystep")
	path := filepath.Join(dir, "keystep.db")
	open(t, path)
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Dir(dir): 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %o, want %o", p, got, want)
		}
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "keystep.db"))
	db := s.(*sqlstore.Store).DB()
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"synchronous":  "1", // NORMAL
		"foreign_keys": "1",
		"busy_timeout": "10000",
	} {
		var got string
		if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %q, want %q", pragma, got, want)
		}
	}
}

// TestReopen checks that opening an existing file keeps its data and applies
// no migration twice.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keystep.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, flows.Account{ID: "acc-1", Username: "alice", State: flows.AccountActive}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, path)
	a, err := s2.GetAccount(ctx, "acc-1")
	if err != nil || a.Username != "alice" {
		t.Fatalf("after reopening: %+v, %v", a, err)
	}
	var applied, files int
	if err := s2.(*sqlstore.Store).DB().QueryRow("SELECT COUNT(*) FROM schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	entries, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	files = len(entries)
	if files == 0 || applied != files {
		t.Errorf("schema_migrations has %d rows for %d migration files", applied, files)
	}
}

func BenchmarkSignInStoreOps(b *testing.B) {
	storetest.BenchSignIn(b, open(b, filepath.Join(b.TempDir(), "bench.db")))
}

func BenchmarkSignInStoreOpsParallel(b *testing.B) {
	storetest.BenchSignInParallel(b, open(b, filepath.Join(b.TempDir(), "bench.db")), 8)
}

// BenchmarkDirectoryPage reads and marks a page of 1,000 entries of a
// 100,000-user directory.
func BenchmarkDirectoryPage(b *testing.B) {
	storetest.BenchDirectoryPage(b, open(b, filepath.Join(b.TempDir(), "bench.db")), 100000)
}
