// Package samlidp is keystep's SAML 2.0 Identity Provider: a host that
// speaks SAML (ADFS, Okta, Shibboleth, SimpleSAMLphp, Keycloak) sends its
// user here with an AuthnRequest that names them, the user takes keystep's
// step on the step page, and the host gets back a signed assertion that says
// how the user proved themselves.
//
// It is built on github.com/crewjam/saml's IdentityProvider, which parses
// and checks requests and makes and signs assertions. keystep adds what the
// library leaves to its user: the asynchronous step (the request is stored
// and answered later, see Complete), a replay check for every request at
// arrival, limits and a DTD guard in front of the parser, per-SP policy
// (methods, NameID, attributes, classes, encryption), keys that rotate, and
// metadata that publishes the next key before it signs.
package samlidp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/keyring"
	"github.com/keystep/keystep/provider/internal/ratelimit"
	"github.com/keystep/keystep/provider/internal/seal"
	"github.com/keystep/keystep/provider/internal/webutil"
)

// Paths are the URL paths the Provider serves; mount Handler on each.
var Paths = []string{"/saml/metadata", "/saml/sso", "/saml/slo", "/saml/login/"}

// Defaults of Options.
const (
	DefaultSSOPerIPPerMinute = 300
	DefaultMetadataValidFor  = 24 * time.Hour
)

// Options configures a Provider.
type Options struct {
	// Flows is the domain service (required).
	Flows *flows.Service
	// PublicURL is the server's public URL (required). The entity ID is
	// PublicURL + "/saml/metadata".
	PublicURL string
	// Insecure allows http:// on a non-loopback host (--insecure-dev).
	Insecure bool
	// Secret is the server's master secret; it derives the key that seals
	// the signing keys in the store. Instances must share it.
	Secret []byte
	// ServiceProviders are the SPs keystep answers.
	ServiceProviders []SPConfig
	// Keys is the signing key rotation policy (defaults: a new key every
	// 365 days, published 30 days before it signs, kept a day after).
	Keys keyring.Policy
	// RequestTTL is how long a user has to finish the step (default and
	// most 10 min).
	RequestTTL time.Duration
	// AllowUnsignedRequests stops keystep from asking every SP to sign its
	// AuthnRequests (WantAuthnRequestsSigned in the metadata). Each SP must
	// then still allow it in its own policy.
	AllowUnsignedRequests bool
	// UnsignedMetadata serves the IdP metadata without a signature.
	UnsignedMetadata bool
	// MetadataValidFor is the metadata's validUntil and cacheDuration
	// (default 24 h).
	MetadataValidFor time.Duration
	// SSOPerIPPerMinute bounds new requests per client address and
	// instance (default DefaultSSOPerIPPerMinute).
	SSOPerIPPerMinute int
	// ClassStrengths ranks further authentication context classes.
	ClassStrengths map[string]int
	// StepPath is where the step page lives (default "/step/").
	StepPath string
	// HTTPClient fetches SP metadata (default: 10 s timeout).
	HTTPClient *http.Client
	// ClientIP is the client's address behind trusted proxies (nil: the
	// host of RemoteAddr).
	ClientIP func(*http.Request) string
	Clock    flows.Clock
	Logger   *slog.Logger
}

// Provider is the SAML Identity Provider.
type Provider struct {
	flows       *flows.Service
	base        string // public URL without a trailing slash
	entityID    string
	ssoURL      string
	sloURL      string
	keys        *keyring.Ring
	registry    *registry
	sps         []*sp
	ttl         time.Duration
	wantSigned  bool
	signMeta    bool
	validFor    time.Duration
	strengths   map[string]int
	stepPath    string
	clientIP    func(*http.Request) string
	clock       flows.Clock
	log         *slog.Logger
	ssoHits     *ratelimit.Window
	handler     http.Handler
	nameFormats []saml.NameIDFormat
	metaCache   metadataCache
}

