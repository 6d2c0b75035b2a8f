package directory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// FuzzReadMessage reads whatever a server may send as the responses to a
// paged search: no panic, no hang, an allocation bounded by what arrived,
// and every entry it decodes is the one go-asn1-ber sees in the same
// bytes. The seeds (testdata/fuzz/FuzzReadMessage) are messages captured
// from slapd and Samba AD, and truncated or broken ones.
func FuzzReadMessage(f *testing.F) {
	f.Add(berMessage(3, berEntry("cn=a,dc=x", "cn", "a", "b", "|", "objectGUID", "\x00\xff\x10")))
	f.Add(berMessage(3, berResult(ldap.ApplicationSearchResultDone, 0, "", ""), berPaging("cookie")))
	f.Fuzz(func(t *testing.T, data []byte) {
		mr := messageReader{r: bufio.NewReaderSize(bytes.NewReader(data), 16)}
		d := newEntryDecoder()
		for {
			b, err := mr.next()
			if limit := 2*len(data) + 8<<10; cap(mr.buf) > limit {
				t.Fatalf("a buffer of %d bytes for %d bytes of input", cap(mr.buf), len(data))
			}
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, errMalformed) {
					t.Fatalf("next: unexpected error %v", err)
				}
				return
			}
			m, err := parseMessage(b)
			if err != nil {
				continue
			}
			switch m.opTag {
			case tagSearchEntry:
				e, err := d.decode(m.op)
				if err != nil {
					continue
				}
				if diff := sameAsBER(m.op, e); diff != "" {
					t.Fatalf("%s\nin %x", diff, m.op)
				}
			case tagSearchDone, tagBindResponse, tagExtendedResponse:
				if r, err := parseResult(m.op); err == nil {
					_ = r.err()
				}
				if _, _, err := pagingCookie(m.controls); err != nil && !errors.Is(err, errMalformed) {
					t.Fatalf("pagingCookie: unexpected error %v", err)
				}
			}
		}
	})
}

// sameAsBER decodes a SearchResultEntry's content with go-asn1-ber and
// reports how e differs from it, or "" (also when go-asn1-ber cannot
// decode it).
func sameAsBER(op []byte, e *ldap.Entry) string {
	p, err := ber.DecodePacketErr(append(berHeader(tagSearchEntry, len(op)), op...))
	if err != nil || len(p.Children) != 2 {
		return ""
	}
	if dn := p.Children[0].Data.String(); dn != e.DN {
		return fmt.Sprintf("DN %q, go-asn1-ber's %q", e.DN, dn)
	}
	attrs := p.Children[1].Children
	if len(attrs) != len(e.Attributes) {
		return fmt.Sprintf("%d attributes, go-asn1-ber's %d", len(e.Attributes), len(attrs))
	}
	for i, a := range attrs {
		ea := e.Attributes[i]
		if len(a.Children) != 2 || a.Children[0].Data.String() != ea.Name || len(a.Children[1].Children) != len(ea.Values) ||
			len(ea.ByteValues) != len(ea.Values) {
			return fmt.Sprintf("attribute %d (%s) differs", i, ea.Name)
		}
		for j, v := range a.Children[1].Children {
			if v.Data.String() != ea.Values[j] || !bytes.Equal(v.Data.Bytes(), ea.ByteValues[j]) {
				return fmt.Sprintf("attribute %s value %d: %q, go-asn1-ber's %q", ea.Name, j, ea.Values[j], v.Data.String())
			}
		}
	}
	return ""
}

// berHeader encodes an identifier and a definite length.
func berHeader(tag byte, n int) []byte {
	if n < 0x80 {
		return []byte{tag, byte(n)}
	}
	var l []byte
	for ; n > 0; n >>= 8 {
		l = append([]byte{byte(n)}, l...)
	}
	return append([]byte{tag, 0x80 | byte(len(l))}, l...)
}

