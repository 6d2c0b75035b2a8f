package oidcop_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/provider/oidcop"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

func param(k, v string) rp.AuthURLOpt {
	return func() []oauth2.AuthCodeOption { return []oauth2.AuthCodeOption{oauth2.SetAuthURLParam(k, v)} }
}

// TestCodeFlowZitadelRP runs the code flow with PKCE as zitadel/oidc's
// relying party does, and checks the ID token it verified.
func TestCodeFlowZitadelRP(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	ctx := context.Background()
	party, err := rp.NewRelyingPartyOIDC(ctx, e.ts.URL, clientID, clientSecret, redirectURI, []string{"openid", "profile", "email"})
	if err != nil {
		t.Fatal(err)
	}
	verifier, challenge := pkce()
	b := steptest.NewBrowser(t)
	p := b.Get(rp.AuthURL("state-1", party, rp.WithCodeChallenge(challenge), param("login_hint", "alice")))
	if p.Status != http.StatusFound {
		t.Fatalf("authorize: %d %s", p.Status, p.Body)
	}
	step := b.Follow(p)
	if !strings.Contains(step.Text(), "Example SSO") {
		t.Errorf("the step page does not name the app asking:\n%s", step.Text())
	}
	q := e.callbackParams(e.finish(b, alice, step))
	if q.Get("state") != "state-1" || q.Get("code") == "" || q.Get("iss") != e.ts.URL {
		t.Fatalf("callback %v", q)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	c := tokens.IDTokenClaims
	if c.Subject != alice.account.ID || c.PreferredUsername != "alice" || c.Email != "alice@example.com" {
		t.Errorf("sub %q preferred_username %q email %q", c.Subject, c.PreferredUsername, c.Email)
	}
	if c.AuthenticationContextClassReference != oidcop.ACRDevice || !slices.Equal(c.AuthenticationMethodsReferences, []string{"pop"}) {
		t.Errorf("acr %q amr %v, want %q [pop]", c.AuthenticationContextClassReference, c.AuthenticationMethodsReferences, oidcop.ACRDevice)
	}
	if at := c.AuthTime.AsTime(); at.Before(e.clock.Now().Add(-2*time.Second)) || at.After(e.clock.Now().Add(time.Second)) {
		t.Errorf("auth_time %v, want about %v", at, e.clock.Now())
	}
	if c.SignatureAlg != "ES256" {
		t.Errorf("signed with %s, want ES256", c.SignatureAlg)
	}
	info, err := rp.Userinfo[*oidc.UserInfo](ctx, tokens.AccessToken, tokens.TokenType, c.Subject, party)
	if err != nil || info.Subject != alice.account.ID {
		t.Fatalf("userinfo %+v, %v", info, err)
	}
}

// TestCodeFlowGoOIDC runs the code flow as coreos/go-oidc and
// x/oauth2 do, with a nonce, and verifies the ID token with go-oidc.
func TestCodeFlowGoOIDC(t *testing.T) {
	e := newEnv(t)
	bob := e.newUser("bob")
	ctx := context.Background()
	prov, err := gooidc.NewProvider(ctx, e.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	var claimsMeta struct {
		ACR    []string `json:"acr_values_supported"`
		Claims bool     `json:"claims_parameter_supported"`
	}
	if err := prov.Claims(&claimsMeta); err != nil || !slices.Contains(claimsMeta.ACR, oidcop.ACRDevice) || !claimsMeta.Claims {
		t.Errorf("discovery: %+v, %v", claimsMeta, err)
	}
	conf := oauth2.Config{ClientID: clientID, ClientSecret: clientSecret, RedirectURL: redirectURI, Endpoint: prov.Endpoint(), Scopes: []string{gooidc.ScopeOpenID}}
	verifier := oauth2.GenerateVerifier()
	b := steptest.NewBrowser(t)
	p := b.Get(conf.AuthCodeURL("st", gooidc.Nonce("n-0S6_WzA2Mj"), oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "bob")))
	q := e.callbackParams(e.finish(b, bob, b.Follow(p)))
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := prov.VerifierContext(ctx, &gooidc.Config{ClientID: clientID, SupportedSigningAlgs: []string{"ES256"}}).Verify(ctx, raw)
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
	if idt.Nonce != "n-0S6_WzA2Mj" || idt.Subject != bob.account.ID || c.ACR != oidcop.ACRDevice || !slices.Equal(c.AMR, []string{"pop"}) || c.AuthTime == 0 {
		t.Errorf("nonce %q sub %q claims %+v", idt.Nonce, idt.Subject, c)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
}

// TestCodeReuse: a code works once; the second exchange fails and revokes
// what the first gave, also when both race.
func TestCodeReuse(t *testing.T) {
	e := newEnv(t)
	alice := e.newUser("alice")
	b := steptest.NewBrowser(t)
	q := e.callbackParams(e.finish(b, alice, e.startStep(b, url.Values{"login_hint": {"alice"}})))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURI}}
	status, body := e.tokenRequest(form)
	if status != http.StatusOK {
		t.Fatalf("first exchange: %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal([]byte(body), &tok)
	if e.userinfo(tok.AccessToken) != http.StatusOK {
		t.Fatal("userinfo refused a fresh token")
	}
	status, body = e.tokenRequest(form)
	if status != http.StatusBadRequest || !strings.Contains(body, "invalid_grant") {
		t.Fatalf("second exchange: %d %s", status, body)
	}
	if got := e.userinfo(tok.AccessToken); got != http.StatusUnauthorized && got != http.StatusForbidden {
		t.Errorf("the first exchange's token still works after the code was reused: %d", got)
	}

	// Concurrent exchanges of one code: exactly one wins.
	q = e.callbackParams(e.finish(b, alice, e.startStep(b, url.Values{"login_hint": {"alice"}})))
	form.Set("code", q.Get("code"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			if s, _ := e.tokenRequest(form); s == http.StatusOK {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent exchanges of one code succeeded, want 1", wins)
	}
}

func (e *env) userinfo(accessToken string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCodeFlowOnPostgreSQL runs the whole flow, refresh included, on the
// PostgreSQL store (the store behind several instances of one issuer).
func TestCodeFlowOnPostgreSQL(t *testing.T) {
	e := newEnvWith(t, envOptions{postgres: true})
	alice := e.newUser("alice")
	verifier, challenge := pkce()
	b := steptest.NewBrowser(t)
	q := e.callbackParams(e.finish(b, alice, e.startStep(b, url.Values{"login_hint": {"alice"}, "scope": {"openid offline_access"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}})))
	status, body := e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}})
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %s", status, body)
	}
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil || tok.RefreshToken == "" {
		t.Fatalf("token response %s: %v", body, err)
	}
	if e.userinfo(tok.AccessToken) != http.StatusOK {
		t.Fatal("userinfo refused the token")
	}
	status, body = e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}})
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %s", status, body)
	}
	if status, _ = e.tokenRequest(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}); status != http.StatusBadRequest {
		t.Fatalf("code reused: %d", status)
	}
}
