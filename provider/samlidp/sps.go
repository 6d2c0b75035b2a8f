package samlidp

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	"github.com/crewjam/saml/xmlenc"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/keyring"
	"github.com/keystep/keystep/provider/internal/webutil"
	"github.com/keystep/keystep/provider/internal/xmlguard"
)

// How the NameID value of a request finds the account.
const (
	MatchUsername = "username" // the NameID is the account's username
	MatchID       = "id"       // the NameID is keystep's account id
)

// What the assertion's NameID says.
const (
	NameIDEcho     = "echo"     // the request's NameID, as given (the default)
	NameIDUsername = "username" // the account's username
	NameIDID       = "id"       // keystep's account id
)

// When assertions are encrypted.
const (
	EncryptAuto     = "auto"     // when the SP's metadata offers an RSA encryption key (the default)
	EncryptNever    = "never"    // never
	EncryptRequired = "required" // always; an SP without a usable key cannot sign in
)

// Attribute is an attribute the assertion carries for an SP.
type Attribute struct {
	Name         string // e.g. urn:oid:0.9.2342.19200300.100.1.1
	FriendlyName string // e.g. uid
	NameFormat   string // default urn:oasis:names:tc:SAML:2.0:attrname-format:uri
	// Value is what it carries: username, email, display_name or id.
	Value string
}

