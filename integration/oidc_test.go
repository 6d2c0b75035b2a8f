package integration

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/provider/oidcop/oidctest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// redirectParams checks that an answer of the step page redirects to the
// demo client's redirect URI and returns the redirect's query.
func redirectParams(t *testing.T, p *steptest.Page, redirectURI string) url.Values {
	t.Helper()
	if p.Status != http.StatusSeeOther && p.Status != http.StatusFound {
		t.Fatalf("Continue answered %d, want a redirect to the client:\n%s", p.Status, p.Body)
	}
	u, err := url.Parse(p.Location)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != redirectURI {
		t.Fatalf("Continue redirects to %q, not to %s", p.Location, redirectURI)
	}
	return u.Query()
}

// checkAuthTime checks that auth_time is the time of the approval: not
// before the step began, not after now (in whole seconds).
func checkAuthTime(t *testing.T, authTime, began time.Time) {
	t.Helper()
	if authTime.Before(began.Truncate(time.Second)) || authTime.After(time.Now()) {
		t.Errorf("auth_time %v, want between %v and now", authTime, began)
	}
}

// TestOIDCWithZitadelRP signs alice in to the demo client through the real
// `keystep serve`: zitadel/oidc's relying party runs the code flow with
// PKCE, a browser without JavaScript takes the step page, and the phone
// (`keystep device`) approves with the number shown. The relying party
// verifies the ID token's signature against the server's key set.
func TestOIDCWithZitadelRP(t *testing.T) {
	srv, _ := startLoggedServer(t)
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	aliceID := w.addUser("alice", "alice@example.com")
	w.enroll("alice", "phone.json")

	ctx := context.Background()
	party, err := rp.NewRelyingPartyOIDC(ctx, srv.URL, demoClientID, demoSecret(t, srv), demoRedirectURI,
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail},
		rp.WithVerifierOpts(rp.WithSupportedSigningAlgorithms("ES256")))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	verifier := oauth2.GenerateVerifier()
	b := steptest.NewBrowser(t)
	step := startStep(t, b, srv, rp.AuthURL("st-zitadel", party,
		rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier)), rp.AuthURLOpt(rp.WithURLParam("login_hint", "alice"))))
	if !strings.Contains(step.Text(), demoClientName) {
		t.Errorf("the step page does not name the app asking:\n%s", step.Text())
	}
	q := redirectParams(t, w.approveStep(b, step, "phone.json", demoClientName), demoRedirectURI)
	if q.Get("state") != "st-zitadel" || q.Get("code") == "" || q.Get("iss") != srv.URL {
		t.Fatalf("callback %v", q)
	}
	// PKCE is enforced: the code with another verifier is refused.
	if _, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(oauth2.GenerateVerifier())); err == nil {
		t.Fatal("the code was exchanged with a wrong PKCE verifier")
	}

	// A second sign-in, exchanged with the right verifier.
	verifier = oauth2.GenerateVerifier()
	began := time.Now()
	step = startStep(t, b, srv, rp.AuthURL("st-zitadel-2", party,
		rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier)), rp.AuthURLOpt(rp.WithURLParam("login_hint", "alice"))))
	q = redirectParams(t, w.approveStep(b, step, "phone.json", demoClientName), demoRedirectURI)
	if q.Get("state") != "st-zitadel-2" || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	c := tokens.IDTokenClaims
	if c.Issuer != srv.URL || c.Subject != aliceID || !slices.Equal([]string(c.Audience), []string{demoClientID}) {
		t.Errorf("iss %q sub %q aud %v, want %q %q [%s]", c.Issuer, c.Subject, c.Audience, srv.URL, aliceID, demoClientID)
	}
	if c.PreferredUsername != "alice" || c.Email != "alice@example.com" {
		t.Errorf("preferred_username %q email %q", c.PreferredUsername, c.Email)
	}
	if c.AuthenticationContextClassReference != acrDevice || !slices.Equal(c.AuthenticationMethodsReferences, []string{"pop"}) {
		t.Errorf("acr %q amr %v, want %q [pop]", c.AuthenticationContextClassReference, c.AuthenticationMethodsReferences, acrDevice)
	}
	checkAuthTime(t, c.AuthTime.AsTime(), began)
	if c.SignatureAlg != "ES256" {
		t.Errorf("ID token signed with %q, want ES256", c.SignatureAlg)
	}
	// The relying party verified the signature: the same verifier accepts
	// the token again, and refuses it with one bit of its signature changed.
	if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](ctx, tokens.IDToken, party.IDTokenVerifier()); err != nil {
		t.Errorf("verify the ID token again: %v", err)
	}
	if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](ctx, tamper(tokens.IDToken), party.IDTokenVerifier()); err == nil {
		t.Error("the relying party accepted an ID token with a changed signature")
	}
}

