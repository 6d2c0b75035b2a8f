package testpki_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/keystep/keystep/internal/testpki"
)

func TestFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.New(t, dir, "test CA")
	srv := ca.Server(t, "server", "host.test", "127.0.0.1", "::1", "localhost")
	cli := ca.Client(t, "client", "someone")

	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "test CA" {
		t.Errorf("CA: IsCA %v, subject %s", ca.Cert.IsCA, ca.Cert.Subject)
	}
	for file, want := range map[string][]byte{
		filepath.Join(dir, "ca.pem"):     ca.PEM,
		filepath.Join(dir, "server.pem"): srv.CertPEM,
		filepath.Join(dir, "server.key"): srv.KeyPEM,
		filepath.Join(dir, "client.pem"): cli.CertPEM,
		filepath.Join(dir, "client.key"): cli.KeyPEM,
	} {
		got, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s does not hold the PEM", file)
		}
		if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", file, fi.Mode().Perm())
		}
	}
	if ca.File != filepath.Join(dir, "ca.pem") || srv.CertFile != filepath.Join(dir, "server.pem") || cli.KeyFile != filepath.Join(dir, "client.key") {
		t.Errorf("file names: %s %s %s", ca.File, srv.CertFile, cli.KeyFile)
	}
	if b, _ := pem.Decode(srv.KeyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("server key is not a PKCS #8 PEM block")
	}

	leaf := srv.TLS.Leaf
	if leaf.Subject.CommonName != "host.test" || leaf.SerialNumber.Cmp(cli.TLS.Leaf.SerialNumber) == 0 {
		t.Errorf("server: subject %s, serial %v (client's %v)", leaf.Subject, leaf.SerialNumber, cli.TLS.Leaf.SerialNumber)
	}
	for _, h := range []string{"host.test", "localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: ca.Pool}); err != nil {
			t.Errorf("server certificate for %s: %v", h, err)
		}
	}
	if _, err := cli.TLS.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	if _, err := cli.TLS.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool}); err == nil {
		t.Error("client certificate verifies for a server")
	}
	// Another CA's certificates are not trusted.
	other := testpki.New(t, t.TempDir(), "other CA")
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: other.Pool}); err == nil {
		t.Error("server certificate verifies with another CA")
	}
}

// TestHandshake checks the certificates in a TLS handshake with a client
// certificate.
func TestHandshake(t *testing.T) {
	ca := testpki.New(t, t.TempDir(), "test CA")
	srv := ca.Server(t, "server", "127.0.0.1")
	cli := ca.Client(t, "client", "someone")

	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{srv.TLS},
		ClientCAs:    ca.Pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{
		RootCAs:      ca.Pool,
		ServerName:   "127.0.0.1",
		Certificates: []tls.Certificate{cli.TLS},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := <-peer; got != "someone" {
		t.Errorf("server saw %q, want the client certificate of someone", got)
	}
	if ips := c.ConnectionState().PeerCertificates[0].IPAddresses; len(ips) != 1 || !ips[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("server certificate IP addresses %v, want 127.0.0.1", ips)
	}
}
