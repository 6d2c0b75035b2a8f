package directory

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/sambatest"
	"github.com/keystep/keystep/internal/slapdtest"
)

// readAll runs the paged search on a connection dialPaged makes for cfg
// and returns the pages, and the URL it used.
func readAll(t *testing.T, ctx context.Context, cfg SourceConfig, s pagedSearch) ([][]*ldap.Entry, string, error) {
	t.Helper()
	c, used, err := dialPaged(ctx, cfg)
	if err != nil {
		return nil, "", err
	}
	defer c.Close()
	out := make(chan []*ldap.Entry)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		errc <- c.search(ctx, s, out)
	}()
	var pages [][]*ldap.Entry
	for p := range out {
		pages = append(pages, p)
	}
	return pages, used, <-errc
}

// goLDAPRead is the same search through go-ldap's SearchWithPaging on a
// connection dial makes: the reference the fast reader must match.
func goLDAPRead(t *testing.T, cfg SourceConfig, s pagedSearch) *ldap.SearchResult {
	t.Helper()
	conn, _, err := dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("go-ldap dial: %v", err)
	}
	defer conn.Close()
	res, err := conn.SearchWithPaging(ldap.NewSearchRequest(s.baseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
		int(s.timeLimit/time.Second), false, s.filter, s.attributes, nil), uint32(s.pageSize))
	if err != nil {
		t.Fatalf("go-ldap search: %v", err)
	}
	return res
}

// sameEntries reports the first difference between two lists of entries
// (DN, attribute names, values and byte values, in order), or "".
func sameEntries(got, want []*ldap.Entry) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d entries, want %d", len(got), len(want))
	}
	for i, g := range got {
		w := want[i]
		if g.DN != w.DN {
			return fmt.Sprintf("entry %d: DN %q, want %q", i, g.DN, w.DN)
		}
		if len(g.Attributes) != len(w.Attributes) {
			return fmt.Sprintf("%s: %d attributes, want %d", g.DN, len(g.Attributes), len(w.Attributes))
		}
		for j, ga := range g.Attributes {
			wa := w.Attributes[j]
			if ga.Name != wa.Name || !slices.Equal(ga.Values, wa.Values) ||
				!slices.EqualFunc(ga.ByteValues, wa.ByteValues, bytes.Equal) || len(ga.ByteValues) != len(ga.Values) {
				return fmt.Sprintf("%s: attribute %d is %s %q %x, want %s %q %x", g.DN, j, ga.Name, ga.Values, ga.ByteValues,
					wa.Name, wa.Values, wa.ByteValues)
			}
		}
	}
	return ""
}

// variedLDIF holds entries that the generated users lack: many values,
// binary values (one over 64 KiB, more than the read buffer), UTF-8, an
// empty-ish value and long lengths.
func variedLDIF() string {
	photo := make([]byte, 100_000)
	for i := range photo {
		photo[i] = byte(i * 7)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dn: uid=varied,ou=people,%s\nobjectClass: inetOrgPerson\nuid: varied\ncn: Varied\ncn: Zoë Ünïcødé\nsn: V\n", slapdtest.BaseDN)
	for i := range 300 {
		fmt.Fprintf(&b, "mail: varied%03d@example.org\n", i)
	}
	fmt.Fprintf(&b, "description: %s\n", strings.Repeat("long ", 60))
	fmt.Fprintf(&b, "jpegPhoto:: %s\n", base64.StdEncoding.EncodeToString(photo))
	fmt.Fprintf(&b, "userCertificate;binary:: %s\n\n", base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff, 0x80, 0}))
	fmt.Fprintf(&b, "dn: uid=bare,ou=people,%s\nobjectClass: inetOrgPerson\nuid: bare\ncn: b\nsn: b\n\n", slapdtest.BaseDN)
	return b.String()
}

