package directory

// This file decodes the responses of the full sync's paged search itself,
// instead of through go-ldap. go-ldap's decoder (go-asn1-ber) allocates for
// every node of every message: a Packet with its own bytes.Buffer, a read
// buffer of at least 512 bytes for each primitive value, and a copy of each
// child's bytes into its parent, level after level; about 350 allocations
// for a user's entry. The full sync reads every user of the directory each
// hour, and that decoding was 60 % of its CPU. Here a message is read into
// one reused buffer and walked in place, expecting exactly the structure
// RFC 4511 gives each response (BER with definite lengths only, §5.1); a
// SearchResultEntry becomes an *ldap.Entry whose strings all point into
// one string copy of its bytes and whose byte values into one []byte copy,
// whatever its number of attributes and values.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/go-ldap/ldap/v3"
)

// maxMessageSize bounds an LDAPMessage: a larger one is refused, unread.
const maxMessageSize = 16 << 20

// BER identifier octets (class, constructed bit and tag number in one
// byte) of what the paged search's responses hold.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagEnumerated  = 0x0a
	tagSequence    = 0x30
	tagSet         = 0x31

	tagBindResponse     = 0x61 // [APPLICATION 1] constructed
	tagSearchEntry      = 0x64 // [APPLICATION 4]
	tagSearchDone       = 0x65 // [APPLICATION 5]
	tagSearchReference  = 0x73 // [APPLICATION 19]
	tagExtendedResponse = 0x78 // [APPLICATION 24]
	tagControls         = 0xa0 // [0] constructed, in LDAPMessage
)

// errMalformed is wrapped by every error about a message that does not
// follow RFC 4511.
var errMalformed = errors.New("malformed LDAP message")

// malformed returns an error about a message, wrapping errMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// messageReader reads LDAPMessages from a stream, each into the same
// buffer.
type messageReader struct {
	r   *bufio.Reader
	buf []byte
}

// next reads the next LDAPMessage and returns its content (messageID,
// protocolOp, controls), valid until the next call. The buffer grows only
// as bytes arrive, so a length the stream does not back costs no large
// allocation. io.EOF means the stream ended between two messages.
func (m *messageReader) next() ([]byte, error) {
	tag, err := m.r.ReadByte()
	if err != nil {
		return nil, err
	}
	if tag != tagSequence {
		return nil, malformed("identifier %#02x, not an LDAPMessage SEQUENCE", tag)
	}
	n, err := readLength(m.r)
	if err != nil {
		return nil, err
	}
	m.buf = m.buf[:0]
	for len(m.buf) < n {
		if len(m.buf) == cap(m.buf) {
			m.buf = slices.Grow(m.buf, min(n-len(m.buf), max(len(m.buf), 4<<10)))
		}
		k, err := io.ReadFull(m.r, m.buf[len(m.buf):min(n, cap(m.buf))])
		m.buf = m.buf[:len(m.buf)+k]
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
	}
	return m.buf, nil
}

// readLength reads a definite BER length (short or long form) of at most
// maxMessageSize.
func readLength(r io.ByteReader) (int, error) {
	b, err := r.ReadByte()
	if err != nil {
		return 0, unexpectedEOF(err)
	}
	if b < 0x80 {
		return int(b), nil
	}
	k := int(b & 0x7f)
	switch {
	case k == 0:
		return 0, malformed("indefinite length")
	case k > 4:
		return 0, malformed("a length of %d bytes", k)
	}
	var n uint64
	for range k {
		c, err := r.ReadByte()
		if err != nil {
			return 0, unexpectedEOF(err)
		}
		n = n<<8 | uint64(c)
	}
	if n > maxMessageSize {
		return 0, malformed("a message of %d bytes, over the %d allowed", n, maxMessageSize)
	}
	return int(n), nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// element splits the BER element at the start of b into its identifier
// octet, its content and what follows it. Content and rest are b's own
// bytes (two-index slices of it, so cap tells their offset: see within).
// Its errors say what is wrong, not where: the callers wrap them in
// errMalformed.
func element(b []byte) (tag byte, content, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errors.New("truncated element")
	}
	tag = b[0]
	if tag&0x1f == 0x1f {
		return 0, nil, nil, errors.New("multi-byte identifier")
	}
	n, i := uint64(b[1]), 2
	if n >= 0x80 {
		k := int(n & 0x7f)
		switch {
		case k == 0:
			return 0, nil, nil, errors.New("indefinite length")
		case k > 4:
			return 0, nil, nil, fmt.Errorf("a length of %d bytes", k)
		case len(b) < 2+k:
			return 0, nil, nil, errors.New("truncated length")
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | uint64(c)
		}
		i = 2 + k
	}
	if n > uint64(len(b)-i) {
		return 0, nil, nil, fmt.Errorf("an element of %d bytes in %d", n, len(b)-i)
	}
	end := i + int(n)
	return tag, b[i:end], b[end:], nil
}

