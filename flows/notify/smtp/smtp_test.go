package smtp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/textproto"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/notify/smtp"
	"github.com/keystep/keystep/internal/smtptest"
)

var now = time.Date(2026, 3, 14, 15, 9, 26, 0, time.FixedZone("CET", 3600))

// config returns a Config that reaches srv with its credentials and CA.
func config(srv *smtptest.Server) smtp.Config {
	security := map[smtptest.Mode]string{
		smtptest.STARTTLS:    smtp.SecuritySTARTTLS,
		smtptest.ImplicitTLS: smtp.SecurityTLS,
		smtptest.NoTLS:       smtp.SecurityNone,
	}[srv.Mode]
	return smtp.Config{
		Host:      srv.Host,
		Port:      srv.Port,
		Security:  security,
		Username:  srv.Username,
		Password:  srv.Password,
		From:      "Keystep <no-reply@keystep.example>",
		HeloName:  "keystep.test",
		TLSConfig: &tls.Config{RootCAs: srv.CAPool},
		Clock:     clocktest.New(now),
	}
}

func newSender(t *testing.T, cfg smtp.Config) *smtp.Sender {
	t.Helper()
	s, err := smtp.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// crlf is what a text body becomes on the wire: every line break CRLF.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func TestSendsMultipartOverSTARTTLS(t *testing.T) {
	srv := smtptest.Start(t)
	s := newSender(t, config(srv))
	email := flows.Email{
		To:      "Zoë Ångström <zoe@example.org>",
		Subject: "Votre code de connexion : 428 913 — “keystep”",
		Text:    "Bonjour Zoë,\n\nVotre code : 428913\nIl expire dans 5 minutes.\n.\nA line that is long enough to need a soft line break in quoted-printable, because it is over seventy-six characters.\n",
		HTML:    "<p>Bonjour Zoë,</p>\n<p>Votre code : <b>428913</b> = “valid”</p>",
	}
	if err := s.SendEmail(context.Background(), email); err != nil {
		t.Fatalf("SendEmail: %v", err)
	}
	msgs := srv.WaitMessages(1)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages, want 1", len(msgs))
	}
	m := msgs[0]

	env := srv.Envelopes()[0]
	if env.MailFrom != "no-reply@keystep.example" || len(env.RcptTo) != 1 || env.RcptTo[0] != "zoe@example.org" {
		t.Errorf("envelope from %q to %q", env.MailFrom, env.RcptTo)
	}
	if env.Login != srv.Username || !env.TLS {
		t.Errorf("envelope login %q, tls %v; want %q over TLS", env.Login, env.TLS, srv.Username)
	}

	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != email.Subject {
		t.Errorf("subject %q (%v), want %q", subject, err, email.Subject)
	}
	if raw := m.Header.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") {
		t.Errorf("raw subject %q is not Q-encoded", raw)
	}
	from, err := m.Header.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Keystep" || from[0].Address != "no-reply@keystep.example" {
		t.Errorf("From %v (%v)", from, err)
	}
	to, err := m.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != "Zoë Ångström" || to[0].Address != "zoe@example.org" {
		t.Errorf("To %v (%v)", to, err)
	}
	date, err := m.Header.Date()
	if err != nil || !date.Equal(now) {
		t.Errorf("Date %v (%v), want %v", date, err, now)
	}
	if id := m.Header.Get("Message-ID"); !regexp.MustCompile(`^<[0-9a-f]{32}@keystep\.example>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	if v := m.Header.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version %q", v)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q (%v)", m.Header.Get("Content-Type"), err)
	}

	mr := multipart.NewReader(m.Body, params["boundary"])
	for i, want := range []struct{ typ, body string }{
		{"text/plain", email.Text},
		{"text/html", email.HTML},
	} {
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		pt, pp, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil || pt != want.typ || pp["charset"] != "utf-8" {
			t.Errorf("part %d: Content-Type %q", i, p.Header.Get("Content-Type"))
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part %d: Content-Transfer-Encoding %q", i, cte)
		}
		raw, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		for _, line := range strings.Split(string(raw), "\r\n") {
			if len(line) > 76 {
				t.Errorf("part %d: encoded line of %d characters: %q", i, len(line), line)
			}
		}
		body, err := io.ReadAll(newQPReader(raw))
		if err != nil {
			t.Fatalf("part %d: decode: %v", i, err)
		}
		if string(body) != crlf(want.body) {
			t.Errorf("part %d: body\n%q\nwant\n%q", i, body, crlf(want.body))
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Errorf("after two parts: %v, want EOF", err)
	}
}

func TestSendsTextOnly(t *testing.T) {
	srv := smtptest.Start(t)
	s := newSender(t, config(srv))
	email := flows.Email{To: "ops@example.org", Subject: "keystep: directory sync failed", Text: "The sync of ou=people failed at 03:00.\nNo line break at the end"}
	if err := s.SendEmail(context.Background(), email); err != nil {
		t.Fatalf("SendEmail: %v", err)
	}
	m := srv.WaitMessages(1)[0]
	if got := m.Header.Get("Subject"); got != email.Subject {
		t.Errorf("subject %q, want it as is: %q", got, email.Subject)
	}
	if ct := m.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	raw, _ := io.ReadAll(m.Body)
	body, err := io.ReadAll(newQPReader(raw))
	if err != nil || string(body) != crlf(email.Text) {
		t.Errorf("body %q (%v), want %q", body, err, crlf(email.Text))
	}
}

func TestSendsOverImplicitTLSAndLoopbackClearText(t *testing.T) {
	for _, mode := range []smtptest.Mode{smtptest.ImplicitTLS, smtptest.NoTLS} {
		t.Run(string(mode), func(t *testing.T) {
			srv := smtptest.StartMode(t, mode)
			s := newSender(t, config(srv))
			if err := s.SendEmail(context.Background(), flows.Email{To: "ann@example.org", Subject: "hi", Text: "hello", HTML: "<p>hello</p>"}); err != nil {
				t.Fatalf("SendEmail: %v", err)
			}
			srv.WaitMessages(1)
			if env := srv.Envelopes()[0]; env.TLS != (mode == smtptest.ImplicitTLS) || env.Login != srv.Username {
				t.Errorf("envelope %+v", env)
			}
		})
	}
}

func TestWrongPasswordFails(t *testing.T) {
	srv := smtptest.Start(t)
	cfg := config(srv)
	cfg.Password = "not-" + srv.Password
	s := newSender(t, cfg)
	err := s.SendEmail(context.Background(), flows.Email{To: "ann@example.org", Subject: "hi", Text: "hello"})
	if err == nil {
		t.Fatal("SendEmail with a wrong password succeeded")
	}
	for _, want := range []string{"smtp: send to ann@example.org", "authenticate as", "535"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), cfg.Password) {
		t.Errorf("error %q shows the password", err)
	}
	if n := len(srv.Envelopes()); n != 0 {
		t.Errorf("%d messages stored", n)
	}
}

func TestRefusesServerWithoutSTARTTLS(t *testing.T) {
	srv := smtptest.StartMode(t, smtptest.NoTLS)
	cfg := config(srv)
	cfg.Security = smtp.SecuritySTARTTLS
	err := newSender(t, cfg).SendEmail(context.Background(), flows.Email{To: "ann@example.org", Subject: "hi", Text: "hello"})
	if err == nil || !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Fatalf("SendEmail to a server without STARTTLS: %v", err)
	}
}

func TestRefusesUntrustedCertificate(t *testing.T) {
	srv := smtptest.Start(t)
	cfg := config(srv)
	cfg.TLSConfig = nil
	err := newSender(t, cfg).SendEmail(context.Background(), flows.Email{To: "ann@example.org", Subject: "hi", Text: "hello"})
	var uerr x509UnknownAuthority
	if err == nil || !errors.As(err, &uerr) {
		t.Fatalf("SendEmail to a server with an unknown CA: %v", err)
	}
	if !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("error %q does not say it failed at STARTTLS", err)
	}
}

func TestNewValidates(t *testing.T) {
	good := smtp.Config{Host: "smtp.example.com", From: "no-reply@example.com", Username: "u", Password: "p"}
	if _, err := smtp.New(good); err != nil {
		t.Fatalf("New(%+v): %v", good, err)
	}
	for _, loop := range []string{"127.0.0.1", "::1", "localhost", "LOCALHOST."} {
		cfg := good
		cfg.Host, cfg.Security = loop, smtp.SecurityNone
		if _, err := smtp.New(cfg); err != nil {
			t.Errorf("security none to %s: %v", loop, err)
		}
	}
	for _, tc := range []struct {
		name string
		edit func(*smtp.Config)
		want string
	}{
		{"none to a remote host", func(c *smtp.Config) { c.Security = smtp.SecurityNone }, "only allowed to a loopback host"},
		{"none to a private IP", func(c *smtp.Config) { c.Host, c.Security = "10.0.0.1", smtp.SecurityNone }, "only allowed to a loopback host"},
		{"none to a name under localhost's domain", func(c *smtp.Config) { c.Host, c.Security = "localhost.example.com", smtp.SecurityNone }, "only allowed to a loopback host"},
		{"no host", func(c *smtp.Config) { c.Host = "" }, "host is required"},
		{"host with port", func(c *smtp.Config) { c.Host = "smtp.example.com:587" }, "without port"},
		{"bracketed host", func(c *smtp.Config) { c.Host = "[::1]" }, "without port or brackets"},
		{"unknown security", func(c *smtp.Config) { c.Security = "ssl" }, `security "ssl" must be`},
		{"bad port", func(c *smtp.Config) { c.Port = 70000 }, "port 70000"},
		{"password without user", func(c *smtp.Config) { c.Username = "" }, "password is set without a username"},
		{"user without password", func(c *smtp.Config) { c.Password = "" }, "username is set without a password"},
		{"NUL in password", func(c *smtp.Config) { c.Password = "a\x00b" }, "must not hold NUL"},
		{"no from", func(c *smtp.Config) { c.From = "" }, "from address is required"},
		{"bad from", func(c *smtp.Config) { c.From = "not an address" }, "from address"},
		{"from with line break", func(c *smtp.Config) { c.From = "a@example.com\r\nBcc: x@example.com" }, "line breaks"},
		{"two froms", func(c *smtp.Config) { c.From = "a@example.com, b@example.com" }, "from address"},
		{"bad helo", func(c *smtp.Config) { c.HeloName = "a b" }, "helo name"},
		{"negative timeout", func(c *smtp.Config) { c.Timeout = -time.Second }, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := smtp.New(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, flows.ErrInvalid) {
				t.Fatalf("New: %v, want an ErrInvalid saying %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "smtp: config: ") {
				t.Errorf("error %q lacks its context", err)
			}
		})
	}
}

// listener counts the connections made to it.
type listener struct {
	net.Listener
	accepted atomic.Int32
	conns    chan net.Conn
}

func listen(t *testing.T) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{Listener: ln, conns: make(chan net.Conn, 16)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.accepted.Add(1)
			l.conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(l.conns)
		for c := range l.conns {
			c.Close()
		}
	})
	return l
}

func (l *listener) port() int { return l.Addr().(*net.TCPAddr).Port }

func TestRefusesBadInputWithoutConnecting(t *testing.T) {
	l := listen(t)
	s := newSender(t, smtp.Config{Host: "127.0.0.1", Port: l.port(), From: "no-reply@example.com"})
	ok := flows.Email{To: "ann@example.org", Subject: "Your code", Text: "123456", HTML: "<b>123456</b>"}
	for _, tc := range []struct {
		name string
		edit func(*flows.Email)
		want string
	}{
		{"CRLF in To", func(m *flows.Email) { m.To = "ann@example.org\r\nBcc: eve@example.org" }, "line breaks"},
		{"LF in To", func(m *flows.Email) { m.To = "ann@example.org\nBcc: eve@example.org" }, "line breaks"},
		{"CRLF in Subject", func(m *flows.Email) { m.Subject = "hi\r\nBcc: eve@example.org" }, "line breaks"},
		{"CR in Subject", func(m *flows.Email) { m.Subject = "hi\rBcc: eve@example.org" }, "line breaks"},
		{"LF in Subject", func(m *flows.Email) { m.Subject = "hi\nBcc: eve@example.org" }, "line breaks"},
		{"control in Subject", func(m *flows.Email) { m.Subject = "hi\x00there" }, "control characters"},
		{"encoded word in Subject", func(m *flows.Email) { m.Subject = "=?utf-8?q?=0D=0ABcc:_x?=" }, "encoded word"},
		{"spaces around Subject", func(m *flows.Email) { m.Subject = " hi" }, "start or end with spaces"},
		{"no Subject", func(m *flows.Email) { m.Subject = "" }, "subject is required"},
		{"long Subject", func(m *flows.Email) { m.Subject = strings.Repeat("a", 513) }, "at most 512 bytes"},
		{"no To", func(m *flows.Email) { m.To = "" }, "to address is required"},
		{"two To", func(m *flows.Email) { m.To = "ann@example.org, eve@example.org" }, "to address"},
		{"not an address", func(m *flows.Email) { m.To = "ann" }, "to address"},
		{"quoted local part", func(m *flows.Email) { m.To = `"ann smith"@example.org` }, "plain ASCII local@domain"},
		{"non-ASCII address", func(m *flows.Email) { m.To = "zoë@example.org" }, "plain ASCII local@domain"},
		{"domain literal", func(m *flows.Email) { m.To = "ann@[127.0.0.1]" }, "plain ASCII local@domain"},
		{"no text", func(m *flows.Email) { m.Text = "" }, "text body is required"},
		{"bad UTF-8 text", func(m *flows.Email) { m.Text = "\xff" }, "valid UTF-8"},
		{"bad UTF-8 html", func(m *flows.Email) { m.HTML = "\xff" }, "valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			tc.edit(&m)
			err := s.SendEmail(context.Background(), m)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, flows.ErrInvalid) {
				t.Fatalf("SendEmail: %v, want an ErrInvalid saying %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "smtp: send to ") {
				t.Errorf("error %q lacks its context", err)
			}
		})
	}
	if n := l.accepted.Load(); n != 0 {
		t.Errorf("%d connections made for bad input", n)
	}
}

func TestContextBreaksOffAStalledServer(t *testing.T) {
	l := listen(t)
	s := newSender(t, smtp.Config{Host: "127.0.0.1", Port: l.port(), Security: smtp.SecurityNone, From: "no-reply@example.com"})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- s.SendEmail(ctx, flows.Email{To: "ann@example.org", Subject: "hi", Text: "hello"})
	}()
	// Greet, answer EHLO, then say nothing after MAIL FROM: the client is
	// then blocked on a read, which the cancel must break.
	conn := <-l.conns
	defer conn.Close()
	tp := textproto.NewConn(conn)
	if err := tp.PrintfLine("220 stalled.test ESMTP"); err != nil {
		t.Fatal(err)
	}
	if line, err := tp.ReadLine(); err != nil || !strings.HasPrefix(line, "EHLO ") {
		t.Fatalf("read EHLO: %q, %v", line, err)
	}
	if err := tp.PrintfLine("250 stalled.test"); err != nil {
		t.Fatal(err)
	}
	if line, err := tp.ReadLine(); err != nil || !strings.HasPrefix(line, "MAIL FROM:<no-reply@example.com>") {
		t.Fatalf("read MAIL FROM: %q, %v", line, err)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "MAIL FROM") {
		t.Fatalf("SendEmail to a stalled server, cancelled: %v", err)
	}
}

func TestTimeoutBoundsTheSend(t *testing.T) {
	l := listen(t)
	s := newSender(t, smtp.Config{Host: "127.0.0.1", Port: l.port(), Security: smtp.SecurityNone, From: "no-reply@example.com", Timeout: 50 * time.Millisecond})
	err := s.SendEmail(context.Background(), flows.Email{To: "ann@example.org", Subject: "hi", Text: "hello"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendEmail to a silent server: %v, want a deadline error", err)
	}
}

func newQPReader(raw []byte) io.Reader { return quotedprintable.NewReader(bytes.NewReader(raw)) }

type x509UnknownAuthority = x509.UnknownAuthorityError