// TestPagedReadSlapd: the fast reader returns exactly what go-ldap's
// SearchWithPaging returns, page by page, over StartTLS, LDAPS, plain LDAP
// on loopback and with SASL EXTERNAL.
func TestPagedReadSlapd(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(250, "people") + variedLDIF(), LogLevel: "none"})
	search := pagedSearch{baseDN: s.BaseDN, filter: "(|(objectClass=inetOrgPerson)(objectClass=organizationalUnit))",
		attributes: []string{"*", "+"}, pageSize: 40, timeLimit: 10 * time.Second}
	want := goLDAPRead(t, slapdConfig(s, s.URL), search).Entries
	varied := slices.IndexFunc(want, func(e *ldap.Entry) bool { return strings.HasPrefix(e.DN, "uid=varied,") })
	if len(want) < 252 || varied < 0 || len(want[varied].GetRawAttributeValue("jpegPhoto")) != 100_000 ||
		len(want[varied].GetAttributeValues("mail")) != 300 {
		t.Fatalf("go-ldap read %d entries, not the test's", len(want))
	}

	check := func(t *testing.T, cfg SourceConfig, wantURL string) {
		t.Helper()
		c, _, err := dialPaged(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, isTLS := c.conn.(*tls.Conn); isTLS == cfg.InsecureNoTLS {
			t.Errorf("TLS: %v", isTLS)
		}
		c.Close()
		pages, used, err := readAll(t, context.Background(), cfg, search)
		if err != nil {
			t.Fatalf("fast read: %v", err)
		}
		if used != wantURL {
			t.Errorf("used %s, want %s", used, wantURL)
		}
		var got []*ldap.Entry
		for i, p := range pages {
			if len(p) > search.pageSize || len(p) == 0 || i < len(pages)-1 && len(p) != search.pageSize {
				t.Errorf("page %d of %d has %d entries (page size %d)", i, len(pages), len(p), search.pageSize)
			}
			got = append(got, p...)
		}
		if diff := sameEntries(got, want); diff != "" {
			t.Error(diff)
		}
	}
	t.Run("StartTLS", func(t *testing.T) { check(t, slapdConfig(s, s.URL), s.URL) })
	t.Run("LDAPS", func(t *testing.T) { check(t, slapdConfig(s, s.LDAPSURL), s.LDAPSURL) })
	t.Run("plain on loopback", func(t *testing.T) {
		cfg := slapdConfig(s, s.URL)
		cfg.InsecureNoTLS, cfg.StartTLS = true, false
		check(t, cfg, s.URL)
	})
	t.Run("SASL EXTERNAL", func(t *testing.T) {
		cfg := slapdConfig(s, s.URL)
		cfg.ClientCert, cfg.BindDN, cfg.BindPassword = &s.ClientCert, "", ""
		check(t, cfg, s.URL)
		cfg.URLs = []string{s.LDAPSURL}
		check(t, cfg, s.LDAPSURL)
	})
	t.Run("failover", func(t *testing.T) {
		check(t, slapdConfig(s, "ldap://127.0.0.1:1", "ldaps://"+closedPort(t), s.LDAPSURL), s.LDAPSURL)
	})
	t.Run("one page", func(t *testing.T) {
		one := search
		one.pageSize = 1000
		pages, _, err := readAll(t, context.Background(), slapdConfig(s, s.URL), one)
		if err != nil || len(pages) != 1 || len(pages[0]) != len(want) {
			t.Fatalf("%d pages, %v", len(pages), err)
		}
	})
	t.Run("the sync's attributes", func(t *testing.T) {
		src := &Source{cfg: slapdConfig(s, s.URL)}
		var err error
		if src.mapper, err = newMapper(src.cfg); err != nil {
			t.Fatal(err)
		}
		s2 := pagedSearch{baseDN: s.BaseDN, filter: "(objectClass=inetOrgPerson)", attributes: src.mapper.attributes(),
			pageSize: 100, timeLimit: 10 * time.Second}
		pages, _, err := readAll(t, context.Background(), src.cfg, s2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := sameEntries(slices.Concat(pages...), goLDAPRead(t, src.cfg, s2).Entries); diff != "" {
			t.Error(diff)
		}
	})
}

// TestPagedReadSlapdFailures: a wrong password stops the failover and the
// error holds no password; unreachable URLs fail over; a bad base DN is
// the server's noSuchObject, worded as go-ldap words it; a cancelled
// context stops the read.
func TestPagedReadSlapdFailures(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(300, "people"), LogLevel: "none"})
	search := pagedSearch{baseDN: s.BaseDN, filter: "(objectClass=inetOrgPerson)", attributes: []string{"uid"},
		pageSize: 50, timeLimit: 10 * time.Second}

	t.Run("wrong password", func(t *testing.T) {
		cfg := slapdConfig(s, s.URL, s.LDAPSURL)
		cfg.BindPassword = "wrong-" + s.SyncPassword
		_, _, err := dialPaged(context.Background(), cfg)
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("dialPaged = %v, want invalidCredentials", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, s.URL+": bind as "+s.SyncDN+": LDAP Result Code 49") || strings.Contains(msg, s.LDAPSURL) {
			t.Errorf("error %q: want a bind error from %s only", msg, s.URL)
		}
		if strings.Contains(msg, cfg.BindPassword) || strings.Contains(msg, s.SyncPassword) {
			t.Errorf("error holds the password: %s", msg)
		}
		t.Log(err)
	})
	t.Run("empty password", func(t *testing.T) {
		cfg := slapdConfig(s, s.LDAPSURL)
		cfg.BindPassword = ""
		if _, _, err := dialPaged(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "empty password") {
			t.Errorf("dialPaged with an empty password = %v", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		silent := silentServer(t)
		cfg := slapdConfig(s, "ldap://127.0.0.1:1", "ldaps://"+closedPort(t), "ldap://"+silent, "ldaps://"+silent)
		cfg.Timeout = 300 * time.Millisecond
		_, _, err := dialPaged(context.Background(), cfg)
		if err == nil {
			t.Fatal("dialPaged succeeded")
		}
		msg, last := err.Error(), -1
		for _, u := range cfg.URLs {
			i := strings.Index(msg, u+": ")
			if i < last {
				t.Errorf("%s not tried, or out of order: %v", u, err)
			}
			last = i
		}
		if !strings.HasPrefix(msg, "cannot connect to the directory: ") || !strings.Contains(msg, "took over 600ms") {
			t.Errorf("error: %v", err)
		}
		t.Log(err)
	})
	t.Run("unknown CA", func(t *testing.T) {
		for _, u := range []string{s.LDAPSURL, s.URL} {
			cfg := slapdConfig(s, u)
			cfg.RootCAs = nil // the system's
			_, _, err := dialPaged(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), u+": ") || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("%s: %v", u, err)
			}
			t.Log(err)
		}
	})
	t.Run("bad base DN", func(t *testing.T) {
		bad := search
		bad.baseDN = "ou=nowhere," + s.BaseDN
		_, _, err := readAll(t, context.Background(), slapdConfig(s, s.URL), bad)
		var le *ldap.Error
		if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultNoSuchObject || le.MatchedDN != s.BaseDN {
			t.Fatalf("read = %v, want noSuchObject matching %s", err, s.BaseDN)
		}
		conn, _, derr := dial(context.Background(), slapdConfig(s, s.URL))
		if derr != nil {
			t.Fatal(derr)
		}
		defer conn.Close()
		_, gerr := conn.SearchWithPaging(ldap.NewSearchRequest(bad.baseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0,
			10, false, bad.filter, bad.attributes, nil), 50)
		if gerr == nil || err.Error() != gerr.Error() {
			t.Errorf("error %q, go-ldap's %q", err, gerr)
		}
		t.Log(err)
	})
	t.Run("bad filter", func(t *testing.T) {
		bad := search
		bad.filter = "(uid=x"
		if _, _, err := readAll(t, context.Background(), slapdConfig(s, s.URL), bad); !ldap.IsErrorWithCode(err, ldap.ErrorFilterCompile) {
			t.Errorf("read = %v", err)
		}
	})
	t.Run("cancelled mid-read", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c, _, err := dialPaged(ctx, slapdConfig(s, s.URL))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		out := make(chan []*ldap.Entry)
		errc := make(chan error, 1)
		go func() { errc <- c.search(ctx, search, out) }()
		if p := <-out; len(p) != search.pageSize {
			t.Fatalf("first page: %d entries", len(p))
		}
		cancel()
		select {
		case err := <-errc:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("search = %v, want context.Canceled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the search went on after its context ended")
		}
		if _, err := c.send(ber.Encode(ber.ClassApplication, ber.TypePrimitive, 2, nil, "Unbind")); err == nil {
			t.Error("the connection is still open")
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, _, err := dialPaged(ctx, slapdConfig(s, s.URL)); !errors.Is(err, context.Canceled) {
			t.Errorf("dialPaged = %v", err)
		}
	})
}

