package samlidp_test

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"flag"
	"fmt"
	"html"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/provider/samlidp"
	"github.com/keystep/keystep/provider/samlidp/samltest"
)

// The fuzz targets drive the IdP's real handler with an env built once per
// target (so once per fuzzing worker) whose SP signs with a key that does
// not change, testdata/fuzz-sp.pem, and whose IdP has a fixed public URL
// and a clock stopped at fuzzTime. The seed corpora under testdata/fuzz
// (written by go test -run TestFuzzSeeds -update-fuzz-seeds) hold requests
// signed with that key: they verify in every run and every worker, so the
// fuzzer starts from requests that reach the step page, not only from
// refusals.
//
// The invariant is what the signatures allow, not what the seeds are: an
// auth request is stored (303 to the step page) or an error Response sent
// (200) only for a request ID the seeds signed, for the user the signature
// names (in <Subject> or in the name attribute, which the env's SP has)
// and the ACS of the metadata, and at most once per ID;
// a LogoutResponse is sent only to the SLO endpoint of the metadata, for
// a LogoutRequest ID the seeds signed, at most once per ID. A mutation the
// signature does not see (a comment, a line break in the base64) may still
// get through, but only as the request that was signed, and only once.

var updateFuzzSeeds = flag.Bool("update-fuzz-seeds", false, "rewrite testdata/fuzz-sp.pem (if missing) and the seed corpora of the SAML fuzz targets")

const (
	fuzzIdP       = "https://keystep.example.test"
	fuzzSPKeyFile = "testdata/fuzz-sp.pem"
)

// fuzzTime is when the seeds were issued and where the fuzz env's IdP clock
// stands. It is in the future so that the IdP metadata (valid a day from
// then) still parses for the test SP, which reads it with the real clock.
var fuzzTime = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)

// fuzzEnv is the env the fuzz targets drive.
type fuzzEnv struct {
	*env
	fsp *samltest.SP // the SP with the fixed key, the only one configured
	// signed maps each request ID the seeds sign to the user the
	// signature names (AuthnRequests) or to "logout" (LogoutRequests).
	signed map[string]string

	mu   sync.Mutex
	used map[string]bool // signed IDs answered in this process
}

func newFuzzEnv(tb testing.TB) *fuzzEnv {
	tb.Helper()
	fsp := fuzzSP(tb)
	md := fsp.Metadata()
	md.ValidUntil = time.Time{}
	for i := range md.SPSSODescriptors {
		d := &md.SPSSODescriptors[i]
		d.ValidUntil = nil
		d.KeyDescriptors = slices.DeleteFunc(d.KeyDescriptors, func(k saml.KeyDescriptor) bool { return k.Use != "signing" })
	}
	raw, err := xml.Marshal(md)
	if err != nil {
		tb.Fatal(err)
	}
	mdFile := filepath.Join(tb.TempDir(), "fuzz-sp-metadata.xml")
	if err := os.WriteFile(mdFile, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	e := newEnv(tb, envOptions{quiet: true,
		policy: func(c *samlidp.SPConfig) { c.MetadataFile, c.NameAttribute = mdFile, uidAttribute },
		options: func(o *samlidp.Options) {
			o.PublicURL = fuzzIdP
			o.Clock = clocktest.New(fuzzTime)
		}})
	if e.sp.EntityID != fsp.EntityID {
		tb.Fatalf("the env's SP is %s, the fuzz SP %s", e.sp.EntityID, fsp.EntityID)
	}
	for _, name := range []string{"alice", "bob"} {
		if _, err := e.svc.AddAccount(e.ctx, "admin:test", flows.NewAccount{Username: name, Email: name + "@example.com"}); err != nil {
			tb.Fatal(err)
		}
	}
	_, signed := fuzzSeeds(tb, fsp)
	return &fuzzEnv{env: e, fsp: fsp, signed: signed, used: map[string]bool{}}
}

// fuzzSP is the SP of the seeds: the env's SP entity, with the fixed key.
func fuzzSP(tb testing.TB) *samltest.SP {
	tb.Helper()
	data, err := os.ReadFile(fuzzSPKeyFile)
	if err != nil {
		tb.Fatalf("%v (make it with go test -run TestFuzzSeeds -update-fuzz-seeds)", err)
	}
	var key *rsa.PrivateKey
	var cert *x509.Certificate
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "CERTIFICATE":
			cert, err = x509.ParseCertificate(block.Bytes)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if key == nil || cert == nil {
		tb.Fatalf("%s needs an RSA PRIVATE KEY and a CERTIFICATE", fuzzSPKeyFile)
	}
	base, err := url.Parse(spBase)
	if err != nil {
		tb.Fatal(err)
	}
	sp := &saml.ServiceProvider{Key: key, Certificate: cert,
		MetadataURL: *base.JoinPath("saml/metadata"), AcsURL: *base.JoinPath("saml/acs"), SloURL: *base.JoinPath("saml/slo"),
		AuthnNameIDFormat: saml.UnspecifiedNameIDFormat, SignatureMethod: dsig.RSASHA256SignatureMethod,
		LogoutBindings: []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding}}
	sp.EntityID = sp.MetadataURL.String()
	return &samltest.SP{ServiceProvider: sp}
}

