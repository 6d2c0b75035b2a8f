package samlidp_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"
	"github.com/keystep/keystep/provider/samlidp/samltest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// TestSingleLogout: a signed LogoutRequest gets a signed Success (keystep
// keeps no session to end); an unsigned one gets nothing.
func TestSingleLogout(t *testing.T) {
	e := newEnv(t, envOptions{})
	lr, err := e.sp.MakeLogoutRequest(e.ts.URL+"/saml/slo", "alice")
	if err != nil {
		t.Fatal(err)
	}
	u, err := e.sp.RedirectLogoutRequestURL(lr, "relay-slo")
	if err != nil {
		t.Fatal(err)
	}
	p := steptest.NewBrowser(t).Get(u.String())
	if p.Status != http.StatusFound && p.Status != http.StatusSeeOther {
		t.Fatalf("SLO answered %d:\n%s", p.Status, p.Body)
	}
	loc, err := url.Parse(p.Location)
	if err != nil || loc.Host != "sp.example.com" {
		t.Fatalf("SLO redirects to %q", p.Location)
	}
	r, _ := http.NewRequest(http.MethodGet, p.Location, nil)
	resp, err := e.sp.ParseLogoutResponse(r, []string{lr.ID})
	if err != nil {
		t.Fatalf("the SP refuses the LogoutResponse: %v", err)
	}
	if resp.Status.StatusCode.Value != saml.StatusSuccess {
		t.Errorf("logout status %s", resp.Status.StatusCode.Value)
	}
	if loc.Query().Get("RelayState") != "relay-slo" || loc.Query().Get("Signature") == "" {
		t.Errorf("LogoutResponse query %v", loc.Query())
	}

	// The same request again is a replay.
	if p := steptest.NewBrowser(t).Get(u.String()); p.Status != http.StatusBadRequest {
		t.Errorf("replayed LogoutRequest answered %d", p.Status)
	}

	unsigned := samltest.NewSP(t, samltest.Options{BaseURL: spBase, Unsigned: true})
	unsigned.IDPMetadata = e.sp.IDPMetadata
	req, err := unsigned.MakeLogoutRequest(e.ts.URL+"/saml/slo", "alice")
	if err != nil {
		t.Fatal(err)
	}
	req.Signature = nil
	if p := steptest.NewBrowser(t).Get(req.Redirect("").String()); p.Status != http.StatusBadRequest {
		t.Errorf("unsigned LogoutRequest answered %d:\n%s", p.Status, p.Body)
	}
}

// TestSingleLogoutPOST: over HTTP-POST the LogoutResponse comes on
// keystep's auto-posting page (no inline script), to the SP's endpoint.
func TestSingleLogoutPOST(t *testing.T) {
	e := newEnv(t, envOptions{})
	lr, err := e.sp.MakeLogoutRequest(e.ts.URL+"/saml/slo", "alice")
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(samltest.ElementBytes(t, lr.Element()))}, "RelayState": {"r&1"}}
	p := steptest.NewBrowser(t).Post(e.ts.URL+"/saml/slo", form)
	f, ok := p.FindForm("/saml/slo")
	if p.Status != http.StatusOK || !ok || f.Action != "https://sp.example.com/saml/slo" || f.Fields.Get("RelayState") != "r&1" {
		t.Fatalf("SLO over POST answered %d:\n%s", p.Status, p.Body)
	}
	if strings.Contains(p.Body, "<script>") || !strings.Contains(p.Header.Get("Content-Security-Policy"), "form-action 'self' https://sp.example.com;") {
		t.Errorf("the page has inline script or no form-action for the SP: CSP %q\n%s", p.Header.Get("Content-Security-Policy"), p.Body)
	}
	r, _ := http.NewRequest(http.MethodPost, f.Action, strings.NewReader(f.Fields.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.sp.ParseLogoutResponse(r, []string{lr.ID})
	if err != nil {
		t.Fatalf("the SP refuses the LogoutResponse: %v", err)
	}
	if resp.Status.StatusCode.Value != saml.StatusSuccess {
		t.Errorf("logout status %s", resp.Status.StatusCode.Value)
	}
}