// New builds the Provider. SP metadata is loaded by Start; signing keys are
// made in the store on first use.
func New(o Options) (*Provider, error) {
	if o.Flows == nil {
		return nil, errors.New("saml idp: Options.Flows is required")
	}
	base := strings.TrimRight(o.PublicURL, "/")
	u, err := url.Parse(base)
	if err != nil || !u.IsAbs() || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("saml idp: public URL %q must be an absolute URL", o.PublicURL)
	}
	if u.Scheme == "http" && !o.Insecure && !webutil.IsLoopback(u.Hostname()) {
		return nil, fmt.Errorf("saml idp: public URL %q must use https (http only on loopback or with --insecure-dev)", o.PublicURL)
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
		return nil, fmt.Errorf("saml idp: the request lifetime must be 1m to %s, not %s", flows.MaxSignInTTL, o.RequestTTL)
	}
	if o.MetadataValidFor == 0 {
		o.MetadataValidFor = DefaultMetadataValidFor
	}
	if o.MetadataValidFor < time.Hour {
		return nil, errors.New("saml idp: metadata must stay valid for at least 1h")
	}
	if o.SSOPerIPPerMinute == 0 {
		o.SSOPerIPPerMinute = DefaultSSOPerIPPerMinute
	}
	if o.SSOPerIPPerMinute < 0 {
		return nil, errors.New("saml idp: SSOPerIPPerMinute must not be negative")
	}
	if o.StepPath == "" {
		o.StepPath = "/step/"
	}
	if o.ClientIP == nil {
		o.ClientIP = webutil.RemoteIP
	}
	if err := CheckStrengths(o.ClassStrengths); err != nil {
		return nil, fmt.Errorf("saml idp: %w", err)
	}
	sealKey, err := seal.Derive(o.Secret, "saml-signing-keys")
	if err != nil {
		return nil, fmt.Errorf("saml idp: %w", err)
	}
	p := &Provider{
		flows: o.Flows, base: base, entityID: base + "/saml/metadata", ssoURL: base + "/saml/sso", sloURL: base + "/saml/slo",
		ttl: o.RequestTTL, wantSigned: !o.AllowUnsignedRequests, signMeta: !o.UnsignedMetadata, validFor: o.MetadataValidFor,
		strengths: strengths(o.ClassStrengths), stepPath: o.StepPath, clientIP: o.ClientIP, clock: o.Clock, log: o.Logger,
		ssoHits: &ratelimit.Window{Limit: o.SSOPerIPPerMinute},
	}
	// Metadata is fetched from https URLs only; a redirect must keep to
	// them (an http hop would let the network replace the SP's keys).
	fetch := *o.HTTPClient
	fetch.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if !sendable(req.URL.String(), o.Insecure) {
			return fmt.Errorf("redirect to %s refused: not https", req.URL.Redacted())
		}
		return nil
	}
	p.registry = &registry{byEntity: map[string]*sp{}, byID: map[string]*sp{}, client: &fetch, clock: o.Clock,
		insecure: o.Insecure, log: o.Logger}
	algs := map[keyring.Alg]bool{}
	formats := map[string]bool{}
	for _, c := range o.ServiceProviders {
		if err := c.check(o.Insecure); err != nil {
			return nil, fmt.Errorf("saml idp: %w", err)
		}
		if p.registry.byID[c.ID] != nil || p.registry.byEntity[c.EntityID] != nil {
			return nil, fmt.Errorf("saml idp: service provider %s (%s) is given twice", c.ID, c.EntityID)
		}
		if c.AllowUnsignedRequests && p.wantSigned {
			return nil, fmt.Errorf("saml idp: service provider %s allows unsigned requests, but keystep asks every SP to sign (saml.want_signed_requests)", c.ID)
		}
		s := &sp{cfg: c}
		p.sps = append(p.sps, s)
		p.registry.byID[c.ID], p.registry.byEntity[c.EntityID] = s, s
		algs[c.SigningAlg] = true
		if !formats[c.NameIDFormat] {
			formats[c.NameIDFormat] = true
			p.nameFormats = append(p.nameFormats, saml.NameIDFormat(c.NameIDFormat))
		}
	}
	ring := []keyring.Alg{keyring.RS256}
	if algs[keyring.ES256] {
		ring = append(ring, keyring.ES256)
	}
	p.keys, err = keyring.New(keyring.Options{
		Store: o.Flows.Store(), Seal: sealKey, Clock: o.Clock, Use: flows.KeyUseSAML, Algs: ring, Policy: o.Keys,
		Defaults:   keyring.Policy{RotateEvery: 365 * 24 * time.Hour, PublishAhead: 30 * 24 * time.Hour, KeepAfter: 24 * time.Hour},
		CommonName: "keystep SAML signing key", Logger: o.Logger,
		NextKeyAdvice: "SPs that refresh keystep's metadata trust it in time; SPs that pin the signing certificate (ADFS or Okta without metadata monitoring) must import it from " +
			base + "/saml/metadata before then",
	})
	if err != nil {
		return nil, fmt.Errorf("saml idp: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /saml/metadata", p.serveMetadata)
	mux.Handle("/saml/sso", p.limitSSO(p.guardSSO(http.HandlerFunc(p.serveSSO))))
	mux.Handle("/saml/slo", p.limitSSO(p.guardSSO(http.HandlerFunc(p.serveSLO))))
	mux.Handle("GET /saml/login/{sp}", p.limitSSO(http.HandlerFunc(p.serveLoginForm)))
	mux.Handle("POST /saml/login/{sp}", p.limitSSO(http.HandlerFunc(p.serveLogin)))
	p.handler = mux
	return p, nil
}

