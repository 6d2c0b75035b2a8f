// Package smtp sends keystep's email (one-time codes, invitations, admin
// alerts) through an SMTP relay. It implements flows.EmailSender.
//
// Each SendEmail opens one connection, protects it (STARTTLS by default, or
// implicit TLS, or nothing on a loopback relay), authenticates with PLAIN or
// LOGIN when a username is configured, sends one message and quits. The
// context's deadline, capped by Config.Timeout, bounds the whole exchange;
// cancelling the context breaks it off.
//
// The message is built here, not taken from the caller: an RFC 5322 message
// with Date, Message-ID, From, To, Subject (RFC 2047 encoded when it is not
// ASCII) and MIME-Version, and a text/plain part alone or, when the email has
// HTML, a multipart/alternative of text/plain and text/html, both UTF-8 and
// quoted-printable. Addresses are checked with net/mail; line breaks and
// control characters in any header field are refused before any connection
// is made. Errors for bad input wrap flows.ErrInvalid.
package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	netsmtp "net/smtp"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/flows"
)

// The values Config.Security takes.
const (
	// SecuritySTARTTLS connects in plain text and upgrades with STARTTLS
	// before anything else; a server that does not offer it is refused.
	SecuritySTARTTLS = "starttls"
	// SecurityTLS speaks TLS from the first byte (SMTPS, port 465).
	SecurityTLS = "tls"
	// SecurityNone sends in plain text; only allowed to a loopback host.
	SecurityNone = "none"
)

// DefaultTimeout bounds one send when Config.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Config says how to reach the relay and who the mail is from.
type Config struct {
	Host string // relay host name or IP address, without port or brackets
	// Port is the relay's port; zero means 587 for "starttls", 465 for
	// "tls" and 25 for "none".
	Port int
	// Security is "starttls" (the default when empty), "tls" (implicit
	// TLS) or "none" (only allowed when Host is a loopback address or
	// "localhost").
	Security string
	// Username and Password, when set, authenticate with PLAIN or LOGIN,
	// whichever the server offers (PLAIN first); never over a connection
	// without TLS unless the host is loopback.
	Username, Password string
	// From is the sender, as in "Keystep <no-reply@example.com>"; its
	// address is also the envelope sender and names the Message-ID domain.
	From string
	// HeloName is the name given in EHLO; empty means "localhost". Set it to
	// this machine's fully qualified name when the relay checks it.
	HeloName string
	// Timeout bounds one send, connection to QUIT; zero means
	// DefaultTimeout. A shorter context deadline wins.
	Timeout time.Duration
	// TLSConfig, when set, is the base of the TLS configuration (tests put
	// their CA in RootCAs). ServerName defaults to Host and MinVersion to
	// TLS 1.2.
	TLSConfig *tls.Config

	// Clock gives the Date header; nil means the system clock.
	Clock flows.Clock
	// Rand gives the Message-ID and MIME boundary; nil means crypto/rand.
	Rand io.Reader
}

// Sender sends email through one relay. It is safe for concurrent use; each
// send has its own connection.
type Sender struct {
	cfg      Config
	addr     string
	from     *mail.Address
	msgIDDom string
	loopback bool
	tls      *tls.Config
	mechs    []string // AUTH mechanisms in order of preference
}

var _ flows.EmailSender = (*Sender)(nil)

// New checks cfg and returns a Sender. It makes no connection.
func New(cfg Config) (*Sender, error) {
	s, err := newSender(cfg)
	if err != nil {
		return nil, fmt.Errorf("smtp: config: %w", err)
	}
	return s, nil
}

