package oidcop_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/oidcop/oidctest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// TestSuspendedAfterApproval: an approval counts only while the account
// is active: suspended between the approval and Continue, or between the
// code and its exchange, the user gets nothing.
func TestSuspendedAfterApproval(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	step := e.startStep(b, url.Values{"login_hint": {"alice"}, "state": {"s1"}})
	alice.approve(t, number(t, step))
	if _, err := e.svc.SuspendAccount(e.ctx, "admin:test", "alice", flows.SourceAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	q := e.callbackParams(b.Submit(step.Form(t, "/finish"), nil))
	if q.Get("error") != "access_denied" || q.Get("code") != "" || q.Get("state") != "s1" {
		t.Fatalf("suspended after approval: %v", q)
	}

	if _, err := e.svc.RestoreAccount(e.ctx, "admin:test", "alice", flows.SourceAdmin, "back"); err != nil {
		t.Fatal(err)
	}
	q = e.callbackParams(e.finish(b, alice, e.startStep(b, url.Values{"login_hint": {"alice"}})))
	if q.Get("code") == "" {
		t.Fatalf("after restore: %v", q)
	}
	if _, err := e.svc.SuspendAccount(e.ctx, "admin:test", "alice", flows.SourceAdmin, "again"); err != nil {
		t.Fatal(err)
	}
	status, body := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURI}})
	if status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
		t.Fatalf("code of a suspended account: %d %s", status, body)
	}
}

// TestLookalikeLoginHint: a name that the store's Unicode case folding
// would match to another account's (the Kelvin sign folds to "k") names
// nobody.
func TestLookalikeLoginHint(t *testing.T) {
	e := newEnv(t)
	e.newUser("kate")
	p := steptest.NewBrowser(t).Get(e.authorizeURL(url.Values{"login_hint": {"\u212Aate"}}))
	q := e.callbackParams(p)
	if q.Get("error") != "access_denied" {
		t.Fatalf("Kelvin-sign hint: %v", q)
	}
	if p := steptest.NewBrowser(t).Get(e.authorizeURL(url.Values{"login_hint": {"KATE"}})); !strings.Contains(p.Location, "/step/") {
		t.Fatalf("ASCII case still folds: %d %q", p.Status, p.Location)
	}
}

// TestErrorRedirectsCarryIss: the library's error redirects say who
// answers (RFC 9207), like keystep's own.
func TestErrorRedirectsCarryIss(t *testing.T) {
	e := newEnv(t)
	e.newUser("alice")
	q := e.callbackParams(steptest.NewBrowser(t).Get(e.authorizeURL(url.Values{"login_hint": {"alice"}, "prompt": {"none"}, "state": {"s"}})))
	if q.Get("error") != "login_required" || q.Get("iss") != e.ts.URL || q.Get("state") != "s" {
		t.Fatalf("prompt=none answer %v", q)
	}
}

// TestIntrospectionCountsFailedClientAuth: wrong secrets at introspection
// count against the address like wrong secrets at the token endpoint.
func TestIntrospectionCountsFailedClientAuth(t *testing.T) {
	e := newEnv(t)
	post := func(secret string) int {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/oauth/introspect", strings.NewReader("token=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 20 {
		if s := post("wrong-secret"); s == http.StatusTooManyRequests || s == http.StatusOK {
			t.Fatalf("failure %d answered %d", i+1, s)
		}
	}
	if s := post("wrong-secret"); s != http.StatusTooManyRequests {
		t.Fatalf("after 20 failures: %d, want 429", s)
	}
	e.clock.Advance(31 * time.Second)
	if s := post(clientSecret); s != http.StatusOK {
		t.Fatalf("the right secret after waiting: %d", s)
	}
}

// TestForgedKidsDoNotHammerTheIssuer: hints naming unknown key ids make
// keystep fetch the issuer's key set at most once in the refetch interval.
func TestForgedKidsDoNotHammerTheIssuer(t *testing.T) {
	entra := oidctest.NewEntra(t, entraTenant)
	e := newEnv(t, entraClient(entra))
	e.newUser("alice@contoso.example")
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		hint := entra.HintWithKid(t, forger, "kid-"+string(rune('a'+i)), entraClientID, entraAlice)
		fields := autoPosted(t, e.entraPost(steptest.NewBrowser(t), entra.AuthorizeForm(entraClientID, hint, "", "n", "s")))
		if fields.Get("error") != "invalid_request" {
			t.Fatalf("forged hint %d: %v", i, fields)
		}
	}
	if n := entra.Fetches(); n != 1 {
		t.Errorf("10 forged key ids made %d key set fetches, want 1", n)
	}
}

// TestLinkOnlyAfterTheStep: the first sign-in of an Entra user links its
// tenant and object id to the account only once the step succeeds.
func TestLinkOnlyAfterTheStep(t *testing.T) {
	entra := oidctest.NewEntra(t, entraTenant)
	e := newEnv(t, entraClient(entra))
	alice := e.newUser("alice@contoso.example")
	b := steptest.NewBrowser(t)
	step := b.Follow(e.entraPost(b, entra.AuthorizeForm(entraClientID, entra.Hint(t, entraClientID, entraAlice, nil), "", "n", "s")))
	if _, err := e.svc.Store().LinkedAccount(e.ctx, entra.Issuer(), entraAlice.OID); err == nil {
		t.Fatal("linked before the step")
	}
	alice.deny(t)
	b.Submit(step.Form(t, "/finish"), nil)
	if _, err := e.svc.Store().LinkedAccount(e.ctx, entra.Issuer(), entraAlice.OID); err == nil {
		t.Fatal("linked after a denial")
	}
	b = steptest.NewBrowser(t)
	autoPosted(t, e.finish(b, alice, b.Follow(e.entraPost(b, entra.AuthorizeForm(entraClientID, entra.Hint(t, entraClientID, entraAlice, nil), "", "n", "s")))))
	if id, err := e.svc.Store().LinkedAccount(e.ctx, entra.Issuer(), entraAlice.OID); err != nil || id != alice.account.ID {
		t.Fatalf("after an approval: %q, %v", id, err)
	}
}

// TestNoIDTokenInTheQuery: an implicit request cannot ask for its token
// in the query string.
func TestNoIDTokenInTheQuery(t *testing.T) {
	entra := oidctest.NewEntra(t, entraTenant)
	e := newEnv(t, entraClient(entra))
	e.newUser("alice@contoso.example")
	form := entra.AuthorizeForm(entraClientID, entra.Hint(t, entraClientID, entraAlice, nil), "", "n", "s")
	form.Set("response_mode", "query")
	p := e.entraPost(steptest.NewBrowser(t), form)
	u, err := url.Parse(p.Location)
	if err != nil || strings.Contains(p.Location, "/step/") || u.Query().Get("error") != "invalid_request" {
		t.Fatalf("response_mode=query for an id_token: %d %q", p.Status, p.Location)
	}
}
