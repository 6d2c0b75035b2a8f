package directory

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// The paged search of the full sync (and of Test) runs on a connection of
// its own, whose responses ber.go decodes: go-ldap's decoder was most of a
// full sync's CPU (see ber.go). The connection is made as dial makes
// go-ldap's: same URLs and failover, TLS or StartTLS, bind and errors.

// readBufferSize is the size of a pagedConn's read buffer.
const readBufferSize = 64 << 10

// oidStartTLS is the StartTLS extended operation (RFC 4511 §4.14).
const oidStartTLS = "1.3.6.1.4.1.1466.20037"

// pagedConn is a bound connection to a directory server that runs paged
// searches. It is not safe for concurrent use.
type pagedConn struct {
	conn    net.Conn // TLS, or plain when InsecureNoTLS
	msgs    messageReader
	entries *entryDecoder
	timeout time.Duration // bounds each request
	lastID  int64
}

// dialPaged is dial for the paged search: it connects and binds to the
// first of cfg.URLs that answers, in order, and returns the connection
// and the URL it used.
func dialPaged(ctx context.Context, cfg SourceConfig) (*pagedConn, string, error) {
	return failover(ctx, cfg, dialPagedOne)
}

// dialPagedOne connects and binds to one URL. The dial is bounded by
// cfg.Timeout, TLS, StartTLS and the bind together by twice that; ctx
// ending closes the connection.
func dialPagedOne(ctx context.Context, cfg SourceConfig, raw string) (*pagedConn, error) {
	u, err := parseSourceURL(raw)
	if err != nil {
		return nil, err
	}
	where := u.Redacted()
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	port := u.Port()
	if port == "" {
		port = "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("%s: connect: %w", where, err)
	}
	c := &pagedConn{conn: nc, timeout: timeout, entries: newEntryDecoder()}
	c.msgs.r = bufio.NewReaderSize(nc, readBufferSize)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(2 * timeout))
	err = c.setup(ctx, cfg, u.Scheme, cfg.tlsConfig(u.Hostname()))
	if !stop() && err == nil { // ctx ended: the connection is closing
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case errors.Is(err, os.ErrDeadlineExceeded):
			err = fmt.Errorf("TLS, StartTLS and bind took over %v: %w", 2*timeout, err)
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c.conn.SetDeadline(time.Time{})
	return c, nil
}

// setup starts TLS (ldaps://, or StartTLS unless InsecureNoTLS) and binds:
// with SASL EXTERNAL when cfg has a ClientCert, else with BindDN and
// BindPassword, never with an empty password.
func (c *pagedConn) setup(ctx context.Context, cfg SourceConfig, scheme string, tc *tls.Config) error {
	switch {
	case scheme == "ldaps":
		if err := c.handshake(ctx, tc); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
	case cfg.StartTLS:
		ext := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedRequest, nil, "Extended Request")
		ext.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, oidStartTLS, "Request Name"))
		if err := c.call(ext, tagExtendedResponse); err != nil {
			return fmt.Errorf("StartTLS: %w", err)
		}
		if c.msgs.r.Buffered() > 0 {
			return fmt.Errorf("StartTLS: %w", malformed("data after the StartTLS response"))
		}
		if err := c.handshake(ctx, tc); err != nil {
			return fmt.Errorf("StartTLS: %w", err)
		}
	}

	bind := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationBindRequest, nil, "Bind Request")
	bind.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 3, "Version"))
	if cfg.ClientCert != nil {
		bind.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "Name"))
		sasl := ber.Encode(ber.ClassContext, ber.TypeConstructed, 3, nil, "SASL")
		sasl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "EXTERNAL", "Mechanism"))
		sasl.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "Credentials"))
		bind.AppendChild(sasl)
		if err := c.call(bind, tagBindResponse); err != nil {
			return fmt.Errorf("SASL EXTERNAL bind: %w", err)
		}
		return nil
	}
	if cfg.BindPassword == "" {
		return errors.New("bind: empty password refused (it would be an unauthenticated bind)")
	}
	bind.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, cfg.BindDN, "Name"))
	bind.AppendChild(ber.NewString(ber.ClassContext, ber.TypePrimitive, 0, cfg.BindPassword, "Password"))
	if err := c.call(bind, tagBindResponse); err != nil {
		return fmt.Errorf("bind as %s: %w", cfg.BindDN, err)
	}
	return nil
}

// handshake runs the TLS handshake on the connection and reads through
// TLS from then on.
func (c *pagedConn) handshake(ctx context.Context, tc *tls.Config) error {
	conn := tls.Client(bufferedConn{c.conn, bufio.NewReaderSize(c.conn, readBufferSize)}, tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.conn = conn
	c.msgs.r.Reset(conn)
	return nil
}

// bufferedConn reads its Conn through a buffer. crypto/tls reads a record
// at a time, in as many read system calls, and servers send an entry per
// record: a system call per entry cost more than decoding the entry.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Close closes the connection.
func (c *pagedConn) Close() error { return c.conn.Close() }

// send sends an LDAPMessage holding op, and controls when there are any,
// and returns its message id.
func (c *pagedConn) send(op *ber.Packet, controls ...ldap.Control) (int64, error) {
	c.lastID++
	msg := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Request")
	msg.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, c.lastID, "Message ID"))
	msg.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "Controls")
		for _, ctl := range controls {
			cs.AppendChild(ctl.Encode())
		}
		msg.AppendChild(cs)
	}
	if _, err := c.conn.Write(msg.Bytes()); err != nil {
		return 0, ldap.NewError(ldap.ErrorNetwork, fmt.Errorf("sending the request: %w", err))
	}
	return c.lastID, nil
}