// TestPagedReadSamba: against Active Directory (Samba), from the domain
// root (so the server sends referrals, which are skipped) and with binary
// attributes (objectGUID, objectSid), the fast reader returns what go-ldap
// does.
func TestPagedReadSamba(t *testing.T) {
	srv := sambatest.Start(t)
	srv.AddUser(t, "ann", map[string][]string{"mail": {"ann@keystep.test"}})
	srv.AddUser(t, "ben", nil)
	cfg := SourceConfig{Name: "ad", URLs: []string{srv.LDAPSURL}, RootCAs: srv.CAPool, ServerName: srv.ServerName,
		BindDN: srv.AdminDN, BindPassword: srv.AdminPassword, BaseDN: srv.BaseDN, Timeout: 30 * time.Second}.withDefaults()
	search := pagedSearch{baseDN: srv.BaseDN, filter: "(objectClass=*)", pageSize: 25, timeLimit: 30 * time.Second,
		attributes: []string{"objectGUID", "objectSid", "sAMAccountName", "userAccountControl", "name", "objectClass", "mail"}}
	ref := goLDAPRead(t, cfg, search)
	if len(ref.Referrals) == 0 || len(ref.Entries) <= search.pageSize {
		t.Fatalf("go-ldap read %d entries and %d referrals: the test needs both, and more than a page", len(ref.Entries), len(ref.Referrals))
	}
	for _, u := range []string{srv.LDAPSURL, srv.LDAPURL} {
		cfg.URLs = []string{u}
		pages, _, err := readAll(t, context.Background(), cfg, search)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if diff := sameEntries(slices.Concat(pages...), ref.Entries); diff != "" {
			t.Errorf("%s: %s", u, diff)
		}
	}
	t.Logf("%d entries, %d referrals", len(ref.Entries), len(ref.Referrals))
	guids := 0
	for _, e := range ref.Entries {
		if len(e.GetRawAttributeValue("objectGUID")) == 16 {
			guids++
		}
	}
	if guids != len(ref.Entries) {
		t.Errorf("%d of %d entries have a 16-byte objectGUID", guids, len(ref.Entries))
	}
}

