package samlidp_test

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/samlidp"
	"github.com/keystep/keystep/provider/samlidp/samltest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// TestSAMLDependencyFloor fails when go.mod builds in a dependency with a
// known signature bypass: crewjam/saml before v0.6.3, goxmldsig before
// v1.6.0 (GHSA-479m-364c-43vc), or replaces either.
func TestSAMLDependencyFloor(t *testing.T) {
	data, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	floors := map[string]string{"github.com/crewjam/saml": "v0.6.3", "github.com/russellhaering/goxmldsig": "v1.6.0"}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) < 2 {
			continue
		}
		if f[0] == "replace" || (len(f) > 2 && f[1] == "=>") {
			for path := range floors {
				if strings.Contains(line, path) {
					t.Errorf("go.mod replaces %s", path)
				}
			}
			continue
		}
		if floor, ok := floors[f[0]]; ok {
			if olderThan(f[1], floor) {
				t.Errorf("%s %s is older than %s", f[0], f[1], floor)
			}
			delete(floors, f[0])
		}
	}
	for path := range floors {
		t.Errorf("%s is not required in go.mod", path)
	}
}

// olderThan compares vMAJOR.MINOR.PATCH versions (pre-release suffixes
// count as their release).
func olderThan(v, floor string) bool {
	parse := func(s string) [3]int {
		var out [3]int
		s = strings.TrimPrefix(s, "v")
		if i := strings.IndexAny(s, "-+"); i >= 0 {
			s = s[:i]
		}
		for i, part := range strings.SplitN(s, ".", 3) {
			out[i], _ = strconv.Atoi(part)
		}
		return out
	}
	a, b := parse(v), parse(floor)
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// TestSSOPostAndRedirect signs in over both bindings and checks the
// assertion as the SP does, and its shape.
func TestSSOPostAndRedirect(t *testing.T) {
	e := newEnv(t, envOptions{})
	alice := e.newUser("alice")
	for _, binding := range []string{saml.HTTPPostBinding, saml.HTTPRedirectBinding} {
		t.Run(binding[strings.LastIndexByte(binding, ':')+1:], func(t *testing.T) {
			r, resp := e.signIn(alice, binding, nil)
			st, raw := samltest.ReadStatus(t, resp)
			if !st.Success() {
				t.Fatalf("status %s", st)
			}
			a, err := e.sp.Assertion(t, resp, r.ID)
			if err != nil {
				t.Fatalf("the SP refuses the response: %v\n%s", err, raw)
			}
			if a.Subject.NameID.Value != "alice" {
				t.Errorf("NameID %q", a.Subject.NameID.Value)
			}
			sc := a.Subject.SubjectConfirmations[0].SubjectConfirmationData
			if sc.InResponseTo != r.ID || sc.Recipient != e.sp.AcsURL.String() || sc.Address != "127.0.0.1" {
				t.Errorf("subject confirmation %+v", sc)
			}
			if d := sc.NotOnOrAfter.Sub(e.clock.Now()); d <= 0 || d > 2*time.Minute {
				t.Errorf("confirmation NotOnOrAfter in %s", d)
			}
			if got := a.Conditions.AudienceRestrictions[0].Audience.Value; got != e.sp.EntityID {
				t.Errorf("audience %q", got)
			}
			if got := a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value; got != samlidp.ClassDevice {
				t.Errorf("class %q, want %q", got, samlidp.ClassDevice)
			}
			if len(a.AttributeStatements) != 0 {
				t.Errorf("attribute statements without configured attributes: %+v", a.AttributeStatements)
			}
			if a.Issuer.Value != e.idp.EntityID() {
				t.Errorf("issuer %q", a.Issuer.Value)
			}
			var doc saml.Response
			if err := xml.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Destination != e.sp.AcsURL.String() || doc.InResponseTo != r.ID || doc.Signature == nil {
				t.Errorf("response destination %q, InResponseTo %q, signed %v", doc.Destination, doc.InResponseTo, doc.Signature != nil)
			}
		})
	}
}

// TestAttributesAndNameID checks the configured attributes and a NameID
// keystep makes instead of echoing.
func TestAttributesAndNameID(t *testing.T) {
	e := newEnv(t, envOptions{policy: func(c *samlidp.SPConfig) {
		c.NameID = samlidp.NameIDUsername
		c.NameIDFormat = string(saml.EmailAddressNameIDFormat)
		c.Attributes = []samlidp.Attribute{{Name: "urn:oid:0.9.2342.19200300.100.1.3", FriendlyName: "mail", Value: "email"},
			{Name: "displayName", Value: "display_name"}}
	}})
	bob := e.newUser("bob")
	// A request naming BOB would be answered for bob: saml-core §3.4.1.4
	// wants the subjects equal, so keystep refuses before any prompt.
	p := e.send(steptest.NewBrowser(t), e.sp.AuthnRequest(t, saml.HTTPPostBinding, "BOB", "", nil))
	resp, _ := e.answer(p)
	if st, _ := samltest.ReadStatus(t, resp); st.Success() || bob.pending(t) != 0 {
		t.Errorf("a request for BOB answered %s with %d prompts", st, bob.pending(t))
	}
	r, resp := e.signIn(bob, saml.HTTPPostBinding, func(r *saml.AuthnRequest) {
		r.Subject.NameID.Format = string(saml.EmailAddressNameIDFormat)
	})
	if st, raw := samltest.ReadStatus(t, resp); !st.Success() {
		t.Fatalf("status %s\n%s", st, raw)
	}
	a, err := e.sp.Assertion(t, resp, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject.NameID.Value != "bob" || a.Subject.NameID.Format != string(saml.EmailAddressNameIDFormat) {
		t.Errorf("NameID %+v", a.Subject.NameID)
	}
	got := map[string]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			got[at.Name] = at.Values[0].Value
		}
	}
	if got["urn:oid:0.9.2342.19200300.100.1.3"] != "bob@example.com" || got["displayName"] != "User bob" || len(got) != 2 {
		t.Errorf("attributes %v", got)
	}
}

