// Package pgtest gives tests a fresh, empty PostgreSQL database.
//
// The server is the one named by the environment variable
// KEYSTEP_TEST_POSTGRES_DSN (its user must be allowed to create databases)
// or, when that is unset, a private cluster that the test binary starts once
// in a temporary directory: initdb and postgres are taken from PATH or
// /usr/lib/postgresql/*/bin, run as the "postgres" user when the tests run as
// root, listen only on a unix socket in that directory, and run with
// fsync=off. A test package that uses DSN must call Main from its TestMain,
// so that the private server is stopped once the tests are done.
//
// When PostgreSQL cannot be found or started, DSN fails the test: it never
// skips.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/keystep/keystep/internal/daemontest"
)

// EnvDSN names the environment variable that points the tests at an
// existing PostgreSQL server instead of a private one.
const EnvDSN = "KEYSTEP_TEST_POSTGRES_DSN"

// startTimeout bounds how long the private server may take to start.
const startTimeout = 2 * time.Minute

var (
	mu      sync.Mutex
	started bool
	srv     *server // nil when EnvDSN is used
	admin   *sql.DB // connected to the server's maintenance database
	adminTo string  // the DSN admin uses
	initErr error
)

// DSN creates a new, empty database on the test server and returns its DSN.
// The database is dropped when the test ends. DSN fails the test if no
// server can be reached or started.
func DSN(t testing.TB) string {
	t.Helper()
	db, base, err := adminDB()
	if err != nil {
		t.Fatalf("pgtest: no PostgreSQL server for the test (set %s to use an existing one): %v", EnvDSN, err)
	}
	name := "keystep_test_" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

// Shutdown stops the shared server and removes its files, for a TestMain
// that cannot hand its m.Run to Main.
func Shutdown() error { return shutdown() }

// Main runs the tests and then stops the private server, if one was
// started, and exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// adminDB returns a connection pool to the server's maintenance database,
// starting the private server the first time if need be.
func adminDB() (*sql.DB, string, error) {
	mu.Lock()
	defer mu.Unlock()
	if !started {
		started = true
		initErr = connect()
	}
	return admin, adminTo, initErr
}

func connect() error {
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		s, err := startServer()
		if err != nil {
			return err
		}
		srv = s
		dsn = s.dsn
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return fmt.Errorf("open %s: %w", redact(dsn), err)
	}
	db.SetMaxOpenConns(4)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return fmt.Errorf("connect to %s: %w", redact(dsn), err)
	}
	admin, adminTo = db, dsn
	return nil
}

// shutdown closes the admin pool and stops the private server.
func shutdown() error {
	mu.Lock()
	defer mu.Unlock()
	var errs []error
	if admin != nil {
		if err := admin.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close admin connection: %w", err))
		}
		admin = nil
	}
	if srv != nil {
		if err := srv.stop(); err != nil {
			errs = append(errs, err)
		}
		srv = nil
	}
	started, initErr = false, nil
	return errors.Join(errs...)
}

// withDatabase returns dsn pointed at database name instead.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvDSN, err)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	// keyword/value: a later keyword overrides an earlier one.
	return strings.TrimSpace(dsn) + " dbname=" + name, nil
}

// redact hides a password in a DSN for error messages.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			return u.String()
		}
		return dsn
	}
	fields := strings.Fields(dsn)
	for i, f := range fields {
		if strings.HasPrefix(f, "password=") {
			fields[i] = "password=xxxxx"
		}
	}
	return strings.Join(fields, " ")
}

func randomSuffix() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("pgtest: random: %v", err)) // crypto/rand does not fail on Linux
	}
	return strconv.Itoa(os.Getpid()) + "_" + hex.EncodeToString(b[:])
}

// server is a private PostgreSQL cluster, child of the test binary.
type server struct {
	dir    string // temporary directory: data/, the socket, owned by the server's user
	dsn    string
	daemon daemontest.Daemon
}

// findBin returns the directory holding initdb and postgres.
func findBin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { // newest major version first
		return version(matches[i]) > version(matches[j])
	})
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("initdb and postgres are neither in PATH nor in /usr/lib/postgresql/*/bin (install PostgreSQL, e.g. apt-get install postgresql)")
}

// version reads the major version out of /usr/lib/postgresql/N/bin/initdb.
func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

// runAs returns the credentials to run PostgreSQL with: none (the current
// user) unless the tests run as root, which PostgreSQL refuses; then the
// "postgres" user's.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user postgres: gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func startServer() (_ *server, err error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	base := os.TempDir()
	if cred != nil {
		base = "/tmp" // reachable by the postgres user, unlike a TMPDIR under /root
	}
	dir, err := os.MkdirTemp(base, "keystep-pg-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	if len(dir) > 80 { // a unix socket path must fit in 107 bytes
		return nil, fmt.Errorf("temporary directory %q is too long for a unix socket path; set TMPDIR", dir)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("hand %s to the postgres user: %w", dir, err)
		}
	}
	data := filepath.Join(dir, "data")

	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Dir = dir
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb (%s): %w\n%s", bin, err, out)
	}

	s := &server{
		dir: dir,
		dsn: fmt.Sprintf("host=%s port=5432 user=postgres dbname=postgres sslmode=disable", dir),
	}
	err = s.daemon.Start(daemontest.Spec{
		Name: "postgres",
		Path: filepath.Join(bin, "postgres"),
		Args: []string{"-D", data, "-k", dir, "-p", "5432",
			"-c", "listen_addresses=",
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=300",
			"-c", "shared_buffers=64MB",
			"-c", "lc_messages=C",
			"-c", "logging_collector=off",
			"-c", "log_min_error_statement=panic",
		},
		Dir:       dir,
		Env:       append(os.Environ(), "LC_ALL=C"),
		Log:       daemontest.NewLog(64 << 10),
		ReadyLine: "database system is ready to accept connections",
		Timeout:   startTimeout,
		// Should the test binary die without Main's cleanup, the server gets
		// SIGQUIT (immediate shutdown) instead of living on.
		DeathSignal: syscall.SIGQUIT,
		Credential:  cred,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// stop shuts the server down (fast shutdown) and removes its directory.
func (s *server) stop() error {
	s.daemon.Stop(syscall.SIGINT, time.Minute)
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove %s: %w", s.dir, err)
	}
	return nil
}
