package flows

import (
	"context"
	"time"
)

// AuthRequest is a federation request (an OpenID Connect authorization
// request, later a SAML AuthnRequest) that waits for keystep's step and,
// once the step is done, is redeemed once for the protocol's answer.
// flows stores it; the protocol packages in provider own its meaning.
type AuthRequest struct {
	ID        string
	ClientID  string
	Protocol  string // "oidc" (later "saml")
	Request   []byte // the protocol's request as JSON, opaque to the store
	AccountID string // the account the request names
	Subject   string // the subject the answer will carry
	// SessionHash binds the request to one browser session: set by the
	// first BindAuthRequest, never changed after.
	SessionHash []byte
	SignInID    string    // the sign-in currently running for it (empty until one begins)
	DoneAt      time.Time // when the step succeeded (zero: not yet)
	AuthTime    time.Time // when the user proved themselves
	ACR         string
	AMR         []string
	CodeHash    []byte    // hash of the authorization code (nil until issued)
	CodeUsedAt  time.Time // when the code was redeemed (zero: not yet)
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// Done reports whether the step of the request has succeeded.
func (r AuthRequest) Done() bool { return !r.DoneAt.IsZero() }

// AuthResult is what a successful step records on an AuthRequest.
type AuthResult struct {
	AuthTime time.Time
	ACR      string
	AMR      []string
	At       time.Time
}

// OIDCToken is an access token, and the refresh token issued with it, of
// one grant (the auth request it came from, or the refresh that followed).
type OIDCToken struct {
	ID          string
	GrantID     string // the AuthRequest id the grant began with
	ClientID    string
	Subject     string
	AccountID   string
	Scopes      []string
	Audience    []string
	ACR         string
	AMR         []string
	AuthTime    time.Time
	RefreshHash []byte    // hash of the refresh token (nil: none)
	RefreshExp  time.Time // when the refresh token expires (zero: none)
	CreatedAt   time.Time
	ExpiresAt   time.Time // when the access token expires
	RevokedAt   time.Time // zero: not revoked
}

// Revoked reports whether the token was revoked.
func (t OIDCToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// KeyUse says what a stored key is for.
type KeyUse string

// Key uses.
const (
	KeyUseOIDC   KeyUse = "oidc"   // ID token signing
	KeyUseSAML   KeyUse = "saml"   // assertion signing
	KeyUseCookie KeyUse = "cookie" // browser session cookies
)

// StoredKey is a server key kept in the store so that every instance uses
// the same one. Its private part is sealed (encrypted) by the caller; the
// store never sees it in clear.
type StoredKey struct {
	ID        string // the key id (kid)
	Use       KeyUse
	Alg       string // "ES256", "RS256", "HS256+A256" …
	Sealed    []byte // the private key, encrypted
	Cert      []byte // the public certificate chain, DER, concatenated (may be nil)
	CreatedAt time.Time
	ActiveAt  time.Time // published from CreatedAt, used to sign from ActiveAt
	RetireAt  time.Time // zero: not retired; else dropped from key sets after it
}

// FederationTx is the part of Tx that the federation front doors use.
type FederationTx interface {
	// CreateAuthRequest stores a new auth request; ErrConflict if its id is taken.
	CreateAuthRequest(ctx context.Context, r AuthRequest) error
	// GetAuthRequest returns an auth request by id.
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	// BindAuthRequest binds a request to a browser session: it succeeds if
	// the request is unbound (and binds it) or already bound to the same
	// hash; ErrConflict if bound to another; ErrNotFound if none.
	BindAuthRequest(ctx context.Context, id string, sessionHash []byte) error
	// AttachSignIn records the sign-in now running for a request that is
	// not done; ErrAlreadyDecided if it is done, ErrNotFound if none.
	AttachSignIn(ctx context.Context, id, signInID string) error
	// CompleteAuthRequest records the step's success once: ErrAlreadyDecided
	// for every later call, ErrNotFound if none.
	CompleteAuthRequest(ctx context.Context, id string, res AuthResult) error
	// SaveAuthCode records the hash of the code issued for a done request,
	// once: ErrConflict if the request is not done or already has a code.
	SaveAuthCode(ctx context.Context, id string, codeHash []byte) error
	// RedeemAuthCode marks the code with that hash used at the given time
	// and returns its request. Exactly one of any number of concurrent
	// calls succeeds; the others get ErrAlreadyUsed together with the
	// request (so the caller can revoke what the code gave); ErrNotFound
	// if no request has that code.
	RedeemAuthCode(ctx context.Context, codeHash []byte, at time.Time) (AuthRequest, error)
	// PurgeAuthRequests deletes requests that expired before the given time.
	PurgeAuthRequests(ctx context.Context, before time.Time) error

	// CreateOIDCToken stores a token; ErrConflict if its id (or its
	// refresh hash) is taken.
	CreateOIDCToken(ctx context.Context, t OIDCToken) error
	// GetOIDCToken returns a token by id, revoked or not.
	GetOIDCToken(ctx context.Context, id string) (OIDCToken, error)
	// GetOIDCTokenByRefresh returns the token whose refresh token has that hash.
	GetOIDCTokenByRefresh(ctx context.Context, refreshHash []byte) (OIDCToken, error)
	// RotateRefreshToken revokes the unrevoked token whose refresh token has
	// oldHash and stores next, atomically. Exactly one of any number of
	// concurrent calls succeeds; the others get ErrAlreadyUsed;
	// ErrNotFound if no token has that refresh hash.
	RotateRefreshToken(ctx context.Context, oldHash []byte, next OIDCToken, at time.Time) error
	// RevokeOIDCToken revokes one token (already revoked: no error);
	// ErrNotFound if none.
	RevokeOIDCToken(ctx context.Context, id string, at time.Time) error
	// RevokeGrant revokes every token of a grant and returns how many it
	// revoked.
	RevokeGrant(ctx context.Context, grantID string, at time.Time) (int, error)
	// PurgeOIDCTokens deletes tokens whose access and refresh tokens both
	// expired before the given time.
	PurgeOIDCTokens(ctx context.Context, before time.Time) error

	// CreateKey stores a key; ErrConflict if its id is taken.
	CreateKey(ctx context.Context, k StoredKey) error
	// ListKeys returns the keys of one use that are not retired at now,
	// oldest first.
	ListKeys(ctx context.Context, use KeyUse, now time.Time) ([]StoredKey, error)
	// RetireKey sets when a key leaves the key sets (only to an earlier
	// time than one already set); ErrNotFound if none.
	RetireKey(ctx context.Context, id string, at time.Time) error

	// LinkSubject links a federated subject (an issuer and its subject,
	// such as Entra's tenant and object id) to an account: no error if the
	// same link exists, ErrConflict if the subject is linked to another
	// account.
	LinkSubject(ctx context.Context, issuer, subject, accountID string) error
	// LinkedAccount returns the account a federated subject is linked to;
	// ErrNotFound if none.
	LinkedAccount(ctx context.Context, issuer, subject string) (string, error)
}