// TestStatusErrors: requests keystep cannot answer with an assertion get a
// signed error Response with the right status, and nobody's phone rings.
func TestStatusErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	carol := e.newUser("carol")
	dave := e.newUser("dave")
	if _, err := e.svc.SuspendAccount(e.ctx, "admin:test", dave.account.ID, flows.SourceAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	erin := e.newUser("erin")
	if _, err := e.svc.RemoveAccount(e.ctx, "admin:test", erin.account.ID, flows.SourceAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	yes := true
	other := "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	cases := []struct {
		name        string
		nameID      string
		edit        func(*saml.AuthnRequest)
		top, second string
	}{
		{"unknown user", "nobody", nil, saml.StatusResponder, saml.StatusUnknownPrincipal},
		{"suspended", "dave", nil, saml.StatusResponder, saml.StatusRequestDenied},
		{"removed", "erin", nil, saml.StatusResponder, saml.StatusUnknownPrincipal},
		{"no subject", "", nil, saml.StatusRequester, saml.StatusRequestUnsupported},
		{"passive", "carol", func(r *saml.AuthnRequest) { r.IsPassive = &yes }, saml.StatusResponder, saml.StatusNoPassive},
		{"name id policy", "carol", func(r *saml.AuthnRequest) { r.NameIDPolicy = &saml.NameIDPolicy{Format: &other} },
			saml.StatusRequester, saml.StatusInvalidNameIDPolicy},
		{"unmeetable context", "carol", func(r *saml.AuthnRequest) {
			r.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: "minimum",
				AuthnContextClassRefs: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"}}
		}, saml.StatusResponder, saml.StatusNoAuthnContext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := steptest.NewBrowser(t)
			r := e.sp.AuthnRequest(t, saml.HTTPPostBinding, c.nameID, "", c.edit)
			p := e.send(b, r)
			resp, _ := e.answer(p)
			st, raw := samltest.ReadStatus(t, resp)
			if st.Top != c.top || st.Second != c.second {
				t.Errorf("status %s, want %s / %s\n%s", st, c.top, c.second, raw)
			}
			if !strings.Contains(string(raw), "InResponseTo=\""+r.ID+"\"") || !strings.Contains(string(raw), "<ds:Signature") {
				t.Errorf("the error response is not signed or not in response to the request:\n%s", raw)
			}
			if strings.Contains(string(raw), "Assertion") {
				t.Errorf("an error response carries an assertion:\n%s", raw)
			}
		})
	}
	for _, u := range []user{carol, dave} {
		if n := u.pending(t); n != 0 {
			t.Errorf("%s has %d prompts", u.name, n)
		}
	}
}

