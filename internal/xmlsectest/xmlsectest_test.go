package xmlsectest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// signer is a crewjam/saml IdP that signs metadata and Responses for one
// SP, without HTTP.
type signer struct {
	idp     *saml.IdentityProvider
	certPEM []byte
	sp      *saml.EntityDescriptor
}

func newSigner(t *testing.T, key crypto.Signer) *signer {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "keystep xmlsectest IdP"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	yes := true
	s := &signer{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		sp: &saml.EntityDescriptor{
			EntityID: "https://sp.example.org/metadata",
			SPSSODescriptors: []saml.SPSSODescriptor{{
				SSODescriptor: saml.SSODescriptor{RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
				}},
				AssertionConsumerServices: []saml.IndexedEndpoint{{
					Binding: saml.HTTPPostBinding, Location: "https://sp.example.org/acs", Index: 0, IsDefault: &yes,
				}},
			}},
		},
	}
	s.idp = &saml.IdentityProvider{
		Signer:                  key,
		Certificate:             cert,
		Logger:                  log.New(os.Stderr, "idp: ", 0),
		MetadataURL:             url.URL{Scheme: "https", Host: "idp.example.org", Path: "/saml/metadata"},
		SSOURL:                  url.URL{Scheme: "https", Host: "idp.example.org", Path: "/saml/sso"},
		ServiceProviderProvider: s,
	}
	return s
}

// GetServiceProvider implements saml.ServiceProviderProvider.
func (s *signer) GetServiceProvider(_ *http.Request, id string) (*saml.EntityDescriptor, error) {
	if id != s.sp.EntityID {
		return nil, os.ErrNotExist
	}
	return s.sp, nil
}

// metadata returns the IdP's signed metadata and its ID.
func (s *signer) metadata(t *testing.T) ([]byte, string) {
	t.Helper()
	el, err := s.idp.SignedMetadata()
	if err != nil {
		t.Fatal(err)
	}
	return serialize(t, el), el.SelectAttrValue("ID", "")
}

// response returns a signed Response for nameID with a signed Assertion,
// and their IDs.
func (s *signer) response(t *testing.T, nameID string) (doc []byte, responseID, assertionID string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "https://idp.example.org/saml/sso", nil)
	req, err := s.idp.NewIdpInitiatedRequest(r, s.sp.EntityID, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	session := &saml.Session{
		ID: "session-1", CreateTime: now, ExpireTime: now.Add(time.Hour), Index: "index-1",
		NameID: nameID, NameIDFormat: "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
		UserName: nameID, UserEmail: nameID + "@example.org",
	}
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		t.Fatal(err)
	}
	if err := req.MakeResponse(); err != nil {
		t.Fatal(err)
	}
	return serialize(t, req.ResponseEl), req.ResponseEl.SelectAttrValue("ID", ""), req.Assertion.ID
}

