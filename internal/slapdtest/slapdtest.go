// Package slapdtest runs a real OpenLDAP slapd for a test.
//
// Start writes a slapd.conf into a t.TempDir(), loads the base entries (and
// any the test asks for) with slapadd, and runs slapd in the foreground as a
// child of the test binary on two free loopback ports: one for ldap:// (with
// StartTLS) and one for ldaps://. The server is killed when the test ends.
//
// The directory has one mdb database for BaseDN (dc=example,dc=org) with
// the syncprov (session log and checkpoint), ppolicy and memberof overlays:
//
//   - ou=people, ou=staff (for moves), ou=groups and ou=policies, whose
//     cn=default is the default password policy: pwdLockout TRUE,
//     pwdMaxFailure MaxFailure, pwdLockoutDuration LockoutDuration.
//   - AdminDN, the rootdn, with Server.AdminPassword.
//   - SyncDN, a service account that reads everything under BaseDN,
//     operational attributes such as entryUUID, entryCSN, memberOf and
//     pwdAccountLockedTime included, but not userPassword. It binds with
//     Server.SyncPassword, or with SASL EXTERNAL over TLS using
//     Server.ClientCert (subject ClientCertSubject), which authz-regexp
//     maps to SyncDN.
//   - Anonymous clients read the root DSE and the schema, nothing else.
//   - groupOfNames/member is mirrored in memberOf (with refint, so moving or
//     deleting a user updates its groups).
//
// TLS uses a CA made for the server (Server.CAPool, CAPEM, CAFile); the
// server certificate names 127.0.0.1 and localhost. slapd asks for, but
// does not require, a client certificate.
//
// Start waits for slapd's "slapd starting" line on its stderr, then for its
// listeners to accept connections (slapd calls listen() just after it prints
// that line). The binaries are taken from PATH and /usr/sbin; when slapd or
// slapadd is missing Start fails the test (it never skips): install the
// Debian packages slapd and ldap-utils.
//
// Entries loaded with Options.LDIF or Options.LDIFFile go through slapadd,
// which does not run overlays: it sets entryUUID, entryCSN and the
// timestamps, but memberOf is not derived from the groups it loads. Add
// groups with AddGroup once the server runs, or write memberOf into the LDIF.
//
// What a syncrepl (RFC 4533) consumer sees, as tested here with slapd 2.5:
//
//   - Cookies look like "rid=000,csn=<entryCSN>"; syncprov checkpoints the
//     contextCSN after every write, so a cookie stays valid across Stop,
//     Kill and Restart.
//   - The session log is in memory. A refresh from a cookie whose changes
//     are all in it gets the changed entries and, for deletes, a syncIdSet
//     with refreshDeletes=TRUE listing the deleted entryUUIDs. After a
//     restart, changes made before it come instead with a present phase: a
//     syncIdSet with refreshDeletes=FALSE listing every unchanged entry's
//     entryUUID, plus the changed entries; the consumer deletes what was
//     not listed.
//   - memberOf changes that the memberof overlay makes on a member (group
//     add, member add or remove) do not change the member's entryCSN and
//     are not sent to consumers: follow the groups' member attribute.
package slapdtest

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/daemontest"
	"github.com/keystep/keystep/internal/ldaptest"
	"github.com/keystep/keystep/internal/testpki"
)

// Timeout bounds each wait: for slapadd, for slapd to be ready and for it to
// exit after a signal.
var Timeout = 2 * time.Minute

// InstallHint says how to get the binaries; it is part of failure messages.
const InstallHint = "install the Debian packages slapd and ldap-utils (apt-get install -y slapd ldap-utils)"

// Options tunes Start. The zero value is a directory with only the base
// entries.
type Options struct {
	// LDIF holds extra entries, loaded with slapadd -q before slapd
	// starts (after the base entries). See UsersLDIF.
	LDIF string
	// LDIFFile names an LDIF file loaded the same way, after LDIF.
	LDIFFile string
	// LogLevel is slapd's -d level. The default, "stats", logs every
	// operation; "none" logs only startup, shutdown and errors, for
	// benchmarks.
	LogLevel string
}

