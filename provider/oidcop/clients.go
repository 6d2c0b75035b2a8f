package oidcop

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/keystep/keystep/flows"
)

// Client authentication methods at the token endpoint.
const (
	AuthSecretBasic   = "client_secret_basic"
	AuthSecretPost    = "client_secret_post"
	AuthPrivateKeyJWT = "private_key_jwt"
)

// How a client names the user who must take the step.
const (
	// NameByLoginHint takes the username (or email) from login_hint.
	NameByLoginHint = "login_hint"
	// NameByIDTokenHint takes a claim of an id_token_hint that the client
	// (the host IdP) signed, verified against its key set.
	NameByIDTokenHint = "id_token_hint"
)

// How a name found in the request is matched to an account.
const (
	MatchUsername = "username" // the account's username (case-insensitive)
	MatchID       = "id"       // the account's stable id
	// MatchLink keys the account on the hint's issuer and subject claim,
	// linked the first time through LinkClaim matched to a username.
	MatchLink = "link"
)

// Profiles: client kinds with rules of their own.
const (
	// ProfileEntra is a Microsoft Entra ID external authentication method:
	// implicit id_token by form_post, the hint issued by Entra, the account
	// keyed on tid+oid, exactly one acr and one amr.
	ProfileEntra = "entra"
)

// ClientConfig is a relying party (a host IdP) as the config file gives it.
type ClientConfig struct {
	ID   string
	Name string // shown to the user on the step page and the phone
	// Secret is the client secret for client_secret_basic/post.
	Secret string
	// AuthMethod is how the client authenticates at the token endpoint
	// (default client_secret_basic; private_key_jwt needs JWKSURL or JWKSFile).
	AuthMethod   string
	JWKSURL      string // the client's key set, for private_key_jwt
	JWKSFile     string
	RedirectURIs []string
	// PostLogoutRedirectURIs are where end_session may send the browser.
	PostLogoutRedirectURIs []string
	// Methods are the methods its users may use, in order of preference
	// (default push, qr).
	Methods []flows.Method
	// Name rules: how the user is named (NameByLoginHint by default) and
	// matched to an account (MatchUsername by default).
	NameBy string
	Match  string
	// HintClaim is the claim of the id_token_hint that names the user
	// (default "sub"); LinkClaim is the claim matched to a username the
	// first time a MatchLink subject is seen (default "preferred_username").
	HintClaim string
	LinkClaim string
	// HintIssuer is the issuer the hint must carry ("{tid}" stands for any
	// tenant in Tenants); HintJWKSURL or HintJWKSFile is its key set;
	// HintAudience is the aud it must carry (default the client id).
	HintIssuer   string
	HintJWKSURL  string
	HintJWKSFile string
	HintAudience string
	// Tenants are the Entra tenant ids whose hints are accepted.
	Tenants []string
	// Profile selects a client kind with rules of its own (ProfileEntra).
	Profile string
	// SigningAlg is ES256 (default) or RS256 (Entra needs RS256).
	SigningAlg string
	// DeviceAMR is the amr of a push or QR approval: pop (default), swk or hwk.
	DeviceAMR string
	// IDTokenLifetime and AccessTokenLifetime default to 5 minutes and
	// 10 minutes: keystep's token says what happened at one sign-in.
	IDTokenLifetime     time.Duration
	AccessTokenLifetime time.Duration
	// RefreshTokenLifetime is how long a refresh token lasts (0: no
	// refresh tokens for this client).
	RefreshTokenLifetime time.Duration
	// AllowHTTPRedirects lets http:// (non-loopback) redirect URIs and
	// implicit http:// redirects through (development only).
	AllowHTTPRedirects bool
	// LoopbackAnyPort lets a request name a registered loopback redirect
	// URI (http://127.0.0.1, [::1] or localhost) on any port, as RFC 8252
	// §7.3 asks for apps that listen on a port the system picks (keystep
	// demo-app --listen). The path must still be a registered one's.
	LoopbackAnyPort bool
}

