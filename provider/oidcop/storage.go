package oidcop

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/flows"
)

// storage is op.Storage over the keystep store: every instance on one
// PostgreSQL database serves the same issuer.
type storage struct{ p *Provider }

var (
	_ op.Storage                   = storage{}
	_ op.CanSetUserinfoFromRequest = storage{}
)

// errNoSuchClient is an unknown client id.
var errNoSuchClient = errors.New("no such client")

type clientCtxKey struct{}

// withClient tells SigningKey which client the token is for.
func withClient(ctx context.Context, clientID string) context.Context {
	return context.WithValue(ctx, clientCtxKey{}, clientID)
}

func (s storage) now() time.Time { return s.p.clock.Now().UTC() }

// CreateAuthRequest is not used: Authorize stores requests itself, with
// the account the request names. It refuses, so that nothing slips past.
func (s storage) CreateAuthRequest(context.Context, *oidc.AuthRequest, string) (op.AuthRequest, error) {
	return nil, errors.New("auth requests are created by keystep's Authorize")
}

// AuthRequestByID returns a stored request.
func (s storage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	fr, err := s.p.store().GetAuthRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("auth request: %w", err)
	}
	return newAuthRequest(fr)
}

// codeTTL is how long an authorization code can be exchanged.
const codeTTL = time.Minute

