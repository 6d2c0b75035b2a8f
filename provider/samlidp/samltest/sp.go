// Package samltest is a SAML service provider for tests of keystep's SAML
// IdP: github.com/crewjam/saml's ServiceProvider (the code samlsp runs) with
// helpers that make the AuthnRequests a host sends for a step (naming the
// user in <Subject>, signed, over HTTP-POST or HTTP-Redirect) and read the
// Responses keystep posts back.
package samltest

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
	dsig "github.com/russellhaering/goxmldsig"
)

// SP is a test service provider.
type SP struct {
	*saml.ServiceProvider
	// MetadataFile holds the SP's metadata, for keystep's configuration.
	MetadataFile string
}

// Options configures an SP.
type Options struct {
	// BaseURL is the SP's URL; its ACS is BaseURL/saml/acs.
	BaseURL string
	// EntityID defaults to BaseURL/saml/metadata.
	EntityID string
	// Encrypt publishes an encryption key, asking for encrypted assertions.
	Encrypt bool
	// Unsigned makes the SP send unsigned AuthnRequests.
	Unsigned bool
}

// NewSP makes a test SP with fresh RSA keys and writes its metadata to a
// file in a temporary directory.
func NewSP(tb testing.TB, o Options) *SP {
	tb.Helper()
	base, err := url.Parse(o.BaseURL)
	if err != nil {
		tb.Fatal(err)
	}
	key, cert := NewKey(tb, "test SP")
	sp := &saml.ServiceProvider{
		Key: key, Certificate: cert,
		MetadataURL: *base.JoinPath("saml/metadata"),
		AcsURL:      *base.JoinPath("saml/acs"),
		SloURL:      *base.JoinPath("saml/slo"),
		EntityID:    o.EntityID,
		// A step request names its user in <Subject>: the answer echoes
		// that NameID, whose format is not transient.
		AuthnNameIDFormat: saml.UnspecifiedNameIDFormat,
		LogoutBindings:    []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
	}
	if sp.EntityID == "" {
		sp.EntityID = sp.MetadataURL.String()
	}
	if !o.Unsigned {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	if o.Encrypt {
		sp.EncryptionKey, sp.EncryptionCertificate = key, cert
	}
	md := sp.Metadata()
	if !o.Encrypt {
		SigningOnly(md)
	}
	buf, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "sp-metadata.xml")
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		tb.Fatal(err)
	}
	return &SP{ServiceProvider: sp, MetadataFile: path}
}

// NewKey makes an RSA-2048 key and a self-signed certificate.
func NewKey(tb testing.TB, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

// UseIdPMetadata parses the IdP's metadata (as served) into the SP.
func (s *SP) UseIdPMetadata(tb testing.TB, data []byte) {
	tb.Helper()
	md, err := samlsp.ParseMetadata(data)
	if err != nil {
		tb.Fatalf("IdP metadata: %v\n%s", err, data)
	}
	s.IDPMetadata = md
}

// Request is an AuthnRequest ready to send.
type Request struct {
	*saml.AuthnRequest
	// URL is where to send it: with the query for HTTP-Redirect, the SSO
	// URL for HTTP-POST.
	URL string
	// Form is the HTTP-POST form (nil for HTTP-Redirect).
	Form url.Values
}

// AuthnRequest makes a request to the IdP's SSO URL naming nameID in
// <Subject> (empty: no Subject), over binding, after edit (if not nil)
// changed it; it is signed unless the SP is unsigned.
func (s *SP) AuthnRequest(tb testing.TB, binding, nameID, relayState string, edit func(*saml.AuthnRequest)) Request {
	tb.Helper()
	sso := s.GetSSOBindingLocation(binding)
	if sso == "" {
		tb.Fatalf("the IdP metadata has no %s SSO endpoint", binding)
	}
	req, err := s.MakeAuthenticationRequest(sso, binding, saml.HTTPPostBinding)
	if err != nil {
		tb.Fatal(err)
	}
	if nameID != "" {
		req.Subject = &saml.Subject{NameID: &saml.NameID{Value: nameID}}
	}
	if edit != nil {
		edit(req)
	}
	req.Signature = nil
	if binding == saml.HTTPRedirectBinding {
		u, err := req.Redirect(relayState, s.ServiceProvider)
		if err != nil {
			tb.Fatal(err)
		}
		return Request{AuthnRequest: req, URL: u.String()}
	}
	if s.SignatureMethod != "" {
		if err := s.SignAuthnRequest(req); err != nil {
			tb.Fatal(err)
		}
	}
	form := url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString(ElementBytes(tb, req.Element()))}}
	if relayState != "" {
		form.Set("RelayState", relayState)
	}
	return Request{AuthnRequest: req, URL: sso, Form: form}
}

// ElementBytes serializes an element.
func ElementBytes(tb testing.TB, el *etree.Element) []byte {
	tb.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Status is the outcome of a Response: its status codes and message.
type Status struct {
	Top, Second, Message string
}

// Success reports a Success status.
func (s Status) Success() bool { return s.Top == saml.StatusSuccess }

func (s Status) String() string { return fmt.Sprintf("%s / %s (%s)", s.Top, s.Second, s.Message) }

// ReadStatus decodes a posted SAMLResponse and reads its status, without
// checking anything.
func ReadStatus(tb testing.TB, samlResponse string) (Status, []byte) {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		tb.Fatalf("SAMLResponse: %v", err)
	}
	var r saml.Response
	if err := xml.NewDecoder(bytes.NewReader(raw)).Decode(&r); err != nil {
		tb.Fatalf("SAMLResponse: %v\n%s", err, raw)
	}
	st := Status{Top: r.Status.StatusCode.Value}
	if r.Status.StatusCode.StatusCode != nil {
		st.Second = r.Status.StatusCode.StatusCode.Value
	}
	if r.Status.StatusMessage != nil {
		st.Message = r.Status.StatusMessage.Value
	}
	return st, raw
}

// Assertion checks a posted SAMLResponse as the SP would (signatures,
// audience, recipient, InResponseTo, times) and returns its assertion.
func (s *SP) Assertion(tb testing.TB, samlResponse string, requestIDs ...string) (*saml.Assertion, error) {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(samlResponse)
	if err != nil {
		return nil, err
	}
	return s.ParseXMLResponse(raw, requestIDs, s.AcsURL)
}

// SignedXML signs the AuthnRequest element el (enveloped, RSA-SHA256,
// exclusive canonicalization; the Signature is its last child) with
// the SP's key, for requests the library's struct cannot express (such
// as one with <samlp:Extensions>), and returns the HTTP-POST form value.
func (s *SP) SignedXML(tb testing.TB, el *etree.Element) string {
	tb.Helper()
	key, ok := s.Key.(*rsa.PrivateKey)
	if !ok {
		tb.Fatal("the test SP's key is not RSA")
	}
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{s.Certificate.Raw}, PrivateKey: key}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		tb.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(ElementBytes(tb, signed))
}

// SigningOnly keeps only the signing keys of an SP's metadata: the library
// lists the signing key for encryption too, which would ask for encrypted
// assertions.
func SigningOnly(md *saml.EntityDescriptor) {
	for i := range md.SPSSODescriptors {
		var keep []saml.KeyDescriptor
		for _, kd := range md.SPSSODescriptors[i].KeyDescriptors {
			if kd.Use == "signing" {
				keep = append(keep, kd)
			}
		}
		md.SPSSODescriptors[i].KeyDescriptors = keep
	}
}