// SPConfig is one service provider (the host IdP or app that sends its users
// to keystep) and its policy.
type SPConfig struct {
	ID       string // a short slug: logs, /saml/login/{id}
	EntityID string
	Name     string // shown on the step page and the phone
	// MetadataFile or MetadataURL (exactly one) holds the SP's metadata.
	MetadataFile string
	MetadataURL  string
	// MetadataCerts, when set, must have signed the metadata (a signature
	// on its root element).
	MetadataCerts []*x509.Certificate
	// Refresh is how often the metadata is read or fetched again
	// (default 1 h).
	Refresh time.Duration
	// Methods are the methods its users may use (default push, qr).
	Methods []flows.Method
	Match   string // MatchUsername (default) or MatchID
	// NameAttribute, if set, names the user of a request that has no
	// <Subject>: the one value of the <saml:Attribute> of that Name in the
	// request's <samlp:Extensions> (inside the signature).
	NameAttribute string
	NameID        string // NameIDEcho (default), NameIDUsername or NameIDID
	// NameIDFormat is the format of a NameID keystep makes (default
	// unspecified); an echoed NameID keeps the request's format.
	NameIDFormat string
	Attributes   []Attribute
	// Classes maps a method to the class asserted for it (default:
	// ClassDevice for push and QR, ClassCode for codes).
	Classes map[flows.Method]string
	// HostFirstFactor says the host proved a different first factor before
	// it sent the user: only then may REFEDSMFA be other than never.
	HostFirstFactor bool
	REFEDSMFA       string // REFEDSNever (default), REFEDSRequested, REFEDSAlways
	SigningAlg      keyring.Alg
	Encrypt         string // EncryptAuto (default), EncryptNever, EncryptRequired
	// KeyTransport is rsa-oaep (default: XML Encryption 1.1 RSA-OAEP with
	// SHA-256) or rsa-oaep-mgf1p (1.0's RSA-OAEP with SHA-1, for SPs on
	// xmlseclibs such as SimpleSAMLphp 1.x, which know no other).
	KeyTransport string
	// BlockCipher is aes256-gcm (default), aes128-gcm, aes256-cbc or
	// aes128-cbc.
	BlockCipher string
	// AllowUnsignedRequests accepts AuthnRequests without a signature. Off
	// by default: an unsigned request naming a user lets anyone send
	// prompts to that user's phone.
	AllowUnsignedRequests bool
	// IdPInitiated allows a login started at keystep (/saml/login/{id}),
	// a possession-only login with an unsolicited Response.
	IdPInitiated bool
}

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// check fills defaults and refuses a policy that cannot work.
func (c *SPConfig) check(insecure bool) error {
	c.Attributes = slices.Clone(c.Attributes)
	if !slugRE.MatchString(c.ID) {
		return fmt.Errorf("service provider id %q: use lower-case letters, digits, - and _", c.ID)
	}
	if c.EntityID == "" {
		return fmt.Errorf("service provider %s: entity_id is required", c.ID)
	}
	if c.Name == "" {
		c.Name = c.ID
	}
	if (c.MetadataFile == "") == (c.MetadataURL == "") {
		return fmt.Errorf("service provider %s: give exactly one of metadata_file and metadata_url", c.ID)
	}
	if c.MetadataURL != "" {
		u, err := url.Parse(c.MetadataURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("service provider %s: metadata_url %q is not an http(s) URL", c.ID, c.MetadataURL)
		}
		if u.Scheme == "http" && !insecure && !webutil.IsLoopback(u.Hostname()) {
			return fmt.Errorf("service provider %s: metadata_url must use https (http only on loopback or with --insecure-dev)", c.ID)
		}
	}
	if c.Refresh == 0 {
		c.Refresh = time.Hour
	}
	if c.Refresh < time.Minute {
		return fmt.Errorf("service provider %s: refresh must be at least 1m", c.ID)
	}
	if len(c.Methods) == 0 {
		c.Methods = []flows.Method{flows.MethodPush, flows.MethodQR}
	}
	for _, m := range c.Methods {
		if !slices.Contains(allMethods, m) {
			return fmt.Errorf("service provider %s: unknown method %q", c.ID, m)
		}
	}
	switch c.Match {
	case "":
		c.Match = MatchUsername
	case MatchUsername, MatchID:
	default:
		return fmt.Errorf("service provider %s: match must be username or id", c.ID)
	}
	switch c.NameID {
	case "":
		c.NameID = NameIDEcho
	case NameIDEcho, NameIDUsername, NameIDID:
	default:
		return fmt.Errorf("service provider %s: name_id must be echo, username or id", c.ID)
	}
	if c.NameIDFormat == "" {
		c.NameIDFormat = string(saml.UnspecifiedNameIDFormat)
	}
	for i, a := range c.Attributes {
		if a.Name == "" {
			return fmt.Errorf("service provider %s: attribute %d has no name", c.ID, i+1)
		}
		switch a.Value {
		case "username", "email", "display_name", "id":
		default:
			return fmt.Errorf("service provider %s: attribute %s: value must be username, email, display_name or id", c.ID, a.Name)
		}
		if a.NameFormat == "" {
			c.Attributes[i].NameFormat = "urn:oasis:names:tc:SAML:2.0:attrname-format:uri"
		}
	}
	for m, class := range c.Classes {
		if !slices.Contains(allMethods, m) || class == "" {
			return fmt.Errorf("service provider %s: authn_context: %q → %q is not a method and a class", c.ID, m, class)
		}
		if class == ClassREFEDSMFA {
			return fmt.Errorf("service provider %s: use refeds_mfa, not authn_context, to assert %s", c.ID, ClassREFEDSMFA)
		}
	}
	switch c.REFEDSMFA {
	case "":
		c.REFEDSMFA = REFEDSNever
	case REFEDSNever:
	case REFEDSRequested, REFEDSAlways:
		if !c.HostFirstFactor {
			return fmt.Errorf("service provider %s: refeds_mfa %s needs host_first_factor: true (keystep alone is one factor)", c.ID, c.REFEDSMFA)
		}
		if c.AllowUnsignedRequests {
			return fmt.Errorf("service provider %s: refeds_mfa %s needs signed requests (only a signed request shows the host sent the user)", c.ID, c.REFEDSMFA)
		}
	default:
		return fmt.Errorf("service provider %s: refeds_mfa must be never, requested or always", c.ID)
	}
	switch c.SigningAlg {
	case "":
		c.SigningAlg = keyring.RS256
	case keyring.RS256, keyring.ES256:
	default:
		return fmt.Errorf("service provider %s: signing_alg must be RS256 or ES256", c.ID)
	}
	switch c.Encrypt {
	case "":
		c.Encrypt = EncryptAuto
	case EncryptAuto, EncryptNever, EncryptRequired:
	default:
		return fmt.Errorf("service provider %s: encrypt_assertions must be auto, never or required", c.ID)
	}
	if _, err := c.encrypter(); err != nil {
		return fmt.Errorf("service provider %s: %w", c.ID, err)
	}
	return nil
}

var allMethods = []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride}

// encrypter is the assertion encryption the SP asked for.
func (c *SPConfig) encrypter() (xmlenc.Encrypter, error) {
	var e xmlenc.RSA
	switch c.KeyTransport {
	case "", "rsa-oaep":
		e = xmlenc.OAEP_SHA256()
	case "rsa-oaep-mgf1p":
		// XML Encryption 1.0's RSA-OAEP: MGF1 with SHA-1 and, as
		// xmlseclibs (SimpleSAMLphp) requires, a SHA-1 OAEP digest.
		e = xmlenc.OAEP()
		e.DigestMethod = &xmlenc.SHA1
	default:
		return nil, fmt.Errorf("encryption key_transport must be rsa-oaep or rsa-oaep-mgf1p, not %q", c.KeyTransport)
	}
	switch c.BlockCipher {
	case "", "aes256-gcm":
		e.BlockCipher = xmlenc.AES256GCM
	case "aes128-gcm":
		e.BlockCipher = xmlenc.AES128GCM
	case "aes256-cbc":
		e.BlockCipher = xmlenc.AES256CBC
	case "aes128-cbc":
		e.BlockCipher = xmlenc.AES128CBC
	default:
		return nil, fmt.Errorf("encryption block_cipher must be aes256-gcm, aes128-gcm, aes256-cbc or aes128-cbc, not %q", c.BlockCipher)
	}
	return e, nil
}