// Start loads every SP's metadata and, until ctx ends, loads it again on
// each SP's schedule (a file is read again, a URL fetched again). An SP
// whose metadata cannot be loaded is logged and unusable until a refresh
// succeeds; it does not stop the others.
func (p *Provider) Start(ctx context.Context) {
	p.startWith(ctx, time.After)
}

func (p *Provider) startWith(ctx context.Context, wake func(time.Duration) <-chan time.Time) {
	for _, s := range p.sps {
		if err := p.registry.load(ctx, s); err != nil {
			p.log.ErrorContext(ctx, "saml: service provider disabled until its metadata loads", "sp", s.cfg.ID, "err", err)
		} else if s.cfg.Encrypt == EncryptAuto && !s.hasEncryptionKey() {
			p.log.InfoContext(ctx, "saml: service provider offers no RSA encryption key; its assertions are signed, not encrypted", "sp", s.cfg.ID)
		}
		go p.registry.refreshLoop(ctx, s, wake)
	}
}

// Reload loads every SP's metadata again now (tests, and SIGHUP later).
func (p *Provider) Reload(ctx context.Context) error {
	var errs []error
	for _, s := range p.sps {
		errs = append(errs, p.registry.load(ctx, s))
	}
	return errors.Join(errs...)
}

// Handler serves the IdP's endpoints (see Paths).
func (p *Provider) Handler() http.Handler { return p.handler }

// EntityID is the IdP's entity ID, which is also its metadata URL.
func (p *Provider) EntityID() string { return p.entityID }

// RotateKeys forces a rotation of the signing keys.
func (p *Provider) RotateKeys(ctx context.Context) ([]keyring.Info, error) { return p.keys.Rotate(ctx) }

// SigningKeys lists the published signing keys.
func (p *Provider) SigningKeys(ctx context.Context) ([]keyring.Info, error) { return p.keys.Info(ctx) }

// ServiceProviders is the number of configured SPs.
func (p *Provider) ServiceProviders() int { return len(p.sps) }

func (p *Provider) store() flows.Store { return p.flows.Store() }