// expect is element for an element that must have the identifier want;
// what names it in the error.
func expect(b []byte, want byte, what string) (content, rest []byte, err error) {
	tag, content, rest, err := element(b)
	if err != nil {
		return nil, nil, malformed("%s: %v", what, err)
	}
	if tag != want {
		return nil, nil, malformed("%s: identifier %#02x, want %#02x", what, tag, want)
	}
	return content, rest, nil
}

// berInt decodes an INTEGER or ENUMERATED content of 1 to 4 bytes, which
// must be within 0 to max.
func berInt(b []byte, what string, max int64) (int64, error) {
	if len(b) == 0 || len(b) > 4 {
		return 0, malformed("%s of %d bytes", what, len(b))
	}
	n := int64(int8(b[0])) // sign-extended
	for _, c := range b[1:] {
		n = n<<8 | int64(c)
	}
	if n < 0 || n > max {
		return 0, malformed("%s %d out of range", what, n)
	}
	return n, nil
}

// within returns where sub, a slice of b made by element or expect, starts
// and ends in b. Slicing never changes where a backing array ends, so the
// difference of the capacities is the offset.
func within(b, sub []byte) (start, end int) {
	start = cap(b) - cap(sub)
	return start, start + len(sub)
}

// message is an LDAPMessage walked in place: its slices point into the
// messageReader's buffer.
type message struct {
	id       int64
	opTag    byte   // the protocolOp's identifier
	op       []byte // the protocolOp's content
	controls []byte // the content of its Controls, nil without
}

// maxMessageID is the largest MessageID (RFC 4511 §4.1.1.1).
const maxMessageID = 1<<31 - 1

// parseMessage walks the content of an LDAPMessage.
func parseMessage(b []byte) (message, error) {
	var m message
	idb, rest, err := expect(b, tagInteger, "messageID")
	if err != nil {
		return m, err
	}
	if m.id, err = berInt(idb, "messageID", maxMessageID); err != nil {
		return m, err
	}
	if m.opTag, m.op, rest, err = element(rest); err != nil {
		return m, malformed("protocolOp: %v", err)
	}
	if len(rest) > 0 {
		if m.controls, rest, err = expect(rest, tagControls, "controls"); err != nil {
			return m, err
		}
		if len(rest) > 0 {
			return m, malformed("%d bytes after the controls", len(rest))
		}
	}
	return m, nil
}

// result is an LDAPResult (RFC 4511 §4.1.9): a BindResponse, an
// ExtendedResponse or a SearchResultDone.
type result struct {
	code      uint16
	matchedDN string
	message   string // diagnosticMessage
}

// parseResult reads the LDAPResult at the start of a response's content;
// the elements after it (referral, SASL credentials, response name and
// value) are checked for framing only.
func parseResult(op []byte) (result, error) {
	var r result
	cb, rest, err := expect(op, tagEnumerated, "resultCode")
	if err != nil {
		return r, err
	}
	code, err := berInt(cb, "resultCode", 0xffff)
	if err != nil {
		return r, err
	}
	matched, rest, err := expect(rest, tagOctetString, "matchedDN")
	if err != nil {
		return r, err
	}
	diag, rest, err := expect(rest, tagOctetString, "diagnosticMessage")
	if err != nil {
		return r, err
	}
	for len(rest) > 0 {
		if _, _, rest, err = element(rest); err != nil {
			return r, malformed("LDAPResult: %v", err)
		}
	}
	return result{code: uint16(code), matchedDN: string(matched), message: string(diag)}, nil
}

// err is nil for a success, else the *ldap.Error go-ldap would return:
// "LDAP Result Code 32 "No Such Object": <the server's message>".
func (r result) err() error {
	if r.code == ldap.LDAPResultSuccess {
		return nil
	}
	return &ldap.Error{ResultCode: r.code, MatchedDN: r.matchedDN, Err: errors.New(r.message)}
}

// pagingCookie returns the cookie of the paged-results control (RFC 2696)
// among a response's controls, copied, and whether the control was there.
func pagingCookie(controls []byte) ([]byte, bool, error) {
	for rest := controls; len(rest) > 0; {
		c, r, err := expect(rest, tagSequence, "control")
		if err != nil {
			return nil, false, err
		}
		rest = r
		oid, c, err := expect(c, tagOctetString, "controlType")
		if err != nil {
			return nil, false, err
		}
		if string(oid) != ldap.ControlTypePaging {
			continue
		}
		if len(c) > 0 && c[0] == tagBoolean { // criticality
			if _, c, err = expect(c, tagBoolean, "criticality"); err != nil {
				return nil, false, err
			}
		}
		value, _, err := expect(c, tagOctetString, "paging controlValue")
		if err != nil {
			return nil, false, err
		}
		seq, _, err := expect(value, tagSequence, "paging controlValue")
		if err != nil {
			return nil, false, err
		}
		_, seq, err = expect(seq, tagInteger, "paging size")
		if err != nil {
			return nil, false, err
		}
		cookie, _, err := expect(seq, tagOctetString, "paging cookie")
		if err != nil {
			return nil, false, err
		}
		return bytes.Clone(cookie), true, nil
	}
	return nil, false, nil
}