// --- a scripted server, for what real servers do not send ---

// berMessage encodes an LDAPMessage.
func berMessage(id int64, op *ber.Packet, controls ...*ber.Packet) []byte {
	m := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	m.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, ""))
	m.AppendChild(op)
	if len(controls) > 0 {
		cs := ber.Encode(ber.ClassContext, ber.TypeConstructed, 0, nil, "")
		for _, c := range controls {
			cs.AppendChild(c)
		}
		m.AppendChild(cs)
	}
	return m.Bytes()
}

// berResult encodes an LDAPResult under the application tag tag.
func berResult(tag ber.Tag, code int64, matched, diag string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, ""))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, matched, ""))
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, ""))
	return p
}

// berEntry encodes a SearchResultEntry; attrs is name, values..., "|",
// name, values...
func berEntry(dn string, attrs ...string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, dn, ""))
	list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for len(attrs) > 0 {
		end := slices.Index(attrs, "|")
		if end < 0 {
			end = len(attrs)
		}
		a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
		a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, attrs[0], ""))
		vals := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSet, nil, "")
		for _, v := range attrs[1:end] {
			vals.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, v, ""))
		}
		a.AppendChild(vals)
		list.AppendChild(a)
		attrs = attrs[min(end+1, len(attrs)):]
	}
	p.AppendChild(list)
	return p
}

// berPaging encodes a paged-results response control.
func berPaging(cookie string) *ber.Packet {
	c := ldap.NewControlPaging(0)
	c.SetCookie([]byte(cookie))
	return c.Encode()
}

// berReference encodes a SearchResultReference.
func berReference(uris ...string) *ber.Packet {
	p := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultReference, nil, "")
	for _, u := range uris {
		p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, u, ""))
	}
	return p
}

// request is a request the scripted server received.
type request struct {
	id     int64
	cookie string // of a search's paging control
}

