package oidcop_test

// The checks of the OpenID Foundation's Basic OP test plan that apply to a
// code-flow OP (docs/design/oidc-provider.md §6), run against the
// in-process env: each test names the conformance module it stands for.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is a SHA-1 thumbprint by definition
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/oidcop"
	"github.com/keystep/keystep/provider/steppage"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// envOptions vary newEnvWith.
// Other clients of the tests.
const (
	postClientID  = "post-client"
	postRedirect  = "https://post.example.com/cb"
	jwtClientID   = "jwt-client"
	jwtRedirect   = "https://jwt.example.com/cb"
	rsaClientID   = "rsa-client"
	rsaRedirect   = "https://rsa.example.com/cb"
	hintClientID  = "hint-client"
	hintRedirect  = "https://hint.example.com/cb"
	upClientID    = "upstream-client"
	upRedirect    = "https://upstream-sp.example.com/cb"
	upIssuer      = "https://upstream.example.com"
	otherSecret   = "another-client-secret-0123456789"
	logoutURI     = "https://idp.example.com/logged-out"
	acrUnknown    = "urn:example:acr:unknown"
	essentialAMR  = `{"id_token":{"amr":{"essential":true,"values":["otp"]}}}`
	essentialACR  = `{"id_token":{"acr":{"essential":true,"values":["` + oidcop.ACRDevice + `"]}}}`
	unknownACR    = `{"id_token":{"acr":{"essential":true,"values":["` + acrUnknown + `"]}}}`
	entraClaims   = `{"id_token":{"acr":{"essential":true,"values":["possessionorinherence"]},"amr":{"essential":true,"values":["face","fido","fpt","hwk","iris","otp","pop","retina","sc","sms","swk","tel","vbm"]}}}`
	upstreamKeyID = "upstream-key-1"
)