// idpFor is the library's IdP set up for one request to sp: its signing
// key, encryption and the request's clock. The struct is cheap to copy;
// the fields the library keeps IdP-wide are per SP here.
func (p *Provider) idpFor(ctx context.Context, s *sp, now time.Time) (*saml.IdentityProvider, error) {
	alg := keyring.RS256
	var enc = (*SPConfig)(nil)
	if s != nil {
		alg, enc = s.cfg.SigningAlg, &s.cfg
	}
	key, err := p.keys.Signing(ctx, alg)
	if err != nil {
		return nil, fmt.Errorf("saml signing key: %w", err)
	}
	idp := p.baseIDP(now)
	idp.Signer, idp.Certificate = key.Signer, key.Cert
	if alg == keyring.ES256 {
		idp.Signer = rawECDSA{key.Signer}
	}
	if enc != nil {
		if idp.AssertionEncrypter, err = enc.encrypter(); err != nil {
			return nil, err
		}
	}
	return idp, nil
}

// baseIDP is the library IdP without keys.
func (p *Provider) baseIDP(now time.Time) *saml.IdentityProvider {
	meta, _ := url.Parse(p.entityID)
	sso, _ := url.Parse(p.ssoURL)
	slo, _ := url.Parse(p.sloURL)
	valid := p.validFor
	return &saml.IdentityProvider{
		Logger:                       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		MetadataURL:                  *meta,
		SSOURL:                       *sso,
		LogoutURL:                    *slo,
		LogoutBindings:               []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		ServiceProviderProvider:      p.registry,
		SessionProvider:              sessions{p},
		AssertionMaker:               maker{p},
		ResponseWriter:               autoPost{},
		ValidDuration:                &valid,
		NameIDFormats:                p.nameFormats,
		Clock:                        dsig.NewFakeClockAt(now),
		RejectSHA1Signatures:         true,
		WantAuthnRequestsSigned:      p.wantSigned,
		ReplayCache:                  replayCache{p},
		SendErrorResponses:           true,
		EnforceNameIDPolicy:          true,
		EnforceRequestedAuthnContext: true,
		AuthnContextClassStrengths:   p.strengths,
		LimitRelayStateLength:        false,
		OnError:                      p.onError,
	}
}

// onError answers what the library refuses with a plain page; nothing goes
// to any service provider.
func (p *Provider) onError(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status >= 500 {
		p.log.ErrorContext(r.Context(), "saml: request failed", "path", r.URL.Path, "status", status, "err", err)
		plainError(w, "Something went wrong on our side. Go back to the app and try again.", status)
		return
	}
	p.log.WarnContext(r.Context(), "saml: request refused", "path", r.URL.Path, "status", status, "err", err)
	plainError(w, "This sign-in request cannot be used. Go back to the app and sign in again.", status)
}

func plainError(w http.ResponseWriter, msg string, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

func (p *Provider) internalError(w http.ResponseWriter, what string, err error) {
	p.log.Error("saml: "+what, "err", err)
	plainError(w, "Something went wrong on our side. Go back to the app and try again.", http.StatusInternalServerError)
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

// hasEncryptionKey reports whether assertions to the SP will be encrypted.
func (s *sp) hasEncryptionKey() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.meta == nil {
		return false
	}
	for _, d := range s.meta.SPSSODescriptors {
		if _, err := encryptionCert(d.KeyDescriptors); err == nil {
			return true
		}
	}
	return false
}

// KeyPolicy says when signing keys rotate (see Options.Keys).
type KeyPolicy = keyring.Policy

// SigningAlg is the algorithm an SP's assertions are signed with.
type SigningAlg = keyring.Alg

// Signing algorithms.
const (
	RS256 SigningAlg = keyring.RS256 // RSA-SHA256 with a 2048-bit key (the default)
	ES256 SigningAlg = keyring.ES256 // ECDSA-SHA256 with P-256
)
