package ssptest_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/xmlenc"

	"github.com/keystep/keystep/internal/ssptest"
)

// testIdP is a minimal crewjam/saml IdP: its SessionProvider answers at once
// with a session for the NameID the request names (alice when it names
// none), with the first requested AuthnContextClassRef, and records each
// AuthnRequest it is asked about.
type testIdP struct {
	IDP  *saml.IdentityProvider
	Srv  *httptest.Server
	Cert *x509.Certificate

	mu       sync.Mutex
	sps      map[string]*saml.EntityDescriptor
	requests []saml.AuthnRequest
}

func newIdP(t *testing.T, key crypto.Signer) *testIdP {
	t.Helper()
	ti := &testIdP{sps: map[string]*saml.EntityDescriptor{}}
	ti.Srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti.IDP.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ti.Srv.Close)
	ti.Cert = selfSigned(t, key, "keystep ssptest IdP")
	base, _ := url.Parse(ti.Srv.URL)
	ti.IDP = &saml.IdentityProvider{
		Signer:                  key,
		Certificate:             ti.Cert,
		Logger:                  log.New(testWriter{t}, "idp: ", 0),
		MetadataURL:             *base.ResolveReference(&url.URL{Path: "/saml/metadata"}),
		SSOURL:                  *base.ResolveReference(&url.URL{Path: "/saml/sso"}),
		ServiceProviderProvider: ti,
		SessionProvider:         ti,
		RejectSHA1Signatures:    true,
	}
	return ti
}

// GetServiceProvider implements saml.ServiceProviderProvider.
func (ti *testIdP) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if ed, ok := ti.sps[id]; ok {
		return ed, nil
	}
	return nil, os.ErrNotExist
}

// GetSession implements saml.SessionProvider.
func (ti *testIdP) GetSession(w http.ResponseWriter, _ *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	ti.mu.Lock()
	ti.requests = append(ti.requests, req.Request)
	ti.mu.Unlock()
	if req.Request.IsPassive != nil && *req.Request.IsPassive {
		if err := ti.IDP.SendErrorResponse(w, req, &saml.StatusError{
			TopLevel: saml.StatusResponder, SecondLevel: saml.StatusNoPassive, Message: "no passive login here",
		}); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
		return nil
	}
	nameID := "alice"
	if s := req.Request.Subject; s != nil && s.NameID != nil {
		nameID = s.NameID.Value
	}
	class := ""
	if rac := req.Request.RequestedAuthnContext; rac != nil && len(rac.AuthnContextClassRefs) > 0 {
		class = rac.AuthnContextClassRefs[0]
	}
	now := time.Now()
	return &saml.Session{
		ID:                   randomHex(16),
		CreateTime:           now,
		ExpireTime:           now.Add(time.Hour),
		Index:                randomHex(8),
		NameID:               nameID,
		NameIDFormat:         "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
		UserName:             nameID,
		UserEmail:            nameID + "@example.org",
		AuthnContextClassRef: class,
	}
}

// addSP makes the IdP know sp, from the metadata the harness gives.
func (ti *testIdP) addSP(t *testing.T, sp *ssptest.SP) {
	t.Helper()
	// Through XML, as a real IdP would read it from a file.
	raw, err := xml.Marshal(sp.Metadata())
	if err != nil {
		t.Fatal(err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &ed); err != nil {
		t.Fatal(err)
	}
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.sps[ed.EntityID] = &ed
}

func (ti *testIdP) lastRequest(t *testing.T) saml.AuthnRequest {
	t.Helper()
	ti.mu.Lock()
	defer ti.mu.Unlock()
	if len(ti.requests) == 0 {
		t.Fatal("the IdP got no AuthnRequest")
	}
	return ti.requests[len(ti.requests)-1]
}

// start runs an SP for ti with o (the IdP fields filled in) and registers it.
func (ti *testIdP) start(t *testing.T, o ssptest.Options) *ssptest.SP {
	t.Helper()
	o.IdPEntityID = ti.IDP.MetadataURL.String()
	o.IdPSSOURL = ti.IDP.SSOURL.String()
	o.IdPCerts = []*x509.Certificate{ti.Cert}
	sp := ssptest.Start(t, o)
	ti.addSP(t, sp)
	return sp
}

// login plays a browser: it follows loginURL through the SP and the IdP,
// submits the IdP's auto-post form to the SP's assertion consumer service
// and parses the page it ends on.
func login(t *testing.T, loginURL string) (ssptest.Result, error) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	action, fields, ok := autoPostForm(body)
	if !ok {
		// No form: the SP's error page, or the IdP's refusal.
		if r, err := ssptest.ParseResult(body); r.Error != nil || err == nil {
			return r, err
		}
		return ssptest.Result{}, fmt.Errorf("no auto-post form at %s (HTTP %d): %.500s", resp.Request.URL, resp.StatusCode, body)
	}
	resp, err = c.PostForm(action, fields)
	if err != nil {
		t.Fatal(err)
	}
	return ssptest.ParseResult(readBody(t, resp))
}