// entryDecoder turns SearchResultEntry contents into *ldap.Entry values.
// Each entry's bytes are copied twice, into a []byte (the ByteValues) and
// a string (the DN, the attribute names and the Values), and everything
// else is carved from slabs, so an entry costs about one allocation (its
// string). The slabs are never reused: an entry stays valid as long as it
// is referenced. Make one with newEntryDecoder.
type entryDecoder struct {
	entries slab[ldap.Entry]
	attrs   slab[ldap.EntryAttribute]
	ptrs    slab[*ldap.EntryAttribute]
	strs    slab[string]
	byteVs  slab[[]byte]
	raw     slab[byte]
}

func newEntryDecoder() *entryDecoder {
	return &entryDecoder{
		entries: slab[ldap.Entry]{chunk: 256},
		attrs:   slab[ldap.EntryAttribute]{chunk: 2048},
		ptrs:    slab[*ldap.EntryAttribute]{chunk: 2048},
		strs:    slab[string]{chunk: 2048},
		byteVs:  slab[[]byte]{chunk: 2048},
		raw:     slab[byte]{chunk: 64 << 10},
	}
}

// decode decodes the content of a SearchResultEntry: objectName, then
// attributes, a SEQUENCE OF SEQUENCE { type, vals SET OF value }.
func (d *entryDecoder) decode(op []byte) (*ldap.Entry, error) {
	// First pass: check the structure and count, allocating nothing.
	nAttrs, nValues := 0, 0
	err := walkEntry(op, func(_, vals []byte) error {
		n, err := countValues(vals)
		nAttrs++
		nValues += n
		return err
	})
	if err != nil {
		return nil, err
	}

	// Second pass: fill the entry in.
	raw := d.raw.take(len(op))
	copy(raw, op)
	str := string(op)
	e := &d.entries.take(1)[0]
	e.Attributes = d.ptrs.take(nAttrs)
	attrs := d.attrs.take(nAttrs)
	values, byteValues := d.strs.take(nValues), d.byteVs.take(nValues)
	dn, _, _ := expect(op, tagOctetString, "objectName")
	start, end := within(op, dn)
	e.DN = str[start:end]
	i := 0
	err = walkEntry(op, func(name, vals []byte) error {
		a := &attrs[i]
		e.Attributes[i] = a
		i++
		start, end := within(op, name)
		a.Name = str[start:end]
		n, _ := countValues(vals)
		a.Values, values = values[:n:n], values[n:]
		a.ByteValues, byteValues = byteValues[:n:n], byteValues[n:]
		for j := 0; len(vals) > 0; j++ {
			v, rest, _ := expect(vals, tagOctetString, "value")
			start, end := within(op, v)
			a.Values[j], a.ByteValues[j] = str[start:end], raw[start:end:end]
			vals = rest
		}
		return nil
	})
	return e, err
}

// walkEntry checks a SearchResultEntry's framing and calls fn with each
// attribute's type and the content of its SET of values.
func walkEntry(op []byte, fn func(name, vals []byte) error) error {
	_, rest, err := expect(op, tagOctetString, "objectName")
	if err != nil {
		return err
	}
	attrs, rest, err := expect(rest, tagSequence, "attributes")
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return malformed("%d bytes after an entry's attributes", len(rest))
	}
	for len(attrs) > 0 {
		var attr []byte
		if attr, attrs, err = expect(attrs, tagSequence, "attribute"); err != nil {
			return err
		}
		name, rest, err := expect(attr, tagOctetString, "attribute type")
		if err != nil {
			return err
		}
		vals, rest, err := expect(rest, tagSet, "attribute values")
		if err != nil {
			return err
		}
		if len(rest) > 0 {
			return malformed("%d bytes after an attribute's values", len(rest))
		}
		if err := fn(name, vals); err != nil {
			return err
		}
	}
	return nil
}

// countValues counts the OCTET STRINGs of a SET of values.
func countValues(vals []byte) (int, error) {
	n := 0
	for len(vals) > 0 {
		var err error
		if _, vals, err = expect(vals, tagOctetString, "value"); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// slab hands out slices of larger allocations of chunk elements, so that
// many small slices cost one allocation. What it handed out is never
// handed out again.
type slab[T any] struct {
	free  []T
	chunk int
}

// take returns a zeroed slice of n elements whose capacity is n.
func (s *slab[T]) take(n int) []T {
	if n > len(s.free) {
		s.free = make([]T, max(n, s.chunk))
	}
	out := s.free[:n:n]
	s.free = s.free[n:]
	return out
}
