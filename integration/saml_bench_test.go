package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/provider/steppage/steptest"
)

// BenchmarkSAMLSignIn measures complete SAML sign-ins per second against
// one real `keystep serve` process over loopback HTTP, as
// BenchmarkOIDCSignIn does for OpenID Connect: a samlsp app's signed
// AuthnRequest naming the user (HTTP-POST), the step page, the reference
// authenticator's signed approval, Continue, keystep's signed assertion
// (RSA-SHA256, twice: assertion and Response) and the app's ACS checking
// it. push.limit and saml.sso_per_ip_per_minute are raised as there.
func BenchmarkSAMLSignIn(b *testing.B) {
	app, other := newSAMLApp(b, false), newSAMLApp(b, true)
	cfg := writeConfig(b, "push:", "  limit: 1000", "saml:", "  sso_per_ip_per_minute: 1000000", "  service_providers:",
		"    - {id: portal, name: Example portal, encrypt_assertions: never, entity_id: "+app.entityID+", metadata_file: "+app.metadataFile+"}",
		"    - {id: other, entity_id: "+other.entityID+", metadata_file: "+other.metadataFile+"}")
	srv, keystepServe := startLoggedServer(b, "--config", cfg)
	app.trustIdP(srv)
	ctx := context.Background()

	tr, _, pool := benchUsersOn(ctx, b, srv)
	runSignIns(b, keystepServe.pid, pool, func(u *benchUser, _ string) error { // the warm-up makes the signing key
		return benchSAMLSignIn(ctx, b, srv, app, tr, u)
	})
}

// benchSAMLSignIn runs one SAML sign-in of u from a fresh browser, to the
// app's ACS accepting the assertion.
func benchSAMLSignIn(ctx context.Context, tb testing.TB, srv server, app *samlApp, tr http.RoundTripper, u *benchUser) error {
	br := steptest.NewBrowser(tb)
	br.Client.Transport = tr
	_, r := app.request(br, saml.HTTPPostBinding, u.name, nil)
	p := br.Do(r)
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, srv.URL+"/step/") {
		return fmt.Errorf("%s: SSO answered %d → %q:\n%s", u.name, p.Status, p.Location, p.Body)
	}
	ans, err := approveOnStepPage(ctx, br, p, u)
	if err != nil {
		return err
	}
	form, ok := ans.FindForm("/saml/acs")
	if ans.Status != http.StatusOK || !ok {
		return fmt.Errorf("%s: Continue answered %d:\n%s", u.name, ans.Status, ans.Body)
	}
	acs := br.Post(form.Action, form.Fields)
	if loc, err := url.Parse(acs.Location); acs.Status != http.StatusFound || err != nil || loc.Path != "/app" {
		return fmt.Errorf("%s: the app's ACS answered %d → %q:\n%s", u.name, acs.Status, acs.Location, acs.Body)
	}
	return nil
}
