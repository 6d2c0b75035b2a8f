// Package oidcop is keystep's OpenID Provider (zitadel/oidc v3 `op`): a
// host IdP (Keycloak, Entra ID, Okta, a Go IdP) sends its user here for the
// passwordless step and gets back a signed ID token that says how the user
// proved themselves (acr, amr).
//
// Auth requests, codes, tokens and signing keys live in the keystep store,
// so several instances on one PostgreSQL database serve one issuer. The
// browser part of the step is provider/steppage; this package implements
// its Requests interface.
package oidcop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/accounts"
	"github.com/keystep/keystep/provider/internal/keyring"
	"github.com/keystep/keystep/provider/internal/ratelimit"
	"github.com/keystep/keystep/provider/internal/seal"
	"github.com/keystep/keystep/provider/internal/webutil"
)

// Options configures a Provider.
type Options struct {
	// Flows is the domain service (required).
	Flows *flows.Service
	// Issuer is the server's public URL (required); http:// is accepted
	// only on a loopback host or with Insecure.
	Issuer string
	// Insecure allows an http:// issuer on a non-loopback host
	// (--insecure-dev).
	Insecure bool
	// Clients are the relying parties (host IdPs).
	Clients []ClientConfig
	// Secret is the server's master secret (the code key, ≥32 bytes): it
	// derives the key that encrypts codes and access tokens and the key
	// that seals signing keys in the store. Instances of one issuer must
	// share it.
	Secret []byte
	// Keys is the signing key rotation policy.
	Keys KeyPolicy
	// RequestTTL is how long a user has to finish the step (default and
	// most 10 min, as NIST SP 800-63B bounds an authentication).
	RequestTTL time.Duration
	// StepPath is where the step page lives (default "/step/"): the OP
	// sends the browser to StepPath + request id.
	StepPath string
	// HTTPClient fetches the key sets of hint issuers and clients
	// (default: a client with a 10 s timeout).
	HTTPClient *http.Client
	// ClientIP is the client's address behind trusted proxies (nil: the
	// host of RemoteAddr), for the rate limits.
	ClientIP func(*http.Request) string
	// AuthorizePerIPPerMinute bounds new auth requests per client address
	// and instance (default DefaultAuthorizePerIPPerMinute).
	AuthorizePerIPPerMinute int
	Clock                   flows.Clock
	Logger                  *slog.Logger
}

// Provider is the OpenID Provider.
type Provider struct {
	flows    *flows.Service
	issuer   string
	clients  map[string]*client
	keys     idTokenKeys
	op       *op.Provider
	handler  http.Handler
	clock    flows.Clock
	log      *slog.Logger
	ttl      time.Duration
	stepPath string

	clientIP      func(*http.Request) string
	authorizeHits *ratelimit.Window
	authFails     *ratelimit.Failures
}

// Paths are the URL paths the Provider serves; mount Handler on each.
var Paths = []string{
	"/.well-known/openid-configuration", "/authorize", "/authorize/callback", "/oauth/token",
	"/oauth/introspect", "/userinfo", "/revoke", "/end_session", "/keys", "/logged-out",
}

