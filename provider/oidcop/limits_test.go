package oidcop_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/provider/steppage/steptest"
)

// TestAuthorizeRateLimit: one address gets a bounded number of new auth
// requests a minute; the next minute it gets more.
func TestAuthorizeRateLimit(t *testing.T) {
	e := newEnvWith(t, envOptions{authorizePerMinute: 3})
	e.newUser("alice")
	b := steptest.NewBrowser(t)
	for i := range 3 {
		if p := b.Get(e.authorizeURL(url.Values{"login_hint": {"alice"}})); p.Status != http.StatusFound {
			t.Fatalf("request %d: %d", i+1, p.Status)
		}
	}
	p := b.Get(e.authorizeURL(url.Values{"login_hint": {"alice"}}))
	if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" {
		t.Fatalf("the 4th request in a minute: %d, Retry-After %q", p.Status, p.Header.Get("Retry-After"))
	}
	e.clock.Advance(time.Minute)
	if p := b.Get(e.authorizeURL(url.Values{"login_hint": {"alice"}})); p.Status != http.StatusFound {
		t.Fatalf("a minute later: %d", p.Status)
	}
}

// TestClientAuthFailureLimit: an address that keeps failing client
// authentication is refused for a while, even with the right secret;
// successes never count.
func TestClientAuthFailureLimit(t *testing.T) {
	e := newEnv(t)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {redirectURI}}
	post := func(secret string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/oauth/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for range 30 { // the right secret, a bad code: not a client auth failure
		if r := post(clientSecret); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("right secret: %d", r.StatusCode)
		}
	}
	for i := range 20 {
		r := post("wrong-secret")
		if r.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
			t.Fatalf("failure %d: %d, WWW-Authenticate %q", i+1, r.StatusCode, r.Header.Get("WWW-Authenticate"))
		}
	}
	if r := post(clientSecret); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("after 20 failures: %d, want 429", r.StatusCode)
	}
	e.clock.Advance(31 * time.Second)
	if r := post(clientSecret); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("after waiting: %d", r.StatusCode)
	}
}