// sp is a configured service provider with its current metadata.
type sp struct {
	cfg SPConfig

	mu        sync.RWMutex
	meta      *saml.EntityDescriptor // filtered; nil until loaded
	loadErr   error
	expiresAt time.Time // validUntil of the metadata (zero: none)
}

// metadata returns the SP's usable metadata, or an error saying why there is
// none.
func (s *sp) metadata(now time.Time) (*saml.EntityDescriptor, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.meta == nil {
		if s.loadErr != nil {
			return nil, s.loadErr
		}
		return nil, errors.New("metadata not loaded")
	}
	if !s.expiresAt.IsZero() && !now.Before(s.expiresAt) {
		return nil, fmt.Errorf("metadata expired at %s (validUntil)", s.expiresAt.Format(time.RFC3339))
	}
	return s.meta, nil
}

// registry is the ServiceProviderProvider: the configured SPs by entity ID.
type registry struct {
	byEntity map[string]*sp
	byID     map[string]*sp
	client   *http.Client
	clock    flows.Clock
	insecure bool
	log      *slog.Logger
	onLoad   func(*sp, error) // tests: called after each load
}

// GetServiceProvider returns the filtered metadata of a configured SP.
func (g *registry) GetServiceProvider(_ *http.Request, entityID string) (*saml.EntityDescriptor, error) {
	s := g.byEntity[entityID]
	if s == nil {
		return nil, os.ErrNotExist
	}
	m, err := s.metadata(g.clock.Now())
	if err != nil {
		g.log.Warn("saml: service provider has no usable metadata", "sp", s.cfg.ID, "err", err)
		return nil, os.ErrNotExist
	}
	return m, nil
}

// maxMetadataBytes bounds a fetched or read metadata document.
const maxMetadataBytes = 4 << 20

// load reads, checks and installs the SP's metadata. On failure the last
// good copy stays.
func (g *registry) load(ctx context.Context, s *sp) (err error) {
	if g.onLoad != nil {
		defer func() { g.onLoad(s, err) }()
	}
	data, err := g.read(ctx, &s.cfg)
	if err == nil {
		var m *saml.EntityDescriptor
		m, err = parseSPMetadata(data, &s.cfg, g.insecure)
		if err == nil {
			exp := time.Time{}
			if !m.ValidUntil.IsZero() {
				exp = m.ValidUntil
			}
			s.mu.Lock()
			s.meta, s.loadErr, s.expiresAt = m, nil, exp
			s.mu.Unlock()
			return nil
		}
	}
	err = fmt.Errorf("service provider %s: %w", s.cfg.ID, err)
	s.mu.Lock()
	s.loadErr = err
	s.mu.Unlock()
	return err
}

func (g *registry) read(ctx context.Context, c *SPConfig) ([]byte, error) {
	if c.MetadataFile != "" {
		f, err := os.Open(c.MetadataFile)
		if err != nil {
			return nil, fmt.Errorf("metadata file: %w", err)
		}
		defer f.Close()
		return readCapped(f)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.MetadataURL, nil)
	if err != nil {
		return nil, fmt.Errorf("metadata URL: %w", err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch metadata: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch metadata: %s", resp.Status)
	}
	return readCapped(resp.Body)
}

func readCapped(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read metadata: %w", err)
	}
	if len(data) > maxMetadataBytes {
		return nil, fmt.Errorf("metadata is larger than %d bytes", maxMetadataBytes)
	}
	return data, nil
}