// TestDenyGivesErrorStatus: a denial on the phone answers AuthnFailed.
func TestDenyGivesErrorStatus(t *testing.T) {
	e := newEnv(t, envOptions{})
	frank := e.newUser("frank")
	b := steptest.NewBrowser(t)
	r := e.sp.AuthnRequest(t, saml.HTTPRedirectBinding, "frank", "", nil)
	step := e.startStep(b, r)
	frank.deny(t)
	p := b.Get(step.URL.String())
	for p.Status == http.StatusOK && !strings.Contains(p.Body, "/saml/acs") {
		f, ok := p.FindForm("/abort")
		if !ok {
			break
		}
		p = b.Submit(f, nil)
	}
	resp, _ := e.answer(p)
	st, raw := samltest.ReadStatus(t, resp)
	if st.Top != saml.StatusResponder || st.Second != saml.StatusAuthnFailed || !strings.Contains(st.Message, "denied") {
		t.Errorf("status %s\n%s", st, raw)
	}
}

// TestRequestedAuthnContext: the class asserted is the method's own, and a
// request narrows the methods offered.
func TestRequestedAuthnContext(t *testing.T) {
	e := newEnv(t, envOptions{})
	gina := e.newUser("gina")
	rac := func(cmp string, classes ...string) func(*saml.AuthnRequest) {
		return func(r *saml.AuthnRequest) {
			r.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: cmp, AuthnContextClassRefs: classes}
		}
	}
	ppt := "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
	x509 := "urn:oasis:names:tc:SAML:2.0:ac:classes:X509"
	cases := []struct {
		name    string
		edit    func(*saml.AuthnRequest)
		methods []string // what the step page offers beyond push/QR
		absent  []string
	}{
		{"exact device", rac("exact", samlidp.ClassDevice), nil, []string{"override code"}},
		{"minimum password", rac("minimum", ppt), []string{"override code"}, nil},
		{"minimum x509", rac("minimum", x509), nil, []string{"override code"}},
		{"better password", rac("better", ppt), nil, []string{"override code"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := steptest.NewBrowser(t)
			r := e.sp.AuthnRequest(t, saml.HTTPPostBinding, "gina", "", c.edit)
			step := e.startStep(b, r)
			for _, m := range c.methods {
				if !strings.Contains(step.Body, m) {
					t.Errorf("the page does not offer %q", m)
				}
			}
			for _, m := range c.absent {
				if strings.Contains(step.Body, m) {
					t.Errorf("the page offers %q", m)
				}
			}
			gina.approve(t, number(t, step))
			resp, _ := e.answer(b.Submit(step.Form(t, "/finish"), nil))
			a, err := e.sp.Assertion(t, resp, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got := a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value; got != samlidp.ClassDevice {
				t.Errorf("class %q", got)
			}
		})
	}
	t.Run("maximum password leaves only codes", func(t *testing.T) {
		b := steptest.NewBrowser(t)
		step := e.startStep(b, e.sp.AuthnRequest(t, saml.HTTPPostBinding, "gina", "", rac("maximum", ppt)))
		if numberRE.MatchString(step.Body) || !strings.Contains(step.Body, "override code") {
			t.Errorf("a maximum-PasswordProtectedTransport request offers push, or no code:\n%s", step.Body)
		}
		if n := gina.pending(t); n != 0 {
			t.Errorf("the phone got %d prompts", n)
		}
	})
}

