package integration

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"

	"github.com/keystep/keystep/provider/samlidp/samltest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// samlApp is a real SAML service provider: crewjam/saml's samlsp
// middleware guarding an app page that shows the signed-in user, on its
// own HTTP server.
type samlApp struct {
	t            testing.TB
	m            *samlsp.Middleware
	ts           *httptest.Server
	metadataFile string
	entityID     string
	url          string // the app's own URL (its ACS is url/saml/acs)
}

// login is the app's own page that sends the browser to keystep for the
// user named in ?user=: an auto-posting form (HTTP-POST binding) with a
// signed AuthnRequest, tracked by the app's cookie.
func (a *samlApp) login(w http.ResponseWriter, r *http.Request) {
	sp := &a.m.ServiceProvider
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPPostBinding), saml.HTTPPostBinding, saml.HTTPPostBinding)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Subject = &saml.Subject{NameID: &saml.NameID{Value: r.URL.Query().Get("user")}}
	req.Signature = nil
	if err := sp.SignAuthnRequest(req); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	relay, err := a.m.RequestTracker.TrackRequest(w, httptest.NewRequest(http.MethodGet, a.url+"/app", nil), req.ID)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte("<!DOCTYPE html><html><body>"))
	_, _ = w.Write(req.Post(relay))
	_, _ = w.Write([]byte("</body></html>"))
}

// newSAMLApp starts an app; encrypt asks keystep for encrypted assertions
// (its metadata offers an encryption key).
func newSAMLApp(t testing.TB, encrypt bool) *samlApp {
	t.Helper()
	return newSAMLAppOn(t, encrypt, "")
}

// newSAMLAppOn is newSAMLApp with the app's URL on another name of the
// loopback host (such as localhost, which is another site than keystep's
// 127.0.0.1 to a browser); "" keeps 127.0.0.1.
func newSAMLAppOn(t testing.TB, encrypt bool, host string) *samlApp {
	t.Helper()
	ts := httptest.NewServer(nil)
	t.Cleanup(ts.Close)
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		u.Host = host + ":" + u.Port()
	}
	key, cert := samltest.NewKey(t, "samlsp app")
	o := samlsp.Options{URL: *u, Key: key, Certificate: cert, SignRequest: true,
		LogoutBindings: []string{saml.HTTPRedirectBinding}}
	if encrypt {
		o.EncryptionKey, o.EncryptionCertificate = key, cert
	}
	m, err := samlsp.New(o)
	if err != nil {
		t.Fatal(err)
	}
	// A step request names its user: the answer echoes that NameID.
	m.ServiceProvider.AuthnNameIDFormat = saml.UnspecifiedNameIDFormat
	a := &samlApp{t: t, m: m, ts: ts}
	mux := http.NewServeMux()
	mux.Handle("/saml/", m)
	mux.HandleFunc("/login", a.login)
	mux.Handle("/app", m.RequireAccount(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := samlsp.SessionFromContext(r.Context()).(samlsp.JWTSessionClaims)
		_ = json.NewEncoder(w).Encode(map[string]string{"subject": s.Subject, "class": s.Attributes.Get("keystep-class")})
	})))
	ts.Config.Handler = mux
	md := m.ServiceProvider.Metadata()
	if !encrypt {
		samltest.SigningOnly(md)
	}
	buf, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sp.xml")
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	a.metadataFile, a.entityID, a.url = path, md.EntityID, u.String()
	return a
}

// trustIdP reads keystep's metadata as the app's admin would.
func (a *samlApp) trustIdP(srv server) {
	a.t.Helper()
	u, _ := url.Parse(srv.URL + "/saml/metadata")
	md, err := samlsp.FetchMetadata(context.Background(), http.DefaultClient, *u)
	if err != nil {
		a.t.Fatalf("keystep's SAML metadata: %v", err)
	}
	a.m.ServiceProvider.IDPMetadata = md
}

// request makes the AuthnRequest a host sends for a step: signed, naming
// the user in <Subject>, tracked by the app as if the browser had asked
// for /app; the browser gets the app's tracking cookie.
func (a *samlApp) request(b *steptest.Browser, binding, user string, edit func(*saml.AuthnRequest)) (*saml.AuthnRequest, *http.Request) {
	a.t.Helper()
	sp := &a.m.ServiceProvider
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(binding), binding, saml.HTTPPostBinding)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Subject = &saml.Subject{NameID: &saml.NameID{Value: user}}
	if edit != nil {
		edit(req)
	}
	rec := httptest.NewRecorder()
	relay, err := a.m.RequestTracker.TrackRequest(rec, httptest.NewRequest(http.MethodGet, a.url+"/app", nil), req.ID)
	if err != nil {
		a.t.Fatal(err)
	}
	appURL, _ := url.Parse(a.url)
	b.Client.Jar.SetCookies(appURL, rec.Result().Cookies())
	req.Signature = nil
	if binding == saml.HTTPRedirectBinding {
		u, err := req.Redirect(relay, sp)
		if err != nil {
			a.t.Fatal(err)
		}
		r, _ := http.NewRequest(http.MethodGet, u.String(), nil)
		return req, r
	}
	if err := sp.SignAuthnRequest(req); err != nil {
		a.t.Fatal(err)
	}
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(samltest.ElementBytes(a.t, req.Element()))}, "RelayState": {relay}}
	r, _ := http.NewRequest(http.MethodPost, sp.GetSSOBindingLocation(binding), strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	return req, r
}