var (
	formRE  = regexp.MustCompile(`<form method="post" action="([^"]*)"`)
	inputRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

// autoPostForm reads crewjam/saml's response form: its action and hidden
// fields.
func autoPostForm(body []byte) (string, url.Values, bool) {
	m := formRE.FindSubmatch(body)
	if m == nil {
		return "", nil, false
	}
	fields := url.Values{}
	for _, in := range inputRE.FindAllSubmatch(body, -1) {
		fields.Add(html.UnescapeString(string(in[1])), html.UnescapeString(string(in[2])))
	}
	return html.UnescapeString(string(m[1])), fields, fields.Get("SAMLResponse") != ""
}

func readBody(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSimpleSAMLphpLogin(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts ssptest.Options
		// wantSigned makes the IdP refuse unsigned AuthnRequests.
		wantSigned bool
	}{
		{name: "rsa-sha256"},
		{name: "signed requests", opts: ssptest.Options{SignAuthnRequests: true}, wantSigned: true},
		{name: "encrypted assertions", opts: ssptest.Options{EncryptAssertions: true}},
		{name: "signed requests, encrypted assertions", opts: ssptest.Options{SignAuthnRequests: true, EncryptAssertions: true}, wantSigned: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ti := newIdP(t, rsaKey(t))
			ti.IDP.WantAuthnRequestsSigned = tc.wantSigned
			if tc.opts.EncryptAssertions {
				// The fallback SimpleSAMLphp 1.19 can decrypt; see
				// TestSimpleSAMLphpEncryption.
				enc := xmlenc.OAEP()
				enc.DigestMethod = &xmlenc.SHA1
				enc.BlockCipher = xmlenc.AES256GCM
				ti.IDP.AssertionEncrypter = enc
			}
			sp := ti.start(t, tc.opts)
			res, err := login(t, sp.LoginURL("alice", ""))
			if err != nil {
				t.Fatal(err)
			}
			if res.NameID != "alice" {
				t.Errorf("nameid = %q, want alice", res.NameID)
			}
			if res.IdP != ti.IDP.MetadataURL.String() {
				t.Errorf("idp = %q, want %q", res.IdP, ti.IDP.MetadataURL.String())
			}
			if got := res.Attributes["urn:oid:0.9.2342.19200300.100.1.3"]; len(got) != 1 || got[0] != "alice@example.org" {
				t.Errorf("mail attribute = %q, want [alice@example.org]; all: %v", got, res.Attributes)
			}
			if res.AuthnContext != "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport" {
				t.Errorf("authncontext = %q", res.AuthnContext)
			}
			req := ti.lastRequest(t)
			if req.Issuer == nil || req.Issuer.Value != sp.EntityID {
				t.Errorf("AuthnRequest issuer = %+v, want %s", req.Issuer, sp.EntityID)
			}
			if req.AssertionConsumerServiceURL != sp.ACSURL {
				t.Errorf("AuthnRequest ACS = %q, want %q", req.AssertionConsumerServiceURL, sp.ACSURL)
			}
			if req.NameIDPolicy != nil {
				t.Errorf("AuthnRequest NameIDPolicy = %+v, want none", req.NameIDPolicy)
			}
		})
	}

	// Controls: the IdP's WantAuthnRequestsSigned refuses the SP that does
	// not sign, and the SP that wants encrypted assertions refuses plain
	// ones (an IdP that ignores the encryption key).
	t.Run("unsigned request refused", func(t *testing.T) {
		t.Parallel()
		ti := newIdP(t, rsaKey(t))
		ti.IDP.WantAuthnRequestsSigned = true
		sp := ti.start(t, ssptest.Options{})
		if res, err := login(t, sp.LoginURL("alice", "")); err == nil {
			t.Fatalf("login with an unsigned request worked: %+v", res)
		} else {
			t.Logf("refused as it should be: %v", err)
		}
	})
	t.Run("plain assertion refused", func(t *testing.T) {
		t.Parallel()
		ti := newIdP(t, rsaKey(t))
		sp := ti.start(t, ssptest.Options{EncryptAssertions: true})
		// Tell the IdP about the SP without its encryption key.
		ed := sp.Metadata()
		kd := ed.SPSSODescriptors[0].KeyDescriptors
		ed.SPSSODescriptors[0].KeyDescriptors = kd[:1]
		ti.mu.Lock()
		ti.sps[ed.EntityID] = ed
		ti.mu.Unlock()
		_, err := login(t, sp.LoginURL("alice", ""))
		var rerr *ssptest.ResultError
		if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "unencrypted assertion") {
			t.Fatalf("login = %v, want the SP to refuse the unencrypted assertion", err)
		}
	})
}