// upstreamKeyPEM is a fixed P-256 test key of a made-up upstream IdP that
// signs id_token_hints (fixed, so that the fuzz seed corpus can hold a
// valid hint).
const upstreamKeyPEM = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbVRVzYsf5YNnwq+g
y2qRi7+S8yiLQdOssqEffUyGYMmhRANCAAQmgSxKCMNDXj7j6QEVGSHp2sZOwnTh
lBfQydnCFk94hUIjQLFAzf19gkzsyT/Qw2YCGJ1VOm6jEXqPs4hb5JRD
-----END PRIVATE KEY-----`

func upstreamKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	blk, _ := pem.Decode([]byte(upstreamKeyPEM))
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*ecdsa.PrivateKey)
}

// writeJWKS writes the public half of key as a key set file.
func writeJWKS(tb testing.TB, key crypto.Signer, kid string, alg jose.SignatureAlgorithm) string {
	tb.Helper()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"}}}
	b, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	file := filepath.Join(tb.TempDir(), kid+".jwks.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return file
}

// signJWT signs claims as a compact JWS.
func signJWT(tb testing.TB, key crypto.Signer, kid string, alg jose.SignatureAlgorithm, claims any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	obj, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := obj.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// upstreamHint is an id_token_hint of the upstream IdP for upClientID.
func upstreamHint(tb testing.TB, sub string) string {
	now := time.Now()
	return signJWT(tb, upstreamKey(tb), upstreamKeyID, jose.ES256, map[string]any{
		"iss": upIssuer, "sub": sub, "aud": []string{upClientID}, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
}

// tokenResponse is the token endpoint's answer.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	ExpiresIn    int64  `json:"expires_in"`
}

// idClaims are the claims of a verified ID token.
type idClaims struct {
	Kid, Alg          string
	Issuer            string        `json:"iss"`
	Subject           string        `json:"sub"`
	Audience          oidc.Audience `json:"aud"`
	ACR               string        `json:"acr"`
	AMR               []string      `json:"amr"`
	AuthTime          int64         `json:"auth_time"`
	Nonce             string        `json:"nonce"`
	PreferredUsername string        `json:"preferred_username"`
}

// keySet fetches /keys.
func (e *env) keySet() jose.JSONWebKeySet {
	e.t.Helper()
	status, body := e.do(http.MethodGet, "/keys", nil, nil)
	if status != http.StatusOK {
		e.t.Fatalf("/keys: %d %s", status, body)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil {
		e.t.Fatalf("/keys: %v\n%s", err, body)
	}
	return set
}

// verifyIDToken checks an ID token's signature against /keys and its
// issuer, and returns its claims.
func (e *env) verifyIDToken(raw string) idClaims {
	e.t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		e.t.Fatalf("ID token %q: %v", raw, err)
	}
	h := jws.Signatures[0].Header
	set := e.keySet()
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		e.t.Fatalf("ID token's kid %q is not in /keys once (%d)", h.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		e.t.Fatalf("ID token signature: %v", err)
	}
	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		e.t.Fatal(err)
	}
	c.Kid, c.Alg = h.KeyID, h.Algorithm
	if c.Issuer != e.ts.URL {
		e.t.Errorf("ID token iss %q, want %q", c.Issuer, e.ts.URL)
	}
	return c
}

func basicAuth(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(id, secret) }
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// callbackFor reads the query of a redirect to the given redirect URI.
func callbackFor(t *testing.T, p *steptest.Page, redirect string) url.Values {
	t.Helper()
	if p.Status != http.StatusSeeOther && p.Status != http.StatusFound {
		t.Fatalf("expected a redirect to %s, got %d:\n%s", redirect, p.Status, p.Body)
	}
	u, err := url.Parse(p.Location)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != redirect || u.User != nil {
		t.Fatalf("redirect to %q, not to %s", p.Location, redirect)
	}
	if u.Fragment != "" {
		t.Errorf("the answer to a code request is in the fragment: %q", p.Location)
	}
	return u.Query()
}

// wantError checks an error answer to the client.
func wantError(t *testing.T, q url.Values, errType, state string) {
	t.Helper()
	if q.Get("error") != errType || q.Get("state") != state || q.Get("code") != "" {
		t.Errorf("answer %v, want error=%s state=%q and no code", q, errType, state)
	}
}

// wantJSONError checks a JSON error answer of the token or a resource endpoint.
func wantJSONError(t *testing.T, status int, body string, wantStatus int, errType string) {
	t.Helper()
	var e struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	if status != wantStatus || e.Error != errType {
		t.Errorf("answer %d %s, want %d %s", status, body, wantStatus, errType)
	}
}

// code runs the step for u (the default client unless params say) and
// returns the answer's query.
func (e *env) code(b *steptest.Browser, u user, params url.Values) url.Values {
	e.t.Helper()
	redirect := redirectURI
	if r := params.Get("redirect_uri"); r != "" {
		redirect = r
	}
	return callbackFor(e.t, e.finish(b, u, e.startStep(b, params)), redirect)
}

// exchange redeems a code of the default client.
func (e *env) exchange(code, verifier string) (int, string) {
	e.t.Helper()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	return e.tokenRequest(form)
}

func (e *env) decodeTokens(status int, body string) tokenResponse {
	e.t.Helper()
	var tok tokenResponse
	if status != http.StatusOK {
		e.t.Fatalf("token endpoint: %d %s", status, body)
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.AccessToken == "" || tok.IDToken == "" {
		e.t.Fatalf("token response %s: %v", body, err)
	}
	return tok
}

// signIn runs the code flow with PKCE for the default client and returns
// the tokens and the verified ID token.
func (e *env) signIn(b *steptest.Browser, u user, params url.Values) (tokenResponse, idClaims) {
	e.t.Helper()
	verifier, challenge := pkce()
	p := url.Values{"login_hint": {u.name}, "state": {"st-" + u.name}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, vs := range params {
		p[k] = vs
	}
	q := e.code(b, u, p)
	if q.Get("state") != p.Get("state") || q.Get("iss") != e.ts.URL {
		e.t.Errorf("answer %v: state or iss wrong", q)
	}
	tok := e.decodeTokens(e.exchange(q.Get("code"), verifier))
	return tok, e.verifyIDToken(tok.IDToken)
}

// TestAuthorizeResponseTypeMissing: oidcc-response-type-missing. The
// redirect URI is valid, so the error goes back to it (RFC 6749 §4.1.2.1).
func TestAuthorizeResponseTypeMissing(t *testing.T) {
	e := newEnv(t)
	e.newUser("alice")
	b := steptest.NewBrowser(t)
	p := b.Get(e.authorizeURL(url.Values{"response_type": {""}, "login_hint": {"alice"}, "state": {"st-rt"}}))
	wantError(t, e.callbackParams(p), "invalid_request", "st-rt")
}

// TestAuthorizeUnregisteredRedirectURI: oidcc-ensure-registered-redirect-uri.
// An unregistered redirect URI gets an error page, never a redirect.
func TestAuthorizeUnregisteredRedirectURI(t *testing.T) {
	e := newEnv(t)
	e.newUser("alice")
	b := steptest.NewBrowser(t)
	for _, ru := range []string{
		"https://attacker.example.com/callback",
		redirectURI + "/extra",
		redirectURI + "?x=1",
		"http://idp.example.com/callback",
		"https://IDP.example.com/callback",
		"https://idp.example.com:443/callback",
		"https://idp.example.com/callback/../callback",
		"//attacker.example.com/callback",
		"javascript:alert(1)",
	} {
		p := b.Get(e.authorizeURL(url.Values{"redirect_uri": {ru}, "login_hint": {"alice"}, "state": {"st"}}))
		if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" || p.Location != "" {
			t.Errorf("redirect_uri %q: %d Location %q, want 400 without a redirect", ru, p.Status, p.Header.Get("Location"))
		}
	}
	// Missing: no redirect either.
	p := b.Get(e.authorizeURL(url.Values{"redirect_uri": {""}, "login_hint": {"alice"}}))
	if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" {
		t.Errorf("no redirect_uri: %d Location %q, want 400 without a redirect", p.Status, p.Header.Get("Location"))
	}
	// Unknown client: an error page, not a server error.
	p = b.Get(e.authorizeURL(url.Values{"client_id": {"no-such-client"}, "login_hint": {"alice"}}))
	if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" {
		t.Errorf("unknown client: %d Location %q, want 400 without a redirect", p.Status, p.Header.Get("Location"))
	}
}

// TestAuthorizeRepeatedParameters: a parameter given twice is refused
// (RFC 6749 §3.1), without a redirect; a known parameter's name in another
// case is an unknown parameter, ignored.
func TestAuthorizeRepeatedParameters(t *testing.T) {
	e := newEnv(t)
	e.newUser("alice")
	b := steptest.NewBrowser(t)
	base := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"},
		"login_hint": {"alice"}, "state": {"st-rep"}}
	for _, extra := range []string{
		"redirect_uri=" + url.QueryEscape("https://attacker.example.com/cb"),
		"redirect_uri=" + url.QueryEscape(redirectURI+"?x=1"),
		"client_id=" + clientID,
		"login_hint=bob",
		"state=other",
	} {
		for _, raw := range []string{base.Encode() + "&" + extra, extra + "&" + base.Encode()} {
			p := b.Get(e.ts.URL + "/authorize?" + raw)
			if p.Status != http.StatusBadRequest || p.Location != "" {
				t.Errorf("%s: %d → %q, want 400 without a redirect", raw, p.Status, p.Location)
			}
		}
	}
	// In the body and the query at once.
	p := b.Post(e.ts.URL+"/authorize?client_id="+clientID, base)
	if p.Status != http.StatusBadRequest || p.Location != "" {
		t.Errorf("client_id in the query and the body: %d → %q", p.Status, p.Location)
	}
	// Login_Hint is not login_hint, nor Redirect_URI redirect_uri.
	q := url.Values{"Login_Hint": {"alice"}, "state": {"st-case"}}
	wantError(t, e.callbackParams(b.Get(e.authorizeURL(q))), "invalid_request", "st-case")
	p = b.Get(e.authorizeURL(url.Values{"Redirect_URI": {"https://attacker.example.com/cb"}, "login_hint": {"alice"}}))
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, e.ts.URL+"/step/") {
		t.Errorf("Redirect_URI was not ignored: %d → %q", p.Status, p.Location)
	}
}

// TestAuthorizePromptNone: oidcc-prompt-none-not-logged-in. keystep keeps
// no session, so prompt=none always answers login_required.
func TestAuthorizePromptNone(t *testing.T) {
	e := newEnv(t)
	e.newUser("alice")
	b := steptest.NewBrowser(t)
	p := b.Get(e.authorizeURL(url.Values{"prompt": {"none"}, "login_hint": {"alice"}, "state": {"st-none"}}))
	wantError(t, e.callbackParams(p), "login_required", "st-none")
}

// TestAuthorizePromptLoginAndMaxAge: oidcc-prompt-login and oidcc-max-age-1.
// A second sign-in in the same browser runs the step again and carries a
// later auth_time.
func TestAuthorizePromptLoginAndMaxAge(t *testing.T) {
	for name, params := range map[string]url.Values{
		"prompt=login": {"prompt": {"login"}},
		"max_age=1":    {"max_age": {"1"}},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			alice := e.newUser("alice")
			b := steptest.NewBrowser(t)
			_, first := e.signIn(b, alice, nil)
			e.clock.Advance(2 * time.Second)
			// signIn fails unless the step page shows a number and the
			// phone has a pending request: the step ran again.
			_, second := e.signIn(b, alice, params)
			if first.AuthTime == 0 || second.AuthTime <= first.AuthTime {
				t.Errorf("auth_time %d then %d: the second is not later", first.AuthTime, second.AuthTime)
			}
			if age := e.clock.Now().Unix() - second.AuthTime; age > 1 {
				t.Errorf("auth_time is %d s old, more than max_age", age)
			}
			if second.Subject != alice.account.ID {
				t.Errorf("sub %q", second.Subject)
			}
		})
	}
}

// TestAuthorizeLoginHint: oidcc-login-hint. The named account takes the
// step; an unknown one is refused; a missing one is a bad request.
func TestAuthorizeLoginHint(t *testing.T) {
	e := newEnv(t)
	alice, bob := e.newUser("alice"), e.newUser("bob")
	b := steptest.NewBrowser(t)
	step := e.startStep(b, url.Values{"login_hint": {"bob"}, "state": {"st-bob"}})
	if reqs, err := alice.phone.Pending(e.ctx); err != nil || len(reqs) != 0 {
		t.Fatalf("alice's phone has %d pending requests (%v) for a request naming bob", len(reqs), err)
	}
	q := e.callbackParams(e.finish(b, bob, step)) // bob's phone has it
	tok := e.decodeTokens(e.exchange(q.Get("code"), ""))
	if c := e.verifyIDToken(tok.IDToken); c.Subject != bob.account.ID {
		t.Errorf("sub %q, want bob's %q", c.Subject, bob.account.ID)
	}

	p := b.Get(e.authorizeURL(url.Values{"login_hint": {"nobody"}, "state": {"st-x"}}))
	wantError(t, e.callbackParams(p), "access_denied", "st-x")
	p = b.Get(e.authorizeURL(url.Values{"state": {"st-y"}}))
	wantError(t, e.callbackParams(p), "invalid_request", "st-y")
}

// TestAuthorizeRequestObjectRefused: request objects (signed or not) and
// request_uri are not supported, and say so.
func TestAuthorizeRequestObjectRefused(t *testing.T) {
	e := newEnv(t)
	e.newUser("alice")
	b := steptest.NewBrowser(t)
	b64 := base64.RawURLEncoding.EncodeToString
	claims := map[string]any{"iss": clientID, "aud": e.ts.URL, "client_id": clientID, "response_type": "code",
		"redirect_uri": redirectURI, "scope": "openid", "login_hint": "alice", "state": "st-obj"}
	body, _ := json.Marshal(claims)
	unsigned := b64([]byte(`{"alg":"none"}`)) + "." + b64(body) + "."
	signed := signJWT(t, upstreamKey(t), "k", jose.ES256, claims)
	for name, obj := range map[string]string{"unsigned": unsigned, "signed": signed} {
		p := b.Get(e.authorizeURL(url.Values{"request": {obj}, "login_hint": {"alice"}, "state": {"st-obj"}}))
		if p.Status == http.StatusFound && strings.Contains(p.Location, "/step/") {
			t.Errorf("%s request object: sent to the step page", name)
			continue
		}
		wantError(t, e.callbackParams(p), "request_not_supported", "st-obj")
	}
	p := b.Get(e.authorizeURL(url.Values{"request_uri": {"https://idp.example.com/request.jwt"}, "login_hint": {"alice"}, "state": {"st-uri"}}))
	wantError(t, e.callbackParams(p), "request_uri_not_supported", "st-uri")
}

// TestPKCE: oidcc-ensure-request-with-valid-pkce-succeeds and the
// failures around it.
func TestPKCE(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	params := func(challenge string) url.Values {
		return url.Values{"login_hint": {"alice"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	}

	verifier, challenge := pkce()
	q := e.code(b, alice, params(challenge))
	e.decodeTokens(e.exchange(q.Get("code"), verifier))

	_, challenge = pkce()
	q = e.code(b, alice, params(challenge))
	status, body := e.exchange(q.Get("code"), "")
	wantJSONError(t, status, body, http.StatusBadRequest, "invalid_grant")

	verifier, challenge = pkce()
	q = e.code(b, alice, params(challenge))
	other, _ := pkce()
	status, body = e.exchange(q.Get("code"), other)
	wantJSONError(t, status, body, http.StatusBadRequest, "invalid_grant")
	// The code was spent by the failed attempt.
	status, body = e.exchange(q.Get("code"), verifier)
	wantJSONError(t, status, body, http.StatusBadRequest, "invalid_grant")

	// A verifier for a request that sent no challenge.
	q = e.code(b, alice, url.Values{"login_hint": {"alice"}})
	status, body = e.exchange(q.Get("code"), verifier)
	wantJSONError(t, status, body, http.StatusBadRequest, "invalid_grant")

	// plain (named or by default) is refused at /authorize.
	for _, method := range []string{"plain", ""} {
		p := b.Get(e.authorizeURL(url.Values{"login_hint": {"alice"}, "code_challenge": {verifier},
			"code_challenge_method": {method}, "state": {"st-plain"}}))
		wantError(t, e.callbackParams(p), "invalid_request", "st-plain")
	}
}

// TestClientAuthentication: client_secret_basic, client_secret_post and
// private_key_jwt at the token endpoint, and a replayed assertion.
func TestClientAuthentication(t *testing.T) {
	jwtKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks := writeJWKS(t, jwtKey, "client-key-1", jose.RS256)
	e := newEnvWith(t, envOptions{clients: func(string) []oidcop.ClientConfig {
		return []oidcop.ClientConfig{
			defaultClient(),
			{ID: postClientID, Secret: otherSecret, AuthMethod: oidcop.AuthSecretPost, RedirectURIs: []string{postRedirect}},
			{ID: jwtClientID, AuthMethod: oidcop.AuthPrivateKeyJWT, JWKSFile: jwks, RedirectURIs: []string{jwtRedirect}},
		}
	}})
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	codeFor := func(id, redirect string) string {
		return e.code(b, alice, url.Values{"client_id": {id}, "redirect_uri": {redirect}, "login_hint": {"alice"}}).Get("code")
	}
	exchange := func(code, redirect string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	}

	t.Run("basic", func(t *testing.T) {
		form := exchange(codeFor(clientID, redirectURI), redirectURI)
		status, body := e.do(http.MethodPost, "/oauth/token", form, basicAuth(clientID, "wrong-secret-0123456789"))
		wantJSONError(t, status, body, http.StatusUnauthorized, "invalid_client")
		status, body = e.do(http.MethodPost, "/oauth/token", form, basicAuth("no-such-client", clientSecret))
		wantJSONError(t, status, body, http.StatusUnauthorized, "invalid_client")
		// Failed client authentication does not spend the code.
		e.decodeTokens(e.do(http.MethodPost, "/oauth/token", form, basicAuth(clientID, clientSecret)))
	})

	t.Run("post", func(t *testing.T) {
		form := exchange(codeFor(postClientID, postRedirect), postRedirect)
		form.Set("client_id", postClientID)
		form.Set("client_secret", "wrong-secret-0123456789")
		status, body := e.do(http.MethodPost, "/oauth/token", form, nil)
		wantJSONError(t, status, body, http.StatusUnauthorized, "invalid_client")
		form.Set("client_secret", otherSecret)
		tok := e.decodeTokens(e.do(http.MethodPost, "/oauth/token", form, nil))
		if c := e.verifyIDToken(tok.IDToken); c.Subject != alice.account.ID || !slices.Equal(c.Audience, []string{postClientID}) {
			t.Errorf("sub %q aud %v", c.Subject, c.Audience)
		}
	})

	t.Run("private_key_jwt", func(t *testing.T) {
		// The library checks iat and exp against the real time.
		now := time.Now()
		assertion := func(jti string) string {
			return signJWT(t, jwtKey, "client-key-1", jose.RS256, map[string]any{
				"iss": jwtClientID, "sub": jwtClientID, "aud": []string{e.ts.URL}, "jti": jti,
				"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
			})
		}
		withAssertion := func(code, a string) url.Values {
			form := exchange(code, jwtRedirect)
			form.Set("client_assertion_type", oidc.ClientAssertionTypeJWTAssertion)
			form.Set("client_assertion", a)
			return form
		}
		a1 := assertion("jti-1")
		tok := e.decodeTokens(e.do(http.MethodPost, "/oauth/token", withAssertion(codeFor(jwtClientID, jwtRedirect), a1), nil))
		if c := e.verifyIDToken(tok.IDToken); !slices.Equal(c.Audience, []string{jwtClientID}) {
			t.Errorf("aud %v", c.Audience)
		}
		// The same assertion again (a fresh code): replay.
		code := codeFor(jwtClientID, jwtRedirect)
		status, body := e.do(http.MethodPost, "/oauth/token", withAssertion(code, a1), nil)
		wantJSONError(t, status, body, http.StatusUnauthorized, "invalid_client")
		// An assertion signed by another key.
		otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		forged := signJWT(t, otherKey, "client-key-1", jose.RS256, map[string]any{
			"iss": jwtClientID, "sub": jwtClientID, "aud": []string{e.ts.URL}, "jti": "jti-forged",
			"iat": now.Unix(), "exp": now.Add(time.Minute).Unix(),
		})
		status, body = e.do(http.MethodPost, "/oauth/token", withAssertion(code, forged), nil)
		wantJSONError(t, status, body, http.StatusUnauthorized, "invalid_client")
		// A secret is not how this client authenticates.
		status, body = e.do(http.MethodPost, "/oauth/token", exchange(code, jwtRedirect), basicAuth(jwtClientID, otherSecret))
		wantJSONError(t, status, body, http.StatusUnauthorized, "invalid_client")
		// A fresh assertion redeems the code the refusals left alone.
		tok = e.decodeTokens(e.do(http.MethodPost, "/oauth/token", withAssertion(code, assertion("jti-2")), nil))

		// Introspection authenticates the client itself: an assertion works
		// there once too.
		introspect := func(a string) (int, string) {
			return e.do(http.MethodPost, "/oauth/introspect", url.Values{"token": {tok.AccessToken},
				"client_assertion_type": {oidc.ClientAssertionTypeJWTAssertion}, "client_assertion": {a}}, nil)
		}
		a3 := assertion("jti-3")
		status, body = introspect(a3)
		if status != http.StatusOK || !strings.Contains(body, `"active":true`) {
			t.Fatalf("introspection with an assertion: %d %s", status, body)
		}
		status, body = introspect(a3)
		wantJSONError(t, status, body, http.StatusUnauthorized, "invalid_client")
	})
}

// TestUserinfo: oidcc-userinfo-get, -post-header, -post-body. sub is the
// ID token's; a suspended account's token is refused.
func TestUserinfo(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	tok, id := e.signIn(b, alice, url.Values{"scope": {"openid profile email"}})
	check := func(how string, status int, body string) {
		t.Helper()
		var info struct {
			Sub               string `json:"sub"`
			PreferredUsername string `json:"preferred_username"`
			Email             string `json:"email"`
		}
		if err := json.Unmarshal([]byte(body), &info); status != http.StatusOK || err != nil {
			t.Fatalf("userinfo %s: %d %s", how, status, body)
		}
		if info.Sub != id.Subject || info.PreferredUsername != "alice" || info.Email != "alice@example.com" {
			t.Errorf("userinfo %s: %+v, want sub %q", how, info, id.Subject)
		}
	}
	ways := map[string]func() (int, string){
		"GET with a bearer header": func() (int, string) {
			return e.do(http.MethodGet, "/userinfo", nil, bearer(tok.AccessToken))
		},
		"POST with a bearer header": func() (int, string) {
			return e.do(http.MethodPost, "/userinfo", url.Values{}, bearer(tok.AccessToken))
		},
		"POST with access_token in the form": func() (int, string) {
			return e.do(http.MethodPost, "/userinfo", url.Values{"access_token": {tok.AccessToken}}, nil)
		},
	}
	for how, do := range ways {
		status, body := do()
		check(how, status, body)
	}
	if status, _ := e.do(http.MethodGet, "/userinfo", nil, bearer(tok.AccessToken+"x")); status != http.StatusUnauthorized && status != http.StatusForbidden {
		t.Errorf("userinfo with a wrong token: %d", status)
	}
	if _, err := e.svc.SuspendAccount(e.ctx, "admin:test", "alice", flows.SourceAdmin, "test"); err != nil {
		t.Fatal(err)
	}
	for how, do := range ways {
		if status, body := do(); status != http.StatusUnauthorized && status != http.StatusForbidden || strings.Contains(body, "server_error") {
			t.Errorf("userinfo %s after suspension: %d %s", how, status, body)
		}
	}
}

// TestRefreshToken: oidcc-refresh-token. Rotation; the old token is
// refused and its reuse revokes the grant; acr, amr and sub are kept.
func TestRefreshToken(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	tok, _ := e.signIn(b, alice, nil)
	if tok.RefreshToken != "" {
		t.Errorf("a refresh token without offline_access")
	}
	tok, id := e.signIn(b, alice, url.Values{"scope": {"openid offline_access"}})
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token for openid offline_access")
	}
	refresh := func(rt string) (int, string) {
		return e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}})
	}
	e.clock.Advance(time.Minute)
	tok2 := e.decodeTokens(refresh(tok.RefreshToken))
	if tok2.RefreshToken == "" || tok2.RefreshToken == tok.RefreshToken || tok2.AccessToken == tok.AccessToken {
		t.Fatalf("refresh did not rotate: %+v", tok2)
	}
	id2 := e.verifyIDToken(tok2.IDToken)
	if id2.Subject != id.Subject || id2.ACR != id.ACR || !slices.Equal(id2.AMR, id.AMR) || id2.AuthTime != id.AuthTime {
		t.Errorf("refreshed ID token sub %q acr %q amr %v auth_time %d, want %q %q %v %d",
			id2.Subject, id2.ACR, id2.AMR, id2.AuthTime, id.Subject, id.ACR, id.AMR, id.AuthTime)
	}
	if id.ACR != oidcop.ACRDevice || !slices.Equal(id.AMR, []string{"pop"}) {
		t.Errorf("acr %q amr %v", id.ACR, id.AMR)
	}
	if e.userinfo(tok2.AccessToken) != http.StatusOK {
		t.Error("the refreshed access token does not work")
	}
	status, body := refresh(tok.RefreshToken)
	wantJSONError(t, status, body, http.StatusBadRequest, "invalid_grant")
	status, body = refresh(tok2.RefreshToken)
	wantJSONError(t, status, body, http.StatusBadRequest, "invalid_grant")
	if got := e.userinfo(tok2.AccessToken); got == http.StatusOK {
		t.Error("the grant's access token still works after its refresh token was replayed")
	}
}

// TestClaimsParameter: oidcc-claims-essential, and acr_values.
func TestClaimsParameter(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")

	t.Run("essential acr met", func(t *testing.T) {
		_, id := e.signIn(steptest.NewBrowser(t), alice, url.Values{"claims": {essentialACR}})
		if id.ACR != oidcop.ACRDevice || !slices.Equal(id.AMR, []string{"pop"}) {
			t.Errorf("acr %q amr %v", id.ACR, id.AMR)
		}
	})

	t.Run("essential acr unknown", func(t *testing.T) {
		p := steptest.NewBrowser(t).Get(e.authorizeURL(url.Values{"login_hint": {"alice"}, "claims": {unknownACR}, "state": {"st-acr"}}))
		wantError(t, e.callbackParams(p), "access_denied", "st-acr")
	})

	t.Run("claims unreadable", func(t *testing.T) {
		for _, claims := range []string{`{"id_token":`, `[]`, `{"id_token":{"acr":"` + oidcop.ACRDevice + `"}}`,
			`{"id_token":{"amr":{"essential":"yes"}}}`, `{"id_token":{"acr":{"values":"` + oidcop.ACRDevice + `"}}}`} {
			p := steptest.NewBrowser(t).Get(e.authorizeURL(url.Values{"login_hint": {"alice"}, "claims": {claims}, "state": {"st-json"}}))
			if q := e.callbackParams(p); q.Get("error") != "invalid_request" || q.Get("state") != "st-json" {
				t.Errorf("claims %s: answer %v, want invalid_request", claims, q)
			}
		}
	})

	t.Run("essential amr otp", func(t *testing.T) {
		b := steptest.NewBrowser(t)
		verifier, challenge := pkce()
		step := e.startStep(b, url.Values{"login_hint": {"alice"}, "claims": {essentialAMR}, "state": {"st-otp"},
			"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
		if numberRE.MatchString(step.Body) || strings.Contains(step.Body, "qr.png") {
			t.Errorf("the step page offers the phone for an amr of otp:\n%s", step.Body)
		}
		if reqs, err := alice.phone.Pending(e.ctx); err != nil || len(reqs) != 0 {
			t.Errorf("the phone has %d pending requests (%v) for an amr of otp", len(reqs), err)
		}
		var send steptest.Form
		found := false
		for _, f := range step.Forms {
			if strings.HasSuffix(f.Action, "/send") && f.Fields.Get("channel") == "email" {
				send, found = f, true
			}
		}
		if !found {
			t.Fatalf("no email form on the step page:\n%s", step.Body)
		}
		if _, ok := step.FindForm("/finish"); ok && strings.Contains(step.Body, `class="push"`) {
			t.Errorf("the step page asks for the phone")
		}
		sent := b.Submit(send, nil)
		q := callbackFor(t, b.Submit(sent.Form(t, "/code"), url.Values{"code": {e.mail.LastCode(t)}}), redirectURI)
		if q.Get("state") != "st-otp" {
			t.Errorf("state %q", q.Get("state"))
		}
		id := e.verifyIDToken(e.decodeTokens(e.exchange(q.Get("code"), verifier)).IDToken)
		if id.ACR != oidcop.ACRCode || !slices.Equal(id.AMR, []string{"otp"}) {
			t.Errorf("acr %q amr %v, want %q [otp]", id.ACR, id.AMR, oidcop.ACRCode)
		}
	})

	t.Run("acr_values", func(t *testing.T) {
		_, id := e.signIn(steptest.NewBrowser(t), alice, url.Values{"acr_values": {acrUnknown + " " + oidcop.ACRCode}})
		if id.ACR != oidcop.ACRCode {
			t.Errorf("acr %q, want %q (the first of acr_values the push approval meets)", id.ACR, oidcop.ACRCode)
		}
		_, id = e.signIn(steptest.NewBrowser(t), alice, url.Values{"acr_values": {acrUnknown}})
		if id.ACR != oidcop.ACRDevice {
			t.Errorf("acr %q, want %q (voluntary acr_values that cannot be met)", id.ACR, oidcop.ACRDevice)
		}
	})
}

// TestDenyReturnsAccessDenied: a denial on the phone shows the denied page;
// its button answers the client with access_denied.
func TestDenyReturnsAccessDenied(t *testing.T) {
	e := newEnv(t)
	bob := e.newUser("bob")
	b := steptest.NewBrowser(t)
	step := e.startStep(b, url.Values{"login_hint": {"bob"}, "state": {"st-deny"}})
	bob.deny(t)
	denied := b.Get(step.URL.String())
	if !strings.Contains(denied.Text(), "Sign-in denied") {
		t.Errorf("not the denied page:\n%s", denied.Text())
	}
	abort := denied.Form(t, "/abort")
	if abort.Fields.Get("reason") != steppage.RefusedDenied {
		t.Errorf("the return form posts reason %q", abort.Fields.Get("reason"))
	}
	wantError(t, e.callbackParams(b.Submit(abort, nil)), "access_denied", "st-deny")
	// Continue after the denial does not give a code either.
	if p := b.Submit(step.Form(t, "/finish"), nil); p.Location != "" && strings.Contains(p.Location, "code=") {
		t.Errorf("finish after a denial answered %q", p.Location)
	}
}

// TestSecondBrowserRefused: the request is bound to the browser that
// opened it; the library's callback is disabled.
func TestSecondBrowserRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	b1, b2 := steptest.NewBrowser(t), steptest.NewBrowser(t)
	step := e.startStep(b1, url.Values{"login_hint": {"alice"}})
	id := path.Base(step.URL.Path)
	if p := b2.Get(step.URL.String()); p.Status != http.StatusForbidden {
		t.Errorf("second browser GET /step: %d", p.Status)
	}
	finish := step.Form(t, "/finish")
	alice.approve(t, number(t, step))
	if p := b2.Submit(finish, nil); p.Status != http.StatusForbidden || p.Location != "" {
		t.Errorf("second browser POST /finish with the first's form: %d → %q", p.Status, p.Location)
	}
	for _, b := range []*steptest.Browser{b1, b2} {
		if p := b.Get(e.ts.URL + "/authorize/callback?id=" + url.QueryEscape(id)); p.Status != http.StatusNotFound || p.Location != "" {
			t.Errorf("GET /authorize/callback: %d → %q", p.Status, p.Location)
		}
	}
	if q := e.callbackParams(b1.Submit(finish, nil)); q.Get("code") == "" {
		t.Errorf("the first browser cannot finish: %v", q)
	}
}

// TestIDTokenHint: oidcc-id-token-hint. keystep's own ID token names the
// user for a client that names users by id_token_hint; a forged hint and a
// hint for an unknown user are refused.
func TestIDTokenHint(t *testing.T) {
	upJWKS := writeJWKS(t, upstreamKey(t), upstreamKeyID, jose.ES256)
	e := newEnvWith(t, envOptions{clients: func(issuer string) []oidcop.ClientConfig {
		return []oidcop.ClientConfig{
			defaultClient(),
			{ID: hintClientID, Secret: otherSecret, RedirectURIs: []string{hintRedirect}, NameBy: oidcop.NameByIDTokenHint,
				Match: oidcop.MatchID, HintIssuer: issuer, HintJWKSURL: issuer + "/keys", HintAudience: clientID},
			{ID: upClientID, Secret: otherSecret, RedirectURIs: []string{upRedirect}, NameBy: oidcop.NameByIDTokenHint,
				HintIssuer: upIssuer, HintJWKSFile: upJWKS},
		}
	}})
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	_, first := e.signIn(b, alice, nil)
	hintTok, _ := e.signIn(b, alice, nil)
	hint := hintTok.IDToken

	params := func(hint, state string) url.Values {
		return url.Values{"client_id": {hintClientID}, "redirect_uri": {hintRedirect}, "id_token_hint": {hint}, "state": {state}}
	}
	q := e.code(b, alice, params(hint, "st-hint"))
	status, body := e.do(http.MethodPost, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {hintRedirect}}, basicAuth(hintClientID, otherSecret))
	id := e.verifyIDToken(e.decodeTokens(status, body).IDToken)
	if id.Subject != first.Subject || !slices.Equal(id.Audience, []string{hintClientID}) {
		t.Errorf("sub %q aud %v, want the hint's sub %q for %s", id.Subject, id.Audience, first.Subject, hintClientID)
	}

	// One bit of the signature flipped.
	parts := strings.Split(hint, ".")
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[len(sig)/2] ^= 1
	forged := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
	p := b.Get(e.authorizeURL(params(forged, "st-forged")))
	wantError(t, callbackFor(t, p, hintRedirect), "invalid_request", "st-forged")
	// No hint at all, or a login_hint instead.
	p = b.Get(e.authorizeURL(url.Values{"client_id": {hintClientID}, "redirect_uri": {hintRedirect}, "login_hint": {"alice"}, "state": {"st-none"}}))
	wantError(t, callbackFor(t, p, hintRedirect), "invalid_request", "st-none")

	// A valid hint for an account keystep does not know.
	up := func(hint, state string) url.Values {
		return url.Values{"client_id": {upClientID}, "redirect_uri": {upRedirect}, "id_token_hint": {hint}, "state": {state}}
	}
	p = b.Get(e.authorizeURL(up(upstreamHint(t, "nobody"), "st-unknown")))
	wantError(t, callbackFor(t, p, upRedirect), "access_denied", "st-unknown")
	// The same issuer's hint for alice works (it was only the name).
	step := e.startStep(b, up(upstreamHint(t, "alice"), "st-alice"))
	q = callbackFor(t, e.finish(b, alice, step), upRedirect)
	if q.Get("code") == "" || q.Get("state") != "st-alice" {
		t.Errorf("upstream hint for alice: %v", q)
	}
}

// TestDiscoveryAndJWKS: discovery says what keystep offers; every key has
// kid, alg and an x5c certificate for that very key (oidcc-idtoken-signature
// with ES256 and RS256 clients).
func TestDiscoveryAndJWKS(t *testing.T) {
	e := newEnvWith(t, envOptions{clients: func(string) []oidcop.ClientConfig {
		return []oidcop.ClientConfig{defaultClient(),
			{ID: rsaClientID, Secret: otherSecret, RedirectURIs: []string{rsaRedirect}, SigningAlg: "RS256"}}
	}})
	status, body := e.do(http.MethodGet, "/.well-known/openid-configuration", nil, nil)
	if status != http.StatusOK {
		t.Fatalf("discovery: %d %s", status, body)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	strs := func(k string) []string {
		var out []string
		list, _ := d[k].([]any)
		for _, v := range list {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	if d["issuer"] != e.ts.URL {
		t.Errorf("issuer %v, want %s", d["issuer"], e.ts.URL)
	}
	if d["jwks_uri"] != e.ts.URL+"/keys" || d["authorization_endpoint"] != e.ts.URL+"/authorize" {
		t.Errorf("jwks_uri %v authorization_endpoint %v", d["jwks_uri"], d["authorization_endpoint"])
	}
	for _, acr := range []string{oidcop.ACRDevice, oidcop.ACRCode} {
		if !slices.Contains(strs("acr_values_supported"), acr) {
			t.Errorf("acr_values_supported %v lacks %s", strs("acr_values_supported"), acr)
		}
	}
	if d["claims_parameter_supported"] != true {
		t.Errorf("claims_parameter_supported %v", d["claims_parameter_supported"])
	}
	if d["request_parameter_supported"] == true || d["request_uri_parameter_supported"] == true {
		t.Errorf("request objects are advertised")
	}
	if !slices.Contains(strs("response_modes_supported"), "form_post") {
		t.Errorf("response_modes_supported %v", strs("response_modes_supported"))
	}
	if got := strs("code_challenge_methods_supported"); !slices.Equal(got, []string{"S256"}) {
		t.Errorf("code_challenge_methods_supported %v, want [S256]", got)
	}
	if _, ok := d["device_authorization_endpoint"]; ok {
		t.Errorf("device_authorization_endpoint %v is advertised", d["device_authorization_endpoint"])
	}
	for _, alg := range []string{"ES256", "RS256"} {
		if !slices.Contains(strs("id_token_signing_alg_values_supported"), alg) {
			t.Errorf("id_token_signing_alg_values_supported %v lacks %s", strs("id_token_signing_alg_values_supported"), alg)
		}
	}

	// Tokens for an ES256 and an RS256 client verify against /keys.
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	_, es := e.signIn(b, alice, nil)
	q := e.code(b, alice, url.Values{"client_id": {rsaClientID}, "redirect_uri": {rsaRedirect}, "login_hint": {"alice"}})
	status, body = e.do(http.MethodPost, "/oauth/token", url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")},
		"redirect_uri": {rsaRedirect}}, basicAuth(rsaClientID, otherSecret))
	rs := e.verifyIDToken(e.decodeTokens(status, body).IDToken)
	if es.Alg != "ES256" || rs.Alg != "RS256" {
		t.Errorf("ID tokens signed %s and %s, want ES256 and RS256", es.Alg, rs.Alg)
	}

	algs := map[string]bool{}
	for _, k := range e.keySet().Keys {
		algs[k.Algorithm] = true
		if k.KeyID == "" || k.Algorithm == "" || k.Use != "sig" || !k.IsPublic() || !k.Valid() {
			t.Errorf("key %q alg %q use %q: incomplete or not public", k.KeyID, k.Algorithm, k.Use)
		}
		if len(k.Certificates) == 0 {
			t.Errorf("key %q has no x5c", k.KeyID)
			continue
		}
		pub, ok := k.Key.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(k.Certificates[0].PublicKey) {
			t.Errorf("key %q: the x5c certificate is for another key", k.KeyID)
		}
		if th := sha1.Sum(k.Certificates[0].Raw); len(k.CertificateThumbprintSHA1) > 0 && string(th[:]) != string(k.CertificateThumbprintSHA1) { //nolint:gosec // thumbprint
			t.Errorf("key %q: x5t is not the certificate's thumbprint", k.KeyID)
		}
	}
	if !algs["ES256"] || !algs["RS256"] {
		t.Errorf("key algorithms %v, want ES256 and RS256", algs)
	}
}

// TestKeyRotation: after RotateKeys the next ID token has a new kid; the
// old key stays published, so the earlier token still verifies.
func TestKeyRotation(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	tok1, id1 := e.signIn(b, alice, nil)
	e.clock.Advance(time.Second) // time passes between a key's birth and its rotation
	if _, err := e.op.RotateKeys(e.ctx); err != nil {
		t.Fatal(err)
	}
	_, id2 := e.signIn(b, alice, nil)
	if id2.Kid == id1.Kid {
		t.Errorf("kid %q before and after the rotation", id1.Kid)
	}
	if set := e.keySet(); len(set.Key(id1.Kid)) != 1 {
		t.Errorf("the old kid %q left /keys", id1.Kid)
	}
	e.verifyIDToken(tok1.IDToken)
}

// TestIntrospectionAndRevocation: an access token is active until it is
// revoked.
func TestIntrospectionAndRevocation(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	tok, _ := e.signIn(steptest.NewBrowser(t), alice, nil)
	introspect := func() (active bool, sub string) {
		t.Helper()
		status, body := e.do(http.MethodPost, "/oauth/introspect", url.Values{"token": {tok.AccessToken}}, basicAuth(clientID, clientSecret))
		var r struct {
			Active bool   `json:"active"`
			Sub    string `json:"sub"`
		}
		if err := json.Unmarshal([]byte(body), &r); status != http.StatusOK || err != nil {
			t.Fatalf("introspect: %d %s", status, body)
		}
		return r.Active, r.Sub
	}
	if active, sub := introspect(); !active || sub != alice.account.ID {
		t.Errorf("introspect: active %v sub %q", active, sub)
	}
	status, body := e.do(http.MethodPost, "/oauth/introspect", url.Values{"token": {tok.AccessToken}}, nil)
	if status != http.StatusUnauthorized && status != http.StatusBadRequest || strings.Contains(body, `"active":true`) {
		t.Errorf("introspect without client authentication: %d %s", status, body)
	}
	status, body = e.do(http.MethodPost, "/oauth/introspect", url.Values{"token": {tok.AccessToken}}, basicAuth(clientID, "wrong-secret-0123456789"))
	if status == http.StatusOK && strings.Contains(body, `"active":true`) {
		t.Errorf("introspect with a wrong secret: %d %s", status, body)
	}
	if status, body := e.do(http.MethodPost, "/revoke", url.Values{"token": {tok.AccessToken}}, basicAuth(clientID, clientSecret)); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	if active, _ := introspect(); active {
		t.Error("a revoked token is active")
	}
	if e.userinfo(tok.AccessToken) == http.StatusOK {
		t.Error("userinfo accepts a revoked token")
	}
}

// TestEndSession: without a hint, end_session lands on /logged-out, or on
// a registered post_logout_redirect_uri with the state.
func TestEndSession(t *testing.T) {
	e := newEnvWith(t, envOptions{clients: func(string) []oidcop.ClientConfig {
		c := defaultClient()
		c.PostLogoutRedirectURIs = []string{logoutURI}
		return []oidcop.ClientConfig{c}
	}})
	b := steptest.NewBrowser(t)
	p := b.Get(e.ts.URL + "/end_session")
	if p.Status != http.StatusFound || p.Location != e.ts.URL+"/logged-out" {
		t.Fatalf("end_session: %d → %q", p.Status, p.Location)
	}
	if out := b.Follow(p); out.Status != http.StatusOK || !strings.Contains(out.Body, "signed out") {
		t.Errorf("/logged-out: %d %s", out.Status, out.Body)
	}
	p = b.Get(e.ts.URL + "/end_session?" + url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {logoutURI}, "state": {"st-out"}}.Encode())
	if p.Status != http.StatusFound || p.Location != logoutURI+"?state=st-out" {
		t.Errorf("end_session to the client: %d → %q", p.Status, p.Location)
	}
	p = b.Get(e.ts.URL + "/end_session?" + url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {"https://attacker.example.com/"}}.Encode())
	if p.Status < 400 || p.Status >= 500 || p.Location != "" {
		t.Errorf("end_session to an unregistered URI: %d → %q", p.Status, p.Location)
	}
	p = b.Get(e.ts.URL + "/end_session?" + url.Values{"client_id": {"no-such-client"}}.Encode())
	if p.Status < 400 || p.Status >= 500 || p.Location != "" {
		t.Errorf("end_session for an unknown client: %d → %q", p.Status, p.Location)
	}
}