// acs posts keystep's answer to the app and returns the app's page.
func (a *samlApp) acs(b *steptest.Browser, fields url.Values) *steptest.Page {
	a.t.Helper()
	p := b.Post(a.url+"/saml/acs", fields)
	if p.Status != http.StatusFound && p.Status != http.StatusSeeOther {
		a.t.Fatalf("the app's ACS answered %d:\n%s", p.Status, p.Body)
	}
	return b.Follow(p)
}

// samlConfig is keystep's configuration for the apps.
func samlConfig(t testing.TB, portal, secure *samlApp) string {
	t.Helper()
	return writeConfig(t,
		"push:",
		"  limit: 100",
		"saml:",
		"  service_providers:",
		"    - id: portal",
		"      entity_id: "+portal.entityID,
		"      name: Example portal",
		"      metadata_file: "+portal.metadataFile,
		"      methods: [push, qr, email, override]",
		"      encrypt_assertions: never",
		"    - id: secure",
		"      entity_id: "+secure.entityID,
		"      name: Secure app",
		"      metadata_file: "+secure.metadataFile,
		"      encrypt_assertions: required",
	)
}

// TestSAMLWithSamlsp signs users in to two samlsp apps through the real
// `keystep serve`: SP-initiated over HTTP-POST and HTTP-Redirect, signed
// AuthnRequests naming the user, the phone approving with the number
// shown, the app checking the signed (for one app, encrypted) assertion
// and opening its page; a RequestedAuthnContext the methods cannot meet,
// a denial and an unknown user each give an error status and no session.
func TestSAMLWithSamlsp(t *testing.T) {
	portal, secure := newSAMLApp(t, false), newSAMLApp(t, true)
	srv, _ := startLoggedServer(t, "--config", samlConfig(t, portal, secure))
	portal.trustIdP(srv)
	secure.trustIdP(srv)
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	w.addUser("alice", "alice@example.com")
	w.enroll("alice", "phone.json")

	signIn := func(t *testing.T, app *samlApp, binding, client string, edit func(*saml.AuthnRequest)) (*steptest.Page, []byte) {
		b := steptest.NewBrowser(t)
		_, r := app.request(b, binding, "alice", edit)
		step := followToStep(t, b, b.Do(r))
		if !strings.Contains(step.Text(), client) {
			t.Errorf("the step page does not name %s:\n%s", client, step.Text())
		}
		fields := autoPost(t, w.approveStep(b, step, "phone.json", client), app.url+"/saml/acs")
		raw, err := base64.StdEncoding.DecodeString(fields.Get("SAMLResponse"))
		if err != nil {
			t.Fatal(err)
		}
		return app.acs(b, fields), raw
	}
	for _, binding := range []string{saml.HTTPPostBinding, saml.HTTPRedirectBinding} {
		t.Run("portal "+binding[strings.LastIndexByte(binding, ':')+1:], func(t *testing.T) {
			page, raw := signIn(t, portal, binding, "Example portal", nil)
			if page.Status != http.StatusOK || !strings.Contains(page.Body, `"subject":"alice"`) {
				t.Errorf("the app's page after sign-in: %d %s", page.Status, page.Body)
			}
			if strings.Contains(string(raw), "EncryptedAssertion") || !strings.Contains(string(raw), "urn:keystep:acr:device") {
				t.Errorf("the portal's response:\n%s", raw)
			}
		})
	}
	t.Run("encrypted", func(t *testing.T) {
		page, raw := signIn(t, secure, saml.HTTPPostBinding, "Secure app", nil)
		if page.Status != http.StatusOK || !strings.Contains(page.Body, `"subject":"alice"`) {
			t.Errorf("the app's page after sign-in: %d %s", page.Status, page.Body)
		}
		for _, want := range []string{"EncryptedAssertion", "xmlenc11#rsa-oaep", "xmlenc11#aes256-gcm"} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("the response lacks %s", want)
			}
		}
		if strings.Contains(string(raw), ">alice<") {
			t.Error("the NameID is in clear text")
		}
	})
	t.Run("requested context minimum", func(t *testing.T) {
		page, raw := signIn(t, portal, saml.HTTPPostBinding, "Example portal", func(r *saml.AuthnRequest) {
			r.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: "minimum",
				AuthnContextClassRefs: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}}
		})
		if page.Status != http.StatusOK || !strings.Contains(string(raw), "urn:keystep:acr:device") {
			t.Errorf("%d %s\n%s", page.Status, page.Body, raw)
		}
	})
	t.Run("requested context exact device", func(t *testing.T) {
		page, _ := signIn(t, portal, saml.HTTPRedirectBinding, "Example portal", func(r *saml.AuthnRequest) {
			r.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: "exact", AuthnContextClassRefs: []string{"urn:keystep:acr:device"}}
		})
		if page.Status != http.StatusOK {
			t.Errorf("%d %s", page.Status, page.Body)
		}
	})

	// Error statuses: posted to the app, which opens no session.
	status := func(t *testing.T, p *steptest.Page, app *samlApp) samltest.Status {
		t.Helper()
		fields := autoPost(t, p, app.url+"/saml/acs")
		st, _ := samltest.ReadStatus(t, fields.Get("SAMLResponse"))
		b := steptest.NewBrowser(t)
		if page := b.Post(app.url+"/saml/acs", fields); page.Status == http.StatusFound || page.Status == http.StatusSeeOther {
			t.Errorf("the app accepted an error response: %d → %s", page.Status, page.Location)
		}
		return st
	}
	t.Run("unmeetable context", func(t *testing.T) {
		b := steptest.NewBrowser(t)
		_, r := portal.request(b, saml.HTTPPostBinding, "alice", func(r *saml.AuthnRequest) {
			r.RequestedAuthnContext = &saml.RequestedAuthnContext{Comparison: "exact",
				AuthnContextClassRefs: []string{"urn:oasis:names:tc:SAML:2.0:ac:classes:SmartcardPKI"}}
		})
		if st := status(t, b.Do(r), portal); st.Second != saml.StatusNoAuthnContext {
			t.Errorf("status %s", st)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		b := steptest.NewBrowser(t)
		_, r := portal.request(b, saml.HTTPRedirectBinding, "mallory", nil)
		if st := status(t, b.Do(r), portal); st.Second != saml.StatusUnknownPrincipal {
			t.Errorf("status %s", st)
		}
	})
	t.Run("deny", func(t *testing.T) {
		b := steptest.NewBrowser(t)
		_, r := portal.request(b, saml.HTTPPostBinding, "alice", nil)
		step := followToStep(t, b, b.Do(r))
		var pend pendingList
		ok(t, &pend, w.device("phone.json", "pending")...)
		if len(pend.Requests) != 1 {
			t.Fatalf("pending %+v", pend)
		}
		ok(t, nil, w.device("phone.json", "deny", pend.Requests[0].ID)...)
		p := b.Submit(step.Form(t, "/finish"), nil)
		for i := 0; i < 3 && p.Status == http.StatusOK && !strings.Contains(p.Body, "/saml/acs"); i++ {
			f, found := p.FindForm("/abort")
			if !found {
				break
			}
			p = b.Submit(f, nil)
		}
		if st := status(t, p, portal); st.Second != saml.StatusAuthnFailed || !strings.Contains(st.Message, "denied") {
			t.Errorf("status %s", st)
		}
	})
	t.Run("suspended", func(t *testing.T) {
		w.addUser("sam", "sam@example.com")
		ok(t, nil, w.admin("user", "suspend", "sam", "--reason", "on leave")...)
		b := steptest.NewBrowser(t)
		_, r := portal.request(b, saml.HTTPPostBinding, "sam", nil)
		if st := status(t, b.Do(r), portal); st.Second != saml.StatusRequestDenied {
			t.Errorf("status %s", st)
		}
	})
	t.Run("single logout", func(t *testing.T) {
		sp := &portal.m.ServiceProvider
		lr, err := sp.MakeLogoutRequest(sp.GetSLOBindingLocation(saml.HTTPRedirectBinding), "alice")
		if err != nil {
			t.Fatal(err)
		}
		u, err := sp.RedirectLogoutRequestURL(lr, "")
		if err != nil {
			t.Fatal(err)
		}
		p := steptest.NewBrowser(t).Get(u.String())
		if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, portal.url+"/saml/slo?") {
			t.Fatalf("SLO answered %d → %s\n%s", p.Status, p.Location, p.Body)
		}
		r, _ := http.NewRequest(http.MethodGet, p.Location, nil)
		resp, err := sp.ParseLogoutResponse(r, []string{lr.ID})
		if err != nil {
			t.Fatalf("the app refuses keystep's LogoutResponse: %v", err)
		}
		if resp.Status.StatusCode.Value != saml.StatusSuccess {
			t.Errorf("logout status %s", resp.Status.StatusCode.Value)
		}
	})
}