// New builds the Provider from o. Its signing keys are made in the store
// on first use.
func New(o Options) (*Provider, error) {
	if o.Flows == nil {
		return nil, errors.New("oidc provider: Options.Flows is required")
	}
	issuer := strings.TrimRight(o.Issuer, "/")
	u, err := url.Parse(issuer)
	if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("oidc provider: issuer %q must be an absolute URL", o.Issuer)
	}
	insecure := u.Scheme == "http"
	if insecure && !o.Insecure && !webutil.IsLoopback(u.Hostname()) {
		return nil, fmt.Errorf("oidc provider: issuer %q must use https (http only on loopback or with --insecure-dev)", o.Issuer)
	}
	if o.Clock == nil {
		o.Clock = flows.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if o.RequestTTL == 0 {
		o.RequestTTL = 10 * time.Minute
	}
	if o.RequestTTL < time.Minute || o.RequestTTL > flows.MaxSignInTTL {
		return nil, fmt.Errorf("oidc provider: the request lifetime must be 1m to %s, not %s", flows.MaxSignInTTL, o.RequestTTL)
	}
	if o.StepPath == "" {
		o.StepPath = "/step/"
	}
	if o.ClientIP == nil {
		o.ClientIP = webutil.RemoteIP
	}
	if o.AuthorizePerIPPerMinute == 0 {
		o.AuthorizePerIPPerMinute = DefaultAuthorizePerIPPerMinute
	}
	if o.AuthorizePerIPPerMinute < 0 {
		return nil, errors.New("oidc provider: AuthorizePerIPPerMinute must not be negative")
	}
	sealKey, err := seal.Derive(o.Secret, "oidc-signing-keys")
	if err != nil {
		return nil, fmt.Errorf("oidc provider: %w", err)
	}
	algs := make([]keyring.Alg, len(signingAlgs))
	for i, a := range signingAlgs {
		algs[i] = keyring.Alg(a)
	}
	ring, err := keyring.New(keyring.Options{Store: o.Flows.Store(), Seal: sealKey, Clock: o.Clock, Use: flows.KeyUseOIDC,
		Algs: algs, Policy: keyring.Policy(o.Keys), Defaults: defaultKeyPolicy, CommonName: keyCommonName})
	if err != nil {
		return nil, fmt.Errorf("oidc provider: %w", err)
	}
	cryptoKey, err := seal.DeriveBytes(o.Secret, "oidc-codes-and-tokens", 32)
	if err != nil {
		return nil, fmt.Errorf("oidc provider: %w", err)
	}
	p := &Provider{
		flows: o.Flows, issuer: issuer, clients: map[string]*client{}, clock: o.Clock, log: o.Logger,
		ttl: o.RequestTTL, stepPath: o.StepPath,
		clientIP: o.ClientIP, authorizeHits: &ratelimit.Window{Limit: o.AuthorizePerIPPerMinute}, authFails: &ratelimit.Failures{Burst: clientAuthBurst, Every: clientAuthEvery},
		keys: idTokenKeys{ring},
	}
	for _, cfg := range o.Clients {
		if err := cfg.check(); err != nil {
			return nil, fmt.Errorf("oidc provider: %w", err)
		}
		if p.clients[cfg.ID] != nil {
			return nil, fmt.Errorf("oidc provider: client %s is given twice", cfg.ID)
		}
		c := &client{cfg: cfg, secretHash: sha256Sum(cfg.Secret), loginURL: p.stepURL}
		if cfg.NameBy == NameByIDTokenHint {
			if c.hints, err = newHintVerifier(o.HTTPClient, o.Clock, &c.cfg); err != nil {
				return nil, fmt.Errorf("oidc provider: %w", err)
			}
		}
		if cfg.AuthMethod == AuthPrivateKeyJWT {
			if c.keys, err = newClientKeys(o.HTTPClient, o.Clock, cfg.JWKSURL, cfg.JWKSFile); err != nil {
				return nil, fmt.Errorf("oidc provider: client %s: %w", cfg.ID, err)
			}
		}
		p.clients[cfg.ID] = c
	}
	config := &op.Config{
		CryptoKey:                [32]byte(cryptoKey),
		DefaultLogoutRedirectURI: issuer + "/logged-out",
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		AuthMethodPrivateKeyJWT:  true,
		GrantTypeRefreshToken:    true,
		SupportedUILocales:       []language.Tag{language.English},
		SupportedScopes:          []string{oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopeOfflineAccess},
	}
	opts := []op.Option{op.WithLogger(o.Logger)}
	if insecure {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(config, storage{p}, op.StaticIssuer(issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("oidc provider: %w", err)
	}
	endpoints := *op.DefaultEndpoints
	endpoints.DeviceAuthorization = nil // not offered
	srv := &server{LegacyServer: op.NewLegacyServer(p.op, endpoints), p: p}
	router := op.RegisterLegacyServer(srv, p.noCallback)
	mux := http.NewServeMux()
	mux.Handle("/authorize", p.limitAuthorize(p.authorizeErrors(router)))
	for _, path := range []string{"/oauth/token", "/oauth/introspect", "/revoke"} {
		mux.Handle(path, p.limitClientAuth(router))
	}
	mux.HandleFunc("GET /logged-out", p.loggedOut)
	mux.Handle("/", router)
	p.handler = mux
	return p, nil
}

// Handler serves the OpenID Provider's endpoints (see Paths).
func (p *Provider) Handler() http.Handler { return p.handler }

// Issuer is the issuer identifier.
func (p *Provider) Issuer() string { return p.issuer }

// RotateKeys makes new signing keys that sign from now; the old ones stay
// in the key set until the tokens they signed have expired.
func (p *Provider) RotateKeys(ctx context.Context) ([]KeyInfo, error) { return p.keys.ring.Rotate(ctx) }

// SigningKeys lists the published signing keys.
func (p *Provider) SigningKeys(ctx context.Context) ([]KeyInfo, error) { return p.keys.ring.Info(ctx) }

func (p *Provider) store() flows.Store { return p.flows.Store() }

func (p *Provider) stepURL(id string) string { return p.issuer + p.stepPath + id }

// noCallback answers the library's /authorize/callback: keystep never uses
// it, because a request id alone must never yield a code; the step page
// answers the client itself, once the browser session is checked.
func (p *Provider) noCallback(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, "not found", http.StatusNotFound)
}

func (p *Provider) loggedOut(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("You are signed out of keystep. You can close this window.\n"))
}

// accountActive is nil for an active account.
func (p *Provider) accountActive(ctx context.Context, id string) error {
	a, err := p.store().GetAccount(ctx, id)
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	switch a.State {
	case flows.AccountSuspended:
		return flows.ErrAccountSuspended
	case flows.AccountRemoved:
		return flows.ErrAccountRemoved
	}
	return nil
}

