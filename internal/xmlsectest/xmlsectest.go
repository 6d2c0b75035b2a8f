// Package xmlsectest checks XML signatures with an implementation other than
// the one that made them: xmlsec1 (Debian package xmlsec1, 1.2.37, OpenSSL
// backend), the command-line tool of the XML Security Library.
//
// Verify trusts only the certificate it is given. It runs
//
//	xmlsec1 --verify --enabled-reference-uris same-doc --enabled-key-data raw-x509-cert \
//	  --pubkey-cert-pem cert.pem --id-attr:ID <each of IDElements> --node-id <id> doc.xml
//
// --enabled-key-data raw-x509-cert leaves xmlsec1 no way to take a key from
// the signature's own <KeyInfo> (its <X509Data> is the "x509" key data, and
// <KeyValue> is "key-value", both disabled), so the key loaded from the
// certificate is the only one it can use. Without that flag xmlsec1 uses a
// certificate embedded in KeyInfo whenever it trusts it: always with
// --insecure, and otherwise when it chains to a trusted root; then a
// signature made with anybody's key verifies (GHSA-6h53-q94j-348w, the flaw
// of go-saml's xmlsec1 wrapper; TestXmlsec1TrustsOnlyTheGivenCertificate).
// --enabled-reference-uris same-doc refuses references to files or URLs.
//
// Before running xmlsec1, Verify checks what xmlsec1 does not: that exactly
// one element has the ID, that the signature xmlsec1 will check (the first
// <ds:Signature> inside that element, in document order) is a child of it
// and signs it (a single Reference, URI="#id"), and that it uses no SHA-1
// (keystep signs with SHA-256 and refuses SHA-1).
package xmlsectest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/beevik/etree"
)

// InstallHint says how to get xmlsec1; it is part of the failure message.
const InstallHint = "install it with `apt-get install -y xmlsec1` (Debian, as root)"

// IDElements are the elements whose ID attribute xmlsec1 is told is an XML
// ID, as namespace:localname: the SAML messages keystep signs or checks.
var IDElements = []string{
	"urn:oasis:names:tc:SAML:2.0:protocol:Response",
	"urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
	"urn:oasis:names:tc:SAML:2.0:metadata:EntityDescriptor",
	"urn:oasis:names:tc:SAML:2.0:metadata:EntitiesDescriptor",
	"urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest",
	"urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest",
	"urn:oasis:names:tc:SAML:2.0:protocol:LogoutResponse",
}

const dsigNS = "http://www.w3.org/2000/09/xmldsig#"

// Verify checks the enveloped signature of the element of doc whose ID
// attribute is id (the Response, an Assertion, the EntityDescriptor, …) with
// the one certificate certPEM (PEM), with xmlsec1; see the package doc. It
// returns nil when the signature is good, and otherwise an error that holds
// xmlsec1's output. It fails the test when xmlsec1 cannot be run (it never
// skips), saying what to install.
func Verify(t testing.TB, doc, certPEM []byte, id string) error {
	t.Helper()
	bin := findXmlsec1(t)
	if err := checkShape(doc, id); err != nil {
		return err
	}
	return run(t, bin, doc, certPEM, id)
}

// run is xmlsec1 --verify, without Verify's own checks.
func run(t testing.TB, bin string, doc, certPEM []byte, id string) error {
	t.Helper()
	// Not t.TempDir(): its name comes from the test's, and xmlsec1 splits
	// --pubkey-cert-pem's argument at commas.
	dir, err := os.MkdirTemp("", "xmlsectest-")
	if err != nil {
		t.Fatalf("xmlsectest: %v", err)
	}
	defer os.RemoveAll(dir)
	docFile := filepath.Join(dir, "doc.xml")
	certFile := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(docFile, doc, 0o600); err != nil {
		t.Fatalf("xmlsectest: %v", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatalf("xmlsectest: %v", err)
	}
	args := []string{"--verify",
		"--enabled-reference-uris", "same-doc",
		"--enabled-key-data", "raw-x509-cert",
		"--pubkey-cert-pem", certFile,
	}
	for _, e := range IDElements {
		args = append(args, "--id-attr:ID", e)
	}
	if id != "" {
		args = append(args, "--node-id", id)
	}
	args = append(args, docFile)
	out, err := exec.Command(bin, args...).CombinedOutput()
	text := strings.TrimSpace(string(out))
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return fmt.Errorf("xmlsec1 --verify failed (%v):\n%s", err, text)
	case err != nil:
		t.Fatalf("xmlsectest: run %s: %v", bin, err)
	case !strings.HasPrefix(text, "OK"):
		return fmt.Errorf("xmlsec1 --verify exited 0 without OK:\n%s", text)
	}
	return nil
}

