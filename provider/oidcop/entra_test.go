package oidcop_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	gooidc "github.com/coreos/go-oidc/v3/oidc"

	"github.com/keystep/keystep/provider/oidcop"
	"github.com/keystep/keystep/provider/oidcop/oidctest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

const (
	entraClientID = "8b2b5d3c-entra-eam-app"
	entraTenant   = "72f988bf-86f1-41af-91ab-2d7cd011db47"
)

func entraClient(e *oidctest.Entra) oidcop.ClientConfig {
	return oidcop.ClientConfig{ID: entraClientID, Name: "Microsoft Entra ID", Profile: oidcop.ProfileEntra,
		Tenants: []string{entraTenant}, HintJWKSURL: e.KeysURL(), RedirectURIs: []string{oidctest.EntraRedirectURI}}
}

var entraAlice = oidctest.User{OID: "00000000-0000-0000-66f3-3332eca7ea81", Sub: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
	PreferredUsername: "alice@contoso.example", Name: "Alice"}

// entraPost posts Entra's authorization request and returns the answer.
func (e *env) entraPost(b *steptest.Browser, form url.Values) *steptest.Page {
	e.t.Helper()
	return b.Post(e.ts.URL+"/authorize", form)
}

// autoPosted reads the fields of an auto-posting form to Entra.
func autoPosted(t *testing.T, p *steptest.Page) url.Values {
	t.Helper()
	if p.Status != http.StatusOK {
		t.Fatalf("expected an auto-posting form, got %d (→ %q):\n%s", p.Status, p.Location, p.Body)
	}
	f := p.Form(t, oidctest.EntraRedirectURI)
	if f.Action != oidctest.EntraRedirectURI {
		t.Fatalf("form posts to %q", f.Action)
	}
	csp := p.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' https://login.microsoftonline.com") || strings.Contains(p.Body, "onload") {
		t.Errorf("auto-post page: CSP %q or inline handler", csp)
	}
	return f.Fields
}

// TestEntraExternalAuthMethod runs Entra ID's external authentication
// method request: an implicit id_token by form_post, named by an expired
// hint that Entra signed, with Entra's claims parameter.
func TestEntraExternalAuthMethod(t *testing.T) {
	entra := oidctest.NewEntra(t, entraTenant)
	e := newEnv(t, defaultClient(), entraClient(entra))
	alice := e.newUser("alice@contoso.example")
	ctx := context.Background()

	for round := range 2 { // the second round finds the account by its tid/oid link
		b := steptest.NewBrowser(t)
		hint := entra.Hint(t, entraClientID, entraAlice, nil)
		p := e.entraPost(b, entra.AuthorizeForm(entraClientID, hint, entraAlice.PreferredUsername, "nonce-1", "state-1"))
		if p.Status != http.StatusFound || !strings.Contains(p.Location, "/step/") {
			t.Fatalf("round %d: authorize answered %d → %q:\n%s", round, p.Status, p.Location, p.Body)
		}
		fields := autoPosted(t, e.finish(b, alice, b.Follow(p)))
		if fields.Get("state") != "state-1" || fields.Get("id_token") == "" || fields.Get("code") != "" {
			t.Fatalf("form_post fields %v", fields)
		}
		keys := gooidc.NewRemoteKeySet(ctx, e.ts.URL+"/keys")
		v := gooidc.NewVerifier(e.ts.URL, keys, &gooidc.Config{ClientID: entraClientID, SupportedSigningAlgs: []string{"RS256"}})
		idt, err := v.Verify(ctx, fields.Get("id_token"))
		if err != nil {
			t.Fatalf("verify the RS256 ID token: %v", err)
		}
		var c struct {
			ACR any      `json:"acr"`
			AMR []string `json:"amr"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != entraAlice.Sub || idt.Nonce != "nonce-1" {
			t.Errorf("sub %q nonce %q: sub must echo the hint's", idt.Subject, idt.Nonce)
		}
		if acr, ok := c.ACR.(string); !ok || acr != oidcop.ACRPossessionOrInherence {
			t.Errorf("acr %#v, want exactly %q", c.ACR, oidcop.ACRPossessionOrInherence)
		}
		if len(c.AMR) != 1 || !slices.Contains(oidctest.EntraAMRValues, c.AMR[0]) || c.AMR[0] != "pop" {
			t.Errorf("amr %v, want [pop]", c.AMR)
		}
	}
}

// TestEntraBadHints: a hint that cannot be trusted is refused by an
// auto-posted error, and no step begins.
func TestEntraBadHints(t *testing.T) {
	entra := oidctest.NewEntra(t, entraTenant)
	other := oidctest.NewEntra(t, "11111111-2222-3333-4444-555555555555")
	e := newEnv(t, entraClient(entra))
	alice := e.newUser("alice@contoso.example")
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"wrong audience":  entra.Hint(t, "another-app", entraAlice, nil),
		"other tenant":    other.Hint(t, entraClientID, entraAlice, nil),
		"forged":          entra.HintSignedBy(t, forger, entraClientID, entraAlice),
		"unknown user":    entra.Hint(t, entraClientID, oidctest.User{OID: "x", Sub: "y", PreferredUsername: "mallory@contoso.example"}, nil),
		"tenant mismatch": entra.Hint(t, entraClientID, entraAlice, map[string]any{"tid": "11111111-2222-3333-4444-555555555555"}),
		"missing":         "",
	}
	for name, hint := range cases {
		t.Run(name, func(t *testing.T) {
			b := steptest.NewBrowser(t)
			fields := autoPosted(t, e.entraPost(b, entra.AuthorizeForm(entraClientID, hint, entraAlice.PreferredUsername, "n", "s")))
			if fields.Get("error") == "" || fields.Get("id_token") != "" || fields.Get("state") != "s" {
				t.Errorf("fields %v, want an error with the state", fields)
			}
		})
	}
	if reqs, err := alice.phone.Pending(context.Background()); err != nil || len(reqs) != 0 {
		t.Errorf("a refused hint started a sign-in: %d pending, %v", len(reqs), err)
	}
}

// TestEntraDenyPostsError: a denial goes back to Entra as a posted
// access_denied.
func TestEntraDenyPostsError(t *testing.T) {
	entra := oidctest.NewEntra(t, entraTenant)
	e := newEnv(t, entraClient(entra))
	alice := e.newUser("alice@contoso.example")
	b := steptest.NewBrowser(t)
	p := e.entraPost(b, entra.AuthorizeForm(entraClientID, entra.Hint(t, entraClientID, entraAlice, nil), entraAlice.PreferredUsername, "n", "s"))
	step := b.Follow(p)
	alice.deny(t)
	denied := b.Submit(step.Form(t, "/finish"), nil)
	fields := autoPosted(t, b.Submit(denied.Form(t, "/abort"), nil))
	if fields.Get("error") != "access_denied" || fields.Get("state") != "s" {
		t.Errorf("fields %v", fields)
	}
}
