package hostidp

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Lifetimes of what the storage keeps.
const (
	requestTTL     = 10 * time.Minute // a user has this long to sign in
	codeTTL        = time.Minute      // an authorization code can be exchanged this long
	accessTokenTTL = 10 * time.Minute
	idTokenTTL     = 5 * time.Minute
	// maxRequests bounds the auth requests kept at once (the expired ones
	// are dropped first).
	maxRequests = 10000
)

// authRequest is an auth request and where its login stands. The storage
// hands out copies, so the library never reads one that changes.
type authRequest struct {
	id           string
	clientID     string
	redirectURI  string
	state        string
	nonce        string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	createdAt    time.Time

	// The login.
	browser  [32]byte // the hash of the browser's binding cookie (zero: not bound yet)
	username string   // the user named on the username form
	tx       *txView  // the step begun for the user (nil: none yet)

	// The outcome: set once, when the step approved the user.
	done              bool
	subject           string // keystep's account id
	preferredUsername string // the username shown for the account
	authTime          time.Time
	amr               []string

	code       string    // the authorization code issued (one per request)
	codeIssued time.Time // when: the code can be exchanged for codeTTL
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return a.amr }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.done }

func (a *authRequest) expired(now time.Time) bool { return now.Sub(a.createdAt) > requestTTL }

// accessToken is an opaque access token's grant.
type accessToken struct {
	clientID          string
	subject           string
	preferredUsername string
	scopes            []string
	authTime          time.Time
	expiresAt         time.Time
}

// storage is op.Storage in memory: one client, one RSA signing key.
type storage struct {
	client *client
	key    *rsa.PrivateKey
	keyID  string

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string // code → auth request id
	tokens   map[string]*accessToken
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(c *client, key *rsa.PrivateKey, keyID string) *storage {
	return &storage{client: c, key: key, keyID: keyID, requests: map[string]*authRequest{},
		codes: map[string]string{}, tokens: map[string]*accessToken{}}
}

// errNotFound is an auth request that is unknown, expired or used up.
var errNotFound = errors.New("no such auth request")

// purge drops what has expired; s.mu is held.
func (s *storage) purge(now time.Time) {
	for id, a := range s.requests {
		if a.expired(now) {
			delete(s.requests, id)
			if a.code != "" {
				delete(s.codes, a.code)
			}
		}
	}
	for id, t := range s.tokens {
		if !now.Before(t.expiresAt) {
			delete(s.tokens, id)
		}
	}
}

// CreateAuthRequest keeps a checked request from /authorize.
func (s *storage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	now := time.Now()
	a := &authRequest{id: randomID(), clientID: r.ClientID, redirectURI: r.RedirectURI, state: r.State, nonce: r.Nonce,
		scopes: slices.Clone([]string(r.Scopes)), responseType: r.ResponseType, responseMode: r.ResponseMode, createdAt: now}
	if r.CodeChallenge != "" {
		a.challenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) >= maxRequests {
		s.purge(now)
		if len(s.requests) >= maxRequests {
			return nil, errors.New("too many sign-ins in progress")
		}
	}
	s.requests[a.id] = a
	c := *a
	return &c, nil
}

// request returns a copy of a live auth request.
func (s *storage) request(id string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.requests[id]
	if a == nil || a.expired(time.Now()) {
		return nil, errNotFound
	}
	c := *a
	return &c, nil
}

// update changes a live auth request under the lock; fn's error is
// returned and nothing else happens.
func (s *storage) update(id string, fn func(*authRequest) error) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.requests[id]
	if a == nil || a.expired(time.Now()) {
		return nil, errNotFound
	}
	if err := fn(a); err != nil {
		return nil, err
	}
	c := *a
	return &c, nil
}

// drop forgets an auth request (it was answered with an error).
func (s *storage) drop(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.requests[id]; a != nil && a.code != "" {
		delete(s.codes, a.code)
	}
	delete(s.requests, id)
}

// dropIf forgets an auth request if drop says so of the live one, under
// the lock; it reports whether it did (or the request was gone already).
func (s *storage) dropIf(id string, drop func(*authRequest) bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.requests[id]
	if a == nil {
		return true
	}
	if !drop(a) {
		return false
	}
	if a.code != "" {
		delete(s.codes, a.code)
	}
	delete(s.requests, id)
	return true
}

// AuthRequestByID returns a copy of a live auth request.
func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	return s.request(id)
}

// AuthRequestByCode redeems a code, once: the code is forgotten at once,
// so a second use finds nothing.
func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is unknown, used or expired")
	}
	delete(s.codes, code)
	a := s.requests[id]
	if a == nil || !a.done || time.Since(a.codeIssued) > codeTTL {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code is unknown, used or expired")
	}
	delete(s.requests, id)
	c := *a
	return &c, nil
}

