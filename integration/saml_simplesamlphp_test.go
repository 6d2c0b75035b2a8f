package integration

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/internal/ssptest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// TestSAMLWithSimpleSAMLphp signs a user in through the real `keystep
// serve` to SimpleSAMLphp 1.19 (internal/ssptest), a SAML SP written
// independently of the crewjam/saml that keystep is built on: SimpleSAMLphp
// signs its AuthnRequest (HTTP-Redirect binding, naming the user in
// <Subject>), keystep runs the step, the phone approves, and SimpleSAMLphp
// accepts keystep's signed Response and assertion (RS256), in one case
// encrypted (rsa-oaep-mgf1p with SHA-1, AES-256-GCM). A RequestedAuthnContext
// of minimum PasswordProtectedTransport is answered with the device class;
// IsPassive and a denial come back as error statuses SimpleSAMLphp reports.
// Controls: SimpleSAMLphp refuses keystep's Response with one byte of the
// NameID changed, and keystep refuses the SP's requests (HTTP 400, no push)
// until it has loaded the SP's metadata.
//
// Setting up breaks a cycle: keystep needs the SP's entity ID in its
// configuration at start, which SimpleSAMLphp only has once it listens (php
// -S picks its port), and SimpleSAMLphp needs keystep's URL and signing
// certificate at start. keystep's URL is fixed first: its public URL is a
// reverse proxy started before anything else. Its certificate comes from a
// first `keystep serve` on the data directory, stopped before the second,
// which keeps the key (it is in the store) and is configured with the SPs'
// entity IDs and metadata files that do not exist yet: the SPs are
// disabled until the files are written and keystep gets SIGHUP.
func TestSAMLWithSimpleSAMLphp(t *testing.T) {
	var target atomic.Pointer[url.URL]
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target.Load())
		r.Out.Host = r.In.Host // keystep sees its public host
	}})
	t.Cleanup(proxy.Close)
	data := filepath.Join(t.TempDir(), "data")
	serve := func(extra ...string) *daemon {
		t.Helper()
		d := startDaemon(t, listening, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", data, "--public-url", proxy.URL}, extra...)...)
		u, err := url.Parse(d.addr)
		if err != nil {
			t.Fatal(err)
		}
		target.Store(u)
		return d
	}

	// The first keystep makes the signing key; SimpleSAMLphp trusts it.
	first := serve()
	certs := idpSigningCerts(t, proxy.URL)
	if err := syscall.Kill(first.pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	first.logs.waitFor(t, 0, "msg=stopped")

	idp := ssptest.Options{
		IdPEntityID:       proxy.URL + "/saml/metadata",
		IdPSSOURL:         proxy.URL + "/saml/sso",
		IdPSLOURL:         proxy.URL + "/saml/slo",
		IdPCerts:          certs,
		SignAuthnRequests: true,
	}
	plain := ssptest.Start(t, idp)
	idp.EncryptAssertions = true
	secure := ssptest.Start(t, idp)

	mdDir := t.TempDir()
	plainMD, secureMD := filepath.Join(mdDir, "plain.xml"), filepath.Join(mdDir, "secure.xml")
	cfg := writeConfig(t,
		"push:",
		"  limit: 100",
		"saml:",
		"  service_providers:",
		"    - id: plain",
		"      entity_id: "+plain.EntityID,
		"      name: SimpleSAMLphp",
		"      metadata_file: "+plainMD,
		"    - id: secure",
		"      entity_id: "+secure.EntityID,
		"      name: SimpleSAMLphp encrypted",
		"      metadata_file: "+secureMD,
		"      encrypt_assertions: required",
		"      encryption:",
		"        key_transport: rsa-oaep-mgf1p",
		"        block_cipher: aes256-gcm",
	)
	d := serve("--config", cfg)
	for _, id := range []string{"plain", "secure"} {
		d.logs.waitFor(t, 0, "service provider disabled until its metadata loads", "sp="+id, "no such file")
	}
	if again := idpSigningCerts(t, proxy.URL); !again[0].Equal(certs[0]) {
		t.Fatal("the restarted keystep signs with another key than the one SimpleSAMLphp trusts")
	}
	srv := server{URL: proxy.URL, Data: data}
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	w.addUser("alice", "alice@example.com")
	w.enroll("alice", "phone.json")

	// Before the reload keystep does not know the SP: a plain refusal,
	// nothing posted back, no push.
	from := d.logs.len()
	if p := toKeystep(t, steptest.NewBrowser(t), plain.LoginURL("alice", ""), srv); p.Status != http.StatusBadRequest || strings.Contains(p.Body, "SAMLResponse") {
		t.Fatalf("keystep answered a request of the SP without metadata with %d:\n%s", p.Status, p.Body)
	}
	d.logs.waitFor(t, from, "saml: service provider has no usable metadata", "sp=plain")
	noPending(t, w)

	for path, sp := range map[string]*ssptest.SP{plainMD: plain, secureMD: secure} {
		buf, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
		if err == nil {
			err = os.WriteFile(path, buf, 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	from = d.logs.len()
	if err := syscall.Kill(d.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if line := logLine(d.logs, d.logs.waitFor(t, from, "SAML service provider metadata reloaded")-1); strings.Contains(line, "with errors") {
		t.Fatalf("SIGHUP: %s", line)
	}

	// signIn logs in at the SP through keystep, approving on the phone,
	// and returns the SP's result and keystep's Response.
	signIn := func(t *testing.T, sp *ssptest.SP, loginURL, client string, tamper func([]byte) []byte) (ssptest.Result, []byte, error) {
		t.Helper()
		b := steptest.NewBrowser(t)
		p := toKeystep(t, b, loginURL, srv)
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, srv.URL+"/step/") {
			t.Fatalf("keystep's SSO answered %d → %q, not the step page:\n%s", p.Status, p.Location, p.Body)
		}
		step := followToStep(t, b, p)
		if !strings.Contains(step.Text(), client) {
			t.Errorf("the step page does not name %s:\n%s", client, step.Text())
		}
		return atSP(t, b, sp, w.approveStep(b, step, "phone.json", client), tamper)
	}
	// accepted signs in and checks SimpleSAMLphp's session.
	accepted := func(t *testing.T, sp *ssptest.SP, loginURL, client string) []byte {
		t.Helper()
		res, raw, err := signIn(t, sp, loginURL, client, nil)
		if err != nil {
			t.Fatalf("SimpleSAMLphp: %v\nkeystep's Response:\n%s", err, raw)
		}
		if res.NameID != "alice" || res.AuthnContext != acrDevice || res.IdP != idp.IdPEntityID || res.SessionIndex == "" {
			t.Errorf("SimpleSAMLphp's session: %+v; want alice, %s, from %s, with a SessionIndex", res, acrDevice, idp.IdPEntityID)
		}
		return raw
	}
	t.Run("plain", func(t *testing.T) {
		raw := accepted(t, plain, plain.LoginURL("alice", ""), "SimpleSAMLphp")
		// Signed twice (Response and assertion), with RSA-SHA256, in clear.
		s := string(raw)
		if strings.Contains(s, "EncryptedAssertion") || strings.Count(s, "<ds:SignatureValue") != 2 ||
			strings.Count(s, `Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"`) != 2 || !strings.Contains(s, ">alice<") {
			t.Errorf("keystep's Response is not a plain one signed twice with rsa-sha256:\n%s", raw)
		}
	})
	t.Run("encrypted", func(t *testing.T) {
		raw := accepted(t, secure, secure.LoginURL("alice", ""), "SimpleSAMLphp encrypted")
		s := string(raw)
		for _, want := range []string{"EncryptedAssertion", "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
			`DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"`, "http://www.w3.org/2009/xmlenc11#aes256-gcm"} {
			if !strings.Contains(s, want) {
				t.Errorf("keystep's Response lacks %s", want)
			}
		}
		if strings.Contains(s, ">alice<") {
			t.Error("the NameID is in clear text")
		}
	})
	t.Run("requested context minimum", func(t *testing.T) {
		// The class of the method used, not the one requested.
		accepted(t, plain, plain.LoginURLFor(ssptest.Login{NameID: "alice", Comparison: "minimum",
			AuthnContexts: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}}), "SimpleSAMLphp")
	})
	// The control: SimpleSAMLphp checks keystep's signature. One byte of
	// the NameID changed, and it opens no session.
	t.Run("tampered", func(t *testing.T) {
		res, raw, err := signIn(t, plain, plain.LoginURL("alice", ""), "SimpleSAMLphp", func(raw []byte) []byte {
			if bytes.Count(raw, []byte(">alice<")) != 1 {
				t.Fatalf("the NameID is not in the Response once:\n%s", raw)
			}
			return bytes.Replace(raw, []byte(">alice<"), []byte(">alicf<"), 1)
		})
		var rerr *ssptest.ResultError
		if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "Reference validation failed") {
			t.Fatalf("SimpleSAMLphp did not refuse a changed Response for its signature: %+v, %v\n%s", res, err, raw)
		}
		t.Logf("SimpleSAMLphp refuses it: %v", rerr)
	})
	t.Run("passive", func(t *testing.T) {
		b := steptest.NewBrowser(t)
		p := toKeystep(t, b, plain.LoginURLFor(ssptest.Login{NameID: "alice", IsPassive: true}), srv)
		res, raw, err := atSP(t, b, plain, p, nil)
		wantStatus(t, res, err, raw, saml.StatusResponder, saml.StatusNoPassive)
		noPending(t, w)
	})
	t.Run("deny", func(t *testing.T) {
		b := steptest.NewBrowser(t)
		step := followToStep(t, b, toKeystep(t, b, plain.LoginURL("alice", ""), srv))
		var pend pendingList
		ok(t, &pend, w.device("phone.json", "pending")...)
		if len(pend.Requests) != 1 {
			t.Fatalf("pending %+v", pend)
		}
		ok(t, nil, w.device("phone.json", "deny", pend.Requests[0].ID)...)
		p := b.Submit(step.Form(t, "/finish"), nil)
		for i := 0; i < 3 && p.Status == http.StatusOK && !strings.Contains(p.Body, plain.ACSURL); i++ {
			f, found := p.FindForm("/abort")
			if !found {
				break
			}
			p = b.Submit(f, nil)
		}
		res, raw, err := atSP(t, b, plain, p, nil)
		wantStatus(t, res, err, raw, saml.StatusResponder, saml.StatusAuthnFailed)
	})
}

// idpSigningCerts reads the signing certificates of keystep's SAML
// metadata.
func idpSigningCerts(t *testing.T, base string) []*x509.Certificate {
	t.Helper()
	p := steptest.NewBrowser(t).Get(base + "/saml/metadata")
	if p.Status != http.StatusOK {
		t.Fatalf("keystep's SAML metadata: %d %s", p.Status, p.Body)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal([]byte(p.Body), &ed); err != nil || len(ed.IDPSSODescriptors) != 1 {
		t.Fatalf("keystep's SAML metadata (%v):\n%s", err, p.Body)
	}
	var certs []*x509.Certificate
	for _, kd := range ed.IDPSSODescriptors[0].KeyDescriptors {
		for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
			der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
			if err != nil {
				t.Fatal(err)
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		t.Fatalf("no certificate in keystep's SAML metadata:\n%s", p.Body)
	}
	return certs
}

// toKeystep loads a SimpleSAMLphp login URL and follows its redirects to
// keystep's SSO endpoint, checking the AuthnRequest comes with the
// HTTP-Redirect binding's RSA-SHA256 signature; it returns keystep's
// answer.
func toKeystep(t *testing.T, b *steptest.Browser, loginURL string, srv server) *steptest.Page {
	t.Helper()
	sso := srv.URL + "/saml/sso?"
	p := b.Get(loginURL)
	for i := 0; i < 5 && p.Location != "" && !strings.HasPrefix(p.Location, sso); i++ {
		p = b.Follow(p)
	}
	if !strings.HasPrefix(p.Location, sso) {
		t.Fatalf("SimpleSAMLphp did not send the browser to keystep: %d → %q\n%s", p.Status, p.Location, p.Body)
	}
	u, _ := url.Parse(p.Location)
	q := u.Query()
	if q.Get("SAMLRequest") == "" || q.Get("Signature") == "" || q.Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		t.Fatalf("SimpleSAMLphp's AuthnRequest is not signed with rsa-sha256: %s", p.Location)
	}
	return b.Follow(p)
}

// atSP takes keystep's auto-posting answer p to the SP's assertion
// consumer service, changed by tamper unless it is nil, and follows the
// SP's redirects to the page it ends on. It returns the SP's result,
// keystep's Response (as keystep sent it), and the SP's error.
func atSP(t *testing.T, b *steptest.Browser, sp *ssptest.SP, p *steptest.Page, tamper func([]byte) []byte) (ssptest.Result, []byte, error) {
	t.Helper()
	fields := autoPost(t, p, sp.ACSURL)
	raw, err := base64.StdEncoding.DecodeString(fields.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		fields.Set("SAMLResponse", base64.StdEncoding.EncodeToString(tamper(raw)))
	}
	p = b.Post(sp.ACSURL, fields)
	for i := 0; i < 5 && p.Location != ""; i++ {
		p = b.Follow(p)
	}
	if tamper == nil && p.URL.Path != "/keystep/result" {
		t.Errorf("SimpleSAMLphp ended at %s (%d), not at its result page", p.URL, p.Status)
	}
	res, err := ssptest.ParseResult([]byte(p.Body))
	return res, raw, err
}

// wantStatus checks that the SP reports the error status top/second.
func wantStatus(t *testing.T, res ssptest.Result, err error, raw []byte, top, second string) {
	t.Helper()
	var rerr *ssptest.ResultError
	if !errors.As(err, &rerr) || rerr.Status != top || rerr.SubStatus != second {
		t.Fatalf("SimpleSAMLphp: %+v, %v; want the status %s / %s\nkeystep's Response:\n%s", res, err, top, second, raw)
	}
	if strings.Contains(string(raw), "<saml:Assertion") {
		t.Errorf("an error Response carries an assertion:\n%s", raw)
	}
	t.Logf("SimpleSAMLphp reports %v", rerr)
}

// noPending checks that no request waits on the phone.
func noPending(t *testing.T, w walk) {
	t.Helper()
	var pend pendingList
	ok(t, &pend, w.device("phone.json", "pending")...)
	if len(pend.Requests) != 0 {
		t.Errorf("pending on the phone: %+v, want none", pend)
	}
}

// logLine is the i'th line of l.
func logLine(l *logBuffer, i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines[i]
}