// Server is a running slapd. Its fields are not to be changed.
type Server struct {
	URL      string // ldap://127.0.0.1:PORT, plain LDAP with StartTLS
	LDAPSURL string // ldaps://127.0.0.1:PORT
	Host     string // "127.0.0.1"; also the name in the server certificate
	BaseDN   string // BaseDN

	AdminDN       string // AdminDN, the rootdn
	AdminPassword string
	SyncDN        string // SyncDN, the sync service account
	SyncPassword  string

	CAPool     *x509.CertPool  // holds the CA that signed the server and client certificates
	CAPEM      []byte          // that CA in PEM
	CAFile     string          // that CA as a PEM file
	ClientCert tls.Certificate // subject ClientCertSubject; SASL EXTERNAL maps it to SyncDN
	// ClientCertFile and ClientKeyFile hold ClientCert in PEM, for
	// configuration files.
	ClientCertFile, ClientKeyFile string

	Dir string // the server's directory: slapd.conf, db/, the PEM files

	spec   daemontest.Spec // how to run slapd, on the ports of URL and LDAPSURL
	log    *daemontest.Log
	daemon daemontest.Daemon
}

// Start runs a slapd for the test. See the package doc and Options.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	slapd, slapadd := findBinaries(t)
	dir := t.TempDir()
	ca := testpki.New(t, dir, "keystep slapdtest CA")
	serverCert := ca.Server(t, "server", "127.0.0.1", "localhost", "::1")
	clientCert := ca.Client(t, "client", clientCertCN)
	s := &Server{
		Host:           "127.0.0.1",
		BaseDN:         BaseDN,
		AdminDN:        AdminDN,
		AdminPassword:  "admin-" + rand.Text(),
		SyncDN:         SyncDN,
		SyncPassword:   "sync-" + rand.Text(),
		CAPool:         ca.Pool,
		CAPEM:          ca.PEM,
		CAFile:         ca.File,
		ClientCert:     clientCert.TLS,
		ClientCertFile: clientCert.CertFile,
		ClientKeyFile:  clientCert.KeyFile,
		Dir:            dir,
		log:            daemontest.NewLog(256 << 10),
	}
	confFile := filepath.Join(dir, "slapd.conf")
	dbDir := filepath.Join(dir, "db")
	if err := os.Mkdir(dbDir, 0o700); err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	var conf bytes.Buffer
	if err := writeConf(&conf, confData{
		Dir: dir, DBDir: dbDir,
		CAFile: ca.File, CertFile: serverCert.CertFile, KeyFile: serverCert.KeyFile,
		AdminPassword: s.AdminPassword,
		BaseDN:        BaseDN, AdminDN: AdminDN, SyncDN: SyncDN,
		DefaultPolicyDN: DefaultPolicyDN,
		ClientSubjectR:  "^" + ClientCertSubject + "$",
	}); err != nil {
		t.Fatalf("slapdtest: slapd.conf: %v", err)
	}
	if err := os.WriteFile(confFile, conf.Bytes(), 0o600); err != nil {
		t.Fatalf("slapdtest: %v", err)
	}

	// Load the entries: the base ones, then opts.LDIF, then opts.LDIFFile,
	// in one slapadd run (-q: quick mode, -w: write the contextCSN).
	readers := []io.Reader{strings.NewReader(baseLDIF(s.SyncPassword))}
	if opts.LDIF != "" {
		readers = append(readers, strings.NewReader(ensureBlankLine(opts.LDIF)))
	}
	if opts.LDIFFile != "" {
		f, err := os.Open(opts.LDIFFile)
		if err != nil {
			t.Fatalf("slapdtest: %v", err)
		}
		defer f.Close()
		readers = append(readers, f)
	}
	add := exec.Command(slapadd, "-q", "-w", "-f", confFile)
	add.Stdin = io.MultiReader(readers...)
	addOut := daemontest.NewLog(64 << 10)
	add.Stdout, add.Stderr = addOut, addOut
	if err := daemontest.Run(add, Timeout); err != nil {
		t.Fatalf("slapdtest: slapadd: %v\n%s", err, addOut.String())
	}

	level := opts.LogLevel
	if level == "" {
		level = "stats"
	}
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("slapdtest: slapd log (tail):\n%s", s.Log())
		}
	})
	// The ports were free when freePorts looked; should another process
	// take one before slapd binds it, try new ones.
	for attempt := 1; ; attempt++ {
		ports := freePorts(t, 2)
		ldapAddr := net.JoinHostPort(s.Host, strconv.Itoa(ports[0]))
		ldapsAddr := net.JoinHostPort(s.Host, strconv.Itoa(ports[1]))
		s.URL, s.LDAPSURL = "ldap://"+ldapAddr, "ldaps://"+ldapsAddr
		s.spec = daemontest.Spec{
			Name: "slapd",
			Path: slapd,
			Args: []string{"-f", confFile, "-h", s.URL + "/ " + s.LDAPSURL + "/", "-d", level},
			Dir:  dir,
			Log:  s.log,
			// slapd prints this just before its listener threads call
			// listen(), and nothing after it: probe the ports too.
			ReadyLine: "slapd starting",
			Listen:    []string{ldapAddr, ldapsAddr},
		}
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			t.Fatalf("slapdtest: %v", err)
		}
	}
}