// scriptedServer accepts plain LDAP connections on loopback, answers
// binds with success and each search with what answer writes (it gets the
// search's index, from 0, and request). It returns an ldap:// URL.
func scriptedServer(t *testing.T, answer func(w io.Writer, n int, req request)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				stop := context.AfterFunc(t.Context(), func() { conn.Close() })
				defer stop()
				mr := messageReader{r: bufio.NewReader(conn)}
				for n := 0; ; {
					b, err := mr.next()
					if err != nil {
						return
					}
					m, err := parseMessage(b)
					if err != nil {
						t.Errorf("scripted server: %v", err)
						return
					}
					req := request{id: m.id}
					switch m.opTag {
					case 0x60: // BindRequest
						conn.Write(berMessage(m.id, berResult(ldap.ApplicationBindResponse, 0, "", "")))
					case 0x63: // SearchRequest
						cookie, _, err := pagingCookie(m.controls)
						if err != nil {
							t.Errorf("scripted server: %v", err)
						}
						req.cookie = string(cookie)
						answer(conn, n, req)
						n++
					default:
						return
					}
				}
			})
		}
	})
	return "ldap://" + l.Addr().String()
}

// scriptedConfig is a source configuration for a scripted server.
func scriptedConfig(url string) SourceConfig {
	return SourceConfig{Name: "scripted", URLs: []string{url}, InsecureNoTLS: true, BindDN: "cn=x", BindPassword: "pw",
		BaseDN: "dc=example,dc=org", Timeout: 10 * time.Second}.withDefaults()
}

var scriptedSearch = pagedSearch{baseDN: "dc=example,dc=org", filter: "(objectClass=*)", attributes: []string{"cn"},
	pageSize: 2, timeLimit: 10 * time.Second}

// TestPagedReadScripted covers what the real servers of the other tests do
// not send: cookies followed, referrals skipped, a server that does not
// page, errors, notices of disconnection, wrong message ids, malformed
// messages, a connection that closes or goes silent.
func TestPagedReadScripted(t *testing.T) {
	w := func(w io.Writer, b ...[]byte) {
		for _, m := range b {
			w.Write(m)
		}
	}
	entry := func(id int64, dn string) []byte { return berMessage(id, berEntry(dn, "cn", dn)) }
	done := func(id int64, controls ...*ber.Packet) []byte {
		return berMessage(id, berResult(ldap.ApplicationSearchResultDone, 0, "", ""), controls...)
	}
	tests := []struct {
		name    string
		answer  func(w io.Writer, n int, req request)
		pages   []int  // entries per page
		wantErr string // "" for none
		timeout time.Duration
	}{
		{"cookies followed, referrals skipped", func(wr io.Writer, n int, req request) {
			switch n {
			case 0:
				w(wr, entry(req.id, "cn=a"), berMessage(req.id, berReference("ldap://other/dc=x")), entry(req.id, "cn=b"),
					done(req.id, berPaging("c1")))
			case 1:
				if req.cookie != "c1" {
					t.Errorf("second request's cookie %q", req.cookie)
				}
				w(wr, entry(req.id, "cn=c"), done(req.id, berPaging("")))
			}
		}, []int{2, 1}, "", 0},
		{"a server that does not page", func(wr io.Writer, n int, req request) {
			w(wr, entry(req.id, "cn=a"), entry(req.id, "cn=b"), entry(req.id, "cn=c"), done(req.id))
		}, []int{3}, "", 0},
		{"other controls", func(wr io.Writer, n int, req request) {
			other := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
			other.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "1.2.3", ""))
			crit := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
			crit.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, ldap.ControlTypePaging, ""))
			crit.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, ""))
			crit.AppendChild(berPaging("").Children[1]) // the value
			w(wr, entry(req.id, "cn=a"), done(req.id, other, crit))
		}, []int{1}, "", 0},
		{"an error result", func(wr io.Writer, n int, req request) {
			w(wr, entry(req.id, "cn=a"), berMessage(req.id, berResult(ldap.ApplicationSearchResultDone, 50, "", "no access to that")))
		}, nil, `LDAP Result Code 50 "Insufficient Access Rights": no access to that`, 0},
		{"an error on the second page", func(wr io.Writer, n int, req request) {
			if n == 0 {
				w(wr, entry(req.id, "cn=a"), done(req.id, berPaging("c")))
				return
			}
			w(wr, berMessage(req.id, berResult(ldap.ApplicationSearchResultDone, 51, "", "busy")))
		}, []int{1}, `LDAP Result Code 51 "Busy": busy`, 0},
		{"a notice of disconnection", func(wr io.Writer, n int, req request) {
			w(wr, entry(req.id, "cn=a"), berMessage(0, berResult(ldap.ApplicationExtendedResponse, 52, "", "shutting down")))
		}, nil, `the server ended the connection: LDAP Result Code 52 "Unavailable": shutting down`, 0},
		{"another message id", func(wr io.Writer, n int, req request) {
			w(wr, entry(req.id+1, "cn=a"))
		}, nil, "malformed LDAP message: a response to message", 0},
		{"another response", func(wr io.Writer, n int, req request) {
			w(wr, berMessage(req.id, berResult(ldap.ApplicationModifyResponse, 0, "", "")))
		}, nil, "malformed LDAP message: response 0x67 to a search", 0},
		{"an attribute without values", func(wr io.Writer, n int, req request) {
			e := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchResultEntry, nil, "")
			e.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "cn=a", ""))
			list := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
			a := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
			a.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "cn", ""))
			list.AppendChild(a)
			e.AppendChild(list)
			w(wr, berMessage(req.id, e))
		}, nil, "malformed LDAP message: attribute values", 0},
		{"indefinite length", func(wr io.Writer, n int, req request) {
			w(wr, []byte{0x30, 0x80, 0x02, 0x01, byte(req.id), 0x00, 0x00})
		}, nil, "malformed LDAP message: indefinite length", 0},
		{"a huge length", func(wr io.Writer, n int, req request) {
			w(wr, []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff})
		}, nil, "malformed LDAP message: a message of 2147483647 bytes", 0},
		{"the connection closes mid-message", func(wr io.Writer, n int, req request) {
			m := entry(req.id, "cn=a")
			w(wr, m[:len(m)-3])
			wr.(net.Conn).Close()
		}, nil, `LDAP Result Code 200 "Network Error": the server closed the connection`, 0},
		{"the connection closes between messages", func(wr io.Writer, n int, req request) {
			w(wr, entry(req.id, "cn=a"))
			wr.(net.Conn).Close()
		}, nil, `LDAP Result Code 200 "Network Error": the server closed the connection`, 0},
		{"a silent server", func(wr io.Writer, n int, req request) {
			w(wr, entry(req.id, "cn=a"))
		}, nil, "no answer within 300ms", 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := scriptedConfig(scriptedServer(t, tt.answer))
			if tt.timeout != 0 {
				cfg.Timeout = tt.timeout
			}
			pages, _, err := readAll(t, context.Background(), cfg, scriptedSearch)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("read = %v, want %q", err, tt.wantErr)
			}
			var sizes []int
			for _, p := range pages {
				sizes = append(sizes, len(p))
			}
			if !slices.Equal(sizes, tt.pages) {
				t.Errorf("pages of %v entries, want %v", sizes, tt.pages)
			}
		})
	}
}