// parseSPMetadata checks untrusted SP metadata and returns the SP's entity
// with only the endpoints keystep may answer: HTTP-POST assertion consumer
// services on https (http only on loopback or when insecure).
func parseSPMetadata(data []byte, c *SPConfig, insecure bool) (*saml.EntityDescriptor, error) {
	if err := xmlguard.Check(data, xmlguard.Metadata); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if alg, err := xmlguard.SHA1Used(data); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	} else if alg != "" {
		return nil, fmt.Errorf("metadata is signed with SHA-1 (%s), which keystep refuses", alg)
	}
	var m *saml.EntityDescriptor
	var err error
	if len(c.MetadataCerts) > 0 {
		m, err = samlsp.ParseSignedMetadataByEntityID(data, c.EntityID, c.MetadataCerts)
	} else {
		m, err = samlsp.ParseMetadataByEntityID(data, c.EntityID)
	}
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	if m.EntityID != c.EntityID {
		return nil, fmt.Errorf("metadata is for %q, not %q", m.EntityID, c.EntityID)
	}
	out := *m
	out.SPSSODescriptors = nil
	for _, d := range m.SPSSODescriptors {
		var acs []saml.IndexedEndpoint
		for _, e := range d.AssertionConsumerServices {
			if e.Binding == saml.HTTPPostBinding && sendable(e.Location, insecure) {
				acs = append(acs, e)
			}
		}
		if len(acs) == 0 {
			continue
		}
		d.AssertionConsumerServices = acs
		d.SingleLogoutServices = slices.DeleteFunc(slices.Clone(d.SingleLogoutServices), func(e saml.Endpoint) bool {
			return !sendable(e.Location, insecure) || (e.ResponseLocation != "" && !sendable(e.ResponseLocation, insecure))
		})
		d.ArtifactResolutionServices = nil
		d.ManageNameIDServices = nil
		// The library encrypts to the key of the descriptor whose ACS
		// answers, so each descriptor is judged on its own.
		_, encErr := encryptionCert(d.KeyDescriptors)
		if c.Encrypt == EncryptRequired && encErr != nil {
			continue // no assertion may go to it unencrypted
		}
		if c.Encrypt == EncryptNever || encErr != nil {
			d.KeyDescriptors = signingOnly(d.KeyDescriptors) // the library then never encrypts
		}
		out.SPSSODescriptors = append(out.SPSSODescriptors, d)
	}
	if len(out.SPSSODescriptors) == 0 {
		if c.Encrypt == EncryptRequired {
			return nil, errors.New("metadata has no HTTP-POST AssertionConsumerService on https with an RSA encryption key of 2048 bits or more, and encrypt_assertions is required")
		}
		return nil, errors.New("metadata has no HTTP-POST AssertionConsumerService on https")
	}
	out.IDPSSODescriptors = nil
	return &out, nil
}

// sendable is a URL keystep may post an answer to.
func sendable(raw string, insecure bool) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return insecure || webutil.IsLoopback(u.Hostname())
	}
	return false
}

// encryptionCert is a descriptor's RSA encryption certificate (2048 bits
// or more) as the library picks it: the first KeyDescriptor with
// use="encryption", else the first without a use.
func encryptionCert(kds []saml.KeyDescriptor) (*x509.Certificate, error) {
	for _, use := range []string{"encryption", ""} {
		for _, kd := range kds {
			if kd.Use != use || len(kd.KeyInfo.X509Data.X509Certificates) == 0 {
				continue
			}
			raw := strings.Join(strings.Fields(kd.KeyInfo.X509Data.X509Certificates[0].Data), "")
			der, err := base64.StdEncoding.DecodeString(raw)
			if err != nil {
				return nil, fmt.Errorf("the encryption certificate cannot be read: %w", err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return nil, fmt.Errorf("the encryption certificate cannot be read: %w", err)
			}
			pub, ok := cert.PublicKey.(*rsa.PublicKey)
			if !ok || pub.N.BitLen() < 2048 {
				return nil, errors.New("the encryption key is not RSA of 2048 bits or more")
			}
			return cert, nil
		}
	}
	return nil, errors.New("the metadata offers no encryption key")
}

// signingOnly keeps the keys of a descriptor the library could not
// encrypt to: the signing ones, and those without a use as signing ones.
func signingOnly(kds []saml.KeyDescriptor) []saml.KeyDescriptor {
	var keep []saml.KeyDescriptor
	for _, kd := range kds {
		switch kd.Use {
		case "signing":
			keep = append(keep, kd)
		case "": // signing and encryption: keep it for signing only
			kd.Use = "signing"
			keep = append(keep, kd)
		}
	}
	return keep
}

// refreshLoop loads the SP's metadata again on schedule until ctx ends.
func (g *registry) refreshLoop(ctx context.Context, s *sp, wake func(time.Duration) <-chan time.Time) {
	for {
		wait := s.nextRefresh(g.clock.Now())
		select {
		case <-ctx.Done():
			return
		case <-wake(wait):
		}
		if err := g.load(ctx, s); err != nil {
			g.log.WarnContext(ctx, "saml: metadata refresh failed; keeping the last good copy", "sp", s.cfg.ID, "err", err)
		}
	}
}

// nextRefresh is how long until the metadata is loaded again: the SP's
// refresh period, a minute after a failure, and at most half the time
// left before the metadata's validUntil (but not under a minute).
func (s *sp) nextRefresh(now time.Time) time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	wait := s.cfg.Refresh
	if s.loadErr != nil {
		wait = min(wait, time.Minute)
	}
	if !s.expiresAt.IsZero() {
		wait = min(wait, max(time.Minute, s.expiresAt.Sub(now)/2))
	}
	return wait
}

// CheckSP checks an SP's configuration as New would, without loading its
// metadata; insecure is --insecure-dev.
func CheckSP(c SPConfig, insecure bool) error { return c.check(insecure) }
