package integration

import (
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keystep/keystep/internal/smtptest"
)

// mailTo waits until the SMTP server holds n messages and returns the last
// one addressed to addr, with its raw body.
func mailTo(t *testing.T, srv *smtptest.Server, n int, addr string) (*mail.Message, string) {
	t.Helper()
	srv.WaitMessages(n)
	envs := srv.Envelopes()
	for i := len(envs) - 1; i >= 0; i-- {
		for _, to := range envs[i].RcptTo {
			if to == addr {
				m := srv.Message(envs[i].File)
				body, err := io.ReadAll(m.Body)
				if err != nil {
					t.Fatal(err)
				}
				return m, string(body)
			}
		}
	}
	t.Fatalf("no message to %s among %d", addr, len(envs))
	return nil, ""
}

var emailCode = regexp.MustCompile(`is: (\d{6,8})`)

// TestFallbacksWithRealSMTP runs keystep against a real SMTP server (aiosmtpd
// over STARTTLS with AUTH): an email code is delivered to the user's mailbox
// and signs in; a fraud report emails the admins; past the push limit the
// step falls back to QR and the admins are told.
func TestFallbacksWithRealSMTP(t *testing.T) {
	smtpSrv := smtptest.Start(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(pwFile, []byte(smtpSrv.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "keystep.yaml")
	cfg := strings.Join([]string{
		"smtp:",
		"  host: " + smtpSrv.Host,
		"  port: " + itoa(smtpSrv.Port),
		"  security: starttls",
		"  username: " + smtpSrv.Username,
		"  password_file: " + pwFile,
		"  from: keystep <keystep@example.com>",
		"  ca_file: " + smtpSrv.CAFile,
		"alerts:",
		"  email_to: [it@example.com]",
		"push:",
		"  limit: 3",
		"  window: 10m",
		"",
	}, "\n")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	w := walk{t: t, srv: startServer(t, "--config", cfgFile), dir: t.TempDir()}
	ok(t, nil, w.admin("user", "add", "alice", "--email", "alice@example.com")...)
	w.enroll("alice", "phone.json")

	// An email code, read from the user's mailbox, signs in.
	s, c := w.signIn("alice", "--method", "email")
	var sent struct{ Event, Channel, To string }
	s.next(&sent)
	if sent.Event != "code_sent" || sent.Channel != "email" || strings.Contains(sent.To, "alice@") {
		t.Fatalf("code sent line %+v (the address must be masked)", sent)
	}
	msg, body := mailTo(t, smtpSrv, 1, "alice@example.com")
	if !strings.HasPrefix(msg.Header.Get("Subject"), "Your code to sign in") {
		t.Fatalf("code email subject %q", msg.Header.Get("Subject"))
	}
	m := emailCode.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no code in the email:\n%s", body)
	}
	if _, err := io.WriteString(s.stdin, m[1]+"\n"); err != nil {
		t.Fatal(err)
	}
	if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
		t.Fatalf("email code: %+v, exit %d; stderr %s", o, code, s.errb.String())
	}

	// "I did not start this" emails IT at once. (Push 1 of 3.)
	s, c = w.signIn("alice")
	ok(t, nil, w.device("phone.json", "deny", c.ID, "--report")...)
	if o, code := w.outcome(s); o.Status != "denied" || code == 0 {
		t.Fatalf("deny with report: %+v, exit %d", o, code)
	}
	alertMsg, alertBody := mailTo(t, smtpSrv, 2, "it@example.com")
	if subj := alertMsg.Header.Get("Subject"); !strings.Contains(subj, "alice") || !strings.Contains(alertBody, "did not start") {
		t.Fatalf("fraud alert: subject %q body\n%s", subj, alertBody)
	}

	// Pushes 2 and 3 go out; the 4th is suppressed: the step offers QR and IT is told.
	for range 2 {
		s, c = w.signIn("alice")
		if c.Number == "" {
			t.Fatalf("push suppressed too early: %+v", c)
		}
		ok(t, nil, w.device("phone.json", "approve", c.ID, "--number", c.Number)...)
		if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
			t.Fatalf("approve: %+v, exit %d", o, code)
		}
	}
	s, c = w.signIn("alice")
	if c.Number != "" || c.QRPayload == "" {
		t.Fatalf("past the push limit the challenge must offer QR only: %+v", c)
	}
	var pend pendingList
	ok(t, &pend, w.device("phone.json", "pending")...)
	if len(pend.Requests) != 0 {
		t.Fatalf("a push went out past the limit: %+v", pend)
	}
	ok(t, nil, w.device("phone.json", "scan", c.QRPayload)...)
	if o, code := w.outcome(s); o.Status != "approved" || code != 0 {
		t.Fatalf("QR after the push limit: %+v, exit %d", o, code)
	}
	limitMsg, _ := mailTo(t, smtpSrv, 3, "it@example.com")
	if subj := limitMsg.Header.Get("Subject"); !strings.Contains(subj, "too many sign-in requests") {
		t.Fatalf("push limit alert subject %q", subj)
	}
}
