package oidcop

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/flows"
)

func sha256Sum(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// server is zitadel/oidc's LegacyServer with keystep's changes: its own
// Authorize (hints verified against the client's issuer, the claims
// parameter, no SSO session), PKCE enforced whenever a challenge was
// sent, the client's signing algorithm, private_key_jwt replay refused,
// and discovery and JWKS that say more.
type server struct {
	*op.LegacyServer
	p *Provider
}

// Authorize checks what the library leaves to us, names the user and
// sends the browser to the step page.
func (s *server) Authorize(ctx context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	c, ok := r.Client.(*client)
	if !ok {
		return nil, oidc.ErrServerError()
	}
	req := r.Data
	if req.RequestParam != "" {
		return nil, oidc.ErrRequestNotSupported().WithDescription("request objects are not supported")
	}
	if r.Form.Get("request_uri") != "" {
		e := oidc.ErrRequestNotSupported().WithDescription("request_uri is not supported")
		e.ErrorType = "request_uri_not_supported" // OpenID Connect Core §3.1.2.6
		return nil, e
	}
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		// keystep keeps no sign-in session: every request needs the step.
		return nil, oidc.ErrLoginRequired().WithDescription("the passwordless step needs the user; prompt=none cannot be met")
	}
	if req.ResponseType != oidc.ResponseTypeCode && req.Nonce == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("nonce is required for this response type")
	}
	if req.ResponseType != oidc.ResponseTypeCode && req.ResponseMode == oidc.ResponseModeQuery {
		// OAuth 2.0 Multiple Response Type Encoding Practices: no tokens in the query.
		return nil, oidc.ErrInvalidRequest().WithDescription("response_mode=query cannot carry an ID token")
	}
	if m := req.ResponseMode; m != "" && m != oidc.ResponseModeQuery && m != oidc.ResponseModeFragment && m != oidc.ResponseModeFormPost {
		return nil, oidc.ErrInvalidRequest().WithDescription("unsupported response_mode")
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("only the S256 code challenge method is supported")
	}
	for _, v := range []string{req.State, req.Nonce, req.LoginHint} {
		if len(v) > 2048 {
			return nil, oidc.ErrInvalidRequest().WithDescription("a parameter is too long")
		}
	}
	policy, err := parsePolicy(&c.cfg, req.ACRValues, r.Form.Get("claims"))
	if err != nil {
		if errors.Is(err, errBadClaims) {
			return nil, oidc.ErrInvalidRequest().WithDescription("%s", err.Error())
		}
		return nil, oidc.ErrAccessDenied().WithDescription("%s", err.Error())
	}
	a, subject, link, err := s.p.nameUser(ctx, c, req)
	if err != nil {
		return nil, err
	}
	data := requestData{
		Scopes: req.Scopes, ResponseType: req.ResponseType, ResponseMode: req.ResponseMode, RedirectURI: req.RedirectURI,
		State: req.State, Nonce: req.Nonce, UILocales: localeStrings(req.UILocales), Policy: policy,
		ClientRequestID: clip(r.Form.Get("client-request-id"), 64), Link: link,
	}
	if req.CodeChallenge != "" {
		data.CodeChallenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	id, err := s.p.createRequest(ctx, c, a, subject, data)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	s.p.log.InfoContext(ctx, "auth request", "id", id, "client_id", c.cfg.ID, "account", a.ID, "client_request_id", data.ClientRequestID)
	return op.NewRedirect(s.p.stepURL(id)), nil
}

// authorizeParams are the parameters of /authorize that the library or
// keystep reads.
var authorizeParams = map[string]bool{
	"scope": true, "response_type": true, "client_id": true, "redirect_uri": true, "state": true, "nonce": true,
	"response_mode": true, "display": true, "prompt": true, "max_age": true, "ui_locales": true, "id_token_hint": true,
	"login_hint": true, "acr_values": true, "code_challenge": true, "code_challenge_method": true, "request": true,
	"request_uri": true, "claims": true, "client-request-id": true,
}

// canonicalParams drops the parameters of form that differ from a known
// one only in case (an unknown parameter is ignored, RFC 6749 §3.1; the
// library's decoder would take it for the known one, and the last of them
// in map order would win), and returns the name of a known parameter
// given more than once (RFC 6749 §3.1 forbids it; the library would take
// the last value and keystep's own checks the first), or "".
func canonicalParams(form url.Values) string {
	for k := range form {
		if lk := strings.ToLower(k); lk != k && authorizeParams[lk] {
			delete(form, k)
		}
	}
	for k, vs := range form {
		if authorizeParams[k] && len(vs) > 1 {
			return k
		}
	}
	return ""
}

func localeStrings(ls oidc.Locales) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.String())
	}
	return out
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// CodeExchange is the library's, with PKCE enforced whenever the request
// carried a challenge (the library checks it only for public clients or
// when a verifier is sent) and the ID token signed with the client's
// algorithm.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	authReq, err := op.AuthRequestByCode(ctx, s.p.op.Storage(), r.Data.Code)
	if err != nil {
		return nil, err
	}
	if authReq.GetCodeChallenge() != nil || r.Data.CodeVerifier != "" {
		if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, authReq.GetCodeChallenge()); err != nil {
			// A missing, unexpected or wrong verifier: the grant is not
			// this client's to redeem (RFC 7636 §4.6).
			return nil, oidc.ErrInvalidGrant().WithDescription("%s", oidc.DefaultToServerError(err, "").Description)
		}
	}
	if r.Client.GetID() != authReq.GetClientID() {
		return nil, oidc.ErrInvalidGrant()
	}
	if r.Data.RedirectURI != authReq.GetRedirectURI() {
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not correspond")
	}
	resp, err := op.CreateTokenResponse(withClient(ctx, r.Client.GetID()), authReq, r.Client, s.p.op, true, r.Data.Code, "")
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// RefreshToken is the library's, signing with the client's algorithm.
func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	return s.LegacyServer.RefreshToken(withClient(ctx, r.Client.GetID()), r)
}

