package smtp

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keystep/keystep/flows"
)

// Limits on what one message may hold.
const (
	maxAddress = 254     // bytes in To or From, display name included
	maxSubject = 512     // bytes of subject text before encoding
	maxBody    = 1 << 20 // bytes in each of Text and HTML
)

// message is one email ready to go on the wire.
type message struct {
	from mail.Address // envelope sender is from.Address
	to   mail.Address // envelope recipient is to.Address
	data []byte       // the RFC 5322 message, CRLF line ends
}

// header is what buildMessage needs beside the flows.Email.
type header struct {
	from  *mail.Address
	date  time.Time
	msgID string // without the angle brackets
	rand  []byte // at least 12 random bytes for the MIME boundary
}

// invalidf returns an error that wraps flows.ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", flows.ErrInvalid, fmt.Sprintf(format, args...))
}

// parseAddress checks one address for use in a header and the envelope: no
// line breaks, no list, a plain ASCII local@domain with a local part that
// needs no quoting. A display name is allowed (it may be non-ASCII).
func parseAddress(field, v string) (*mail.Address, error) {
	if v == "" {
		return nil, invalidf("%s address is required", field)
	}
	if strings.ContainsAny(v, "\r\n") {
		return nil, invalidf("%s address must not hold line breaks", field)
	}
	if len(v) > maxAddress || !utf8.ValidString(v) {
		return nil, invalidf("%s address must be valid UTF-8 of at most %d bytes", field, maxAddress)
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		return nil, invalidf("%s address %q: %v", field, v, err)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return nil, invalidf("%s address %q has no local@domain", field, v)
	}
	if !isDotAtom(a.Address[:at]) || !isDomain(a.Address[at+1:]) {
		return nil, invalidf("%s address %q must be a plain ASCII local@domain (no quoted or internationalized parts)", field, v)
	}
	for _, r := range a.Name {
		if unicode.IsControl(r) {
			return nil, invalidf("%s name must not hold control characters", field)
		}
	}
	return a, nil
}

// isDotAtom reports whether s is an RFC 5322 dot-atom of ASCII atext.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' || isAlnum(c) || strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// isDomain reports whether s is a host name of letters, digits, '-' and '.'.
func isDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !isAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// encodeSubject checks the subject and returns it as a header value: as is
// when it is plain ASCII, else as RFC 2047 Q-encoded words, one per line.
func encodeSubject(s string) (string, error) {
	if s == "" {
		return "", invalidf("subject is required")
	}
	if strings.ContainsAny(s, "\r\n") {
		return "", invalidf("subject must not hold line breaks")
	}
	if len(s) > maxSubject || !utf8.ValidString(s) {
		return "", invalidf("subject must be valid UTF-8 of at most %d bytes", maxSubject)
	}
	if strings.TrimSpace(s) != s {
		return "", invalidf("subject must not start or end with spaces")
	}
	ascii := true
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", invalidf("subject must not hold control characters")
		}
		if r >= utf8.RuneSelf {
			ascii = false
		}
	}
	if !ascii {
		return foldWords(mime.QEncoding.Encode("utf-8", s)), nil
	}
	// Plain ASCII goes as is, so it must not read as an encoded word.
	if d, err := new(mime.WordDecoder).DecodeHeader(s); err != nil || d != s {
		return "", invalidf("subject must not hold text that reads as an RFC 2047 encoded word (=?…?=)")
	}
	return s, nil
}

// foldWords puts each RFC 2047 encoded word of v on its own header line.
// Encoded words never hold a space, so every space in v separates two.
func foldWords(v string) string {
	return strings.ReplaceAll(v, "?= =?", "?=\r\n =?")
}

// checkBody checks a body part: valid UTF-8 and not too long.
func checkBody(field, s string) error {
	if len(s) > maxBody || !utf8.ValidString(s) {
		return invalidf("%s body must be valid UTF-8 of at most %d bytes", field, maxBody)
	}
	return nil
}

// buildMessage checks m and makes the message to send. Nothing in m reaches a
// header unchecked: line breaks, control characters and bad addresses are
// refused. Text is required; HTML is optional and, when given, makes the
// message multipart/alternative with both.
func buildMessage(m flows.Email, h header) (*message, error) {
	to, err := parseAddress("to", m.To)
	if err != nil {
		return nil, err
	}
	subject, err := encodeSubject(m.Subject)
	if err != nil {
		return nil, err
	}
	if m.Text == "" {
		return nil, invalidf("text body is required")
	}
	if err := checkBody("text", m.Text); err != nil {
		return nil, err
	}
	if err := checkBody("html", m.HTML); err != nil {
		return nil, err
	}

	var b bytes.Buffer
	writeHeader := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	writeHeader("Date", h.date.Format(time.RFC1123Z))
	writeHeader("From", foldWords(h.from.String()))
	writeHeader("To", foldWords(to.String()))
	writeHeader("Subject", subject)
	writeHeader("Message-ID", "<"+h.msgID+">")
	writeHeader("MIME-Version", "1.0")

	text := quotedPrintable(m.Text)
	if m.HTML == "" {
		writeHeader("Content-Type", "text/plain; charset=utf-8")
		writeHeader("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		b.Write(text)
		if len(text) > 0 && !bytes.HasSuffix(text, []byte("\r\n")) {
			// The message must end with a line break; a soft one adds
			// nothing to the text.
			b.WriteString("=\r\n")
		}
		return &message{from: *h.from, to: *to, data: b.Bytes()}, nil
	}

	// "=_" never occurs in quoted-printable text ('=' is followed by two hex
	// digits or a line break), so this boundary cannot occur in a part.
	if len(h.rand) < 12 {
		return nil, fmt.Errorf("message boundary needs 12 random bytes, got %d", len(h.rand))
	}
	boundary := "=_" + hex.EncodeToString(h.rand[:12])
	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(boundary); err != nil {
		return nil, fmt.Errorf("message boundary: %w", err)
	}
	writeHeader("Content-Type", mime.FormatMediaType("multipart/alternative", map[string]string{"boundary": boundary}))
	b.WriteString("\r\n")
	for _, part := range []struct {
		typ  string
		body []byte
	}{
		{"text/plain; charset=utf-8", text},
		{"text/html; charset=utf-8", quotedPrintable(m.HTML)},
	} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, fmt.Errorf("message part: %w", err)
		}
		if _, err := w.Write(part.body); err != nil {
			return nil, fmt.Errorf("message part: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("message: %w", err)
	}
	return &message{from: *h.from, to: *to, data: b.Bytes()}, nil
}

// quotedPrintable encodes s as quoted-printable text; every line break in s
// (CRLF, LF or CR) becomes CRLF.
func quotedPrintable(s string) []byte {
	// The writer turns each LF into CRLF itself. It is given LF alone
	// because it loses a line break after a CR followed by a byte it must
	// encode ("\r\x01\n" comes out as "\r\n=01").
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	// Writes to a bytes.Buffer do not fail.
	_, _ = io.WriteString(w, s)
	_ = w.Close()
	return b.Bytes()
}
