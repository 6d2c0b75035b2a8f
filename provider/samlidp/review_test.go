package samlidp_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/samlidp"
	"github.com/keystep/keystep/provider/samlidp/samltest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// TestRefuseOnce: the page's reason cannot claim the account is
// suspended, and an answered request is never answered again — an abort
// followed by Continue after the approval gets no assertion.
func TestRefuseOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	quinn := e.newUser("quinn")
	b := steptest.NewBrowser(t)
	r := e.sp.AuthnRequest(t, saml.HTTPPostBinding, "quinn", "", nil)
	step := e.startStep(b, r)
	quinn.approve(t, number(t, step))
	abort := step.Form(t, "/abort")
	resp, _ := e.answer(b.Submit(abort, url.Values{"reason": {"suspended"}}))
	st, _ := samltest.ReadStatus(t, resp)
	if st.Second != saml.StatusAuthnFailed || strings.Contains(st.Message, "suspended") {
		t.Errorf("a posted reason made the status %s", st)
	}
	p := b.Submit(step.Form(t, "/finish"), nil)
	if strings.Contains(p.Body, "SAMLResponse") {
		t.Fatalf("Continue after the refusal answered the SP again:\n%s", p.Body)
	}
}

// TestSingleLogoutRelayStateNewline: a RelayState with a newline still
// gets the auto-posting page.
func TestSingleLogoutRelayStateNewline(t *testing.T) {
	e := newEnv(t, envOptions{})
	lr, err := e.sp.MakeLogoutRequest(e.ts.URL+"/saml/slo", "alice")
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(samltest.ElementBytes(t, lr.Element()))}, "RelayState": {"a\nb"}}
	p := steptest.NewBrowser(t).Post(e.ts.URL+"/saml/slo", form)
	f, ok := p.FindForm("/saml/slo")
	if p.Status != http.StatusOK || !ok || f.Fields.Get("RelayState") != "a\nb" {
		t.Fatalf("SLO with a newline in RelayState answered %d:\n%s", p.Status, p.Body)
	}
}

// TestIdPInitiatedRelayState: only a path on the SP, never a URL.
func TestIdPInitiatedRelayState(t *testing.T) {
	e := newEnv(t, envOptions{policy: func(c *samlidp.SPConfig) { c.IdPInitiated = true }})
	for _, bad := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example"} {
		p := steptest.NewBrowser(t).Get(e.ts.URL + "/saml/login/portal?RelayState=" + url.QueryEscape(bad))
		if p.Status != http.StatusBadRequest {
			t.Errorf("RelayState %q: %d", bad, p.Status)
		}
	}
}

// TestPolicyChecks: the class table and REFEDS MFA cannot be bent by
// configuration.
func TestPolicyChecks(t *testing.T) {
	base := samlidp.SPConfig{ID: "x", EntityID: "x", MetadataFile: "x", HostFirstFactor: true}
	c := base
	c.Classes = map[flows.Method]string{flows.MethodPush: samlidp.ClassREFEDSMFA}
	if err := samlidp.CheckSP(c, false); err == nil {
		t.Error("REFEDS MFA through authn_context is accepted")
	}
	c = base
	c.REFEDSMFA, c.AllowUnsignedRequests = samlidp.REFEDSAlways, true
	if err := samlidp.CheckSP(c, false); err == nil {
		t.Error("REFEDS MFA with unsigned requests is accepted")
	}
	for _, m := range []map[string]int{{samlidp.ClassCode: 5}, {samlidp.ClassREFEDSMFA: 1}, {"urn:x": 6}, {"urn:x": 0}} {
		if err := samlidp.CheckStrengths(m); err == nil {
			t.Errorf("strengths %v accepted", m)
		}
	}
	if err := samlidp.CheckStrengths(map[string]int{"urn:x": 4}); err != nil {
		t.Error(err)
	}
}