func TestElement(t *testing.T) {
	for _, tc := range []struct {
		in      []byte
		tag     byte
		content string
		rest    string
		err     string
	}{
		{[]byte{0x04, 0x01, 'a', 'b'}, 0x04, "a", "b", ""},
		{[]byte{0x04, 0x00}, 0x04, "", "", ""},
		{[]byte{0x04, 0x81, 0x01, 'a'}, 0x04, "a", "", ""},
		{[]byte{0x04, 0x84, 0x00, 0x00, 0x00, 0x01, 'a'}, 0x04, "a", "", ""},
		{append([]byte{0x04, 0x82, 0x01, 0x00}, bytes.Repeat([]byte{'x'}, 256)...), 0x04, string(bytes.Repeat([]byte{'x'}, 256)), "", ""},
		{[]byte{0x04}, 0, "", "", "truncated element"},
		{[]byte{0x04, 0x02, 'a'}, 0, "", "", "an element of 2 bytes in 1"},
		{[]byte{0x30, 0x80, 0x00, 0x00}, 0, "", "", "indefinite length"},
		{[]byte{0x04, 0x85, 1, 1, 1, 1, 1}, 0, "", "", "a length of 5 bytes"},
		{[]byte{0x04, 0x84, 0xff, 0xff, 0xff, 0xff}, 0, "", "", "an element of 4294967295 bytes in 0"},
		{[]byte{0x04, 0x82, 0x01}, 0, "", "", "truncated length"},
		{[]byte{0x1f, 0x01, 0x00}, 0, "", "", "multi-byte identifier"},
	} {
		tag, content, rest, err := element(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("element(%x) = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || tag != tc.tag || string(content) != tc.content || string(rest) != tc.rest {
			t.Errorf("element(%x) = %#x %q %q %v", tc.in, tag, content, rest, err)
		}
		if s, e := within(tc.in, content); string(tc.in[s:e]) != tc.content {
			t.Errorf("within(%x) = %d, %d", tc.in, s, e)
		}
	}
}

func TestBerInt(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int64
		ok   bool
	}{
		{[]byte{0}, 0, true}, {[]byte{0x7f}, 127, true}, {[]byte{0x00, 0x80}, 128, true},
		{[]byte{0x7f, 0xff, 0xff, 0xff}, maxMessageID, true}, {[]byte{0x80}, 0, false}, {[]byte{0xff, 0xff}, 0, false},
		{nil, 0, false}, {[]byte{0, 0, 0, 0, 1}, 0, false},
	} {
		n, err := berInt(tc.in, "n", maxMessageID)
		if (err == nil) != tc.ok || n != tc.want {
			t.Errorf("berInt(%x) = %d, %v", tc.in, n, err)
		}
	}
	if _, err := berInt([]byte{0x01, 0x00, 0x00}, "resultCode", 0xffff); err == nil {
		t.Error("resultCode 65536 accepted")
	}
}

// TestMessageReaderGrowth: a message longer than what arrives costs no
// more than what arrived, and a long one is read whole through a small
// buffer.
func TestMessageReaderGrowth(t *testing.T) {
	mr := messageReader{r: bufio.NewReaderSize(bytes.NewReader([]byte{0x30, 0x83, 0xff, 0xff, 0xff, 0x02, 0x01}), 16)}
	if _, err := mr.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("next = %v", err)
	}
	if cap(mr.buf) > 8<<10 {
		t.Errorf("a buffer of %d bytes for 2 bytes", cap(mr.buf))
	}
	long := berMessage(7, berEntry("cn=a", "jpegPhoto", string(bytes.Repeat([]byte{0xaa}, 1<<20))))
	_, content, _, _ := element(long)
	mr = messageReader{r: bufio.NewReaderSize(bytes.NewReader(append(long, long...)), 16)}
	for range 2 {
		b, err := mr.next()
		if err != nil || !bytes.Equal(b, content) {
			t.Fatalf("next = %d bytes, %v", len(b), err)
		}
	}
	if _, err := mr.next(); err != io.EOF {
		t.Errorf("after the last message: %v", err)
	}
}

// benchPage is a page of 1000 entries as slapd sends them for the full
// sync of the generated users.
func benchPage() []byte {
	var page []byte
	for i := range 1000 {
		page = append(page, berMessage(2, berEntry(fmt.Sprintf("uid=user%06d,ou=people,dc=example,dc=org", i),
			"entryUUID", fmt.Sprintf("0b6b6a1e-3f2e-4c5a-9d1b-%012d", i), "|", "uid", fmt.Sprintf("user%06d", i), "|",
			"mail", fmt.Sprintf("user%06d@example.org", i), "|", "mobile", fmt.Sprintf("+1555%07d", i), "|",
			"displayName", fmt.Sprintf("User %06d", i), "|", "cn", fmt.Sprintf("User %06d", i)))...)
	}
	return page
}

// BenchmarkDecodeEntry compares, per entry, the decoder of ber.go with
// go-ldap's (go-asn1-ber's ReadPacket, then the Entry built as go-ldap's
// Search builds it).
func BenchmarkDecodeEntry(b *testing.B) {
	page := benchPage()
	b.Run("fast", func(b *testing.B) {
		r := bytes.NewReader(page)
		mr := messageReader{r: bufio.NewReaderSize(r, readBufferSize)}
		d := newEntryDecoder()
		b.ReportAllocs()
		for b.Loop() {
			m, err := mr.next()
			if err == io.EOF {
				r.Reset(page)
				mr.r.Reset(r)
				m, err = mr.next()
			}
			if err != nil {
				b.Fatal(err)
			}
			msg, err := parseMessage(m)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := d.decode(msg.op); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("go-ldap", func(b *testing.B) {
		r := bytes.NewReader(page)
		br := bufio.NewReaderSize(r, readBufferSize)
		b.ReportAllocs()
		for b.Loop() {
			p, err := ber.ReadPacket(br)
			if err == io.EOF {
				r.Reset(page)
				br.Reset(r)
				p, err = ber.ReadPacket(br)
			}
			if err != nil {
				b.Fatal(err)
			}
			op := p.Children[1]
			e := &ldap.Entry{DN: op.Children[0].Value.(string)}
			for _, a := range op.Children[1].Children {
				ea := &ldap.EntryAttribute{Name: a.Children[0].Value.(string),
					Values: make([]string, len(a.Children[1].Children)), ByteValues: make([][]byte, len(a.Children[1].Children))}
				for i, v := range a.Children[1].Children {
					ea.Values[i], ea.ByteValues[i] = v.Value.(string), v.ByteValue
				}
				e.Attributes = append(e.Attributes, ea)
			}
		}
	})
}