// checkShape makes sure the signature xmlsec1 checks for id is the one that
// signs the element with that ID, and that it uses no SHA-1.
func checkShape(raw []byte, id string) error {
	if id == "" {
		return errors.New("xmlsectest: no ID to verify")
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return fmt.Errorf("xmlsectest: %w", err)
	}
	var signed []*etree.Element
	var walk func(*etree.Element)
	walk = func(e *etree.Element) {
		if a := e.SelectAttr("ID"); a != nil && a.Space == "" && a.Value == id {
			signed = append(signed, e)
		}
		for _, c := range e.ChildElements() {
			walk(c)
		}
	}
	if root := doc.Root(); root != nil {
		walk(root)
	}
	if len(signed) != 1 {
		return fmt.Errorf("xmlsectest: %d elements have ID %q, want 1", len(signed), id)
	}
	el := signed[0]
	sig := firstSignature(el)
	if sig == nil {
		return fmt.Errorf("xmlsectest: element %s with ID %q has no signature", el.Tag, id)
	}
	if sig.Parent() != el {
		return fmt.Errorf("xmlsectest: the first signature inside %s %q is not its child", el.Tag, id)
	}
	var refs []*etree.Element
	for _, si := range children(sig, "SignedInfo") {
		refs = append(refs, children(si, "Reference")...)
		for _, sm := range children(si, "SignatureMethod") {
			if alg := sm.SelectAttrValue("Algorithm", ""); isSHA1(alg) {
				return fmt.Errorf("xmlsectest: SHA-1 signature method %s", alg)
			}
		}
	}
	if len(refs) != 1 || refs[0].SelectAttrValue("URI", "") != "#"+id {
		return fmt.Errorf("xmlsectest: the signature of %s %q does not reference exactly #%s", el.Tag, id, id)
	}
	for _, dm := range children(refs[0], "DigestMethod") {
		if alg := dm.SelectAttrValue("Algorithm", ""); isSHA1(alg) {
			return fmt.Errorf("xmlsectest: SHA-1 digest method %s", alg)
		}
	}
	return nil
}

// firstSignature returns the first ds:Signature at or below e in document
// order, which is where xmlsec1 --node-id starts.
func firstSignature(e *etree.Element) *etree.Element {
	if e.Tag == "Signature" && e.NamespaceURI() == dsigNS {
		return e
	}
	for _, c := range e.ChildElements() {
		if s := firstSignature(c); s != nil {
			return s
		}
	}
	return nil
}

// children returns e's child elements in the XML-DSig namespace named tag.
func children(e *etree.Element, tag string) []*etree.Element {
	var out []*etree.Element
	for _, c := range e.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == dsigNS {
			out = append(out, c)
		}
	}
	return out
}

// isSHA1 reports whether a signature or digest algorithm URI is SHA-1 based.
func isSHA1(alg string) bool {
	switch alg {
	case "http://www.w3.org/2000/09/xmldsig#sha1",
		"http://www.w3.org/2000/09/xmldsig#rsa-sha1",
		"http://www.w3.org/2000/09/xmldsig#dsa-sha1",
		"http://www.w3.org/2000/09/xmldsig#hmac-sha1",
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1":
		return true
	}
	return false
}

var (
	findOnce  sync.Once
	xmlsec1   string
	xmlsecErr error
)

// findXmlsec1 returns the path of xmlsec1, or ends the test.
func findXmlsec1(t testing.TB) string {
	t.Helper()
	findOnce.Do(func() {
		xmlsec1, xmlsecErr = exec.LookPath("xmlsec1")
		if xmlsecErr != nil {
			return
		}
		out, err := exec.Command(xmlsec1, "--version").CombinedOutput()
		if err != nil {
			xmlsecErr = fmt.Errorf("%s --version: %v: %s", xmlsec1, err, bytes.TrimSpace(out))
		} else if !bytes.Contains(out, []byte("openssl")) {
			xmlsecErr = fmt.Errorf("%s is not built with OpenSSL: %s", xmlsec1, bytes.TrimSpace(out))
		}
	})
	if xmlsecErr != nil {
		msg := fmt.Sprintf("xmlsectest: %v: %s", xmlsecErr, InstallHint)
		t.Fatal(msg) // never a skip: a missing tool must not pass for a passing test
	}
	return xmlsec1
}