// FuzzAuthnRequestPOST posts an AuthnRequest: doc is the XML (b64: the
// target encodes it) or the SAMLRequest value as sent.
func FuzzAuthnRequestPOST(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, doc []byte, b64 bool, relayState string) {
		value := string(doc)
		if b64 {
			value = base64.StdEncoding.EncodeToString(doc)
		}
		form := url.Values{"SAMLRequest": {value}}
		if relayState != "" {
			form.Set("RelayState", relayState)
		}
		before := fe.storedRequests(t)
		fe.checkSSO(t, fe.serve(postForm(fuzzIdP+"/saml/sso", form)), before)
	})
}

// FuzzAuthnRequestRedirect sends an AuthnRequest with the HTTP-Redirect
// binding: doc is the XML (deflate: the target deflates and encodes it)
// or the SAMLRequest value as sent; the query is the parameters that are
// not "" in signing order, then extra, raw.
func FuzzAuthnRequestRedirect(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, doc []byte, deflate bool, relayState, sigAlg, signature, extra string) {
		before := fe.storedRequests(t)
		fe.checkSSO(t, fe.serve(fuzzGet("/saml/sso", fuzzRedirectQuery(doc, deflate, relayState, sigAlg, signature, extra))), before)
	})
}

// FuzzLogoutRequest sends a LogoutRequest to /saml/slo, over HTTP-Redirect
// (redirect) or HTTP-POST; encode: the target encodes doc (deflated for
// Redirect), else doc is the SAMLRequest value as sent. Over POST, sigAlg
// and signature are form fields (SimpleSign, which keystep refuses).
func FuzzLogoutRequest(f *testing.F) {
	fe := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, doc []byte, redirect, encode bool, relayState, sigAlg, signature string) {
		before := fe.storedRequests(t)
		var w *httptest.ResponseRecorder
		if redirect {
			w = fe.serve(fuzzGet("/saml/slo", fuzzRedirectQuery(doc, encode, relayState, sigAlg, signature, "")))
		} else {
			value := string(doc)
			if encode {
				value = base64.StdEncoding.EncodeToString(doc)
			}
			form := url.Values{"SAMLRequest": {value}}
			for k, v := range map[string]string{"RelayState": relayState, "SigAlg": sigAlg, "Signature": signature} {
				if v != "" {
					form.Set(k, v)
				}
			}
			w = fe.serve(postForm(fuzzIdP+"/saml/slo", form))
		}
		fe.checkSLO(t, w, before)
	})
}

func fuzzRedirectQuery(doc []byte, deflate bool, relayState, sigAlg, signature, extra string) string {
	value := string(doc)
	if deflate {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestCompression)
		_, _ = w.Write(doc)
		_ = w.Close()
		value = base64.StdEncoding.EncodeToString(b.Bytes())
	}
	return buildRedirectQuery(value, relayState, sigAlg, signature, extra)
}

