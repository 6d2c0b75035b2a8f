package oidcop_test

import (
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/oidcop"
)

// fuzzEnv is keystep with the default client, a client that names users
// by the upstream IdP's id_token_hint, and the account alice (no device:
// /authorize only needs the account).
func fuzzEnv(f *testing.F) *env {
	f.Helper()
	jwks := writeJWKS(f, upstreamKey(f), upstreamKeyID, jose.ES256)
	e := newEnvWith(f, envOptions{quiet: true, clients: func(string) []oidcop.ClientConfig {
		return []oidcop.ClientConfig{defaultClient(),
			{ID: upClientID, Secret: otherSecret, RedirectURIs: []string{upRedirect}, NameBy: oidcop.NameByIDTokenHint,
				HintIssuer: upIssuer, HintJWKSFile: jwks}}
	}})
	if _, err := e.svc.AddAccount(e.ctx, "admin:test", flows.NewAccount{Username: "alice", Email: "alice@example.com"}); err != nil {
		f.Fatal(err)
	}
	return e
}

// serve sends a request straight to the server's handler (the query is
// set raw: httptest.NewRequest would refuse some).
func (e *env) serve(method, rawQuery, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/authorize", strings.NewReader(body))
	req.URL.RawQuery = rawQuery
	req.RequestURI = "/authorize?" + rawQuery
	req.Host = strings.TrimPrefix(e.ts.URL, "http://")
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	rec := httptest.NewRecorder()
	e.ts.Config.Handler.ServeHTTP(rec, req)
	return rec
}

var formActionRE = regexp.MustCompile(`<form\b[^>]*\baction="([^"]*)"`)

// answerTarget is where an /authorize answer sends the browser: the
// Location of a redirect, or the action of an auto-posting form; "" for
// neither. It fails the test on a 5xx, a cookie, or a target other than a
// registered redirect URI or keystep's step page.
func (e *env) answerTarget(t *testing.T, rec *httptest.ResponseRecorder) *url.URL {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("answered %d: %s", rec.Code, rec.Body.String())
	}
	if c := rec.Header().Values("Set-Cookie"); len(c) > 0 {
		t.Fatalf("/authorize set a cookie: %q", c)
	}
	loc := rec.Header().Get("Location")
	actions := formActionRE.FindAllStringSubmatch(rec.Body.String(), -1)
	switch {
	case loc != "" && len(actions) > 0, len(actions) > 1:
		t.Fatalf("more than one target: %q and %q", loc, actions)
	case len(actions) == 1:
		// An auto-posting form goes to a registered redirect URI exactly.
		action := html.UnescapeString(actions[0][1])
		if action != redirectURI && action != upRedirect {
			t.Fatalf("answer posts to %q", action)
		}
		u, _ := url.Parse(action)
		return u
	case loc == "":
		return nil
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	endpoint := u.Scheme + "://" + u.Host + u.Path
	switch {
	case u.User == nil && (endpoint == redirectURI || endpoint == upRedirect):
		// Only the answer's own fields ride on a registered redirect URI
		// (which has no query of its own).
		for _, raw := range []string{u.RawQuery, u.Fragment} {
			v, err := url.ParseQuery(raw)
			if err != nil {
				t.Fatalf("Location %q: %v", loc, err)
			}
			for k := range v {
				if !slices.Contains([]string{"code", "state", "error", "error_description", "error_uri", "iss"}, k) {
					t.Fatalf("Location %q carries %q", loc, k)
				}
			}
		}
	case u.User == nil && u.RawQuery == "" && u.Fragment == "" && strings.HasPrefix(loc, e.ts.URL+"/step/") &&
		!strings.Contains(strings.TrimPrefix(u.Path, "/step/"), "/"):
	default:
		t.Fatalf("answer sends the browser to %q (status %d)", loc, rec.Code)
	}
	return u
}

