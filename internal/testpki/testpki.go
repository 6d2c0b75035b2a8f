// Package testpki makes, for a test, a certificate authority and
// certificates signed by it, and writes them as PEM files that a server's
// configuration can name.
//
// Keys are ECDSA P-256, which every TLS stack here accepts and which takes
// no time to make; certificates are valid from an hour ago for a week.
// Files are written with mode 0600 (some servers refuse a key file that
// others can read): the CA as ca.pem, each certificate as NAME.pem with
// its key, PKCS #8, as NAME.key.
package testpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// CA is a certificate authority made for a test. Its fields are not to be
// changed.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte         // Cert in PEM
	Pool *x509.CertPool // holds Cert, for a tls.Config's RootCAs or ClientCAs
	File string         // Cert as a PEM file, ca.pem in the directory given to New
	Dir  string         // the directory given to New, where the certificates go

	mu     sync.Mutex
	serial int64 // the last serial number issued
}

// Cert is a key and a certificate that a CA signed. Its fields are not to
// be changed.
type Cert struct {
	TLS      tls.Certificate // the key pair, for a tls.Config
	CertPEM  []byte          // the certificate in PEM
	KeyPEM   []byte          // the key in PEM (PKCS #8)
	CertFile string          // CertPEM as a file, NAME.pem
	KeyFile  string          // KeyPEM as a file, NAME.key
}

// New makes a CA with subject CN=commonName and writes it to dir/ca.pem. It
// fails t on any error.
func New(t testing.TB, dir, commonName string) *CA {
	t.Helper()
	key := newKey(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testpki: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: %v", err)
	}
	ca := &CA{
		Cert:   cert,
		Key:    key,
		PEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Pool:   x509.NewCertPool(),
		File:   filepath.Join(dir, "ca.pem"),
		Dir:    dir,
		serial: 1,
	}
	ca.Pool.AddCert(cert)
	writeFile(t, ca.File, ca.PEM)
	return ca
}

// Server issues a certificate for a TLS server known by hosts, each an IP
// address or a DNS name; the first is also the subject's common name. It
// writes it to NAME.pem and NAME.key in the CA's directory.
func (ca *CA) Server(t testing.TB, name string, hosts ...string) *Cert {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatalf("testpki: server certificate %s: no host names", name)
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: hosts[0]},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return ca.issue(t, name, tmpl)
}

// Client issues a certificate for a TLS client with subject
// CN=commonName. It writes it to NAME.pem and NAME.key in the CA's
// directory.
func (ca *CA) Client(t testing.TB, name, commonName string) *Cert {
	t.Helper()
	return ca.issue(t, name, &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// issue completes tmpl (serial number, validity, key usage), signs it with
// a new key and writes both.
func (ca *CA) issue(t testing.TB, name string, tmpl *x509.Certificate) *Cert {
	t.Helper()
	ca.mu.Lock()
	ca.serial++
	tmpl.SerialNumber = big.NewInt(ca.serial)
	ca.mu.Unlock()
	tmpl.NotBefore, tmpl.NotAfter = ca.Cert.NotBefore, ca.Cert.NotAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	key := newKey(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatalf("testpki: certificate %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testpki: certificate %s: %v", name, err)
	}
	c := &Cert{
		CertPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CertFile: filepath.Join(ca.Dir, name+".pem"),
		KeyFile:  filepath.Join(ca.Dir, name+".key"),
	}
	if c.TLS, err = tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil {
		t.Fatalf("testpki: certificate %s: %v", name, err)
	}
	writeFile(t, c.CertFile, c.CertPEM)
	writeFile(t, c.KeyFile, c.KeyPEM)
	return c
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: key: %v", err)
	}
	return key
}

func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatalf("testpki: %v", err)
	}
}
