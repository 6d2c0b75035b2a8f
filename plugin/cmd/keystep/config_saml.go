package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/samlidp"
)

// SAMLConfig is the SAML Identity Provider: its service providers (the
// hosts that send their users to keystep) and keys.
type SAMLConfig struct {
	ServiceProviders []SAMLSPConfig
	RequestTTL       time.Duration // how long a user has for the step (default 10m)
	// WantSignedRequests asks every SP to sign its AuthnRequests (default
	// true); nil: the default.
	WantSignedRequests *bool
	SignMetadata       *bool         // sign /saml/metadata (default true)
	MetadataValidFor   time.Duration // validUntil and cacheDuration (default 24h)
	RotateEvery        time.Duration // signing key lifetime (default 365 days)
	PublishAhead       time.Duration // next key in the metadata before it signs (default 30 days)
	SSOPerIPPerMinute  int           // new requests per client address (0: samlidp's default)
	// AuthnContextStrengths ranks further authentication context classes.
	AuthnContextStrengths map[string]int
}

// SAMLSPConfig is one service provider in the file.
type SAMLSPConfig struct {
	ID                    string            `yaml:"id"`
	EntityID              string            `yaml:"entity_id"`
	Name                  string            `yaml:"name"`
	MetadataFile          string            `yaml:"metadata_file"`
	MetadataURL           string            `yaml:"metadata_url"`
	MetadataSigningCert   string            `yaml:"metadata_signing_cert"`
	Refresh               time.Duration     `yaml:"refresh"`
	Methods               []string          `yaml:"methods"`
	Match                 string            `yaml:"match"`
	NameAttribute         string            `yaml:"name_attribute"`
	NameID                string            `yaml:"name_id"`
	NameIDFormat          string            `yaml:"name_id_format"`
	Attributes            []SAMLAttribute   `yaml:"attributes"`
	AuthnContext          map[string]string `yaml:"authn_context"`
	HostFirstFactor       bool              `yaml:"host_first_factor"`
	REFEDSMFA             string            `yaml:"refeds_mfa"`
	SigningAlg            string            `yaml:"signing_alg"`
	EncryptAssertions     string            `yaml:"encrypt_assertions"`
	Encryption            SAMLEncryption    `yaml:"encryption"`
	AllowUnsignedRequests bool              `yaml:"allow_unsigned_requests"`
	IdPInitiated          bool              `yaml:"idp_initiated"`

	line int // where the SP begins in the file, for errors (0: unknown)
	num  int // its place in the file's list, counting those that could not be read (0: unknown)
}

// SAMLAttribute is an attribute an SP gets.
type SAMLAttribute struct {
	Name         string `yaml:"name"`
	FriendlyName string `yaml:"friendly_name"`
	NameFormat   string `yaml:"name_format"`
	Value        string `yaml:"value"`
}

// SAMLEncryption names the algorithms assertions are encrypted with.
type SAMLEncryption struct {
	KeyTransport string `yaml:"key_transport"`
	BlockCipher  string `yaml:"block_cipher"`
}

func (c *Config) samlSchema() schema {
	return schema{
		"saml": schema{
			"service_providers":       samlSPsValue(&c.SAML.ServiceProviders),
			"request_ttl":             durationValue(&c.SAML.RequestTTL),
			"want_signed_requests":    optionalBoolValue(&c.SAML.WantSignedRequests),
			"sign_metadata":           optionalBoolValue(&c.SAML.SignMetadata),
			"metadata_valid_for":      durationValue(&c.SAML.MetadataValidFor),
			"rotate_every":            durationValue(&c.SAML.RotateEvery),
			"publish_ahead":           durationValue(&c.SAML.PublishAhead),
			"sso_per_ip_per_minute":   intValue(&c.SAML.SSOPerIPPerMinute),
			"authn_context_strengths": strengthsValue(&c.SAML.AuthnContextStrengths),
		},
	}
}

func strengthsValue(p *map[string]int) setter {
	return func(n *yaml.Node) error {
		m := map[string]int{}
		if err := n.Decode(&m); err != nil {
			return errors.New("must map class URIs to ranks (integers)")
		}
		*p = m
		return nil
	}
}

// samlSPsValue reads the service providers strictly: every key of an item
// must be a field of SAMLSPConfig.
func samlSPsValue(p *[]SAMLSPConfig) setter {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return errors.New("must be a list of service providers")
		}
		out := []SAMLSPConfig{}
		var errs []error
		for i, item := range n.Content {
			var sc SAMLSPConfig
			if err := strictDecode(resolve(item), &sc); err != nil {
				errs = append(errs, prefixErrors(fmt.Sprintf("service provider %d: ", i+1), err)...)
				continue
			}
			sc.line, sc.num = resolve(item).Line, i+1
			out = append(out, sc)
		}
		*p = out
		return errors.Join(errs...)
	}
}