// SaveAuthCode records the code issued for a done request; a request gets
// one code only.
func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.requests[id]
	if a == nil || !a.done || a.code != "" {
		return errors.New("no code can be issued for this auth request")
	}
	a.code, a.codeIssued = code, time.Now()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest forgets a request (the library calls it once the code
// is exchanged).
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.drop(id)
	return nil
}

// CreateAccessToken keeps an opaque access token.
func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	a, ok := req.(*authRequest)
	if !ok {
		return "", time.Time{}, errors.New("unsupported token request")
	}
	now := time.Now()
	t := &accessToken{clientID: a.clientID, subject: a.subject, preferredUsername: a.preferredUsername, scopes: slices.Clone(a.scopes), authTime: a.authTime,
		expiresAt: now.Add(accessTokenTTL)}
	id := randomID()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purge(now)
	s.tokens[id] = t
	return id, t.expiresAt, nil
}

// CreateAccessAndRefreshTokens: no refresh tokens are issued.
func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errors.New("refresh tokens are not supported")
}

// TokenRequestByRefreshToken: no refresh tokens are issued.
func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

// TerminateSession: the IdP keeps no login session.
func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken revokes an access token of the client.
func (s *storage) RevokeToken(_ context.Context, tokenID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[tokenID]
	if t == nil {
		return nil // RFC 7009 §2.2: an unknown token is not an error
	}
	if t.clientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("the token belongs to another client")
	}
	delete(s.tokens, tokenID)
	return nil
}

// GetRefreshTokenInfo: no refresh tokens are issued.
func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

// signingKey is the RSA key as op.SigningKey.
type signingKey struct {
	key *rsa.PrivateKey
	id  string
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

// publicKey is the published half, as op.Key.
type publicKey struct {
	key *rsa.PublicKey
	id  string
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }

// SigningKey is the one RSA key.
func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{key: s.key, id: s.keyID}, nil
}

// SignatureAlgorithms is RS256 only.
func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet publishes the key's public half.
func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{key: &s.key.PublicKey, id: s.keyID}}, nil
}

// GetClientByClientID returns the configured client.
func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.client.id {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return s.client, nil
}

// AuthorizeClientIDSecret checks the client secret in constant time.
func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.client.id || subtle.ConstantTimeCompare([]byte(secret), []byte(s.client.secret)) != 1 {
		return oidc.ErrInvalidClient().WithDescription("client authentication failed")
	}
	return nil
}

// SetUserinfoFromScopes does nothing: SetUserinfoFromRequest does it.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills the ID token: sub is keystep's account id,
// and the profile scope adds preferred_username.
func (s *storage) SetUserinfoFromRequest(_ context.Context, u *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	a, ok := req.(*authRequest)
	if !ok {
		return errors.New("unsupported ID token request")
	}
	setUserinfo(u, a.subject, a.preferredUsername, scopes)
	return nil
}

func setUserinfo(u *oidc.UserInfo, subject, preferredUsername string, scopes []string) {
	u.Subject = subject
	if slices.Contains(scopes, oidc.ScopeProfile) {
		u.PreferredUsername = preferredUsername
	}
}

// liveToken returns an access token that has not expired.
func (s *storage) liveToken(id, subject string) (accessToken, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[id]
	if t == nil || !time.Now().Before(t.expiresAt) || t.subject != subject {
		return accessToken{}, false
	}
	return *t, true
}

// SetUserinfoFromToken answers the userinfo endpoint.
func (s *storage) SetUserinfoFromToken(_ context.Context, u *oidc.UserInfo, tokenID, subject, _ string) error {
	t, ok := s.liveToken(tokenID, subject)
	if !ok {
		return oidc.ErrAccessDenied().WithDescription("the access token is not active")
	}
	setUserinfo(u, t.subject, t.preferredUsername, t.scopes)
	return nil
}

// SetIntrospectionFromToken answers introspection for the client's tokens.
func (s *storage) SetIntrospectionFromToken(_ context.Context, r *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	t, ok := s.liveToken(tokenID, subject)
	if !ok || t.clientID != clientID {
		r.Active = false
		return errors.New("token is not active")
	}
	r.Active, r.Subject, r.ClientID, r.Scope = true, t.subject, t.clientID, t.scopes
	r.TokenType, r.Audience = oidc.BearerToken, []string{t.clientID}
	r.Expiration, r.AuthTime = oidc.FromTime(t.expiresAt), oidc.FromTime(t.authTime)
	return nil
}

// GetPrivateClaimsFromScopes adds nothing (access tokens are opaque).
func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetKeyByIDAndClientID: private_key_jwt is not offered.
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("private_key_jwt is not supported")
}

// ValidateJWTProfileScopes: the JWT profile grant is not offered.
func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

// Health is always fine: everything is in memory.
func (s *storage) Health(context.Context) error { return nil }

// client is the one configured relying party: a confidential web client
// with the code flow and client_secret_basic (or _post).
type client struct {
	id          string
	secret      string
	redirectURI string
	loginURL    func(id string) string
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return []string{c.redirectURI} }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string            { return c.loginURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return idTokenTTL }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