// TestPagedReadCancelledInRead: ending the context interrupts a read the
// server does not answer, long before the timeout.
func TestPagedReadCancelledInRead(t *testing.T) {
	reading := make(chan struct{})
	cfg := scriptedConfig(scriptedServer(t, func(w io.Writer, n int, req request) {
		w.Write(berMessage(req.id, berEntry("cn=a", "cn", "a")))
		close(reading)
	}))
	cfg.Timeout = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, _, err := readAll(t, ctx, cfg, scriptedSearch)
		errc <- err
	}()
	<-reading
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read went on after its context ended")
	}
}

// TestEntryDecoderAllocs: an entry costs about one allocation, whatever
// its number of attributes and values.
func TestEntryDecoderAllocs(t *testing.T) {
	m := berMessage(1, berEntry("uid=user000001,ou=people,dc=example,dc=org",
		"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", "|", "uid", "user000001", "|", "mail", "user000001@example.org",
		"|", "mobile", "+15550000001", "|", "displayName", "User 000001", "|", "cn", "User 000001", "u1"))
	d := newEntryDecoder()
	r := bytes.NewReader(m)
	mr := messageReader{r: bufio.NewReader(r)}
	allocs := testing.AllocsPerRun(1000, func() {
		r.Reset(m)
		mr.r.Reset(r)
		b, err := mr.next()
		if err != nil {
			t.Fatal(err)
		}
		msg, err := parseMessage(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.decode(msg.op); err != nil {
			t.Fatal(err)
		}
	})
	// The entry's string is the one allocation per entry; the slabs cost
	// a fraction of one (AllocsPerRun rounds down).
	if allocs > 1 {
		t.Errorf("%v allocations per entry", allocs)
	}
}