// validateSAML checks what can be checked without reading files.
func (c *Config) validateSAML() []error {
	var errs []error
	if c.SAML.SSOPerIPPerMinute < 0 {
		errs = append(errs, c.keyError("saml.sso_per_ip_per_minute", "must not be negative"))
	}
	if c.SAML.RequestTTL != 0 && (c.SAML.RequestTTL < time.Minute || c.SAML.RequestTTL > flows.MaxSignInTTL) {
		errs = append(errs, c.keyError("saml.request_ttl", "must be 1m to %s", flows.MaxSignInTTL))
	}
	if c.SAML.MetadataValidFor != 0 && c.SAML.MetadataValidFor < time.Hour {
		errs = append(errs, c.keyError("saml.metadata_valid_for", "must be at least 1h"))
	}
	if c.SAML.RotateEvery != 0 && c.SAML.PublishAhead >= c.SAML.RotateEvery {
		errs = append(errs, c.keyError("saml.publish_ahead", "must be shorter than saml.rotate_every"))
	}
	if err := samlidp.CheckStrengths(c.SAML.AuthnContextStrengths); err != nil {
		errs = append(errs, c.keyError("saml.authn_context_strengths", "%v", err))
	}
	want := c.SAML.WantSignedRequests == nil || *c.SAML.WantSignedRequests
	seen, seenEntity := map[string]bool{}, map[string]bool{}
	for i, sc := range c.SAML.ServiceProviders {
		if (sc.ID != "" && seen[sc.ID]) || (sc.EntityID != "" && seenEntity[sc.EntityID]) {
			errs = append(errs, c.keyErrorAt("saml.service_providers", sc.line, "service provider %d: id %q or entity_id %q is given twice", itemNum(i, sc.num), sc.ID, sc.EntityID))
		}
		seen[sc.ID], seenEntity[sc.EntityID] = true, true
		if sc.AllowUnsignedRequests && want {
			errs = append(errs, c.keyErrorAt("saml.service_providers", sc.line, "service provider %d: allow_unsigned_requests needs saml.want_signed_requests: false", itemNum(i, sc.num)))
		}
		sp, err := sc.toSP(func(string) ([]*x509.Certificate, error) { return nil, nil })
		if err == nil {
			err = samlidp.CheckSP(sp, c.InsecureDev)
		}
		if err != nil {
			errs = append(errs, c.keyErrorAt("saml.service_providers", sc.line, "service provider %d: %v", itemNum(i, sc.num), err))
		}
	}
	return errs
}

// toSP turns a file entry into the provider's SP; readCerts reads the
// metadata signing certificate file.
func (sc SAMLSPConfig) toSP(readCerts func(string) ([]*x509.Certificate, error)) (samlidp.SPConfig, error) {
	out := samlidp.SPConfig{
		ID: sc.ID, EntityID: sc.EntityID, Name: sc.Name, MetadataFile: sc.MetadataFile, MetadataURL: sc.MetadataURL,
		Refresh: sc.Refresh, Match: sc.Match, NameAttribute: sc.NameAttribute, NameID: sc.NameID, NameIDFormat: sc.NameIDFormat,
		HostFirstFactor: sc.HostFirstFactor, REFEDSMFA: sc.REFEDSMFA, SigningAlg: samlidp.SigningAlg(sc.SigningAlg),
		Encrypt: sc.EncryptAssertions, KeyTransport: sc.Encryption.KeyTransport, BlockCipher: sc.Encryption.BlockCipher,
		AllowUnsignedRequests: sc.AllowUnsignedRequests, IdPInitiated: sc.IdPInitiated,
	}
	for _, m := range sc.Methods {
		out.Methods = append(out.Methods, flows.Method(m))
	}
	for _, a := range sc.Attributes {
		out.Attributes = append(out.Attributes, samlidp.Attribute{Name: a.Name, FriendlyName: a.FriendlyName, NameFormat: a.NameFormat, Value: a.Value})
	}
	if len(sc.AuthnContext) > 0 {
		out.Classes = map[flows.Method]string{}
		for m, class := range sc.AuthnContext {
			out.Classes[flows.Method(m)] = class
		}
	}
	if sc.MetadataSigningCert != "" {
		certs, err := readCerts(sc.MetadataSigningCert)
		if err != nil {
			return out, fmt.Errorf("metadata_signing_cert: %w", err)
		}
		out.MetadataCerts = certs
	}
	return out, nil
}

// readCertFile reads PEM certificates.
func readCertFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return certs, nil
}
