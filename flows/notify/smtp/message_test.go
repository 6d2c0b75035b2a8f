package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	netsmtp "net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/smtptest"
)

func TestLoginAuthAgainstRealServer(t *testing.T) {
	srv := smtptest.Start(t)
	for _, pass := range []string{srv.Password, "wrong"} {
		s, err := New(Config{
			Host: srv.Host, Port: srv.Port, Username: srv.Username, Password: pass,
			From: "no-reply@keystep.example", TLSConfig: &tls.Config{RootCAs: srv.CAPool},
		})
		if err != nil {
			t.Fatal(err)
		}
		s.mechs = []string{"LOGIN"}
		err = s.SendEmail(context.Background(), flows.Email{To: "ann@example.org", Subject: "login", Text: "x"})
		if pass == "wrong" {
			if err == nil || !strings.Contains(err.Error(), "535") {
				t.Errorf("AUTH LOGIN with a wrong password: %v, want a 535 error", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("AUTH LOGIN: %v", err)
		}
		srv.WaitMessages(1)
		if env := srv.Envelopes()[0]; env.Login != srv.Username {
			t.Errorf("logged in as %q", env.Login)
		}
	}
}

func TestAuthRefusesClearTextToRemoteHost(t *testing.T) {
	clear := &netsmtp.ServerInfo{Name: "smtp.example.com", TLS: false, Auth: []string{"PLAIN", "LOGIN"}}
	for _, a := range []netsmtp.Auth{&plainAuth{user: "u", pass: "p"}, &loginAuth{user: "u", pass: "p"}} {
		if _, resp, err := a.Start(clear); !errors.Is(err, errClearAuth) || resp != nil {
			t.Errorf("%T over clear text to a remote host: %q, %v", a, resp, err)
		}
	}
	for _, a := range []netsmtp.Auth{&plainAuth{user: "u", pass: "p", loopback: true}, &loginAuth{user: "u", pass: "p", loopback: true}} {
		if _, _, err := a.Start(clear); err != nil {
			t.Errorf("%T over clear text to loopback: %v", a, err)
		}
	}
}

func TestLoginAuthAnswersPrompts(t *testing.T) {
	a := &loginAuth{user: "ann", pass: "secret"}
	if _, _, err := a.Start(&netsmtp.ServerInfo{TLS: true}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct{ prompt, want string }{{"Username:", "ann"}, {"Password:", "secret"}} {
		got, err := a.Next([]byte(step.prompt), true)
		if err != nil || string(got) != step.want {
			t.Errorf("prompt %q: %q, %v", step.prompt, got, err)
		}
	}
	if _, err := a.Next([]byte("More?"), true); err == nil {
		t.Error("a third prompt was answered")
	}
}

func newQPReader(raw []byte) io.Reader { return quotedprintable.NewReader(bytes.NewReader(raw)) }

func testHeader() header {
	return header{
		from:  &mail.Address{Name: "Keystep", Address: "no-reply@keystep.example"},
		date:  time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		msgID: "0123456789abcdef@keystep.example",
		rand:  bytes.Repeat([]byte{0xa5}, 12),
	}
}

// canonical is what a text body becomes once encoded and decoded: every
// line break CRLF.
func canonical(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// checkMessage parses msg as a receiver would and checks it says what m said.
func checkMessage(t *testing.T, m flows.Email, msg *message) {
	t.Helper()
	data := msg.data
	// Every line ends in CRLF, and none is longer than RFC 5322 allows.
	for i, line := range bytes.Split(data, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d bytes long", i, len(line))
		}
	}
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Fatalf("message does not end with CRLF")
	}
	pm, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("net/mail cannot parse the message: %v\n%s", err, data)
	}
	want := map[string]bool{"Date": true, "From": true, "To": true, "Subject": true, "Message-Id": true, "Mime-Version": true, "Content-Type": true}
	if m.HTML == "" {
		want["Content-Transfer-Encoding"] = true
	}
	for k, v := range pm.Header {
		if !want[k] || len(v) != 1 {
			t.Fatalf("unexpected header %q: %q\n%s", k, v, data)
		}
	}
	if len(pm.Header) != len(want) {
		t.Fatalf("headers %v, want %v", pm.Header, want)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(pm.Header.Get("Subject"))
	if err != nil || subject != m.Subject {
		t.Fatalf("subject %q (%v), want %q", subject, err, m.Subject)
	}
	in, err := mail.ParseAddress(m.To)
	if err != nil {
		t.Fatalf("the input To %q was accepted but does not parse: %v", m.To, err)
	}
	to, err := pm.Header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != in.Address || to[0].Name != in.Name {
		t.Fatalf("To %v (%v), want %v", to, err, in)
	}
	if msg.to.Address != in.Address {
		t.Fatalf("envelope recipient %q, want %q", msg.to.Address, in.Address)
	}

	mt, params, err := mime.ParseMediaType(pm.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	if m.HTML == "" {
		if mt != "text/plain" {
			t.Fatalf("Content-Type %q for a text-only email", mt)
		}
		raw, _ := io.ReadAll(pm.Body)
		got, err := io.ReadAll(newQPReader(raw))
		if err != nil || string(got) != canonical(m.Text) {
			t.Fatalf("text %q (%v), want %q", got, err, canonical(m.Text))
		}
		return
	}
	if mt != "multipart/alternative" {
		t.Fatalf("Content-Type %q with HTML", mt)
	}
	mr := multipart.NewReader(pm.Body, params["boundary"])
	for _, want := range []string{m.Text, m.HTML} {
		p, err := mr.NextPart() // decodes quoted-printable
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		got, err := io.ReadAll(p)
		if err != nil || string(got) != canonical(want) {
			t.Fatalf("part %q (%v), want %q", got, err, canonical(want))
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("after two parts: %v", err)
	}
}

func TestBuildMessage(t *testing.T) {
	for _, m := range []flows.Email{
		{To: "ann@example.org", Subject: "Your code", Text: "123456"},
		{To: "Ann <ann@example.org>", Subject: "Your code", Text: "123456\n", HTML: "<b>123456</b>\n"},
		{To: "\"Smith, Ann\" <ann@example.org>", Subject: "Ünïcödé  double  spaces", Text: "a\r\nb\rc\nd", HTML: "trailing spaces   \nand = signs"},
		{To: "ann@example.org", Subject: "=?not an encoded word", Text: strings.Repeat("long line ", 100)},
		{To: "ann@example.org", Subject: strings.Repeat("é", 256), Text: ".\n.\n..leading dots"},
	} {
		msg, err := buildMessage(m, testHeader())
		if err != nil {
			t.Fatalf("buildMessage(%+v): %v", m, err)
		}
		checkMessage(t, m, msg)
	}
}

// FuzzBuildMessage checks that any email either is refused as invalid or
// makes a message that net/mail parses back to the same subject, recipient
// and bodies, with no header but ours.
func FuzzBuildMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, to, subject, text, html string) {
		m := flows.Email{To: to, Subject: subject, Text: text, HTML: html}
		msg, err := buildMessage(m, testHeader())
		if err != nil {
			if !errors.Is(err, flows.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		checkMessage(t, m, msg)
	})
}