// TestREFEDSMFA is asserted only under a policy that says the host did a
// first factor, and then only when asked.
func TestREFEDSMFA(t *testing.T) {
	if err := samlidp.CheckSP(samlidp.SPConfig{ID: "x", EntityID: "x", MetadataFile: "x", REFEDSMFA: samlidp.REFEDSAlways}, false); err == nil {
		t.Error("refeds_mfa: always without host_first_factor is accepted")
	}
	e := newEnv(t, envOptions{policy: func(c *samlidp.SPConfig) {
		c.HostFirstFactor, c.REFEDSMFA = true, samlidp.REFEDSRequested
	}})
	hana := e.newUser("hana")
	r, resp := e.signIn(hana, saml.HTTPPostBinding, func(r *saml.AuthnRequest) {
		r.RequestedAuthnContext = &saml.RequestedAuthnContext{AuthnContextClassRefs: []string{samlidp.ClassREFEDSMFA}}
	})
	a, err := e.sp.Assertion(t, resp, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value; got != samlidp.ClassREFEDSMFA {
		t.Errorf("class %q", got)
	}
	r, resp = e.signIn(hana, saml.HTTPPostBinding, nil)
	if a, err = e.sp.Assertion(t, resp, r.ID); err != nil {
		t.Fatal(err)
	}
	if got := a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value; got != samlidp.ClassDevice {
		t.Errorf("class %q without a request for MFA", got)
	}
}

// TestForceAuthn: every request runs the step, with a fresh AuthnInstant.
func TestForceAuthn(t *testing.T) {
	e := newEnv(t, envOptions{})
	ivy := e.newUser("ivy")
	yes := true
	force := func(r *saml.AuthnRequest) { r.ForceAuthn = &yes }
	r1, resp1 := e.signIn(ivy, saml.HTTPPostBinding, force)
	e.clock.Advance(10 * time.Second)
	r2, resp2 := e.signIn(ivy, saml.HTTPPostBinding, force)
	a1, err := e.sp.Assertion(t, resp1, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	a2, err := e.sp.Assertion(t, resp2, r2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !a2.AuthnStatements[0].AuthnInstant.After(a1.AuthnStatements[0].AuthnInstant) {
		t.Errorf("AuthnInstant %s then %s", a1.AuthnStatements[0].AuthnInstant, a2.AuthnStatements[0].AuthnInstant)
	}
}

// TestEncryptedAssertion: an SP that offers an encryption key gets the
// assertion encrypted with RSA-OAEP and AES-256-GCM.
func TestEncryptedAssertion(t *testing.T) {
	e := newEnv(t, envOptions{sp: samltest.Options{Encrypt: true}})
	jack := e.newUser("jack")
	r, resp := e.signIn(jack, saml.HTTPPostBinding, nil)
	_, raw := samltest.ReadStatus(t, resp)
	for _, want := range []string{"EncryptedAssertion", "http://www.w3.org/2009/xmlenc11#rsa-oaep", "http://www.w3.org/2009/xmlenc11#aes256-gcm"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("the response lacks %s", want)
		}
	}
	if strings.Contains(string(raw), ">jack<") {
		t.Error("the NameID is in clear text")
	}
	a, err := e.sp.Assertion(t, resp, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject.NameID.Value != "jack" {
		t.Errorf("NameID %q", a.Subject.NameID.Value)
	}
}

// TestUnsignedRequestRefused: without a signature nothing happens, unless
// the operator allowed it for that SP.
func TestUnsignedRequestRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	kim := e.newUser("kim")
	unsigned := samltest.NewSP(t, samltest.Options{BaseURL: spBase, Unsigned: true})
	unsigned.IDPMetadata = e.sp.IDPMetadata
	for _, binding := range []string{saml.HTTPPostBinding, saml.HTTPRedirectBinding} {
		p := e.send(steptest.NewBrowser(t), unsigned.AuthnRequest(t, binding, "kim", "", nil))
		if p.Status != http.StatusBadRequest || strings.Contains(p.Body, "SAMLResponse") {
			t.Errorf("%s: unsigned request answered %d:\n%s", binding, p.Status, p.Body)
		}
	}
	if n := kim.pending(t); n != 0 {
		t.Errorf("%d prompts", n)
	}
	if _, err := samlidp.New(samlidp.Options{Flows: e.svc, PublicURL: e.ts.URL, Secret: testSecret,
		ServiceProviders: []samlidp.SPConfig{{ID: "x", EntityID: "x", MetadataFile: "x", AllowUnsignedRequests: true}}}); err == nil {
		t.Error("an SP allows unsigned requests while the IdP asks every SP to sign")
	}

	open := newEnv(t, envOptions{sp: samltest.Options{Unsigned: true}})
	lee := open.newUser("lee")
	r, resp := open.signIn(lee, saml.HTTPPostBinding, nil)
	if _, err := open.sp.Assertion(t, resp, r.ID); err != nil {
		t.Errorf("allowed unsigned request: %v", err)
	}
}

// TestReplayedRequest: an AuthnRequest is used once, even before its step.
func TestReplayedRequest(t *testing.T) {
	e := newEnv(t, envOptions{})
	max := e.newUser("max")
	r := e.sp.AuthnRequest(t, saml.HTTPPostBinding, "max", "", nil)
	e.startStep(steptest.NewBrowser(t), r)
	p := e.send(steptest.NewBrowser(t), r)
	if p.Status != http.StatusBadRequest {
		t.Errorf("replayed request answered %d:\n%s", p.Status, p.Body)
	}
	if n := max.pending(t); n > 1 {
		t.Errorf("%d prompts", n)
	}
}

// TestIdPMetadata: the metadata is signed, names the endpoints, publishes
// no encryption key, and carries the next key before it signs.
func TestIdPMetadata(t *testing.T) {
	e := newEnv(t, envOptions{})
	raw := e.get("/saml/metadata")
	md, err := samlspParseSigned(raw, e)
	if err != nil {
		t.Fatalf("metadata signature: %v", err)
	}
	d := md.IDPSSODescriptors[0]
	if md.EntityID != e.ts.URL+"/saml/metadata" || d.WantAuthnRequestsSigned == nil || !*d.WantAuthnRequestsSigned {
		t.Errorf("entity %q, want signed %v", md.EntityID, d.WantAuthnRequestsSigned)
	}
	for _, kd := range d.KeyDescriptors {
		if kd.Use != "signing" {
			t.Errorf("a key with use %q is published", kd.Use)
		}
	}
	if len(d.KeyDescriptors) != 1 {
		t.Errorf("%d keys published before any rotation", len(d.KeyDescriptors))
	}
	sso := map[string]string{}
	for _, ep := range d.SingleSignOnServices {
		sso[ep.Binding] = ep.Location
	}
	if sso[saml.HTTPPostBinding] != e.ts.URL+"/saml/sso" || sso[saml.HTTPRedirectBinding] != e.ts.URL+"/saml/sso" || len(sso) != 2 {
		t.Errorf("SSO endpoints %v", sso)
	}
	if len(d.SingleLogoutServices) == 0 {
		t.Error("no SLO endpoint")
	}
	// A year on, less the 30 days it is published ahead: the next key is
	// in the metadata, and the current one still signs.
	e.clock.Advance(336 * 24 * time.Hour)
	md2, err := samlspParseSigned(e.get("/saml/metadata"), e)
	if err != nil {
		t.Fatal(err)
	}
	if log := e.logs.String(); !strings.Contains(log, "published the next saml signing key") || !strings.Contains(log, "must import it") {
		t.Errorf("no warning that the next key is published:\n%s", log)
	}
	keys := md2.IDPSSODescriptors[0].KeyDescriptors
	if len(keys) != 2 || keys[0].KeyInfo.X509Data.X509Certificates[0].Data != d.KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data {
		t.Errorf("after 336 days: %d keys, the signing one first? %v", len(keys), len(keys) > 0 &&
			keys[0].KeyInfo.X509Data.X509Certificates[0].Data == d.KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data)
	}
}

// TestIdPInitiated: off by default; on, a user who names themselves and
// approves gets an unsolicited Response at the SP.
func TestIdPInitiated(t *testing.T) {
	e := newEnv(t, envOptions{})
	if p := steptest.NewBrowser(t).Get(e.ts.URL + "/saml/login/portal"); p.Status != http.StatusNotFound {
		t.Errorf("IdP-initiated login is on by default: %d", p.Status)
	}
	e = newEnv(t, envOptions{policy: func(c *samlidp.SPConfig) { c.IdPInitiated = true }})
	nina := e.newUser("nina")
	b := steptest.NewBrowser(t)
	form := b.Get(e.ts.URL + "/saml/login/portal?RelayState=%2Fhome")
	p := b.Submit(form.Form(t, "/saml/login/portal"), url.Values{"username": {"nina"}})
	step := b.Follow(p)
	nina.approve(t, number(t, step))
	resp, relay := e.answer(b.Submit(step.Form(t, "/finish"), nil))
	if relay != "/home" {
		t.Errorf("RelayState %q", relay)
	}
	e.sp.AllowIDPInitiated = true
	a, err := e.sp.Assertion(t, resp)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject.NameID.Value != "nina" || a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo != "" {
		t.Errorf("assertion %+v", a.Subject)
	}
}

// TestRequestStoredNotRaw: what keystep keeps of a request is its signed
// content only, never the raw XML.
func TestRequestStoredNotRaw(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.newUser("olga")
	b := steptest.NewBrowser(t)
	r := e.sp.AuthnRequest(t, saml.HTTPPostBinding, "olga", "", nil)
	step := e.startStep(b, r)
	id := step.URL.Path[strings.LastIndexByte(step.URL.Path, '/')+1:]
	ar, err := e.svc.Store().GetAuthRequest(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ar.Protocol != "saml" || ar.ClientID != e.sp.EntityID || strings.Contains(string(ar.Request), "Signature") {
		t.Errorf("stored %s %s %s", ar.Protocol, ar.ClientID, ar.Request)
	}
}

// samlspParseSigned checks the metadata's signature with the key it
// publishes first (the one that signs now).
func samlspParseSigned(raw []byte, e *env) (*saml.EntityDescriptor, error) {
	e.t.Helper()
	var md saml.EntityDescriptor
	if err := xml.Unmarshal(raw, &md); err != nil {
		return nil, err
	}
	cert := md.IDPSSODescriptors[0].KeyDescriptors[0].KeyInfo.X509Data.X509Certificates[0].Data
	der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(cert), ""))
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return samlsp.ParseSignedMetadata(raw, []*x509.Certificate{c})
}

// TestNameByAttribute: an SP configured with a name attribute may name the
// user in the signed request's <Extensions> instead of <Subject>.
func TestNameByAttribute(t *testing.T) {
	const uid = "urn:oid:0.9.2342.19200300.100.1.1"
	e := newEnv(t, envOptions{policy: func(c *samlidp.SPConfig) { c.NameAttribute = uid }})
	pia := e.newUser("pia")
	// request sends a signed request without a Subject whose Extensions
	// carry the attribute with values.
	request := func(b *steptest.Browser, values ...string) (*saml.AuthnRequest, *steptest.Page) {
		t.Helper()
		r := e.sp.AuthnRequest(t, saml.HTTPPostBinding, "", "", nil)
		r.Signature = nil
		el := r.Element()
		ext := etree.NewElement("samlp:Extensions")
		attr := ext.CreateElement("saml:Attribute")
		attr.CreateAttr("Name", uid)
		for _, v := range values {
			attr.CreateElement("saml:AttributeValue").SetText(v)
		}
		for i, c := range el.Child {
			if c, ok := c.(*etree.Element); ok && c.Tag == "Issuer" {
				el.InsertChildAt(i+1, ext)
				break
			}
		}
		return r.AuthnRequest, e.send(b, samltest.Request{URL: r.URL, Form: url.Values{"SAMLRequest": {e.sp.SignedXML(t, el)}}})
	}
	b := steptest.NewBrowser(t)
	r, p := request(b, "pia")
	if p.Status != http.StatusSeeOther {
		t.Fatalf("a request naming pia by attribute answered %d:\n%s", p.Status, p.Body)
	}
	step := b.Follow(p)
	pia.approve(t, number(t, step))
	resp, _ := e.answer(b.Submit(step.Form(t, "/finish"), nil))
	a, err := e.sp.Assertion(t, resp, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.Subject.NameID.Value != "pia" {
		t.Errorf("NameID %q", a.Subject.NameID.Value)
	}
	for name, values := range map[string][]string{"no value": nil, "two values": {"pia", "max"}} {
		_, p := request(steptest.NewBrowser(t), values...)
		resp, _ := e.answer(p)
		if st, _ := samltest.ReadStatus(t, resp); st.Second != saml.StatusRequestUnsupported {
			t.Errorf("%s: status %s", name, st)
		}
	}
	if n := pia.pending(t); n != 0 {
		t.Errorf("%d prompts", n)
	}
}
