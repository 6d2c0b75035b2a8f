package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keystep/keystep/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestServeOnPostgres runs the server on PostgreSQL, chosen by the
// environment, and drives it with the admin commands.
func TestServeOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	t.Setenv("KEYSTEP_STORE_DRIVER", "postgres")
	t.Setenv("KEYSTEP_STORE_DSN", dsn)
	t.Setenv("KEYSTEP_ADMIN_TOKEN", "")
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, url := startServe(t, dataDir)
	defer srv.stop(t)
	c := cli{t: t, server: url, tokenFile: filepath.Join(dataDir, "admin-token")}
	c.must(c.admin("user", "add", "erin", "--email", "erin@example.com")...)
	if out := c.must(c.admin("user", "show", "erin")...); !strings.Contains(out, "erin@example.com") {
		t.Errorf("user show:\n%s", out)
	}
	if log := srv.err.String(); !strings.Contains(log, "driver=postgres") {
		t.Errorf("the log does not say the store is PostgreSQL:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "keystep.db")); err == nil {
		t.Error("a SQLite file was made although the store is PostgreSQL")
	}
}

func TestAdminTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin-token")
	tok, created, err := loadOrCreateToken(path)
	if err != nil || !created || len(tok) != 43 {
		t.Fatalf("first start: %q, %v, %v", tok, created, err)
	}
	again, created, err := loadOrCreateToken(path)
	if err != nil || created || again != tok {
		t.Fatalf("second start: %q, %v, %v", again, created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "open to other users") {
		t.Errorf("world-readable token file: %v", err)
	}
	os.Remove(path)
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateToken(path); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short token: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestRedactDSN(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://keystep:s3cret@db.example.com:5432/keystep?sslmode=require": "postgres://keystep:xxxxx@db.example.com:5432/keystep?sslmode=require",
		"postgresql:///keystep?host=/run/pg&password=s3cret":                    "postgresql:///keystep?host=%2Frun%2Fpg&password=xxxxx",
		"host=db user=keystep password=s3cret dbname=keystep":                   "host=db user=keystep password=xxxxx dbname=keystep",
		"host=db password='s3 cr\\'et' dbname=keystep":                          "host=db password=xxxxx dbname=keystep",
	} {
		if got := redactDSN(in); got != want || strings.Contains(got, "s3") {
			t.Errorf("redactDSN(%q) = %q, want %q", in, got, want)
		}
	}
}