// TestSimpleSAMLphpEncryption settles which key transport and block cipher
// SimpleSAMLphp 1.19 (saml2 v4, xmlseclibs 3.1.1) decrypts: AES-GCM and
// AES-CBC both, but only with rsa-oaep-mgf1p and a SHA-1 OAEP digest. XML
// Encryption 1.1 rsa-oaep (xmlenc.OAEP_SHA256, or with any digest) fails,
// and so does rsa-oaep-mgf1p with a SHA-256 digest (xmlenc.OAEP's default).
func TestSimpleSAMLphpEncryption(t *testing.T) {
	t.Parallel()
	oaep11 := func(bc xmlenc.BlockCipher) xmlenc.Encrypter {
		e := xmlenc.OAEP_SHA256()
		e.BlockCipher = bc
		return e
	}
	oaep11SHA1 := func(bc xmlenc.BlockCipher) xmlenc.Encrypter {
		e := xmlenc.OAEP_SHA256()
		e.DigestMethod = &xmlenc.SHA1
		e.BlockCipher = bc
		return e
	}
	mgf1p := func(bc xmlenc.BlockCipher) xmlenc.Encrypter {
		e := xmlenc.OAEP() // SHA-256 digest, MGF1 with SHA-1
		e.BlockCipher = bc
		return e
	}
	mgf1pSHA1 := func(bc xmlenc.BlockCipher) xmlenc.Encrypter {
		e := xmlenc.OAEP()
		e.DigestMethod = &xmlenc.SHA1
		e.BlockCipher = bc
		return e
	}
	cases := []struct {
		name string
		enc  xmlenc.Encrypter // nil: crewjam's default for an SP that lists no methods
		ok   bool
		why  string // what SimpleSAMLphp says when it fails
	}{
		// saml2 v4 loads the SP key as rsa-1_5 and only lets that stand
		// for rsa-oaep-mgf1p (Utils::doDecryptElement): any other key
		// transport is an "Algorithm mismatch".
		{"xmlenc11 rsa-oaep sha256 + aes256-gcm", oaep11(xmlenc.AES256GCM), false,
			"Algorithm mismatch between input key and key used to encrypt  the symmetric key for the message. " +
				"Key was: 'http://www.w3.org/2001/04/xmlenc#rsa-1_5'; message was: 'http://www.w3.org/2009/xmlenc11#rsa-oaep'"},
		{"xmlenc11 rsa-oaep sha1 + aes256-gcm", oaep11SHA1(xmlenc.AES256GCM), false, "Algorithm mismatch"},
		// xmlseclibs unwraps rsa-oaep-mgf1p with OpenSSL's
		// OPENSSL_PKCS1_OAEP_PADDING, which is SHA-1 only: the
		// DigestMethod is ignored and a SHA-256 OAEP digest fails.
		{"rsa-oaep-mgf1p sha256 + aes256-gcm", mgf1p(xmlenc.AES256GCM), false, "Failed to decrypt symmetric key"},
		{"rsa-oaep-mgf1p sha1 + aes256-gcm", mgf1pSHA1(xmlenc.AES256GCM), true, ""},
		{"rsa-oaep-mgf1p sha1 + aes128-gcm", mgf1pSHA1(xmlenc.AES128GCM), true, ""},
		{"rsa-oaep-mgf1p sha1 + aes256-cbc", mgf1pSHA1(xmlenc.AES256CBC), true, ""},
		{"crewjam default (rsa-oaep-mgf1p sha1 + aes128-cbc)", nil, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ti := newIdP(t, rsaKey(t))
			ti.IDP.AssertionEncrypter = tc.enc
			sp := ti.start(t, ssptest.Options{EncryptAssertions: true})
			res, err := login(t, sp.LoginURL("alice", ""))
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if res.NameID != "alice" {
					t.Fatalf("nameid = %q, want alice", res.NameID)
				}
				return
			}
			var rerr *ssptest.ResultError
			if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "Failed to decrypt XML element") {
				t.Fatalf("login = %+v, %v; want SimpleSAMLphp to fail to decrypt", res, err)
			}
			// Why is only in SimpleSAMLphp's log.
			if !sp.WaitLog(tc.why) {
				t.Fatalf("SimpleSAMLphp's log does not say %q:\n%s", tc.why, sp.Log())
			}
			t.Logf("SimpleSAMLphp: %v", rerr)
		})
	}
}