// profileClaims adds the claims the profile and email scopes ask for.
func (p *Provider) profileClaims(ctx context.Context, u *oidc.UserInfo, accountID string, scopes []string) error {
	profile, email := false, false
	for _, s := range scopes {
		profile = profile || s == oidc.ScopeProfile
		email = email || s == oidc.ScopeEmail
	}
	if (!profile && !email) || accountID == "" {
		return nil
	}
	a, err := p.store().GetAccount(ctx, accountID)
	if err != nil {
		return fmt.Errorf("account: %w", err)
	}
	if profile {
		u.PreferredUsername, u.Name = a.Username, a.DisplayName
	}
	if email && a.Email != "" {
		u.Email = a.Email
	}
	return nil
}

// nameUser finds the account a request names, by the client's rule, and
// the subject the answer will carry. It never guesses: a missing,
// unverifiable or unknown name is an error.
func (p *Provider) nameUser(ctx context.Context, c *client, req *oidc.AuthRequest) (flows.Account, string, *pendingLink, error) {
	switch c.cfg.NameBy {
	case NameByLoginHint:
		if req.LoginHint == "" {
			return flows.Account{}, "", nil, oidc.ErrInvalidRequest().WithDescription("login_hint is required: it names the user who takes the step")
		}
		a, err := p.matchAccount(ctx, c.cfg.Match, req.LoginHint)
		if err != nil {
			return a, "", nil, err
		}
		return a, a.ID, nil, nil
	case NameByIDTokenHint:
		claims, err := c.hints.verify(ctx, req.IDTokenHint)
		if err != nil {
			p.log.InfoContext(ctx, "id_token_hint refused", "client_id", c.cfg.ID, "err", err)
			return flows.Account{}, "", nil, oidc.ErrInvalidRequest().WithDescription("id_token_hint is missing or cannot be verified")
		}
		value := claimString(claims, c.cfg.HintClaim)
		if value == "" {
			return flows.Account{}, "", nil, oidc.ErrInvalidRequest().WithDescription("%s", "id_token_hint lacks the claim "+c.cfg.HintClaim)
		}
		if c.cfg.Match != MatchLink {
			a, err := p.matchAccount(ctx, c.cfg.Match, value)
			return a, claims.Subject, nil, err
		}
		a, link, err := p.linkedAccount(ctx, claims.Issuer, value, claimString(claims, c.cfg.LinkClaim))
		return a, claims.Subject, link, err
	}
	return flows.Account{}, "", nil, oidc.ErrServerError()
}

// errUnknownUser is the answer for a name that matches no account; it
// does not say which part failed.
func errUnknownUser() *oidc.Error {
	return oidc.ErrAccessDenied().WithDescription("this user cannot sign in with keystep; contact your IT administrator")
}

func (p *Provider) matchAccount(ctx context.Context, match, value string) (flows.Account, error) {
	a, err := accounts.Find(ctx, p.store(), match == MatchID, value)
	if errors.Is(err, accounts.ErrUnknown) {
		return a, errUnknownUser()
	}
	if err != nil {
		return a, oidc.ErrServerError().WithParent(err)
	}
	return a, nil
}

// linkedAccount finds the account linked to (issuer, subject). The first
// time, it finds the account by the username in linkName and returns the
// link to make once the step succeeds (Complete): a name claim is not
// proof of anything until the account's own device approves.
func (p *Provider) linkedAccount(ctx context.Context, issuer, subject, linkName string) (flows.Account, *pendingLink, error) {
	id, err := p.store().LinkedAccount(ctx, issuer, subject)
	if err == nil {
		a, err := p.store().GetAccount(ctx, id)
		if err != nil {
			return a, nil, errUnknownUser()
		}
		return a, nil, nil
	}
	if !errors.Is(err, flows.ErrNotFound) {
		return flows.Account{}, nil, oidc.ErrServerError().WithParent(err)
	}
	if linkName == "" {
		return flows.Account{}, nil, errUnknownUser()
	}
	a, err := p.matchAccount(ctx, MatchUsername, linkName)
	if err != nil {
		return a, nil, err
	}
	return a, &pendingLink{Issuer: issuer, Subject: subject}, nil
}

// createRequest stores a checked request and returns its id.
func (p *Provider) createRequest(ctx context.Context, c *client, a flows.Account, subject string, data requestData) (string, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return "", fmt.Errorf("auth request: %w", err)
	}
	now := p.clock.Now().UTC()
	fr := flows.AuthRequest{ID: flows.NewID(), ClientID: c.cfg.ID, Protocol: "oidc", Request: raw, AccountID: a.ID,
		Subject: subject, CreatedAt: now, ExpiresAt: now.Add(p.ttl)}
	if err := p.store().CreateAuthRequest(ctx, fr); err != nil {
		return "", fmt.Errorf("auth request: %w", err)
	}
	return fr.ID, nil
}
