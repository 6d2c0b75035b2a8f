// Package smtptest runs a real SMTP server for tests: aiosmtpd, driven by the
// small Python script smtpd.py embedded in this package.
//
// Start launches one server per test on 127.0.0.1 at a free port. It offers
// STARTTLS with a certificate made for the test (its CA is in Server.CAPool),
// refuses mail before STARTTLS, requires AUTH (PLAIN or LOGIN) with the
// Server's Username and Password, and stores each accepted message as a file
// in a maildir-like directory (Server.Dir/new). StartMode runs it with
// implicit TLS or without TLS instead.
//
// The script prints "ready <port>" once it listens and one "stored …" line per
// stored message; the test waits on those lines, never on a timer.
//
// The interpreter is $KEYSTEP_TEST_PYTHON when set, else the first of python3
// on PATH and /usr/bin/python3 that can import aiosmtpd. When none can, Start
// fails the test and says how to install it: it never skips.
package smtptest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/x509"
	_ "embed" // the server script
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/internal/testpki"
)

//go:embed smtpd.py
var script []byte

// EnvPython names the environment variable that chooses the Python
// interpreter, for when the one with aiosmtpd is not python3 on PATH.
const EnvPython = "KEYSTEP_TEST_PYTHON"

// InstallHint says how to get aiosmtpd; it is part of the failure message.
const InstallHint = "install it with `apt-get install -y python3-aiosmtpd` (Debian, as root), " +
	"or `pip install aiosmtpd` for the python3 on PATH, or point " + EnvPython + " at a python3 that has it"

// Timeout bounds each wait: for the server to be ready and for messages.
var Timeout = 30 * time.Second

// Mode is how the server protects connections.
type Mode string

// The modes a server can run in.
const (
	// STARTTLS: plain text until the client issues STARTTLS, which the
	// server requires before anything else; AUTH only after it.
	STARTTLS Mode = "starttls"
	// ImplicitTLS: TLS from the first byte, as on port 465.
	ImplicitTLS Mode = "tls"
	// NoTLS: plain text only; AUTH is still required and allowed in clear.
	NoTLS Mode = "none"
)

// Server is a running SMTP server. It is stopped when the test ends.
type Server struct {
	Host     string         // always "127.0.0.1"
	Port     int            // the port it listens on
	Mode     Mode           // how it protects connections
	Username string         // the one user AUTH accepts
	Password string         // that user's password
	CAPool   *x509.CertPool // holds the CA that signed the server's certificate
	CAFile   string         // the same CA as a PEM file, for configuration files
	Dir      string         // maildir root; messages are files in Dir/new

	t      testing.TB
	events chan struct{} // gets a value after each stored message; 1 deep
	exited chan struct{} // closed when the server's stdout ends

	mu       sync.Mutex
	received []Envelope
	stderr   lockedBuffer
}

// Envelope is what the server knew of one stored message beyond its bytes.
type Envelope struct {
	File     string   `json:"file"`      // name of the file in Dir/new
	MailFrom string   `json:"mail_from"` // MAIL FROM address
	RcptTo   []string `json:"rcpt_tos"`  // RCPT TO addresses
	Login    string   `json:"login"`     // the user that authenticated
	TLS      bool     `json:"tls"`       // whether the message came over TLS
}

// Addr returns host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// Start runs a STARTTLS server for the test. See the package doc.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartMode(t, STARTTLS)
}

// StartMode runs a server in the given mode for the test.
func StartMode(t testing.TB, mode Mode) *Server {
	t.Helper()
	switch mode {
	case STARTTLS, ImplicitTLS, NoTLS:
	default:
		t.Fatalf("smtptest: unknown mode %q", mode)
	}
	python := findPython(t)
	tmp := t.TempDir()
	s := &Server{
		Host:     "127.0.0.1",
		Mode:     mode,
		Username: "keystep-" + randomHex(t, 4),
		Password: randomHex(t, 16),
		Dir:      filepath.Join(tmp, "maildir"),
		t:        t,
		events:   make(chan struct{}, 1),
		exited:   make(chan struct{}),
	}
	scriptPath := filepath.Join(tmp, "smtpd.py")
	if err := os.WriteFile(scriptPath, script, 0o600); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	args := []string{scriptPath, "--host", s.Host, "--mode", string(mode),
		"--maildir", s.Dir, "--username", s.Username}
	if mode != NoTLS {
		ca := testpki.New(t, tmp, "keystep smtptest CA")
		cert := ca.Server(t, "server", "localhost", "127.0.0.1", "::1")
		s.CAPool, s.CAFile = ca.Pool, ca.File
		args = append(args, "--cert", cert.CertFile, "--key", cert.KeyFile)
	}

	cmd := exec.Command(python, args...)
	cmd.Env = append(os.Environ(), "SMTPTEST_PASSWORD="+s.Password, "PYTHONUNBUFFERED=1")
	cmd.Stderr = &s.stderr
	// The script exits when its stdin closes, so it dies with the test
	// binary even when nobody gets to stop it.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("smtptest: start %s: %v", python, err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		<-s.exited // all of stdout is read before Wait closes the pipe
		_ = cmd.Wait()
		if t.Failed() {
			if msg := s.stderr.String(); msg != "" {
				t.Logf("smtptest: server stderr:\n%s", msg)
			}
		}
	})

	ready := make(chan int, 1)
	go s.readEvents(bufio.NewScanner(stdout), ready)
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case s.Port = <-ready:
		return s
	case <-s.exited:
		t.Fatalf("smtptest: the server exited before it was ready: %s", strings.TrimSpace(s.stderr.String()))
	case <-timer.C:
		t.Fatalf("smtptest: the server was not ready after %v: %s", Timeout, strings.TrimSpace(s.stderr.String()))
	}
	return nil
}