func serialize(t *testing.T, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestXmlsec1(t *testing.T) {
	t.Parallel()
	s := newSigner(t, rsaKey(t))
	other := newSigner(t, rsaKey(t))
	md, mdID := s.metadata(t)
	resp, respID, assertionID := s.response(t, "alice")
	if !bytes.Contains(md, []byte(dsig.RSASHA256SignatureMethod)) || !bytes.Contains(resp, []byte(dsig.RSASHA256SignatureMethod)) {
		t.Fatal("not signed with rsa-sha256")
	}

	t.Run("good", func(t *testing.T) {
		for _, c := range []struct {
			name, id string
			doc      []byte
		}{{"metadata", mdID, md}, {"response", respID, resp}, {"assertion", assertionID, resp}} {
			if err := Verify(t, c.doc, s.certPEM, c.id); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		}
	})

	t.Run("one byte of the NameID changed", func(t *testing.T) {
		changed := bytes.Replace(resp, []byte(">alice</saml:NameID>"), []byte(">alicf</saml:NameID>"), 1)
		if bytes.Equal(changed, resp) {
			t.Fatalf("no NameID alice in %s", resp)
		}
		for _, id := range []string{respID, assertionID} {
			err := Verify(t, changed, s.certPEM, id)
			if err == nil || !strings.Contains(err.Error(), "xmlsec1") {
				t.Errorf("Verify(%s) = %v, want xmlsec1 to fail", id, err)
			} else {
				t.Logf("%s: %v", id, err)
			}
		}
	})

	// The documents carry their signer's certificate in KeyInfo; Verify
	// must not use it.
	t.Run("another certificate", func(t *testing.T) {
		for _, c := range []struct {
			id  string
			doc []byte
		}{{mdID, md}, {respID, resp}, {assertionID, resp}} {
			err := Verify(t, c.doc, other.certPEM, c.id)
			if err == nil || !strings.Contains(err.Error(), "xmlsec1") {
				t.Errorf("Verify(%s) with another certificate = %v, want xmlsec1 to fail", c.id, err)
			}
		}
	})

	t.Run("the assertion's signature, not the response's", func(t *testing.T) {
		// Break the Response's signature only: the Assertion's still
		// verifies, so --node-id picks the signature inside the element.
		broken := breakSignatureValue(t, resp, respID)
		if err := Verify(t, broken, s.certPEM, respID); err == nil {
			t.Error("the Response verified with a broken signature")
		}
		if err := Verify(t, broken, s.certPEM, assertionID); err != nil {
			t.Errorf("the Assertion: %v", err)
		}
	})

	t.Run("shape", func(t *testing.T) {
		for name, c := range map[string]struct {
			doc  []byte
			id   string
			want string
		}{
			"no such ID":   {resp, "id-nothing", "0 elements have ID"},
			"no ID":        {resp, "", "no ID to verify"},
			"duplicate ID": {bytes.Replace(resp, []byte(`ID="`+assertionID+`"`), []byte(`ID="`+respID+`"`), 1), respID, "2 elements have ID"},
			"unsigned":     {stripSignature(t, md), mdID, "has no signature"},
			"not XML":      {[]byte("<a"), mdID, "xmlsectest:"},
		} {
			err := Verify(t, c.doc, s.certPEM, c.id)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: Verify = %v, want %q", name, err, c.want)
			}
		}
	})

	t.Run("sha1", func(t *testing.T) {
		old := newSigner(t, rsaKey(t))
		old.idp.SignatureMethod = dsig.RSASHA1SignatureMethod
		doc, id := old.metadata(t)
		if err := Verify(t, doc, old.certPEM, id); err == nil || !strings.Contains(err.Error(), "SHA-1") {
			t.Errorf("Verify = %v, want a SHA-1 error", err)
		}
		// xmlsec1 itself takes SHA-1: refusing it is Verify's doing.
		if err := run(t, findXmlsec1(t), doc, old.certPEM, id); err != nil {
			t.Errorf("xmlsec1 refused rsa-sha1: %v", err)
		}
	})
}