func newSender(cfg Config) (*Sender, error) {
	if cfg.Host == "" {
		return nil, invalidf("host is required")
	}
	if !isHost(cfg.Host) {
		return nil, invalidf("host %q must be a host name or an IP address, without port or brackets", cfg.Host)
	}
	loopback := isLoopback(cfg.Host)
	if cfg.Security == "" {
		cfg.Security = SecuritySTARTTLS
	}
	switch cfg.Security {
	case SecuritySTARTTLS, SecurityTLS:
	case SecurityNone:
		if !loopback {
			return nil, invalidf("security %q is only allowed to a loopback host, not %q: use %q or %q", SecurityNone, cfg.Host, SecuritySTARTTLS, SecurityTLS)
		}
	default:
		return nil, invalidf("security %q must be %q, %q or %q", cfg.Security, SecuritySTARTTLS, SecurityTLS, SecurityNone)
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{SecuritySTARTTLS: 587, SecurityTLS: 465, SecurityNone: 25}[cfg.Security]
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return nil, invalidf("port %d must be between 1 and 65535", cfg.Port)
	}
	if cfg.Username == "" && cfg.Password != "" {
		return nil, invalidf("password is set without a username")
	}
	if cfg.Username != "" && cfg.Password == "" {
		return nil, invalidf("username is set without a password")
	}
	if strings.ContainsAny(cfg.Username, "\x00\r\n") || strings.ContainsAny(cfg.Password, "\x00\r\n") {
		return nil, invalidf("username and password must not hold NUL or line breaks")
	}
	from, err := parseAddress("from", cfg.From)
	if err != nil {
		return nil, err
	}
	if cfg.HeloName == "" {
		cfg.HeloName = "localhost"
	}
	if !isHeloName(cfg.HeloName) {
		return nil, invalidf("helo name %q must be a host name or an address literal like [192.0.2.1]", cfg.HeloName)
	}
	if cfg.Timeout < 0 {
		return nil, invalidf("timeout %v must not be negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = flows.SystemClock{}
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	tc := cfg.TLSConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = cfg.Host
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	return &Sender{
		cfg:      cfg,
		addr:     net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from:     from,
		msgIDDom: from.Address[strings.LastIndexByte(from.Address, '@')+1:],
		loopback: loopback,
		tls:      tc,
		mechs:    []string{"PLAIN", "LOGIN"},
	}, nil
}

// isHost reports whether h is an IP address or a host name.
func isHost(h string) bool {
	return net.ParseIP(h) != nil || isDomain(strings.TrimSuffix(h, "."))
}

// isLoopback reports whether h is "localhost" or a loopback IP address. It
// does not resolve names: a name that merely points at 127.0.0.1 is not
// loopback here.
func isLoopback(h string) bool {
	if strings.EqualFold(strings.TrimSuffix(h, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// isHeloName reports whether n is a host name or an address literal.
func isHeloName(n string) bool {
	if strings.HasPrefix(n, "[") && strings.HasSuffix(n, "]") {
		lit := n[1 : len(n)-1]
		return net.ParseIP(strings.TrimPrefix(lit, "IPv6:")) != nil
	}
	return isDomain(n)
}

// SendEmail sends m. Bad input is refused before any connection, with an
// error that wraps flows.ErrInvalid.
func (s *Sender) SendEmail(ctx context.Context, m flows.Email) error {
	msg, err := s.build(m)
	if err != nil {
		return fmt.Errorf("smtp: send to %q: %w", m.To, err)
	}
	if err := s.send(ctx, msg); err != nil {
		return fmt.Errorf("smtp: send to %s via %s: %w", msg.to.Address, s.addr, err)
	}
	return nil
}

// build makes the message for m, with a fresh Date, Message-ID and boundary.
func (s *Sender) build(m flows.Email) (*message, error) {
	r := make([]byte, 28)
	if _, err := io.ReadFull(s.cfg.Rand, r); err != nil {
		return nil, fmt.Errorf("random: %w", err)
	}
	return buildMessage(m, header{
		from:  s.from,
		date:  s.cfg.Clock.Now(),
		msgID: hex.EncodeToString(r[:16]) + "@" + s.msgIDDom,
		rand:  r[16:],
	})
}

// send runs one SMTP session that delivers msg.
func (s *Sender) send(ctx context.Context, msg *message) (err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	step := "connect"
	defer func() {
		if err == nil {
			return
		}
		// Every I/O deadline on the connection comes from ctx, so a
		// timeout means ctx is done, or will be in a moment.
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			<-ctx.Done()
		}
		if cerr := context.Cause(ctx); cerr != nil {
			err = fmt.Errorf("%s: %w: %w", step, cerr, err)
		} else {
			err = fmt.Errorf("%s: %w", step, err)
		}
	}()

	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(dl); err != nil {
			return err
		}
	}
	// Cancelling the context breaks off whatever read or write is blocked.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	conn := raw
	if s.cfg.Security == SecurityTLS {
		step = "tls handshake"
		tc := tls.Client(raw, s.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
	}
	step = "greeting"
	c, err := netsmtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return err
	}
	defer c.Close()
	step = "EHLO"
	if err := c.Hello(s.cfg.HeloName); err != nil {
		return err
	}
	if s.cfg.Security == SecuritySTARTTLS {
		step = "STARTTLS"
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server does not offer STARTTLS; refusing to send in clear (use security \"tls\" if it speaks implicit TLS)")
		}
		if err := c.StartTLS(s.tls); err != nil {
			return err
		}
	}
	if s.cfg.Username != "" {
		step = fmt.Sprintf("authenticate as %q", s.cfg.Username)
		a, err := s.auth(c)
		if err != nil {
			return err
		}
		if err := c.Auth(a); err != nil {
			return err
		}
	}
	step = "MAIL FROM"
	if err := c.Mail(msg.from.Address); err != nil {
		return err
	}
	step = "RCPT TO"
	if err := c.Rcpt(msg.to.Address); err != nil {
		return err
	}
	step = "DATA"
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg.data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	// The relay has taken the message; a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// auth picks PLAIN or LOGIN from what the server offers.
func (s *Sender) auth(c *netsmtp.Client) (netsmtp.Auth, error) {
	ok, offered := c.Extension("AUTH")
	if !ok {
		return nil, errors.New("the server does not offer AUTH")
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	for _, want := range s.mechs {
		for _, m := range mechs {
			if m != want {
				continue
			}
			if m == "PLAIN" {
				return &plainAuth{user: s.cfg.Username, pass: s.cfg.Password, loopback: s.loopback}, nil
			}
			return &loginAuth{user: s.cfg.Username, pass: s.cfg.Password, loopback: s.loopback}, nil
		}
	}
	return nil, fmt.Errorf("the server offers AUTH %s, and keystep speaks only PLAIN and LOGIN", offered)
}

// errClearAuth refuses to send credentials over a connection without TLS.
var errClearAuth = errors.New("refusing to send the password over a connection without TLS to a host that is not loopback")

// plainAuth is AUTH PLAIN (RFC 4616) with the password sent only over TLS
// or to a loopback host.
type plainAuth struct {
	user, pass string
	loopback   bool
}

// Start sends the credentials as the initial response.
func (a *plainAuth) Start(si *netsmtp.ServerInfo) (string, []byte, error) {
	if !si.TLS && !a.loopback {
		return "", nil, errClearAuth
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

// Next refuses any further challenge.
func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected AUTH PLAIN challenge")
	}
	return nil, nil
}

// loginAuth is AUTH LOGIN: the server asks for the username, then the
// password, each as its own challenge.
type loginAuth struct {
	user, pass string
	loopback   bool
	step       int
}

// Start begins AUTH LOGIN without an initial response.
func (a *loginAuth) Start(si *netsmtp.ServerInfo) (string, []byte, error) {
	if !si.TLS && !a.loopback {
		return "", nil, errClearAuth
	}
	a.step = 0
	return "LOGIN", nil, nil
}

// Next answers the username and password prompts, in that order.
func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	prompt := strings.ToLower(string(fromServer))
	switch {
	case strings.Contains(prompt, "password"), a.step == 2 && !strings.Contains(prompt, "user"):
		return []byte(a.pass), nil
	case strings.Contains(prompt, "user"), a.step == 1:
		return []byte(a.user), nil
	}
	return nil, fmt.Errorf("unexpected AUTH LOGIN challenge %q", fromServer)
}