// answerFields are the fields of an answer to the client (query,
// fragment or form).
func answerFields(rec *httptest.ResponseRecorder, u *url.URL) url.Values {
	if rec.Header().Get("Location") != "" {
		if u.Fragment != "" {
			v, _ := url.ParseQuery(u.Fragment)
			return v
		}
		return u.Query()
	}
	v := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]*)" value="([^"]*)"`).FindAllStringSubmatch(rec.Body.String(), -1) {
		v.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

func (e *env) isStepPage(u *url.URL) bool {
	return u != nil && u.Scheme+"://"+u.Host == e.ts.URL && strings.HasPrefix(u.Path, "/step/")
}

// FuzzAuthorize: whatever the query (or form) of /authorize, no server
// error, no cookie, and no redirect or form anywhere but a registered
// redirect URI or the step page.
func FuzzAuthorize(f *testing.F) {
	e := fuzzEnv(f)
	valid := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
		"scope": {"openid"}, "login_hint": {"alice"}, "state": {"s"}, "nonce": {"n"}}
	f.Add(valid.Encode(), false)
	f.Add(valid.Encode(), true)
	f.Add(valid.Encode()+"&response_mode=form_post&prompt=none", true)
	f.Add("client_id=host-idp&redirect_uri=https%3A%2F%2Fattacker.example%2F&response_type=code", false)
	f.Fuzz(func(t *testing.T, raw string, post bool) {
		var rec *httptest.ResponseRecorder
		if post {
			rec = e.serve(http.MethodPost, "", raw)
		} else {
			rec = e.serve(http.MethodGet, raw, "")
		}
		u := e.answerTarget(t, rec)
		if e.isStepPage(u) {
			// Only a request that names the client, its redirect URI and
			// the code flow, each once, reaches the step page.
			form, err := url.ParseQuery(raw)
			if err != nil {
				t.Fatalf("an unparsable request reached the step page: %q", raw)
			}
			for k, want := range map[string]string{"client_id": clientID, "redirect_uri": redirectURI, "response_type": "code"} {
				if len(form[k]) != 1 || form[k][0] != want {
					t.Fatalf("request %q reached the step page with %s %q", raw, k, form[k])
				}
			}
		}
	})
}

// FuzzClaimsParam: the claims parameter of an otherwise valid request
// gives the step page or an error answer to the client, never a server
// error; text that is not JSON is invalid_request.
func FuzzClaimsParam(f *testing.F) {
	e := fuzzEnv(f)
	for _, c := range []string{essentialACR, unknownACR, essentialAMR, entraClaims, `{"id_token":{"acr":{"value":"x"}}}`, `null`, `[]`, `{`} {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, claims string) {
		q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"},
			"scope": {"openid"}, "login_hint": {"alice"}, "state": {"st"}, "claims": {claims}}
		rec := e.serve(http.MethodGet, q.Encode(), "")
		u := e.answerTarget(t, rec)
		if u == nil {
			t.Fatalf("no answer to the client: %d %s", rec.Code, rec.Body.String())
		}
		if e.isStepPage(u) {
			if claims != "" && !json.Valid([]byte(claims)) {
				t.Fatalf("claims %q are not JSON but reached the step page", claims)
			}
			return
		}
		v := answerFields(rec, u)
		if v.Get("state") != "st" || v.Get("code") != "" || !slices.Contains([]string{"invalid_request", "access_denied"}, v.Get("error")) {
			t.Fatalf("claims %q: answer %v", claims, v)
		}
		if !json.Valid([]byte(claims)) && v.Get("error") != "invalid_request" {
			t.Fatalf("claims %q are not JSON: %s, want invalid_request", claims, v.Get("error"))
		}
	})
}

// FuzzHint: an id_token_hint reaches the step page only if the upstream
// IdP signed it for this client and it names a known account.
func FuzzHint(f *testing.F) {
	e := fuzzEnv(f)
	pub := upstreamKey(f).Public()
	f.Add(upstreamHint(f, "alice"))
	f.Add(upstreamHint(f, "nobody"))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL3Vwc3RyZWFtLmV4YW1wbGUuY29tIiwic3ViIjoiYWxpY2UiLCJhdWQiOiJ1cHN0cmVhbS1jbGllbnQifQ.")
	f.Fuzz(func(t *testing.T, hint string) {
		q := url.Values{"client_id": {upClientID}, "redirect_uri": {upRedirect}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"st"}, "id_token_hint": {hint}}
		rec := e.serve(http.MethodGet, q.Encode(), "")
		u := e.answerTarget(t, rec)
		if u == nil {
			t.Fatalf("no answer to the client: %d %s", rec.Code, rec.Body.String())
		}
		if !e.isStepPage(u) {
			if v := answerFields(rec, u); v.Get("error") == "" || v.Get("code") != "" {
				t.Fatalf("hint %q: answer %v", hint, v)
			}
			return
		}
		jws, err := jose.ParseSignedCompact(hint, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatalf("hint %q reached the step page but does not parse: %v", hint, err)
		}
		payload, err := jws.Verify(pub)
		if err != nil {
			t.Fatalf("hint %q reached the step page without the upstream signature: %v", hint, err)
		}
		var c struct {
			Iss string   `json:"iss"`
			Sub string   `json:"sub"`
			Aud audience `json:"aud"`
		}
		if err := json.Unmarshal(payload, &c); err != nil || c.Iss != upIssuer || !slices.Contains(c.Aud, upClientID) {
			t.Fatalf("hint %q reached the step page with iss %q aud %v (%v)", hint, c.Iss, c.Aud, err)
		}
		if _, err := e.svc.Store().GetAccountByUsername(e.ctx, c.Sub); err != nil {
			t.Fatalf("hint for %q reached the step page: %v", c.Sub, err)
		}
	})
}

// audience is an aud claim: a string or a list.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*a = audience{s}
		return nil
	}
	var l []string
	err := json.Unmarshal(b, &l)
	*a = l
	return err
}