// fuzzGet is a GET of path with a raw query that may be anything.
func fuzzGet(path, rawQuery string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, fuzzIdP+path, nil)
	r.URL.RawQuery = rawQuery
	r.RequestURI = path + "?" + rawQuery
	return r
}

// answer records that id got an answer, and fails if it had one before.
func (fe *fuzzEnv) answer(t *testing.T, id string) {
	t.Helper()
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if fe.used[id] {
		t.Fatalf("request %s was answered twice", id)
	}
	fe.used[id] = true
}

// checkSSO checks the answer to an AuthnRequest (see the invariant above).
func (fe *fuzzEnv) checkSSO(t *testing.T, w *httptest.ResponseRecorder, before int) {
	t.Helper()
	stored := fe.storedRequests(t) - before
	body := w.Body.String()
	switch w.Code {
	case http.StatusSeeOther:
		id, ok := strings.CutPrefix(w.Header().Get("Location"), "/step/")
		if !ok || stored != 1 {
			t.Fatalf("303 to %q with %d requests stored", w.Header().Get("Location"), stored)
		}
		ar, err := fe.svc.Store().GetAuthRequest(fe.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var data struct {
			ID     string       `json:"id"`
			SP     string       `json:"sp"`
			ACS    string       `json:"acs"`
			NameID *saml.NameID `json:"name_id"`
		}
		if err := json.Unmarshal(ar.Request, &data); err != nil {
			t.Fatal(err)
		}
		// The user asked is the one the signature names, in <Subject> or
		// in the name attribute.
		want, signed := fe.signed[data.ID]
		acc, err := fe.svc.Store().GetAccount(fe.ctx, ar.AccountID)
		if err != nil {
			t.Fatal(err)
		}
		if !signed || acc.Username != want || (data.NameID != nil && data.NameID.Value != want) ||
			data.SP != fe.fsp.EntityID || data.ACS != fe.fsp.AcsURL.String() {
			t.Fatalf("stored what no seed signed, for %s: %s", acc.Username, ar.Request)
		}
		fe.answer(t, data.ID)
	case http.StatusOK:
		if stored != 0 {
			t.Fatalf("200 with %d requests stored", stored)
		}
		action, fields := autoPostForm(body)
		if action != fe.fsp.AcsURL.String() {
			t.Fatalf("a response posted to %q:\n%s", action, body)
		}
		raw, err := base64.StdEncoding.DecodeString(fields.Get("SAMLResponse"))
		if err != nil {
			t.Fatal(err)
		}
		var resp saml.Response
		if err := xml.Unmarshal(raw, &resp); err != nil {
			t.Fatal(err)
		}
		if _, signed := fe.signed[resp.InResponseTo]; !signed || resp.Status.StatusCode.Value == saml.StatusSuccess ||
			bytes.Contains(raw, []byte("Assertion")) || resp.Destination != action {
			t.Fatalf("a response to what no seed signed, or not an error:\n%s", raw)
		}
		// The library answers an expired (signed) request before keystep
		// records its ID: that error may come again.
		if resp.Status.StatusMessage == nil || resp.Status.StatusMessage.Value != "the request has expired" {
			fe.answer(t, resp.InResponseTo)
		}
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge,
		http.StatusRequestURITooLong, http.StatusTooManyRequests:
		if stored != 0 || strings.Contains(body, "SAMLResponse") || w.Header().Get("Location") != "" {
			t.Fatalf("%d with %d requests stored, Location %q:\n%s", w.Code, stored, w.Header().Get("Location"), body)
		}
	default:
		t.Fatalf("answer %d:\n%s", w.Code, body)
	}
}

var libraryFormFieldRE = regexp.MustCompile(`name="SAMLResponse" value="([^"]*)"`)

// checkSLO checks the answer to a LogoutRequest: a signed LogoutResponse
// to the SLO endpoint of the metadata, for a LogoutRequest the seeds
// signed, once; or a refusal. Nothing is ever stored.
func (fe *fuzzEnv) checkSLO(t *testing.T, w *httptest.ResponseRecorder, before int) {
	t.Helper()
	if n := fe.storedRequests(t) - before; n != 0 {
		t.Fatalf("a LogoutRequest stored %d auth requests", n)
	}
	slo := fe.fsp.SloURL.String()
	body := w.Body.String()
	var raw []byte
	switch w.Code {
	case http.StatusFound:
		u, err := url.Parse(w.Header().Get("Location"))
		if err != nil || u.Scheme+"://"+u.Host+u.Path != slo {
			t.Fatalf("redirected to %q", w.Header().Get("Location"))
		}
		compressed, err := base64.StdEncoding.DecodeString(u.Query().Get("SAMLResponse"))
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = io.ReadAll(flate.NewReader(bytes.NewReader(compressed))); err != nil {
			t.Fatal(err)
		}
	case http.StatusOK:
		action, _ := autoPostForm(body)
		m := libraryFormFieldRE.FindStringSubmatch(body)
		if action != slo || m == nil {
			t.Fatalf("200 posting to %q:\n%s", action, body)
		}
		var err error
		if raw, err = base64.StdEncoding.DecodeString(html.UnescapeString(m[1])); err != nil {
			t.Fatal(err)
		}
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusRequestURITooLong:
		if strings.Contains(body, "SAMLResponse") || w.Header().Get("Location") != "" {
			t.Fatalf("%d with a LogoutResponse:\n%s", w.Code, body)
		}
		return
	default:
		t.Fatalf("answer %d:\n%s", w.Code, body)
	}
	var resp saml.LogoutResponse
	if err := xml.Unmarshal(raw, &resp); err != nil {
		t.Fatal(err)
	}
	if fe.signed[resp.InResponseTo] != "logout" {
		t.Fatalf("a LogoutResponse to what no seed signed:\n%s", raw)
	}
	fe.answer(t, resp.InResponseTo)
}

// fuzzSeed is one seed of a fuzz target: its file name says what it is
// and what it must get: "ok-" the step page (or a LogoutResponse), "status-"
// an error Response, anything else a refusal.
type fuzzSeed struct {
	name   string
	values []any
}

// fuzzSeeds makes the seeds of the three targets, deterministically (the
// signatures are RSA PKCS #1 v1.5), and the IDs they sign.
func fuzzSeeds(tb testing.TB, sp *samltest.SP) (map[string][]fuzzSeed, map[string]string) {
	tb.Helper()
	signed := map[string]string{}
	sso, slo := fuzzIdP+"/saml/sso", fuzzIdP+"/saml/slo"
	authn := func(id, nameID string, edit func(*saml.AuthnRequest)) *saml.AuthnRequest {
		req, err := sp.MakeAuthenticationRequest(sso, saml.HTTPPostBinding, saml.HTTPPostBinding)
		if err != nil {
			tb.Fatal(err)
		}
		req.ID, req.IssueInstant, req.Signature = id, fuzzTime, nil
		req.Subject = &saml.Subject{NameID: &saml.NameID{Value: nameID}}
		if edit != nil {
			edit(req)
		}
		return req
	}
	// post is the XML of a request signed with an enveloped signature.
	post := func(id, nameID string, edit func(*saml.AuthnRequest)) []byte {
		req := authn(id, nameID, edit)
		if err := sp.SignAuthnRequest(req); err != nil {
			tb.Fatal(err)
		}
		signed[id] = nameID
		return samltest.ElementBytes(tb, req.Element())
	}
	// redirect is the Redirect seed values of doc signed with sigAlg.
	redirect := func(id, nameID string, doc []byte, relay, sigAlg string) []any {
		value := base64.StdEncoding.EncodeToString(deflate(tb, doc))
		signed[id] = nameID
		return []any{[]byte(value), false, relay, sigAlg, querySignature(tb, sp.Key, sigAlg, buildRedirectQuery(value, relay, sigAlg, "", "")), ""}
	}
	unsigned := func(id, nameID string, edit func(*saml.AuthnRequest)) []byte {
		return samltest.ElementBytes(tb, authn(id, nameID, edit).Element())
	}
	logout := func(id string) *saml.LogoutRequest {
		until := fuzzTime.Add(time.Hour)
		signed[id] = "logout"
		return &saml.LogoutRequest{ID: id, Version: "2.0", IssueInstant: fuzzTime, NotOnOrAfter: &until, Destination: slo,
			Issuer: &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: sp.EntityID},
			NameID: &saml.NameID{Format: string(saml.UnspecifiedNameIDFormat), Value: "alice"}}
	}
	const (
		doctype = `<!DOCTYPE samlp:AuthnRequest [<!ENTITY x "y">]>`
		laughs  = `<!DOCTYPE samlp:AuthnRequest [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
			`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>`
		external = `<!DOCTYPE samlp:AuthnRequest [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`
	)
	with := func(prolog string, doc []byte, nameID string) []byte {
		out := append([]byte(prolog), doc...)
		if nameID != "" {
			out = bytes.Replace(out, []byte(">alice<"), []byte(">"+nameID+"<"), 1)
		}
		return out
	}
	rac := func(r *saml.AuthnRequest) {
		yes := true
		r.ForceAuthn = &yes
		r.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: "minimum",
			AuthnContextClassRefs: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}}
	}
	passive := func(r *saml.AuthnRequest) {
		yes := true
		r.IsPassive = &yes
	}
	xswExtensions := func() []byte {
		root := parseXML(tb, post("_fuzz-post-xsw-ext", "alice", nil))
		outer := root.Copy()
		outer.RemoveChild(child(outer, "Signature"))
		outer.CreateAttr("ID", "_fuzz-post-xsw-outer")
		outer.CreateAttr("AssertionConsumerServiceURL", evilACS)
		setNameID(tb, outer, "bob")
		ext := etree.NewElement("samlp:Extensions")
		ext.AddChild(root)
		insertAfterIssuer(outer, ext)
		return xmlBytes(tb, outer)
	}
	xswReference := func() []byte {
		root := parseXML(tb, post("_fuzz-post-xsw-ref", "alice", nil))
		return xmlBytes(tb, wrapWithSignature(tb, root, "_fuzz-post-xsw-evil"))
	}
	twoRefs := func() []byte {
		root := parseXML(tb, post("_fuzz-post-two-refs", "alice", nil))
		ref := root.FindElement("./Signature/SignedInfo/Reference")
		other := ref.Copy()
		other.CreateAttr("URI", "#_other")
		ref.Parent().InsertChildAt(ref.Index()+1, other)
		resignSignedInfo(tb, sp.Key, root)
		return xmlBytes(tb, root)
	}
	changed := func() []byte {
		root := parseXML(tb, post("_fuzz-post-changed", "alice", nil))
		setNameID(tb, root, "bob")
		return xmlBytes(tb, root)
	}
	comment := func() []byte {
		el := authn("_fuzz-post-comment", "alice", nil).Element()
		commentNameID(tb, el)
		signed["_fuzz-post-comment"] = "alice"
		return xmlBytes(tb, signEnveloped(tb, sp.Key, sp.Certificate, dsig.RSASHA256SignatureMethod, el))
	}
	b64 := func(doc []byte) []byte { return []byte(base64.StdEncoding.EncodeToString(doc)) }
	// byAttribute names the user in the name attribute, not in <Subject>.
	byAttribute := func(id, name string) []byte {
		el := authn(id, name, func(r *saml.AuthnRequest) { r.Subject = nil }).Element()
		insertAfterIssuer(el, nameExtensions(etree.NewText(name)))
		signed[id] = name
		return xmlBytes(tb, signEnveloped(tb, sp.Key, sp.Certificate, dsig.RSASHA256SignatureMethod, el))
	}
	bomb := func() []any {
		doc := append([]byte("<!--"+strings.Repeat(" ", 2<<20)+"-->"), unsigned("_fuzz-redirect-bomb", "alice", nil)...)
		return redirect("_fuzz-redirect-bomb", "alice", doc, "", dsig.RSASHA256SignatureMethod)
	}
	tampered := func() []any {
		v := redirect("_fuzz-redirect-tampered", "alice", unsigned("_fuzz-redirect-tampered", "alice", nil), "relay-1", dsig.RSASHA256SignatureMethod)
		v[2] = "relay-2"
		return v
	}
	duplicate := func() []any {
		v := redirect("_fuzz-redirect-duplicate", "alice", unsigned("_fuzz-redirect-duplicate", "alice", nil), "", dsig.RSASHA256SignatureMethod)
		v[5] = "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(deflate(tb, unsigned("_fuzz-unsigned-bob", "bob", nil))))
		return v
	}
	sha1 := func() []any {
		return redirect("_fuzz-redirect-sha1", "alice", unsigned("_fuzz-redirect-sha1", "alice", nil), "", dsig.RSASHA1SignatureMethod)
	}
	expired := func() []any {
		return redirect("_fuzz-redirect-expired", "alice", unsigned("_fuzz-redirect-expired", "alice", func(r *saml.AuthnRequest) {
			r.IssueInstant = fuzzTime.Add(-10 * time.Minute)
		}), "relay-1", dsig.RSASHA256SignatureMethod)
	}
	logoutPost := func(id, prolog string) []any {
		lr := logout(id)
		if err := sp.SignLogoutRequest(lr); err != nil {
			tb.Fatal(err)
		}
		return []any{append([]byte(prolog), samltest.ElementBytes(tb, lr.Element())...), false, true, "relay-1", "", ""}
	}
	logoutRedirect := func(id, prolog string) []any {
		doc := append([]byte(prolog), samltest.ElementBytes(tb, logout(id).Element())...)
		value := base64.StdEncoding.EncodeToString(deflate(tb, doc))
		sig := querySignature(tb, sp.Key, dsig.RSASHA256SignatureMethod, buildRedirectQuery(value, "relay-1", dsig.RSASHA256SignatureMethod, "", ""))
		return []any{[]byte(value), true, false, "relay-1", dsig.RSASHA256SignatureMethod, sig}
	}
	seeds := map[string][]fuzzSeed{
		"FuzzAuthnRequestPOST": {
			{"ok-alice", []any{post("_fuzz-post-alice", "alice", nil), true, "relay-1"}},
			{"ok-alice-as-sent", []any{b64(post("_fuzz-post-alice-as-sent", "alice", nil)), false, ""}},
			{"ok-force-minimum-context", []any{post("_fuzz-post-context", "alice", rac), true, ""}},
			{"ok-comment-in-nameid", []any{comment(), true, ""}},
			{"ok-name-attribute", []any{byAttribute("_fuzz-post-attribute", "alice"), true, ""}},
			{"status-unknown-user", []any{post("_fuzz-post-nobody", "nobody", nil), true, ""}},
			{"status-passive", []any{post("_fuzz-post-passive", "alice", passive), true, ""}},
			{"unsigned", []any{unsigned("_fuzz-unsigned", "alice", nil), true, ""}},
			{"doctype", []any{with(doctype, post("_fuzz-post-doctype", "alice", nil), ""), true, ""}},
			{"billion-laughs", []any{with(laughs, post("_fuzz-post-laughs", "alice", nil), "&lol3;"), true, ""}},
			{"external-entity", []any{with(external, post("_fuzz-post-xxe", "alice", nil), "&xxe;"), true, ""}},
			{"xsw-unsigned-outer", []any{xswExtensions(), true, ""}},
			{"xsw-reference-to-inner", []any{xswReference(), true, ""}},
			{"xsw-two-references", []any{twoRefs(), true, ""}},
			{"nameid-changed", []any{changed(), true, ""}},
			{"not-base64", []any{[]byte("<samlp:AuthnRequest/>"), false, ""}},
		},
		"FuzzAuthnRequestRedirect": {
			{"ok-alice", redirect("_fuzz-redirect-alice", "alice", unsigned("_fuzz-redirect-alice", "alice", nil), "relay-1", dsig.RSASHA256SignatureMethod)},
			{"ok-no-relay", redirect("_fuzz-redirect-norelay", "alice", unsigned("_fuzz-redirect-norelay", "alice", nil), "", dsig.RSASHA256SignatureMethod)},
			{"ok-enveloped", []any{post("_fuzz-redirect-enveloped", "alice", nil), true, "", "", "", ""}},
			{"ok-name-attribute", redirect("_fuzz-redirect-attribute", "alice", xmlBytes(tb, func() *etree.Element {
				el := authn("_fuzz-redirect-attribute", "", func(r *saml.AuthnRequest) { r.Subject = nil }).Element()
				insertAfterIssuer(el, nameExtensions(etree.NewText("alice")))
				return el
			}()), "", dsig.RSASHA256SignatureMethod)},
			{"status-unknown-user", redirect("_fuzz-redirect-nobody", "nobody", unsigned("_fuzz-redirect-nobody", "nobody", nil), "", dsig.RSASHA256SignatureMethod)},
			{"status-expired", expired()},
			{"unsigned", []any{unsigned("_fuzz-unsigned", "alice", nil), true, "", "", "", ""}},
			{"doctype", redirect("_fuzz-redirect-doctype", "alice", with(doctype, unsigned("_fuzz-redirect-doctype", "alice", nil), ""), "", dsig.RSASHA256SignatureMethod)},
			{"billion-laughs", redirect("_fuzz-redirect-laughs", "&lol3;", with(laughs, unsigned("_fuzz-redirect-laughs", "alice", nil), "&lol3;"), "", dsig.RSASHA256SignatureMethod)},
			{"deflate-bomb", bomb()},
			{"relay-state-tampered", tampered()},
			{"duplicate-samlrequest", duplicate()},
			{"rsa-sha1", sha1()},
		},
		"FuzzLogoutRequest": {
			{"ok-post", logoutPost("_fuzz-logout-post", "")},
			{"ok-redirect", logoutRedirect("_fuzz-logout-redirect", "")},
			{"doctype-post", logoutPost("_fuzz-logout-doctype-post", strings.Replace(doctype, "samlp:AuthnRequest", "samlp:LogoutRequest", 1))},
			{"doctype-redirect", logoutRedirect("_fuzz-logout-doctype-redirect", strings.Replace(doctype, "samlp:AuthnRequest", "samlp:LogoutRequest", 1))},
			{"billion-laughs-redirect", logoutRedirect("_fuzz-logout-laughs", strings.Replace(laughs, "samlp:AuthnRequest", "samlp:LogoutRequest", 1))},
			{"unsigned-post", []any{samltest.ElementBytes(tb, logout("_fuzz-logout-unsigned").Element()), false, true, "", "", ""}},
			{"simplesign", []any{samltest.ElementBytes(tb, logout("_fuzz-logout-simplesign").Element()), false, true, "", dsig.RSASHA256SignatureMethod, "c2ln"}},
		},
	}
	// The seeds that change what was signed (or wrap it) name requests
	// that were signed: a mutation that undoes the change may get them
	// through, as signed.
	return seeds, signed
}

// TestFuzzSeeds checks the committed seed corpora: each seed gets what
// its name says in a fuzz env, so the signed seeds verify and fuzzing
// starts from requests that reach the step page. With -update-fuzz-seeds
// it writes them first (and the fixed SP key, if missing).
func TestFuzzSeeds(t *testing.T) {
	if *updateFuzzSeeds {
		writeFuzzSeeds(t)
	}
	fe := newFuzzEnv(t)
	seeds, _ := fuzzSeeds(t, fe.fsp)
	for target, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		files, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != len(list) {
			t.Errorf("%s: %d seeds committed, %d made (go test -run TestFuzzSeeds -update-fuzz-seeds)", dir, len(files), len(list))
		}
		for _, file := range files {
			t.Run(target+"/"+file.Name(), func(t *testing.T) {
				values := readFuzzSeed(t, filepath.Join(dir, file.Name()))
				before := fe.storedRequests(t)
				var w *httptest.ResponseRecorder
				switch target {
				case "FuzzAuthnRequestPOST":
					value := string(values[0].([]byte))
					if values[1].(bool) {
						value = base64.StdEncoding.EncodeToString(values[0].([]byte))
					}
					form := url.Values{"SAMLRequest": {value}}
					if r := values[2].(string); r != "" {
						form.Set("RelayState", r)
					}
					w = fe.serve(postForm(fuzzIdP+"/saml/sso", form))
					fe.checkSSO(t, w, before)
				case "FuzzAuthnRequestRedirect":
					w = fe.serve(fuzzGet("/saml/sso", fuzzRedirectQuery(values[0].([]byte), values[1].(bool), values[2].(string),
						values[3].(string), values[4].(string), values[5].(string))))
					fe.checkSSO(t, w, before)
				case "FuzzLogoutRequest":
					doc, redirect, encode := values[0].([]byte), values[1].(bool), values[2].(bool)
					if redirect {
						w = fe.serve(fuzzGet("/saml/slo", fuzzRedirectQuery(doc, encode, values[3].(string), values[4].(string), values[5].(string), "")))
					} else {
						value := string(doc)
						if encode {
							value = base64.StdEncoding.EncodeToString(doc)
						}
						form := url.Values{"SAMLRequest": {value}}
						for k, i := range map[string]int{"RelayState": 3, "SigAlg": 4, "Signature": 5} {
							if v := values[i].(string); v != "" {
								form.Set(k, v)
							}
						}
						w = fe.serve(postForm(fuzzIdP+"/saml/slo", form))
					}
					fe.checkSLO(t, w, before)
				}
				want := http.StatusBadRequest
				switch {
				case strings.HasPrefix(file.Name(), "ok-") && target == "FuzzLogoutRequest" && values[1].(bool):
					want = http.StatusFound
				case strings.HasPrefix(file.Name(), "ok-") && target == "FuzzLogoutRequest", strings.HasPrefix(file.Name(), "status-"):
					want = http.StatusOK
				case strings.HasPrefix(file.Name(), "ok-"):
					want = http.StatusSeeOther
				}
				if w.Code != want {
					t.Errorf("answer %d, want %d:\n%s", w.Code, want, w.Body)
				}
			})
		}
	}
}

// writeFuzzSeeds writes the fixed SP key (if missing) and the seed corpora.
func writeFuzzSeeds(t *testing.T) {
	if _, err := os.Stat(fuzzSPKeyFile); os.IsNotExist(err) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keystep fuzz test SP (test key, not a secret)"},
			NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.WriteString("The fuzz seeds' SP key: a test key, published on purpose.\n")
		_ = pem.Encode(&b, &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		if err := os.WriteFile(fuzzSPKeyFile, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	seeds, _ := fuzzSeeds(t, fuzzSP(t))
	for target, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, v := range s.values {
				switch v := v.(type) {
				case []byte:
					fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
				case string:
					fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
				case bool:
					fmt.Fprintf(&b, "bool(%t)\n", v)
				default:
					t.Fatalf("seed %s: %T", s.name, v)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, s.name), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readFuzzSeed reads a corpus file in the "go test fuzz v1" format (the
// []byte, string and bool values the targets take).
func readFuzzSeed(t *testing.T, path string) []any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s is not a go test fuzz v1 file", path)
	}
	var out []any
	for _, l := range lines[1:] {
		typ, arg, ok := strings.Cut(l, "(")
		if !ok || !strings.HasSuffix(arg, ")") {
			t.Fatalf("%s: %q", path, l)
		}
		arg = strings.TrimSuffix(arg, ")")
		switch typ {
		case "[]byte", "string":
			s, err := strconv.Unquote(arg)
			if err != nil {
				t.Fatalf("%s: %q: %v", path, l, err)
			}
			if typ == "string" {
				out = append(out, s)
			} else {
				out = append(out, []byte(s))
			}
		case "bool":
			out = append(out, arg == "true")
		default:
			t.Fatalf("%s: %q", path, l)
		}
	}
	return out
}