// client is a ClientConfig checked and ready for the OP.
type client struct {
	cfg        ClientConfig
	secretHash [32]byte
	loginURL   func(id string) string
	hints      *hintVerifier // nil unless NameBy is id_token_hint
	keys       *remoteKeys   // nil unless private_key_jwt
}

var knownMethods = []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride}

// check fills defaults and refuses a client that cannot work.
func (c *ClientConfig) check() error {
	if c.ID == "" || len(c.ID) > 128 || strings.ContainsAny(c.ID, " \t\r\n:") {
		return fmt.Errorf("client id %q: must be 1-128 characters without spaces or colons", c.ID)
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if c.Profile != "" && c.Profile != ProfileEntra {
		return fmt.Errorf("client %s: unknown profile %q", c.ID, c.Profile)
	}
	if c.Profile == ProfileEntra {
		if c.NameBy == "" {
			c.NameBy = NameByIDTokenHint
		}
		if c.Match == "" {
			c.Match = MatchLink
		}
		if c.HintClaim == "" {
			c.HintClaim = "oid"
		}
		if c.HintIssuer == "" {
			c.HintIssuer = "https://login.microsoftonline.com/{tid}/v2.0"
		}
		if c.HintJWKSURL == "" && c.HintJWKSFile == "" {
			c.HintJWKSURL = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
		}
		if c.SigningAlg == "" {
			c.SigningAlg = "RS256"
		}
		if len(c.Tenants) == 0 {
			return fmt.Errorf("client %s: an Entra client needs the tenant ids it serves (tenants)", c.ID)
		}
	}
	if c.AuthMethod == "" {
		c.AuthMethod = AuthSecretBasic
	}
	switch c.AuthMethod {
	case AuthSecretBasic, AuthSecretPost:
		if len(c.Secret) < 16 && c.Profile != ProfileEntra {
			return fmt.Errorf("client %s: the client secret must be at least 16 characters", c.ID)
		}
	case AuthPrivateKeyJWT:
		if (c.JWKSURL == "") == (c.JWKSFile == "") {
			return fmt.Errorf("client %s: private_key_jwt needs exactly one of jwks_url and jwks_file", c.ID)
		}
	default:
		return fmt.Errorf("client %s: unknown auth method %q", c.ID, c.AuthMethod)
	}
	if len(c.RedirectURIs) == 0 {
		return fmt.Errorf("client %s: at least one redirect URI is needed", c.ID)
	}
	for _, u := range append(slices.Clone(c.RedirectURIs), c.PostLogoutRedirectURIs...) {
		if err := checkRedirectURI(u, c.AllowHTTPRedirects); err != nil {
			return fmt.Errorf("client %s: %w", c.ID, err)
		}
	}
	if len(c.Methods) == 0 {
		c.Methods = []flows.Method{flows.MethodPush, flows.MethodQR}
	}
	for i, m := range c.Methods {
		if !slices.Contains(knownMethods, m) || slices.Contains(c.Methods[:i], m) {
			return fmt.Errorf("client %s: method %q is unknown or given twice", c.ID, m)
		}
	}
	if c.NameBy == "" {
		c.NameBy = NameByLoginHint
	}
	if c.Match == "" {
		c.Match = MatchUsername
	}
	switch c.NameBy {
	case NameByLoginHint:
		if c.Match == MatchLink {
			return fmt.Errorf("client %s: match %q needs name_by id_token_hint", c.ID, c.Match)
		}
	case NameByIDTokenHint:
		if c.HintIssuer == "" || (c.HintJWKSURL == "") == (c.HintJWKSFile == "") {
			return fmt.Errorf("client %s: id_token_hint naming needs hint_issuer and exactly one of hint_jwks_url and hint_jwks_file", c.ID)
		}
		if c.HintClaim == "" {
			c.HintClaim = "sub"
		}
		if c.LinkClaim == "" {
			c.LinkClaim = "preferred_username"
		}
		if c.HintAudience == "" {
			c.HintAudience = c.ID
		}
	default:
		return fmt.Errorf("client %s: unknown name_by %q", c.ID, c.NameBy)
	}
	if c.Match != MatchUsername && c.Match != MatchID && c.Match != MatchLink {
		return fmt.Errorf("client %s: unknown match %q", c.ID, c.Match)
	}
	if c.SigningAlg == "" {
		c.SigningAlg = "ES256"
	}
	if c.SigningAlg != "ES256" && c.SigningAlg != "RS256" {
		return fmt.Errorf("client %s: signing alg must be ES256 or RS256, not %q", c.ID, c.SigningAlg)
	}
	if c.DeviceAMR == "" {
		c.DeviceAMR = "pop"
	}
	if c.DeviceAMR != "pop" && c.DeviceAMR != "swk" && c.DeviceAMR != "hwk" {
		return fmt.Errorf("client %s: device amr must be pop, swk or hwk, not %q", c.ID, c.DeviceAMR)
	}
	if c.IDTokenLifetime == 0 {
		c.IDTokenLifetime = 5 * time.Minute
	}
	if c.AccessTokenLifetime == 0 {
		c.AccessTokenLifetime = 10 * time.Minute
	}
	if c.IDTokenLifetime < 0 || c.IDTokenLifetime > 24*time.Hour || c.AccessTokenLifetime < 0 || c.AccessTokenLifetime > 24*time.Hour {
		return fmt.Errorf("client %s: token lifetimes must be between 0 and 24h", c.ID)
	}
	if c.RefreshTokenLifetime < 0 || c.RefreshTokenLifetime > 90*24*time.Hour {
		return fmt.Errorf("client %s: refresh token lifetime must be between 0 and 90 days", c.ID)
	}
	return nil
}

// checkRedirectURI accepts an absolute https URI, or http only on a
// loopback host (RFC 8252) or when allowHTTP; never a fragment.
func checkRedirectURI(s string, allowHTTP bool) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("redirect URI %q must be an absolute URL without fragment or user info", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if allowHTTP || h == "127.0.0.1" || h == "::1" || h == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("redirect URI %q must use https (http only on a loopback host)", s)
}

// checkSecret compares a presented secret with the client's in constant time.
func (c *client) checkSecret(secret string) bool {
	h := sha256.Sum256([]byte(secret))
	return c.cfg.Secret != "" && subtle.ConstantTimeCompare(h[:], c.secretHash[:]) == 1
}

func (c *client) GetID() string                    { return c.cfg.ID }
func (c *client) RedirectURIs() []string           { return c.cfg.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return c.cfg.PostLogoutRedirectURIs }
func (c *client) ApplicationType() op.ApplicationType {
	if c.cfg.LoopbackAnyPort {
		return op.ApplicationTypeNative // the library's RFC 8252 loopback rule
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	switch c.cfg.AuthMethod {
	case AuthSecretPost:
		return oidc.AuthMethodPost
	case AuthPrivateKeyJWT:
		return oidc.AuthMethodPrivateKeyJWT
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	if c.cfg.Profile == ProfileEntra {
		return []oidc.ResponseType{oidc.ResponseTypeIDTokenOnly}
	}
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	if c.cfg.Profile == ProfileEntra {
		return nil
	}
	g := []oidc.GrantType{oidc.GrantTypeCode}
	if c.cfg.RefreshTokenLifetime > 0 {
		g = append(g, oidc.GrantTypeRefreshToken)
	}
	return g
}

func (c *client) LoginURL(id string) string            { return c.loginURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return c.cfg.IDTokenLifetime }
func (c *client) DevMode() bool                        { return c.cfg.AllowHTTPRedirects }
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// CheckClient checks a client's configuration as New would and returns it
// with its defaults filled in.
func CheckClient(c ClientConfig) (ClientConfig, error) {
	err := c.check()
	return c, err
}