// ensureBlankLine makes sure the LDIF ends with an empty line, so that the
// next one starts a new entry.
func ensureBlankLine(s string) string {
	switch {
	case strings.HasSuffix(s, "\n\n"):
		return s
	case strings.HasSuffix(s, "\n"):
		return s + "\n"
	default:
		return s + "\n\n"
	}
}

// start runs slapd and waits until it accepts connections on both ports.
func (s *Server) start() error {
	spec := s.spec
	spec.Timeout = Timeout
	return s.daemon.Start(spec)
}

// PID returns the process ID of the running slapd, or 0 when it is not
// running.
func (s *Server) PID() int { return s.daemon.PID() }

// Running reports whether slapd runs (it has been started and has not been
// stopped or killed, nor exited on its own).
func (s *Server) Running() bool { return s.daemon.Running() }

// Kill sends slapd SIGKILL and waits for it to exit. It does nothing when
// slapd is not running. The database survives (mdb is crash-safe), as does
// the contextCSN, which syncprov checkpoints after every write.
func (s *Server) Kill() { s.daemon.Stop(syscall.SIGKILL, Timeout) }

// Stop sends slapd SIGTERM and waits for it to shut down; it kills slapd if
// that takes longer than Timeout. It does nothing when slapd is not running.
func (s *Server) Stop() { s.daemon.Stop(syscall.SIGTERM, Timeout) }

// Restart stops slapd (SIGTERM) if it runs and starts it again on the same
// ports with the same database, so syncrepl cookies stay valid. It fails
// the test if slapd does not come back.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("slapdtest: restart: %v", err)
	}
}

// Log returns the tail of slapd's stderr (its debug log, at Options.LogLevel)
// across every start, for failure messages.
func (s *Server) Log() string { return s.log.String() }

// TLSConfig returns a client TLS configuration that trusts the server's CA,
// for ldaps:// and StartTLS, without a client certificate.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CAPool, ServerName: s.Host, MinVersion: tls.VersionTLS12}
}

// ClientTLSConfig is TLSConfig with ClientCert, for SASL EXTERNAL.
func (s *Server) ClientTLSConfig() *tls.Config {
	c := s.TLSConfig()
	c.Certificates = []tls.Certificate{s.ClientCert}
	return c
}

// Dial connects to URL and starts TLS with TLSConfig, without binding. The
// connection is closed when the test ends.
func (s *Server) Dial(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("slapdtest: dial %s: %v", s.URL, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("slapdtest: StartTLS: %v", err)
	}
	return c
}

// Conn returns a connection bound as AdminDN over StartTLS. It is closed
// when the test ends.
func (s *Server) Conn(t testing.TB) *ldap.Conn {
	t.Helper()
	return s.ConnAs(t, s.AdminDN, s.AdminPassword)
}

// SyncConn returns a connection bound as SyncDN with SyncPassword over
// StartTLS. It is closed when the test ends.
func (s *Server) SyncConn(t testing.TB) *ldap.Conn {
	t.Helper()
	return s.ConnAs(t, s.SyncDN, s.SyncPassword)
}

// ConnAs returns a connection bound as dn with password over StartTLS. It
// is closed when the test ends.
func (s *Server) ConnAs(t testing.TB, dn, password string) *ldap.Conn {
	t.Helper()
	c := s.Dial(t)
	if err := c.Bind(dn, password); err != nil {
		t.Fatalf("slapdtest: bind as %s: %v", dn, err)
	}
	return c
}

// admin writes and reads as AdminDN over plain LDAP, one connection a call.
func (s *Server) admin() *ldaptest.Admin {
	return &ldaptest.Admin{Name: "slapdtest", URL: s.URL, DN: s.AdminDN, Password: s.AdminPassword}
}

// findBinaries returns the paths of slapd and slapadd, or fails t.
func findBinaries(t testing.TB) (slapd, slapadd string) {
	t.Helper()
	find := func(name string) string {
		p, err := daemontest.LookPath(name, "/usr/sbin", "/usr/local/sbin", "/usr/local/libexec")
		if err != nil {
			t.Fatalf("slapdtest: %v: %s", err, InstallHint)
		}
		return p
	}
	slapd = find("slapd")
	slapadd = find("slapadd")
	for _, m := range []string{"back_mdb", "syncprov", "ppolicy", "memberof"} {
		if _, err := os.Stat("/usr/lib/ldap/" + m + ".so"); err != nil {
			t.Fatalf("slapdtest: slapd module %s missing from /usr/lib/ldap: %s", m, InstallHint)
		}
	}
	return slapd, slapadd
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("slapdtest: find a free port: %v", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
