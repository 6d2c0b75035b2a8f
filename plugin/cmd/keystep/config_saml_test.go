package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/samlidp"
)

func TestConfigSAML(t *testing.T) {
	c, err := loadConfig(writeConfig(t, `
saml:
  request_ttl: 5m
  want_signed_requests: true
  publish_ahead: 720h
  rotate_every: 8760h
  authn_context_strengths: {"urn:example:strong": 5}
  service_providers:
    - id: portal
      entity_id: https://portal.example/shibboleth
      name: Example portal
      metadata_file: /etc/keystep/portal.xml
      methods: [push, qr, sms]
      name_id: username
      name_attribute: "urn:oid:0.9.2342.19200300.100.1.1"
      attributes:
        - {name: "urn:oid:0.9.2342.19200300.100.1.1", friendly_name: uid, value: username}
      authn_context: {sms: "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorUnregistered"}
      host_first_factor: true
      refeds_mfa: requested
      signing_alg: ES256
      encryption: {key_transport: rsa-oaep-mgf1p, block_cipher: aes256-cbc}
`), envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.SAML.RequestTTL != 5*time.Minute || c.SAML.PublishAhead != 720*time.Hour || c.SAML.AuthnContextStrengths["urn:example:strong"] != 5 {
		t.Errorf("saml = %+v", c.SAML)
	}
	sp, err := c.SAML.ServiceProviders[0].toSP(readCertFile)
	if err != nil {
		t.Fatal(err)
	}
	if sp.SigningAlg != samlidp.ES256 || sp.NameID != samlidp.NameIDUsername || sp.Classes[flows.MethodSMS] == "" ||
		len(sp.Methods) != 3 || sp.Attributes[0].FriendlyName != "uid" || sp.BlockCipher != "aes256-cbc" ||
		sp.NameAttribute != "urn:oid:0.9.2342.19200300.100.1.1" {
		t.Errorf("sp = %+v", sp)
	}
}

func TestConfigSAMLErrors(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown key": {`
saml:
  service_providers:
    - id: a
      entity_id: https://a.example
      metadata_file: /x
      acs_url: https://a.example/acs
`, "line 7: unknown key acs_url"},
		"twice": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example, metadata_file: /x}
    - {id: a, entity_id: https://b.example, metadata_file: /x}
`, "is given twice"},
		"no metadata": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example}
`, "exactly one of metadata_file and metadata_url"},
		"http metadata url": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example, metadata_url: http://a.example/md}
`, "must use https"},
		"refeds without first factor": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example, metadata_file: /x, refeds_mfa: always}
`, "host_first_factor"},
		"unsigned while wanted": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example, metadata_file: /x, allow_unsigned_requests: true}
`, "want_signed_requests: false"},
		"bad alg": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example, metadata_file: /x, signing_alg: HS256}
`, "signing_alg"},
		"bad cipher": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example, metadata_file: /x, encryption: {block_cipher: des}}
`, "block_cipher"},
		"bad method": {`
saml:
  service_providers:
    - {id: a, entity_id: https://a.example, metadata_file: /x, methods: [push, telepathy]}
`, `unknown method "telepathy"`},
		"ttl": {`
saml:
  request_ttl: 1h
`, "saml.request_ttl"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml), envOf(nil), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestConfigSAMLDocExample: the configuration docs/saml.md shows is valid.
func TestConfigSAMLDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/saml.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(saml:\n.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/saml.md has no saml: yaml block")
	}
	c, err := loadConfig(writeConfig(t, string(m[1])), envOf(nil), nil)
	if err != nil {
		t.Fatalf("docs/saml.md's configuration: %v", err)
	}
	if s := c.SAML; len(s.ServiceProviders) != 3 || !s.ServiceProviders[2].IdPInitiated || s.RotateEvery != 365*24*time.Hour {
		t.Errorf("saml = %+v", s)
	}
}
