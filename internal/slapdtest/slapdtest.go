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
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
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

	confFile string
	args     []string
	log      *tailBuffer

	mu   sync.Mutex
	proc *process // the running slapd, or nil
}

// process is one run of slapd.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once slapd has exited and its stderr is read
}

// Start runs a slapd for the test. See the package doc and Options.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	slapd, slapadd := findBinaries(t)
	dir := t.TempDir()
	p, err := newPKI(dir)
	if err != nil {
		t.Fatalf("slapdtest: make certificates: %v", err)
	}
	ports := freePorts(t, 2)
	s := &Server{
		URL:            "ldap://127.0.0.1:" + strconv.Itoa(ports[0]),
		LDAPSURL:       "ldaps://127.0.0.1:" + strconv.Itoa(ports[1]),
		Host:           "127.0.0.1",
		BaseDN:         BaseDN,
		AdminDN:        AdminDN,
		AdminPassword:  "admin-" + randomHex(t, 12),
		SyncDN:         SyncDN,
		SyncPassword:   "sync-" + randomHex(t, 12),
		CAPool:         p.caPool,
		CAPEM:          p.caPEM,
		CAFile:         p.caFile,
		ClientCert:     p.clientCert,
		ClientCertFile: p.clientCertFile,
		ClientKeyFile:  p.clientKeyFile,
		Dir:            dir,
		confFile:       filepath.Join(dir, "slapd.conf"),
		log:            &tailBuffer{max: 256 << 10},
	}
	dbDir := filepath.Join(dir, "db")
	if err := os.Mkdir(dbDir, 0o700); err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	var conf bytes.Buffer
	if err := writeConf(&conf, confData{
		Dir: dir, DBDir: dbDir,
		CAFile: p.caFile, CertFile: p.serverCertFile, KeyFile: p.serverKeyFile,
		AdminPassword: s.AdminPassword,
		BaseDN:        BaseDN, AdminDN: AdminDN, SyncDN: SyncDN,
		DefaultPolicyDN: DefaultPolicyDN,
		ClientSubjectR:  "^" + ClientCertSubject + "$",
	}); err != nil {
		t.Fatalf("slapdtest: slapd.conf: %v", err)
	}
	if err := os.WriteFile(s.confFile, conf.Bytes(), 0o600); err != nil {
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
	add := exec.Command(slapadd, "-q", "-w", "-f", s.confFile)
	add.Stdin = io.MultiReader(readers...)
	var addOut tailBuffer
	addOut.max = 64 << 10
	add.Stdout, add.Stderr = &addOut, &addOut
	if err := runBounded(add, Timeout); err != nil {
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
		s.args = []string{slapd, "-f", s.confFile, "-h", s.URL + "/ " + s.LDAPSURL + "/", "-d", level}
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 3 || !strings.Contains(err.Error(), "Address already in use") {
			t.Fatalf("slapdtest: %v", err)
		}
		ports = freePorts(t, 2)
		s.URL = "ldap://127.0.0.1:" + strconv.Itoa(ports[0])
		s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(ports[1])
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("slapd is already running")
	}
	cmd := exec.Command(s.args[0], s.args[1:]...)
	cmd.Dir = s.Dir
	// Should the test binary die without its cleanups, slapd dies too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = s.log
	// Pdeathsig follows the thread that started the child; keep it on one
	// the runtime will not retire while the child starts.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return fmt.Errorf("start slapd: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go s.watch(p, stderr, ready)

	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case <-ready:
	case <-p.done:
		return fmt.Errorf("slapd exited before it was ready (%v):\n%s", cmd.ProcessState, s.log.String())
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("slapd not ready after %v:\n%s", Timeout, s.log.String())
	}
	// slapd prints "slapd starting" just before its listener threads call
	// listen(); no line follows that, so probe the ports.
	deadline := time.Now().Add(Timeout)
	for _, u := range []string{s.URL, s.LDAPSURL} {
		addr := strings.TrimPrefix(strings.TrimPrefix(u, "ldaps://"), "ldap://")
		if err := waitListening(addr, deadline, p.done); err != nil {
			_ = cmd.Process.Kill()
			<-p.done
			return fmt.Errorf("slapd: %s: %v\n%s", u, err, s.log.String())
		}
	}
	s.proc = p
	return nil
}

// waitListening connects to addr until it succeeds, the deadline passes or
// exited is closed, with a short backoff between tries.
func waitListening(addr string, deadline time.Time, exited <-chan struct{}) error {
	backoff := 2 * time.Millisecond
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections: %w", err)
		}
		timer := time.NewTimer(backoff)
		select {
		case <-exited:
			timer.Stop()
			return errors.New("slapd exited")
		case <-timer.C:
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// watch copies slapd's stderr into the log, closes ready at "slapd
// starting", and closes p.done once slapd has exited.
func (s *Server) watch(p *process, stderr io.Reader, ready chan struct{}) {
	const readyLine = "slapd starting"
	var line []byte
	signalled := false
	buf := make([]byte, 32<<10)
	for {
		n, err := stderr.Read(buf)
		chunk := buf[:n]
		_, _ = s.log.Write(chunk)
		if !signalled {
			line = append(line, chunk...)
			if bytes.Contains(line, []byte(readyLine)) {
				signalled = true
				close(ready)
				line = nil
			} else if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
				line = append(line[:0], line[i+1:]...) // keep only the unfinished line
			}
		}
		if err != nil {
			break
		}
	}
	_ = p.cmd.Wait()
	close(p.done)
}

// PID returns the process ID of the running slapd, or 0 when it is not
// running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.cmd.Process.Pid
}

// Running reports whether slapd runs (it has been started and has not been
// stopped or killed, nor exited on its own).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.done:
		return false
	default:
		return true
	}
}

// Kill sends slapd SIGKILL and waits for it to exit. It does nothing when
// slapd is not running. The database survives (mdb is crash-safe), as does
// the contextCSN, which syncprov checkpoints after every write.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

// Stop sends slapd SIGTERM and waits for it to shut down; it kills slapd if
// that takes longer than Timeout. It does nothing when slapd is not running.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.proc
	if p == nil {
		return
	}
	s.proc = nil
	_ = p.cmd.Process.Signal(sig)
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

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

// admin opens a plain-LDAP admin connection for one helper call; the
// caller closes it.
func (s *Server) admin(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("slapdtest: dial %s: %v", s.URL, err)
	}
	if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
		_ = c.Close()
		t.Fatalf("slapdtest: bind as %s: %v", s.AdminDN, err)
	}
	return c
}

// findBinaries returns the paths of slapd and slapadd, or fails t.
func findBinaries(t testing.TB) (slapd, slapadd string) {
	t.Helper()
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/usr/local/libexec"} {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p
			}
		}
		t.Fatalf("slapdtest: %s not found in PATH or /usr/sbin: %s", name, InstallHint)
		return ""
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

// runBounded runs cmd, killing it if it takes longer than d.
func runBounded(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("killed after %v", d)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("slapdtest: random: %v", err)
	}
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max { // trim now and then, not on every write
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.b) > t.max {
		return string(t.b[len(t.b)-t.max:])
	}
	return string(t.b)
}