// TestSimpleSAMLphpRequest checks what the IdP gets from LoginURLFor: the
// Subject's NameID (SimpleSAMLphp's saml:NameID state, given as an array),
// the RequestedAuthnContext, ForceAuthn, the NameIDPolicy and Format of
// Options.NameIDFormat; and that the result page shows the class asserted.
func TestSimpleSAMLphpRequest(t *testing.T) {
	t.Parallel()
	const (
		format = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
		class  = "urn:keystep:acr:device"
	)
	ti := newIdP(t, rsaKey(t))
	sp := ti.start(t, ssptest.Options{NameIDFormat: format})
	res, err := login(t, sp.LoginURLFor(ssptest.Login{
		NameID:        "bob",
		AuthnContexts: []string{class, "urn:keystep:acr:code"},
		Comparison:    "minimum",
		ForceAuthn:    true,
	}))
	if err != nil {
		t.Fatal(err)
	}
	req := ti.lastRequest(t)
	if s := req.Subject; s == nil || s.NameID == nil || s.NameID.Value != "bob" || s.NameID.Format != format {
		t.Errorf("AuthnRequest Subject = %+v, want NameID bob with format %s", s, format)
	}
	if rac := req.RequestedAuthnContext; rac == nil || rac.Comparison != "minimum" ||
		strings.Join(rac.AuthnContextClassRefs, " ") != class+" urn:keystep:acr:code" {
		t.Errorf("RequestedAuthnContext = %+v", rac)
	}
	if req.ForceAuthn == nil || !*req.ForceAuthn {
		t.Errorf("ForceAuthn = %v, want true", req.ForceAuthn)
	}
	if p := req.NameIDPolicy; p == nil || p.Format == nil || *p.Format != format {
		t.Errorf("NameIDPolicy = %+v, want Format %s", p, format)
	}
	if res.NameID != "bob" || res.NameIDFormat != format || res.AuthnContext != class {
		t.Errorf("result = %+v, want bob, %s, %s", res, format, class)
	}

	// Without Subject or RequestedAuthnContext.
	if _, err := login(t, sp.LoginURL("", "")); err != nil {
		t.Fatal(err)
	}
	req = ti.lastRequest(t)
	if req.Subject != nil || req.RequestedAuthnContext != nil || (req.ForceAuthn != nil && *req.ForceAuthn) {
		t.Errorf("AuthnRequest has Subject %+v, RequestedAuthnContext %+v, ForceAuthn %v; want none",
			req.Subject, req.RequestedAuthnContext, req.ForceAuthn)
	}
}

// TestSimpleSAMLphpErrorStatus: an error Response from the IdP shows as
// Result.Error with its status codes.
func TestSimpleSAMLphpErrorStatus(t *testing.T) {
	t.Parallel()
	ti := newIdP(t, rsaKey(t))
	sp := ti.start(t, ssptest.Options{})
	res, err := login(t, sp.LoginURLFor(ssptest.Login{NameID: "alice", IsPassive: true}))
	var rerr *ssptest.ResultError
	if !errors.As(err, &rerr) || res.Error != rerr {
		t.Fatalf("login = %+v, %v; want a ResultError", res, err)
	}
	if rerr.Status != saml.StatusResponder || rerr.SubStatus != saml.StatusNoPassive || rerr.Message != "no passive login here" {
		t.Fatalf("error = %+v, want Responder/NoPassive", rerr)
	}
}