// read reads the next message, which must answer the request id.
func (c *pagedConn) read(id int64) (message, error) {
	b, err := c.msgs.next()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("the server closed the connection (%w)", err)
		}
		if !errors.Is(err, errMalformed) {
			err = ldap.NewError(ldap.ErrorNetwork, err)
		}
		return message{}, err
	}
	m, err := parseMessage(b)
	if err != nil {
		return m, err
	}
	if m.id != id {
		// A Notice of Disconnection (RFC 4511 §4.4.1) has message id 0.
		if m.id == 0 && m.opTag == tagExtendedResponse {
			if r, err := parseResult(m.op); err == nil && r.err() != nil {
				return m, fmt.Errorf("the server ended the connection: %w", r.err())
			}
		}
		return m, malformed("a response to message %d, not %d", m.id, id)
	}
	return m, nil
}

// call sends op and reads its response, an LDAPResult under the
// identifier want, and returns its error.
func (c *pagedConn) call(op *ber.Packet, want byte) error {
	id, err := c.send(op)
	if err != nil {
		return err
	}
	m, err := c.read(id)
	if err != nil {
		return err
	}
	if m.opTag != want {
		return malformed("response %#02x, want %#02x", m.opTag, want)
	}
	r, err := parseResult(m.op)
	if err != nil {
		return err
	}
	return r.err()
}

// pagedSearch is a subtree search read page by page.
type pagedSearch struct {
	baseDN     string
	filter     string
	attributes []string
	pageSize   int
	// timeLimit is the server's time limit (whole seconds), and the
	// client's for each page.
	timeLimit time.Duration
}

// search runs s and sends each page of entries on out, asking for the next
// page before it hands this one over (the server prepares it meanwhile).
// ctx ending closes the connection and returns ctx's error.
func (c *pagedConn) search(ctx context.Context, s pagedSearch, out chan<- []*ldap.Entry) error {
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	err := c.pages(ctx, s, out)
	if !stop() { // ctx ended: the connection is closing, maybe not closed yet
		c.conn.Close()
		return ctx.Err()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no answer within %v: %w", c.timeout, err)
	}
	return err
}

// pages is search's loop: it encodes the request once, then asks for
// each page with the last cookie.
func (c *pagedConn) pages(ctx context.Context, s pagedSearch, out chan<- []*ldap.Entry) error {
	filter, err := ldap.CompileFilter(s.filter)
	if err != nil {
		return err
	}
	req := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "Search Request")
	req.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, s.baseDN, "Base DN"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, ldap.ScopeWholeSubtree, "Scope"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, ldap.NeverDerefAliases, "Deref Aliases"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, 0, "Size Limit"))
	req.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(s.timeLimit/time.Second), "Time Limit"))
	req.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, "Types Only"))
	req.AppendChild(filter)
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Attributes")
	for _, a := range s.attributes {
		attrs.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, "Attribute"))
	}
	req.AppendChild(attrs)

	paging := ldap.NewControlPaging(uint32(s.pageSize))
	c.conn.SetDeadline(time.Now().Add(c.timeout))
	id, err := c.send(req, paging)
	for err == nil {
		var page []*ldap.Entry
		var more bool
		c.conn.SetDeadline(time.Now().Add(c.timeout))
		if page, more, err = c.readPage(id, paging); err != nil {
			return err
		}
		if more {
			id, err = c.send(req, paging) // err is seen after the handover
		}
		select {
		case out <- page:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !more {
			return nil
		}
	}
	return err
}

// readPage reads the responses to the search request id: the entries,
// until SearchResultDone, whose error it returns; when the server says
// there is more, paging holds its cookie and more is true. Referrals are
// skipped.
func (c *pagedConn) readPage(id int64, paging *ldap.ControlPaging) (page []*ldap.Entry, more bool, err error) {
	page = make([]*ldap.Entry, 0, paging.PagingSize)
	for {
		m, err := c.read(id)
		if err != nil {
			return nil, false, err
		}
		switch m.opTag {
		case tagSearchEntry:
			e, err := c.entries.decode(m.op)
			if err != nil {
				return nil, false, err
			}
			page = append(page, e)
		case tagSearchReference:
		case tagSearchDone:
			r, err := parseResult(m.op)
			if err != nil {
				return nil, false, err
			}
			if err := r.err(); err != nil {
				return nil, false, err
			}
			cookie, ok, err := pagingCookie(m.controls)
			if err != nil {
				return nil, false, err
			}
			// Without the control the server does not page: that was
			// everything. An empty cookie ends the search.
			paging.SetCookie(cookie)
			return page, ok && len(cookie) > 0, nil
		default:
			return nil, false, malformed("response %#02x to a search", m.opTag)
		}
	}
}