// VerifyClient is the library's, refusing a private_key_jwt assertion
// that was used before (the library checks no jti), and answering every
// failed authentication with invalid_client and 401 (RFC 6749 §5.2; the
// library says 400, or invalid_grant for a bad assertion).
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	c, err := s.verifyClient(ctx, r)
	if err != nil {
		e := oidc.DefaultToServerError(err, "client authentication failed")
		if e.ErrorType == oidc.ServerError || e.ErrorType == oidc.UnsupportedGrantType {
			return nil, err
		}
		return nil, op.NewStatusError(oidc.ErrInvalidClient().WithDescription("%s", e.Description).WithParent(err), http.StatusUnauthorized)
	}
	return c, nil
}

func (s *server) verifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if r.Data.ClientAssertionType != oidc.ClientAssertionTypeJWTAssertion {
		return s.LegacyServer.VerifyClient(ctx, r)
	}
	c, err := s.LegacyServer.VerifyClient(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := s.useAssertion(ctx, c.GetID(), r.Data.ClientAssertion); err != nil {
		return nil, err
	}
	return c, nil
}

// useAssertion records the jti of a client assertion whose signature the
// library has verified, so that it works once (RFC 7523 §3, item 7).
func (s *server) useAssertion(ctx context.Context, clientID, assertion string) error {
	jws, err := jose.ParseSignedCompact(assertion, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.ES384, jose.RS384, jose.EdDSA})
	if err != nil {
		return oidc.ErrInvalidClient().WithDescription("client assertion cannot be parsed")
	}
	var claims struct {
		JTI string    `json:"jti"`
		Exp oidc.Time `json:"exp"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil || claims.JTI == "" {
		return oidc.ErrInvalidClient().WithDescription("client assertion needs a jti")
	}
	exp := claims.Exp.AsTime()
	if max := s.p.clock.Now().Add(time.Hour); exp.After(max) || exp.IsZero() {
		exp = max
	}
	if err := s.p.store().UseNonce(ctx, "client-assertion:"+clientID+":"+claims.JTI, exp); err != nil {
		if errors.Is(err, flows.ErrReplay) {
			return oidc.ErrInvalidClient().WithDescription("client assertion was already used")
		}
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// Introspect is the library's, which authenticates a resource client by
// itself (not through VerifyClient): a client assertion's jti is recorded
// here too, once the library has accepted the assertion.
func (s *server) Introspect(ctx context.Context, r *op.Request[op.IntrospectionRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.Introspect(ctx, r)
	if err != nil || r.Data.ClientCredentials == nil || r.Data.ClientAssertion == "" {
		return resp, err
	}
	clientID := r.Data.ClientID
	if jws, perr := jose.ParseSignedCompact(r.Data.ClientAssertion, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256, jose.ES384, jose.RS384, jose.EdDSA}); perr == nil {
		var claims struct {
			Sub string `json:"sub"`
		}
		if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims) == nil && claims.Sub != "" {
			clientID = claims.Sub // the assertion's subject is the client (RFC 7523 §3)
		}
	}
	if err := s.useAssertion(ctx, clientID, r.Data.ClientAssertion); err != nil {
		return nil, op.NewStatusError(oidc.DefaultToServerError(err, "client authentication failed"), http.StatusUnauthorized)
	}
	return resp, nil
}

// Discovery adds what keystep offers beyond the library's defaults.
func (s *server) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	if d, ok := resp.Data.(*oidc.DiscoveryConfiguration); ok {
		d.ACRValuesSupported = ACRValuesSupported
		d.ResponseModesSupported = []string{"query", "fragment", "form_post"}
		d.ClaimsParameterSupported = true
		d.RequestParameterSupported = false
		d.RequestURIParameterSupported = false
		d.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
		d.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode), string(oidc.ResponseTypeIDTokenOnly)}
		d.GrantTypesSupported = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeImplicit}
		d.TokenEndpointAuthMethodsSupported = []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost, oidc.AuthMethodPrivateKeyJWT}
		d.RevocationEndpointAuthMethodsSupported = d.TokenEndpointAuthMethodsSupported
		for _, c := range []string{"acr", "amr", "auth_time", "nonce"} {
			if !slices.Contains(d.ClaimsSupported, c) {
				d.ClaimsSupported = append(d.ClaimsSupported, c)
			}
		}
	}
	return resp, nil
}

// Keys publishes every key with its certificate (x5c) and thumbprints.
func (s *server) Keys(ctx context.Context, _ *op.Request[struct{}]) (*op.Response, error) {
	set, err := s.p.keys.jwks(ctx)
	if err != nil {
		return nil, op.AsStatusError(err, 500)
	}
	resp := op.NewResponse(set)
	resp.Header.Set("Cache-Control", "public, max-age=300")
	return resp, nil
}