// TestXmlsec1TrustsOnlyTheGivenCertificate shows what
// --enabled-key-data raw-x509-cert is for: a document signed by an attacker,
// with the attacker's certificate in KeyInfo, verifies when xmlsec1 may read
// KeyInfo and its X509 certificate chain is not checked, and does not with
// Verify's flags.
func TestXmlsec1TrustsOnlyTheGivenCertificate(t *testing.T) {
	t.Parallel()
	bin := findXmlsec1(t)
	idp := newSigner(t, rsaKey(t))
	attacker := newSigner(t, rsaKey(t))
	doc, id := attacker.metadata(t)
	if err := Verify(t, doc, idp.certPEM, id); err == nil {
		t.Fatal("Verify took the attacker's signature")
	}
	// The same call without --enabled-key-data (and with --insecure, as a
	// wrapper that does not want to manage trust anchors might add).
	dir, err := os.MkdirTemp("", "xmlsectest-") // no commas, unlike t.TempDir()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	docFile, certFile := dir+"/doc.xml", dir+"/cert.pem"
	if err := os.WriteFile(docFile, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, idp.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := execOutput(bin, "--verify", "--insecure", "--pubkey-cert-pem", certFile,
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor", "--node-id", id, docFile)
	if err != nil {
		t.Fatalf("xmlsec1 without --enabled-key-data refused the attacker's document (%v), so this test shows nothing:\n%s", err, out)
	}
	t.Logf("without --enabled-key-data, xmlsec1 took the attacker's signature:\n%s", out)
}

// TestXmlsec1ECDSA settles how an ecdsa-sha256 signature made by goxmldsig
// (a crewjam/saml IdP with an ECDSA Signer) fares in xmlsec1. XML-DSig 1.1
// §6.4.3 (and RFC 4050) encode the signature value as r||s, each as long
// as the curve's order; goxmldsig writes what crypto.Signer returns for
// ECDSA, ASN.1 DER. xmlsec1 refuses the DER value and accepts the same
// signature re-encoded as r||s, which in turn goxmldsig refuses.
func TestXmlsec1ECDSA(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, key)
	md, id := s.metadata(t)
	if !bytes.Contains(md, []byte(dsig.ECDSASHA256SignatureMethod)) {
		t.Fatalf("not signed with ecdsa-sha256:\n%s", md)
	}
	der := signatureValue(t, md, id)
	var sig struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &sig); err != nil || len(rest) != 0 {
		t.Fatalf("goxmldsig's ECDSA signature value is not ASN.1 DER (%d bytes): %v", len(der), err)
	}
	t.Logf("goxmldsig's SignatureValue: %d bytes of ASN.1 DER", len(der))

	err = Verify(t, md, s.certPEM, id)
	if err == nil {
		t.Fatal("xmlsec1 took goxmldsig's DER ECDSA signature")
	}
	t.Logf("xmlsec1 on the DER signature: %v", err)

	raw := make([]byte, 64)
	sig.R.FillBytes(raw[:32])
	sig.S.FillBytes(raw[32:])
	rs := setSignatureValue(t, md, id, raw)
	if err := Verify(t, rs, s.certPEM, id); err != nil {
		t.Fatalf("xmlsec1 refused the r||s form of the same signature: %v", err)
	}

	// goxmldsig takes its own DER and refuses r||s.
	validate := func(doc []byte) error {
		d := etree.NewDocument()
		if err := d.ReadFromBytes(doc); err != nil {
			t.Fatal(err)
		}
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{s.idp.Certificate}})
		_, err := ctx.Validate(d.Root())
		return err
	}
	if err := validate(md); err != nil {
		t.Errorf("goxmldsig refused its own DER signature: %v", err)
	}
	if err := validate(rs); err == nil {
		t.Error("goxmldsig took the r||s signature")
	} else {
		t.Logf("goxmldsig on r||s: %v", err)
	}
}

// signatureElement returns the ds:Signature child of the element with id.
func signatureElement(t *testing.T, d *etree.Document, id string) *etree.Element {
	t.Helper()
	el := d.FindElement("//[@ID='" + id + "']")
	if el == nil {
		t.Fatalf("no element with ID %s", id)
	}
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" {
			return c
		}
	}
	t.Fatalf("element %s has no Signature", id)
	return nil
}

func signatureValue(t *testing.T, doc []byte, id string) []byte {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatal(err)
	}
	sv := signatureElement(t, d, id).FindElement("SignatureValue")
	b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sv.Text()), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func setSignatureValue(t *testing.T, doc []byte, id string, v []byte) []byte {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatal(err)
	}
	signatureElement(t, d, id).FindElement("SignatureValue").SetText(base64.StdEncoding.EncodeToString(v))
	b, err := d.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// breakSignatureValue flips a bit of the signature of the element with id.
func breakSignatureValue(t *testing.T, doc []byte, id string) []byte {
	t.Helper()
	v := signatureValue(t, doc, id)
	v[len(v)/2] ^= 1
	return setSignatureValue(t, doc, id, v)
}

func stripSignature(t *testing.T, doc []byte) []byte {
	t.Helper()
	d := etree.NewDocument()
	if err := d.ReadFromBytes(doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range d.Root().ChildElements() {
		if c.Tag == "Signature" {
			d.Root().RemoveChild(c)
		}
	}
	b, err := d.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
