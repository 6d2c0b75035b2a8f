package smtptest_test

import (
	"crypto/tls"
	"io"
	"net/smtp"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/keystep/keystep/internal/smtptest"
)

func send(t *testing.T, s *smtptest.Server, tlsMode bool, user, pass, body string) error {
	t.Helper()
	cfg := &tls.Config{RootCAs: s.CAPool, ServerName: s.Host}
	var c *smtp.Client
	var err error
	if s.Mode == smtptest.ImplicitTLS {
		conn, err := tls.Dial("tcp", s.Addr(), cfg)
		if err != nil {
			return err
		}
		c, err = smtp.NewClient(conn, s.Host)
		if err != nil {
			return err
		}
	} else {
		c, err = smtp.Dial(s.Addr())
		if err != nil {
			return err
		}
	}
	defer c.Close()
	if tlsMode {
		if err := c.StartTLS(cfg); err != nil {
			return err
		}
	}
	if err := c.Auth(plainAuth{user, pass}); err != nil {
		return err
	}
	if err := c.Mail("from@example.com"); err != nil {
		return err
	}
	if err := c.Rcpt("to@example.com"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// plainAuth is AUTH PLAIN without net/smtp's own checks of TLS and host, so
// that every mode can be tried.
type plainAuth struct{ user, pass string }

func (a plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a plainAuth) Next([]byte, bool) ([]byte, error) { return nil, nil }

func TestStoresMessages(t *testing.T) {
	for _, mode := range []smtptest.Mode{smtptest.STARTTLS, smtptest.ImplicitTLS, smtptest.NoTLS} {
		t.Run(string(mode), func(t *testing.T) {
			s := smtptest.StartMode(t, mode)
			for _, subject := range []string{"one", "two"} {
				body := "From: from@example.com\r\nTo: to@example.com\r\nSubject: " + subject + "\r\n\r\nhello\r\n.dot\r\n"
				if err := send(t, s, mode == smtptest.STARTTLS, s.Username, s.Password, body); err != nil {
					t.Fatalf("send: %v", err)
				}
			}
			msgs := s.WaitMessages(2)
			if len(msgs) != 2 {
				t.Fatalf("got %d messages, want 2", len(msgs))
			}
			for i, want := range []string{"one", "two"} {
				if got := msgs[i].Header.Get("Subject"); got != want {
					t.Errorf("message %d: subject %q, want %q", i, got, want)
				}
				b, _ := io.ReadAll(msgs[i].Body)
				if string(b) != "hello\r\n.dot\r\n" {
					t.Errorf("message %d: body %q", i, b)
				}
			}
			env := s.Envelopes()
			if len(env) != 2 || env[0].MailFrom != "from@example.com" || len(env[0].RcptTo) != 1 ||
				env[0].RcptTo[0] != "to@example.com" || env[0].Login != s.Username || env[0].TLS != (mode != smtptest.NoTLS) {
				t.Errorf("envelopes: %+v", env)
			}
		})
	}
}

func TestRefusesWrongPassword(t *testing.T) {
	s := smtptest.Start(t)
	err := send(t, s, true, s.Username, s.Password+"x", "Subject: x\r\n\r\nx\r\n")
	if err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("send with a wrong password: %v, want a 535 error", err)
	}
}

func TestRefusesMailBeforeSTARTTLS(t *testing.T) {
	s := smtptest.Start(t)
	err := send(t, s, false, s.Username, s.Password, "Subject: x\r\n\r\nx\r\n")
	if err == nil || !strings.Contains(err.Error(), "530") {
		t.Fatalf("send without STARTTLS: %v, want a 530 error", err)
	}
}

// TestFailsWithoutAiosmtpd runs this test binary again with an interpreter
// that does not exist, and checks that Start fails (not skips) and says how
// to install aiosmtpd.
func TestFailsWithoutAiosmtpd(t *testing.T) {
	if os.Getenv("SMTPTEST_CHILD") == "1" {
		smtptest.Start(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailsWithoutAiosmtpd$", "-test.v")
	cmd.Env = append(os.Environ(), "SMTPTEST_CHILD=1", smtptest.EnvPython+"=/nonexistent/python3")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("Start without aiosmtpd did not fail:\n%s", out)
	}
	for _, want := range []string{"--- FAIL", "apt-get install -y python3-aiosmtpd"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Errorf("Start skipped:\n%s", out)
	}
}