// AuthRequestByCode redeems a code, once. A second use revokes every token
// the first one gave (RFC 6749 §4.1.2).
func (s storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	now := s.now()
	fr, err := s.p.store().RedeemAuthCode(ctx, flows.HashSecret(code), now)
	if errors.Is(err, flows.ErrAlreadyUsed) {
		n, rerr := s.p.store().RevokeGrant(ctx, fr.ID, now)
		s.p.log.WarnContext(ctx, "authorization code used twice: its tokens are revoked", "auth_request", fr.ID, "client_id", fr.ClientID, "revoked", n, "err", rerr)
		return nil, fmt.Errorf("code was already used: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("code: %w", err)
	}
	if now.After(fr.DoneAt.Add(codeTTL)) || now.After(fr.ExpiresAt) {
		return nil, errors.New("code has expired")
	}
	if err := s.p.accountActive(ctx, fr.AccountID); err != nil {
		n, _ := s.p.store().RevokeGrant(ctx, fr.ID, now)
		s.p.log.InfoContext(ctx, "code refused: the account is no longer active", "auth_request", fr.ID, "revoked", n)
		return nil, err
	}
	return newAuthRequest(fr)
}

// SaveAuthCode stores the hash of the code issued for a done request.
func (s storage) SaveAuthCode(ctx context.Context, id, code string) error {
	return s.p.store().SaveAuthCode(ctx, id, flows.HashSecret(code))
}

// DeleteAuthRequest keeps the request: it stays findable by its code so
// that a second use of the code can revoke the grant; it expires on its own.
func (s storage) DeleteAuthRequest(context.Context, string) error { return nil }

// grantOf describes the sign-in a token request comes from.
func grantOf(req op.TokenRequest) (t flows.OIDCToken, ok bool) {
	switch r := req.(type) {
	case *authRequest:
		return flows.OIDCToken{GrantID: r.ID, ClientID: r.ClientID, Subject: r.Subject, AccountID: r.AccountID,
			Scopes: r.data.Scopes, Audience: []string{r.ClientID}, ACR: r.ACR, AMR: r.AMR, AuthTime: r.AuthTime}, true
	case *refreshRequest:
		t := r.tok
		t.Scopes = r.scopes
		return t, true
	}
	return flows.OIDCToken{}, false
}

func (s storage) newToken(req op.TokenRequest) (flows.OIDCToken, *client, error) {
	t, ok := grantOf(req)
	if !ok {
		return t, nil, fmt.Errorf("unsupported token request %T", req)
	}
	c := s.p.clients[t.ClientID]
	if c == nil {
		return t, nil, errNoSuchClient
	}
	now := s.now()
	t.ID, t.CreatedAt, t.ExpiresAt, t.RevokedAt = flows.NewID(), now, now.Add(c.cfg.AccessTokenLifetime), time.Time{}
	t.RefreshHash, t.RefreshExp = nil, time.Time{}
	return t, c, nil
}

// CreateAccessToken stores an access token (opaque to clients).
func (s storage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	t, _, err := s.newToken(req)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.p.store().CreateOIDCToken(ctx, t); err != nil {
		return "", time.Time{}, err
	}
	return t.ID, t.ExpiresAt, nil
}

// CreateAccessAndRefreshTokens stores an access token and a new refresh
// token; given the current refresh token, it rotates it, once.
func (s storage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	t, c, err := s.newToken(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	refresh := flows.NewSecret(32)
	t.RefreshHash = flows.HashSecret(refresh)
	if rr, ok := req.(*refreshRequest); ok {
		t.RefreshExp = rr.tok.RefreshExp // rotation does not extend the grant
	} else {
		t.RefreshExp = t.CreatedAt.Add(c.cfg.RefreshTokenLifetime)
	}
	if current == "" {
		err = s.p.store().CreateOIDCToken(ctx, t)
	} else {
		err = s.p.store().RotateRefreshToken(ctx, flows.HashSecret(current), t, t.CreatedAt)
	}
	if err != nil {
		return "", "", time.Time{}, err
	}
	return t.ID, refresh, t.ExpiresAt, nil
}

// TokenRequestByRefreshToken finds the grant of a refresh token. A
// refresh token used after it was rotated revokes the whole grant (it
// was stolen, or the client is broken), and so does an account that is
// no longer active.
func (s storage) TokenRequestByRefreshToken(ctx context.Context, refresh string) (op.RefreshTokenRequest, error) {
	now := s.now()
	t, err := s.p.store().GetOIDCTokenByRefresh(ctx, flows.HashSecret(refresh))
	if err != nil {
		return nil, op.ErrInvalidRefreshToken
	}
	if t.Revoked() {
		n, _ := s.p.store().RevokeGrant(ctx, t.GrantID, now)
		s.p.log.WarnContext(ctx, "a rotated refresh token was used again: its grant is revoked", "client_id", t.ClientID, "grant", t.GrantID, "revoked", n)
		return nil, op.ErrInvalidRefreshToken
	}
	if !now.Before(t.RefreshExp) {
		return nil, op.ErrInvalidRefreshToken
	}
	if err := s.p.accountActive(ctx, t.AccountID); err != nil {
		_, _ = s.p.store().RevokeGrant(ctx, t.GrantID, now)
		return nil, op.ErrInvalidRefreshToken
	}
	return &refreshRequest{tok: t, scopes: t.Scopes}, nil
}

// TerminateSession: keystep keeps no login session to end; the tokens of
// the subject for the client stay until they expire or are revoked.
func (s storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken revokes a refresh token (with its grant) or an access token.
func (s storage) RevokeToken(ctx context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	now := s.now()
	if t, err := s.p.store().GetOIDCTokenByRefresh(ctx, flows.HashSecret(tokenOrID)); err == nil {
		if t.ClientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("the token belongs to another client")
		}
		if _, err := s.p.store().RevokeGrant(ctx, t.GrantID, now); err != nil {
			return oidc.ErrServerError()
		}
		return nil
	}
	t, err := s.p.store().GetOIDCToken(ctx, tokenOrID)
	if errors.Is(err, flows.ErrNotFound) || errors.Is(err, flows.ErrInvalid) {
		return nil // RFC 7009 §2.2: an unknown token is not an error
	}
	if err != nil {
		return oidc.ErrServerError()
	}
	if t.ClientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("the token belongs to another client")
	}
	if err := s.p.store().RevokeOIDCToken(ctx, t.ID, now); err != nil {
		return oidc.ErrServerError()
	}
	return nil
}

// GetRefreshTokenInfo names the subject and token of a refresh token.
func (s storage) GetRefreshTokenInfo(ctx context.Context, clientID, token string) (string, string, error) {
	t, err := s.p.store().GetOIDCTokenByRefresh(ctx, flows.HashSecret(token))
	if err != nil || t.ClientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return t.Subject, t.ID, nil
}

// SigningKey is the key for the client in ctx (ES256 unless it asks RS256).
func (s storage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	alg := jose.ES256
	if id, _ := ctx.Value(clientCtxKey{}).(string); id != "" {
		if c := s.p.clients[id]; c != nil {
			alg = jose.SignatureAlgorithm(c.cfg.SigningAlg)
		}
	}
	return s.p.keys.signer(ctx, alg)
}

// SignatureAlgorithms lists the ID token signing algorithms.
func (s storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return slices.Clone(signingAlgs), nil
}

// KeySet is every published key.
func (s storage) KeySet(ctx context.Context) ([]op.Key, error) { return s.p.keys.keySet(ctx) }

// GetClientByClientID returns a configured client.
func (s storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c := s.p.clients[id]
	if c == nil {
		// An oidc error: the library makes any other a server error (500).
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client").WithParent(errNoSuchClient)
	}
	return c, nil
}

// AuthorizeClientIDSecret checks a client secret in constant time.
func (s storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c := s.p.clients[id]
	if c == nil || !c.checkSecret(secret) {
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	return nil
}

// SetUserinfoFromScopes does nothing: SetUserinfoFromRequest does it all.
func (s storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token's subject (the library
// overwrites sub with it), the profile and email claims the scopes ask
// for, and, for a refreshed ID token, the acr of the original sign-in.
func (s storage) SetUserinfoFromRequest(ctx context.Context, u *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	u.Subject = req.GetSubject()
	var accountID string
	switch r := req.(type) {
	case *authRequest:
		accountID = r.AccountID
	case *refreshRequest:
		accountID = r.tok.AccountID
		if r.tok.ACR != "" {
			u.AppendClaims("acr", r.tok.ACR)
		}
	}
	return s.p.profileClaims(ctx, u, accountID, scopes)
}

// SetUserinfoFromToken answers the userinfo endpoint for a live token.
func (s storage) SetUserinfoFromToken(ctx context.Context, u *oidc.UserInfo, tokenID, subject, _ string) error {
	t, err := s.liveToken(ctx, tokenID, subject)
	if errors.Is(err, errTokenInactive) || errors.Is(err, flows.ErrNotFound) || errors.Is(err, flows.ErrInvalid) ||
		errors.Is(err, flows.ErrAccountSuspended) || errors.Is(err, flows.ErrAccountRemoved) {
		// The client's token is no good: not a server error (which the
		// library would answer and log as one).
		return oidc.ErrAccessDenied().WithDescription("the access token is not active").WithParent(err)
	}
	if err != nil {
		return err
	}
	u.Subject = t.Subject
	return s.p.profileClaims(ctx, u, t.AccountID, t.Scopes)
}

// errTokenInactive is a token that is revoked, expired or another's.
var errTokenInactive = errors.New("token is revoked or expired")

// liveToken returns an access token that is neither revoked nor expired,
// of the given subject, whose account is active.
func (s storage) liveToken(ctx context.Context, tokenID, subject string) (flows.OIDCToken, error) {
	t, err := s.p.store().GetOIDCToken(ctx, tokenID)
	if err != nil {
		return t, fmt.Errorf("token: %w", err)
	}
	if t.Revoked() || !s.now().Before(t.ExpiresAt) || t.Subject != subject {
		return t, errTokenInactive
	}
	if err := s.p.accountActive(ctx, t.AccountID); err != nil {
		return t, err
	}
	return t, nil
}

// SetIntrospectionFromToken answers introspection; an invalid token is
// simply inactive.
func (s storage) SetIntrospectionFromToken(ctx context.Context, r *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	t, err := s.liveToken(ctx, tokenID, subject)
	if err != nil || !slices.Contains(t.Audience, clientID) && t.ClientID != clientID {
		// The library answers active:false only when this is an error.
		r.Active = false
		return errors.New("token is not active")
	}
	r.Active, r.Subject, r.ClientID, r.Scope = true, t.Subject, t.ClientID, t.Scopes
	r.TokenType, r.Audience, r.AuthTime = oidc.BearerToken, t.Audience, oidc.FromTime(t.AuthTime)
	r.Expiration, r.IssuedAt, r.AuthenticationMethodsReferences = oidc.FromTime(t.ExpiresAt), oidc.FromTime(t.CreatedAt), t.AMR
	if t.ACR != "" {
		r.Claims = map[string]any{"acr": t.ACR}
	}
	return nil
}

// GetPrivateClaimsFromScopes adds nothing to access tokens (they are opaque).
func (s storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID returns a key of a private_key_jwt client.
func (s storage) GetKeyByIDAndClientID(ctx context.Context, keyID, clientID string) (*jose.JSONWebKey, error) {
	c := s.p.clients[clientID]
	if c == nil || c.keys == nil {
		return nil, errNoSuchClient
	}
	return c.keys.key(ctx, keyID)
}

// ValidateJWTProfileScopes: the JWT profile grant is not offered.
func (s storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

// Health pings the store.
func (s storage) Health(ctx context.Context) error {
	_, err := s.p.store().ListKeys(ctx, flows.KeyUseOIDC, s.now())
	return err
}