// TestSimpleSAMLphpECDSA: SimpleSAMLphp 1.19 cannot verify an ecdsa-sha256
// signature (xmlseclibs 3.1.1 knows no ECDSA algorithm), whatever its
// encoding, so an IdP that signs with ECDSA cannot serve it.
func TestSimpleSAMLphpECDSA(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ti := newIdP(t, key)
	sp := ti.start(t, ssptest.Options{})
	res, err := login(t, sp.LoginURL("alice", ""))
	var rerr *ssptest.ResultError
	if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "Unsupported signing algorithm") {
		t.Fatalf("login = %+v, %v; want SimpleSAMLphp to refuse the ECDSA signature", res, err)
	}
	t.Logf("SimpleSAMLphp: %v", rerr)
}

// TestSimpleSAMLphpMetadata compares Metadata with the metadata
// SimpleSAMLphp publishes for the same SP.
func TestSimpleSAMLphpMetadata(t *testing.T) {
	t.Parallel()
	ti := newIdP(t, rsaKey(t))
	sp := ti.start(t, ssptest.Options{SignAuthnRequests: true, EncryptAssertions: true})
	resp, err := http.Get(sp.EntityID)
	if err != nil {
		t.Fatal(err)
	}
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %.500s", sp.EntityID, resp.StatusCode, body)
	}
	var theirs saml.EntityDescriptor
	if err := xml.Unmarshal(body, &theirs); err != nil {
		t.Fatalf("%v: %.500s", err, body)
	}
	ours := sp.Metadata()
	if theirs.EntityID != ours.EntityID {
		t.Errorf("entityID %q, want %q", theirs.EntityID, ours.EntityID)
	}
	if len(theirs.SPSSODescriptors) != 1 {
		t.Fatalf("%d SPSSODescriptors", len(theirs.SPSSODescriptors))
	}
	td, od := theirs.SPSSODescriptors[0], ours.SPSSODescriptors[0]
	acs := od.AssertionConsumerServices[0]
	found := false
	for _, e := range td.AssertionConsumerServices {
		if e.Binding == acs.Binding && e.Location == acs.Location && e.Index == acs.Index {
			found = true
		}
	}
	if !found {
		t.Errorf("SimpleSAMLphp's ACS %+v lack %+v", td.AssertionConsumerServices, acs)
	}
	slo := od.SingleLogoutServices[0]
	found = false
	for _, e := range td.SingleLogoutServices {
		if e.Binding == slo.Binding && e.Location == slo.Location {
			found = true
		}
	}
	if !found {
		t.Errorf("SimpleSAMLphp's SLO %+v lack %+v", td.SingleLogoutServices, slo)
	}
	uses := map[string]string{}
	for _, kd := range td.KeyDescriptors {
		uses[kd.Use] = kd.KeyInfo.X509Data.X509Certificates[0].Data
	}
	for _, kd := range od.KeyDescriptors {
		if strings.Join(strings.Fields(uses[kd.Use]), "") != kd.KeyInfo.X509Data.X509Certificates[0].Data {
			t.Errorf("SimpleSAMLphp publishes another %q certificate", kd.Use)
		}
	}
	t.Logf("SimpleSAMLphp's metadata:\n%s", body)
}

func TestParseResult(t *testing.T) {
	t.Parallel()
	r, err := ssptest.ParseResult([]byte(`{"nameid":"alice","nameid_format":"f","attributes":{"uid":["alice"]},"authncontext":"c","idp":"i","sessionindex":"s"}`))
	if err != nil || r.NameID != "alice" || r.Attributes["uid"][0] != "alice" || r.AuthnContext != "c" {
		t.Errorf("ParseResult = %+v, %v", r, err)
	}
	r, err = ssptest.ParseResult([]byte(`{"error":{"status":"st","substatus":"sub","message":"m","class":"c"}}`))
	var rerr *ssptest.ResultError
	if !errors.As(err, &rerr) || r.Error != rerr || rerr.Status != "st" || err.Error() != "simplesamlphp: status=st substatus=sub class=c: m" {
		t.Errorf("ParseResult = %+v, %v", r, err)
	}
	for _, bad := range []string{``, `<html>`, `{"nameid":"a","other":1}`, `{}`} {
		if _, err := ssptest.ParseResult([]byte(bad)); err == nil || errors.As(err, &rerr) {
			t.Errorf("ParseResult(%q) = %v, want a parse error", bad, err)
		}
	}
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func selfSigned(t *testing.T, key crypto.Signer, cn string) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
