package oidcop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/flows"
)

// staticKeySet is a key set read from a file once.
type staticKeySet struct{ keys []jose.JSONWebKey }

// loadKeySetFile reads a JWKS file.
func loadKeySetFile(path string) (*staticKeySet, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key set file: %w", err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("key set file %s: %w", path, err)
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("key set file %s: no keys", path)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, fmt.Errorf("key set file %s: key %q is private; give only public keys", path, k.KeyID)
		}
	}
	return &staticKeySet{keys: set.Keys}, nil
}

// VerifySignature checks a JWS with the key its header names.
func (s *staticKeySet) VerifySignature(_ context.Context, jws *jose.JSONWebSignature) ([]byte, error) {
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must have exactly one signature")
	}
	h := jws.Signatures[0].Header
	key, err := oidc.FindMatchingKey(h.KeyID, oidc.KeyUseSignature, h.Algorithm, s.keys...)
	if err != nil {
		return nil, fmt.Errorf("no key of the set verifies this token: %w", err)
	}
	return jws.Verify(&key)
}

// keySetFor returns the key set at a URL or in a file.
func keySetFor(hc *http.Client, clock flows.Clock, url, file string) (oidc.KeySet, error) {
	if file != "" {
		return loadKeySetFile(file)
	}
	return newClientKeys(hc, clock, url, "")
}

// hintVerifier checks the id_token_hint a client sends: signed by the
// client's issuer (its key set), for the right audience. An expired hint
// is accepted (Entra sends expired ones): it names the user, it does not
// authenticate them; the step does.
type hintVerifier struct {
	cfg      *ClientConfig
	verifier *op.IDTokenHintVerifier
}

func newHintVerifier(hc *http.Client, clock flows.Clock, cfg *ClientConfig) (*hintVerifier, error) {
	ks, err := keySetFor(hc, clock, cfg.HintJWKSURL, cfg.HintJWKSFile)
	if err != nil {
		return nil, fmt.Errorf("client %s: hint keys: %w", cfg.ID, err)
	}
	v := op.NewIDTokenHintVerifier(cfg.HintIssuer, ks, op.WithSupportedIDTokenHintSigningAlgorithms("RS256", "ES256", "PS256", "ES384", "RS384", "ES512", "RS512", "EdDSA"))
	if strings.Contains(cfg.HintIssuer, "{tid}") {
		v.ISS = func(iss string) error {
			for _, t := range cfg.Tenants {
				if iss == strings.ReplaceAll(cfg.HintIssuer, "{tid}", t) {
					return nil
				}
			}
			return fmt.Errorf("%w: %q is not the issuer of an allowed tenant", oidc.ErrIssuerInvalid, iss)
		}
	}
	return &hintVerifier{cfg: cfg, verifier: v}, nil
}

// errBadHint is a hint that cannot be trusted.
var errBadHint = errors.New("id_token_hint is not valid")

// verify returns the hint's claims once its signature, issuer, audience
// (and tenant) are right.
func (h *hintVerifier) verify(ctx context.Context, hint string) (*oidc.IDTokenClaims, error) {
	if hint == "" {
		return nil, fmt.Errorf("%w: missing", errBadHint)
	}
	if len(hint) > 16<<10 {
		return nil, fmt.Errorf("%w: too long", errBadHint)
	}
	claims, err := op.VerifyIDTokenHint[*oidc.IDTokenClaims](ctx, hint, h.verifier)
	if err != nil && !errors.As(err, &op.IDTokenHintExpiredError{}) {
		return nil, fmt.Errorf("%w: %v", errBadHint, err)
	}
	if claims == nil {
		return nil, fmt.Errorf("%w: no claims", errBadHint)
	}
	if !slices.Contains(claims.Audience, h.cfg.HintAudience) {
		return nil, fmt.Errorf("%w: audience is not %q", errBadHint, h.cfg.HintAudience)
	}
	if len(h.cfg.Tenants) > 0 {
		tid := claimString(claims, "tid")
		if !slices.Contains(h.cfg.Tenants, tid) || claims.Issuer != strings.ReplaceAll(h.cfg.HintIssuer, "{tid}", tid) {
			return nil, fmt.Errorf("%w: tenant %q is not allowed or does not match the issuer", errBadHint, tid)
		}
	}
	if claims.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", errBadHint)
	}
	return claims, nil
}

// claimString reads one string claim of a hint.
func claimString(c *oidc.IDTokenClaims, name string) string {
	switch name {
	case "sub":
		return c.Subject
	case "preferred_username":
		return c.PreferredUsername
	case "email":
		return c.Email
	}
	s, _ := c.Claims[name].(string)
	return s
}
