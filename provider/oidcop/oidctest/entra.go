// Package oidctest has test doubles of the identity providers that send
// users to keystep's OpenID Provider: a fake Microsoft Entra ID that
// serves a key set and signs id_token_hints exactly in Entra's format.
package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // x5t is a SHA-1 thumbprint by definition
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// EntraRedirectURI is where Entra ID receives an external authentication
// method's answer.
const EntraRedirectURI = "https://login.microsoftonline.com/common/federation/externalauthprovider"

// EntraAMRValues is the amr list Entra ID asks for.
var EntraAMRValues = []string{"face", "fido", "fpt", "hwk", "iris", "otp", "pop", "retina", "sc", "sms", "swk", "tel", "vbm"}

// Entra is a fake Microsoft Entra ID: a key set served over HTTP (with
// Entra's extra members) and the id_token_hints Entra would send.
type Entra struct {
	Server   *httptest.Server
	TenantID string
	key      *rsa.PrivateKey
	kid      string
	cert     *x509.Certificate
	fetches  atomic.Int64
}

// Fetches is how many times the key set was fetched.
func (e *Entra) Fetches() int { return int(e.fetches.Load()) }

// NewEntra starts a fake Entra for one tenant; it stops with the test.
func NewEntra(t testing.TB, tenantID string) *Entra {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "accounts.accesscontrol.windows.net"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	th := sha1.Sum(der) //nolint:gosec // thumbprint
	e := &Entra{TenantID: tenantID, key: key, cert: cert, kid: base64.RawURLEncoding.EncodeToString(th[:])}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serveKeys))
	t.Cleanup(e.Server.Close)
	return e
}

// KeysURL is the fake's JWKS endpoint.
func (e *Entra) KeysURL() string { return e.Server.URL + "/common/discovery/v2.0/keys" }

// Issuer is the tenant's issuer, as in Entra's v2.0 tokens.
func (e *Entra) Issuer() string { return "https://login.microsoftonline.com/" + e.TenantID + "/v2.0" }

// serveKeys answers the key set as Entra does: RSA keys with kid, x5t,
// x5c and an issuer member.
func (e *Entra) serveKeys(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/common/discovery/v2.0/keys" {
		http.NotFound(w, r)
		return
	}
	e.fetches.Add(1)
	n := base64.RawURLEncoding.EncodeToString(e.key.N.Bytes())
	ev := base64.RawURLEncoding.EncodeToString(big.NewInt(int64(e.key.E)).Bytes())
	keys := map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "kid": e.kid, "x5t": e.kid, "n": n, "e": ev,
		"x5c": []string{base64.StdEncoding.EncodeToString(e.cert.Raw)}, "cloud_instance_name": "microsoftonline.com",
		"issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
	}}}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(keys)
}

// User is an Entra user, as the hint names them.
type User struct {
	OID               string // object id
	Sub               string // pairwise subject for the EAM app
	PreferredUsername string // UPN
	Name              string
}

// Hint signs an id_token_hint for user, addressed to the EAM app clientID,
// as Entra does: RS256, its kid and x5t in the header, and already
// expired (Entra's hints are). Extra claims override the defaults.
func (e *Entra) Hint(t testing.TB, clientID string, u User, extra map[string]any) string {
	t.Helper()
	return e.sign(t, e.key, e.kid, clientID, u, extra)
}

// HintSignedBy is Hint signed by another key that claims the same kid (a forgery).
func (e *Entra) HintSignedBy(t testing.TB, key *rsa.PrivateKey, clientID string, u User) string {
	t.Helper()
	return e.sign(t, key, e.kid, clientID, u, nil)
}

// HintWithKid is a forgery signed by key and naming key id kid.
func (e *Entra) HintWithKid(t testing.TB, key *rsa.PrivateKey, kid, clientID string, u User) string {
	t.Helper()
	return e.sign(t, key, kid, clientID, u, nil)
}

func (e *Entra) sign(t testing.TB, key *rsa.PrivateKey, kid, clientID string, u User, extra map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"ver": "2.0", "iss": e.Issuer(), "sub": u.Sub, "aud": clientID,
		"exp": now.Add(-time.Minute).Unix(), "iat": now.Add(-10 * time.Minute).Unix(), "nbf": now.Add(-10 * time.Minute).Unix(),
		"name": u.Name, "preferred_username": u.PreferredUsername, "oid": u.OID, "tid": e.TenantID,
		"aio": "AWQAm/8TAAAA", "uti": "tVOIG5Kn3EKG4ZS1q4nEAA", "rh": "0.AQcA",
	}
	for k, v := range extra {
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid).WithHeader("x5t", e.kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// EntraClaims is the claims parameter Entra sends.
func EntraClaims() string {
	b, _ := json.Marshal(map[string]any{"id_token": map[string]any{
		"acr": map[string]any{"essential": true, "values": []string{"possessionorinherence"}},
		"amr": map[string]any{"essential": true, "values": EntraAMRValues},
	}})
	return string(b)
}

// AuthorizeForm is the form Entra POSTs to the provider's authorization
// endpoint for an external authentication method.
func (e *Entra) AuthorizeForm(clientID, hint, upn, nonce, state string) url.Values {
	return url.Values{
		"scope": {"openid"}, "response_mode": {"form_post"}, "response_type": {"id_token"},
		"client_id": {clientID}, "redirect_uri": {EntraRedirectURI}, "nonce": {nonce}, "state": {state},
		"claims": {EntraClaims()}, "id_token_hint": {hint}, "login_hint": {upn},
		"client-request-id": {"6c5ea5a4-2d30-4ff5-9d4d-000000000001"},
	}
}