// readEvents follows the server's stdout until it ends.
func (s *Server) readEvents(sc *bufio.Scanner, ready chan<- int) {
	defer close(s.exited)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ready "):
			port, err := strconv.Atoi(strings.TrimPrefix(line, "ready "))
			if err == nil {
				ready <- port
			}
		case strings.HasPrefix(line, "stored "):
			var e Envelope
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "stored ")), &e); err != nil {
				fmt.Fprintf(&s.stderr, "smtptest: bad event %q: %v\n", line, err)
				continue
			}
			s.mu.Lock()
			s.received = append(s.received, e)
			s.mu.Unlock()
			select {
			case s.events <- struct{}{}:
			default:
			}
		}
	}
}

// Envelopes returns the envelopes of the messages stored so far, in order.
func (s *Server) Envelopes() []Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Envelope(nil), s.received...)
}

// Messages parses the messages stored so far, in the order they arrived. It
// fails the test when a file cannot be read or parsed, so call it from the
// test's goroutine.
func (s *Server) Messages() []*mail.Message {
	s.t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir, "new"))
	if err != nil {
		s.t.Fatalf("smtptest: %v", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	msgs := make([]*mail.Message, 0, len(names))
	for _, name := range names {
		msgs = append(msgs, s.Message(name))
	}
	return msgs
}

// Message parses one stored message, by its file name in Dir/new (as in
// Envelope.File). It fails the test when the file cannot be read or parsed.
func (s *Server) Message(file string) *mail.Message {
	s.t.Helper()
	raw, err := os.ReadFile(filepath.Join(s.Dir, "new", filepath.Base(file)))
	if err != nil {
		s.t.Fatalf("smtptest: %v", err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		s.t.Fatalf("smtptest: parse %s: %v", file, err)
	}
	return m
}

// WaitMessages waits until the server has stored at least n messages, then
// returns them all as Messages does. It fails the test if they have not
// arrived within Timeout or the server exits first.
func (s *Server) WaitMessages(n int) []*mail.Message {
	s.t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		got := len(s.received)
		s.mu.Unlock()
		if got >= n {
			return s.Messages()
		}
		select {
		case <-s.events:
		case <-s.exited:
			s.t.Fatalf("smtptest: the server exited after storing %d of %d messages: %s", got, n, strings.TrimSpace(s.stderr.String()))
		case <-timer.C:
			s.t.Fatalf("smtptest: %d of %d messages stored after %v", got, n, Timeout)
		}
	}
}

var (
	pythonOnce sync.Once
	pythonPath string
	pythonErr  error
)

// findPython returns an interpreter that can import aiosmtpd, or fails t.
func findPython(t testing.TB) string {
	t.Helper()
	pythonOnce.Do(func() {
		var candidates []string
		if p := os.Getenv(EnvPython); p != "" {
			candidates = []string{p}
		} else {
			candidates = []string{"python3", "/usr/bin/python3"}
		}
		var tried []string
		for _, c := range candidates {
			p, err := exec.LookPath(c)
			if err != nil {
				tried = append(tried, fmt.Sprintf("%s: not found", c))
				continue
			}
			out, err := exec.Command(p, "-c", "import aiosmtpd").CombinedOutput()
			if err != nil {
				tried = append(tried, fmt.Sprintf("%s: %s", p, lastLine(out, err)))
				continue
			}
			pythonPath = p
			return
		}
		pythonErr = fmt.Errorf("no python3 that can import aiosmtpd (%s)", strings.Join(tried, "; "))
	})
	if pythonErr != nil {
		t.Fatalf("smtptest: %v: %s", pythonErr, InstallHint)
	}
	return pythonPath
}

func lastLine(out []byte, err error) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if l := strings.TrimSpace(lines[len(lines)-1]); l != "" {
		return l
	}
	return err.Error()
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("smtptest: %v", err)
	}
	return hex.EncodeToString(b)
}

// lockedBuffer is a bytes.Buffer safe for the process's writer and readers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