// tamper changes the last byte of a JWS's signature.
func tamper(jws string) string {
	i := strings.LastIndex(jws, ".")
	sig, err := base64.RawURLEncoding.DecodeString(jws[i+1:])
	if err != nil || len(sig) == 0 {
		return jws + "x"
	}
	sig[len(sig)-1] ^= 1
	return jws[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// TestOIDCWithGoOIDC runs the same sign-in as coreos/go-oidc and
// x/oauth2 do, with a nonce, and verifies the ID token with go-oidc.
func TestOIDCWithGoOIDC(t *testing.T) {
	srv, _ := startLoggedServer(t)
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	bobID := w.addUser("bob", "bob@example.com")
	w.enroll("bob", "phone.json")

	ctx := context.Background()
	prov, err := gooidc.NewProvider(ctx, srv.URL)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	var meta struct {
		ACR    []string `json:"acr_values_supported"`
		Claims bool     `json:"claims_parameter_supported"`
	}
	if err := prov.Claims(&meta); err != nil || !slices.Contains(meta.ACR, acrDevice) || !meta.Claims {
		t.Errorf("discovery: %+v, %v", meta, err)
	}
	conf := oauth2.Config{ClientID: demoClientID, ClientSecret: demoSecret(t, srv), RedirectURL: demoRedirectURI,
		Endpoint: prov.Endpoint(), Scopes: []string{gooidc.ScopeOpenID}}
	verifier := oauth2.GenerateVerifier()
	nonce := "n-" + oauth2.GenerateVerifier()[:16]
	b := steptest.NewBrowser(t)
	began := time.Now()
	step := startStep(t, b, srv, conf.AuthCodeURL("st-go-oidc", gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("login_hint", "bob")))
	q := redirectParams(t, w.approveStep(b, step, "phone.json", demoClientName), demoRedirectURI)
	if q.Get("state") != "st-go-oidc" {
		t.Fatalf("callback %v", q)
	}
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := prov.VerifierContext(ctx, &gooidc.Config{ClientID: demoClientID, SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc verify: %v", err)
	}
	var c struct {
		ACR      string   `json:"acr"`
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
	}
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	if idt.Nonce != nonce || idt.Subject != bobID {
		t.Errorf("nonce %q sub %q, want %q %q", idt.Nonce, idt.Subject, nonce, bobID)
	}
	if c.ACR != acrDevice || !slices.Equal(c.AMR, []string{"pop"}) {
		t.Errorf("acr %q amr %v, want %q [pop]", c.ACR, c.AMR, acrDevice)
	}
	checkAuthTime(t, time.Unix(c.AuthTime, 0), began)
	if idt.AccessTokenHash == "" {
		t.Error("the ID token has no at_hash")
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	// The access token works at the userinfo endpoint.
	info, err := prov.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil || info.Subject != bobID {
		t.Errorf("userinfo %+v, %v", info, err)
	}
}

// Entra test values: a tenant, the external authentication method's app
// (its client id) and a user as Entra names them.
const (
	entraTenant   = "8d4a6b1e-3c2f-4e5d-9a7b-1c2d3e4f5a6b"
	entraClientID = "0b7c9e2a-6f1d-4a3b-8c5e-7d9f1a2b3c4d"
	entraUPN      = "alice@contoso.example"
)

var entraAlice = oidctest.User{OID: "5f0e2a61-9c8b-4d7e-a6f5-4e3d2c1b0a99", Sub: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
	PreferredUsername: entraUPN, Name: "Alice Example"}

// entraAuthorize POSTs Entra's authorization form to keystep as Entra's
// sign-in page does: a cross-site form post from login.microsoftonline.com.
func entraAuthorize(t *testing.T, b *steptest.Browser, srv server, form url.Values) *steptest.Page {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/authorize", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://login.microsoftonline.com")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Sec-Fetch-Mode", "navigate")
	return b.Do(req)
}

// autoPost checks that p is an auto-posting form to action and returns
// its fields.
func autoPost(t *testing.T, p *steptest.Page, action string) url.Values {
	t.Helper()
	if p.Status != http.StatusOK {
		t.Fatalf("answer %d, want an auto-posting form:\n%s", p.Status, p.Body)
	}
	f, ok := p.FindForm(action)
	if !ok || f.Action != action || !strings.Contains(p.Body, `id="autopost"`) {
		t.Fatalf("the answer is not an auto-posting form to %s:\n%s", action, p.Body)
	}
	return f.Fields
}

// TestOIDCEntraExternalAuthMethod is keystep as a Microsoft Entra ID
// external authentication method, through the real `keystep serve` and a
// fake Entra that signs hints in Entra's format: the id_token_hint names
// the user, the answer is an ID token posted back to Entra, and bad hints
// are refused with an error posted back, before any step.
func TestOIDCEntraExternalAuthMethod(t *testing.T) {
	entra := oidctest.NewEntra(t, entraTenant)
	cfg := writeConfig(t,
		"oidc:",
		"  clients:",
		"    - id: "+entraClientID,
		"      name: Contoso Entra ID",
		"      profile: entra",
		"      tenants: ["+entraTenant+"]",
		"      hint_jwks_url: "+entra.KeysURL(),
		"      redirect_uris: ["+oidctest.EntraRedirectURI+"]",
	)
	srv, keystepServe := startLoggedServer(t, "--config", cfg)
	logs := keystepServe.logs
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	w.addUser(entraUPN, entraUPN)
	w.enroll(entraUPN, "phone.json")
	ctx := context.Background()

	// The demo client is off when keystep runs from a configuration file.
	if p := steptest.NewBrowser(t).Get(srv.URL + "/authorize?" + url.Values{"client_id": {demoClientID}, "redirect_uri": {demoRedirectURI},
		"response_type": {"code"}, "scope": {"openid"}, "login_hint": {entraUPN}}.Encode()); strings.HasPrefix(p.Location, srv.URL+"/step/") {
		t.Errorf("the demo client is registered next to a configured client: %d %s", p.Status, p.Location)
	}

	keys := checkJWKS(t, srv)
	verifier := gooidc.NewVerifier(srv.URL, gooidc.NewRemoteKeySet(ctx, srv.URL+"/keys"),
		&gooidc.Config{ClientID: entraClientID, SupportedSigningAlgs: []string{"RS256"}})

	signIn := func(user oidctest.User, nonce, state string) {
		t.Helper()
		b := steptest.NewBrowser(t)
		began := time.Now()
		p := entraAuthorize(t, b, srv, entra.AuthorizeForm(entraClientID, entra.Hint(t, entraClientID, user, nil), user.PreferredUsername, nonce, state))
		if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, srv.URL+"/step/") {
			t.Fatalf("authorize answered %d → %q, not the step page:\n%s", p.Status, p.Location, p.Body)
		}
		step := followToStep(t, b, p)
		if !strings.Contains(step.Text(), "Contoso Entra ID") {
			t.Errorf("the step page does not name Entra:\n%s", step.Text())
		}
		fields := autoPost(t, w.approveStep(b, step, "phone.json", "Contoso Entra ID"), oidctest.EntraRedirectURI)
		if fields.Get("state") != state || fields.Get("error") != "" || fields.Has("code") {
			t.Fatalf("form_post fields %v", fields)
		}
		raw := fields.Get("id_token")
		jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatalf("the ID token is not an RS256 JWS: %v", err)
		}
		if kid := jws.Signatures[0].Header.KeyID; !slices.Contains(keys, kid) {
			t.Errorf("the ID token's kid %q is not in the key set %v", kid, keys)
		}
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("verify the ID token against %s/keys: %v", srv.URL, err)
		}
		var c struct {
			ACR      any   `json:"acr"`
			AMR      any   `json:"amr"`
			AuthTime int64 `json:"auth_time"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != user.Sub || !slices.Equal(idt.Audience, []string{entraClientID}) || idt.Nonce != nonce {
			t.Errorf("sub %q aud %v nonce %q, want %q [%s] %q", idt.Subject, idt.Audience, idt.Nonce, user.Sub, entraClientID, nonce)
		}
		if acr, ok := c.ACR.(string); !ok || acr != "possessionorinherence" {
			t.Errorf("acr %#v, want exactly one: \"possessionorinherence\"", c.ACR)
		}
		amr, _ := c.AMR.([]any)
		if len(amr) != 1 || amr[0] != "pop" || !slices.Contains(oidctest.EntraAMRValues, amr[0].(string)) {
			t.Errorf("amr %#v, want [\"pop\"], one of the values Entra asked for", c.AMR)
		}
		checkAuthTime(t, time.Unix(c.AuthTime, 0), began)
	}

	// First sign-in: the hint's UPN names the account; keystep links
	// the tenant's object id to it.
	signIn(entraAlice, "nonce-1-"+oauth2.GenerateVerifier()[:8], "state-1")

	// Bad hints: an error is posted back to Entra, and there is no step.
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	otherTenant := "11111111-2222-4333-8444-555555555555"
	for _, bad := range []struct {
		name, hint, why string // why: what the server's log says
	}{
		{"wrong audience", entra.Hint(t, "another-app", entraAlice, nil), "audience"},
		{"another tenant", entra.Hint(t, entraClientID, entraAlice, map[string]any{"tid": otherTenant,
			"iss": "https://login.microsoftonline.com/" + otherTenant + "/v2.0"}), "allowed tenant"},
		{"tid not the issuer's", entra.Hint(t, entraClientID, entraAlice, map[string]any{"tid": otherTenant}), "tenant"},
		{"forged", entra.HintSignedBy(t, other, entraClientID, entraAlice), "signature"},
	} {
		from := logs.len()
		b := steptest.NewBrowser(t)
		p := entraAuthorize(t, b, srv, entra.AuthorizeForm(entraClientID, bad.hint, entraUPN, "nonce-bad", "state-bad"))
		if strings.Contains(p.Location, "/step/") {
			t.Errorf("%s hint: sent to the step page %s", bad.name, p.Location)
			continue
		}
		fields := autoPost(t, p, oidctest.EntraRedirectURI)
		if e := fields.Get("error"); (e != "invalid_request" && e != "access_denied") || fields.Get("state") != "state-bad" || fields.Has("id_token") {
			t.Errorf("%s hint: posted back %v, want error invalid_request or access_denied with the state", bad.name, fields)
		}
		logs.waitFor(t, from, "id_token_hint refused", bad.why)
	}
	// A well-signed hint for an Entra user who has no keystep account.
	stranger := oidctest.User{OID: "9a8b7c6d-0000-4000-8000-000000000001", Sub: "AAAAAAAAAAAAAAAAAAAAAHs7rAnGeR", PreferredUsername: "mallory@contoso.example"}
	p := entraAuthorize(t, steptest.NewBrowser(t), srv, entra.AuthorizeForm(entraClientID, entra.Hint(t, entraClientID, stranger, nil),
		stranger.PreferredUsername, "nonce-stranger", "state-stranger"))
	if fields := autoPost(t, p, oidctest.EntraRedirectURI); fields.Get("error") != "access_denied" || fields.Get("state") != "state-stranger" {
		t.Errorf("a user without an account: posted back %v, want access_denied", fields)
	}
	var pend pendingList
	ok(t, &pend, w.device("phone.json", "pending")...)
	if len(pend.Requests) != 0 {
		t.Errorf("a refused request began a sign-in: %+v", pend)
	}

	// Second sign-in: the account is found by the stored tid/oid link, no
	// longer by the UPN (which Entra may change: here it did).
	renamed := entraAlice
	renamed.PreferredUsername = "alice.example@contoso.example"
	signIn(renamed, "nonce-2-"+oauth2.GenerateVerifier()[:8], "state-2")
}

// checkJWKS reads the server's key set and checks that every key carries
// a certificate (x5c) whose public key is the key itself, as Entra ID
// requires; it returns the key ids.
func checkJWKS(t *testing.T, srv server) []string {
	t.Helper()
	resp, err := http.Get(srv.URL + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /keys: %d %v\n%s", resp.StatusCode, err, body)
	}
	var raw struct {
		Keys []struct {
			Kid string   `json:"kid"`
			X5c []string `json:"x5c"`
		} `json:"keys"`
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("the key set does not parse: %v\n%s", err, body)
	}
	if len(set.Keys) == 0 || len(set.Keys) != len(raw.Keys) {
		t.Fatalf("key set:\n%s", body)
	}
	var kids []string
	rsaKeys := 0
	for i, k := range set.Keys {
		kids = append(kids, k.KeyID)
		if _, isRSA := k.Key.(*rsa.PublicKey); isRSA && k.Algorithm == "RS256" {
			rsaKeys++
		}
		if len(raw.Keys[i].X5c) == 0 {
			t.Errorf("key %s has no x5c", k.KeyID)
			continue
		}
		der, err := base64.StdEncoding.DecodeString(raw.Keys[i].X5c[0])
		if err != nil {
			t.Errorf("key %s: x5c is not base64: %v", k.KeyID, err)
			continue
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			t.Errorf("key %s: x5c is not a certificate: %v", k.KeyID, err)
			continue
		}
		pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		if !ok || !pub.Equal(k.Key) {
			t.Errorf("key %s: the certificate's public key is not the key", k.KeyID)
		}
	}
	if rsaKeys == 0 {
		t.Errorf("the key set has no RS256 key for Entra:\n%s", body)
	}
	return kids
}

var demoAppReady = regexp.MustCompile(`keystep demo app on (http://\S+)`)

var preRE = regexp.MustCompile(`(?s)<pre>(.*?)</pre>`)

// TestDemoApp runs `keystep demo-app` against `keystep serve` as the
// README's quick start does, on a port the system picks: a browser
// signs in to the app as alice, takes the step, and sees the ID token's
// claims, acr and amr among them.
func TestDemoApp(t *testing.T) {
	srv, _ := startLoggedServer(t)
	w := walk{t: t, srv: srv, dir: t.TempDir()}
	aliceID := w.addUser("alice", "alice@example.com")
	w.enroll("alice", "phone.json")
	app := startDaemon(t, demoAppReady, "demo-app", "--issuer", srv.URL, "--listen", "127.0.0.1:0", "--data", srv.Data).addr
	if strings.HasSuffix(app, ":0") || strings.HasSuffix(app, ":5556") {
		t.Fatalf("the demo app says it listens on %s, not on the port it was given", app)
	}

	b := steptest.NewBrowser(t)
	home := b.Get(app + "/")
	if home.Status != http.StatusOK {
		t.Fatalf("GET %s/: %d\n%s", app, home.Status, home.Body)
	}
	p := b.Submit(home.Form(t, "/login"), url.Values{"username": {"alice"}})
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, srv.URL+"/authorize?") {
		t.Fatalf("the app's login answered %d → %q, not keystep's authorization endpoint:\n%s", p.Status, p.Location, p.Body)
	}
	p = b.Follow(p)
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, srv.URL+"/step/") {
		t.Fatalf("authorize answered %d → %q, not the step page:\n%s", p.Status, p.Location, p.Body)
	}
	step := followToStep(t, b, p)
	p = w.approveStep(b, step, "phone.json", demoClientName)
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, app+"/callback?") {
		t.Fatalf("Continue answered %d → %q, not the app's callback", p.Status, p.Location)
	}
	p = b.Follow(p)
	m := preRE.FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || m == nil {
		t.Fatalf("the app's callback answered %d:\n%s", p.Status, p.Body)
	}
	// Any port, but only the registered path: another path on the
	// loopback host is refused, and nothing is redirected there.
	for _, bad := range []string{"http://127.0.0.1:5557/elsewhere", "http://127.0.0.1.example.com:5556/callback"} {
		p := steptest.NewBrowser(t).Get(srv.URL + "/authorize?" + url.Values{"client_id": {demoClientID}, "redirect_uri": {bad},
			"response_type": {"code"}, "scope": {"openid"}, "login_hint": {"alice"}}.Encode())
		if p.Status != http.StatusBadRequest || p.Location != "" {
			t.Errorf("redirect_uri %s: authorize answered %d → %q, want 400", bad, p.Status, p.Location)
		}
	}
	var claims struct {
		Sub      string   `json:"sub"`
		ACR      string   `json:"acr"`
		AMR      []string `json:"amr"`
		AuthTime int64    `json:"auth_time"`
	}
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &claims); err != nil {
		t.Fatalf("the app's page shows no claims: %v\n%s", err, p.Body)
	}
	if claims.Sub != aliceID || claims.ACR != acrDevice || !slices.Equal(claims.AMR, []string{"pop"}) || claims.AuthTime == 0 {
		t.Errorf("the app shows %+v, want sub %s, acr %s, amr [pop] and auth_time", claims, aliceID, acrDevice)
	}
}
