// Package ssptest runs a real, independent SAML 2.0 service provider for
// tests: Debian's SimpleSAMLphp 1.19 (package simplesamlphp, installed in
// /usr/share/simplesamlphp) served by PHP's built-in web server, `php -S`.
//
// Start writes a configuration for one test to t.TempDir() — config.php,
// authsources.php (one saml:SP auth source, "default-sp"),
// metadata/saml20-idp-remote.php for the IdP under test, and a fresh RSA
// key and certificate for the SP — and starts
//
//	SIMPLESAMLPHP_CONFIG_DIR=<tmp>/config php -S 127.0.0.1:0 -t /usr/share/simplesamlphp/www <tmp>/router.php
//
// SimpleSAMLphp reads its configuration directory from that environment
// variable (lib/SimpleSAML/Utils/Config.php: getConfigDir), so Debian's
// /etc/simplesamlphp is neither read nor changed. The server picks a free
// port itself and says which on stderr; Start then waits, with a deadline,
// until the port accepts connections. The router script adds two pages, the
// start of a login (SP.LoginURL) and a result page that prints what the SP
// got as JSON (see Result); every other path is SimpleSAMLphp's own, such as
// its assertion consumer service. The server is stopped when the test ends,
// and its output (SimpleSAMLphp logs at debug level to stderr) is logged if
// the test failed.
//
// PHP needs the dom extension (Debian package php-xml). When php or
// SimpleSAMLphp is missing, Start fails the test (it never skips), saying
// what to install.
package ssptest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/internal/daemontest"
)

// DefaultDir is where Debian's simplesamlphp package installs SimpleSAMLphp.
const DefaultDir = "/usr/share/simplesamlphp"

// EnvDir names the environment variable that points Start at another
// SimpleSAMLphp 1.19 installation (the directory holding www/ and lib/).
const EnvDir = "KEYSTEP_TEST_SIMPLESAMLPHP"

// InstallHint says how to get what Start needs; it is part of the failure
// message.
const InstallHint = "install it with `apt-get install -y php-cli php-xml simplesamlphp` (Debian, as root; " +
	"write /usr/sbin/policy-rc.d exiting 101 first so that the apache2 it pulls in is not started), " +
	"or point " + EnvDir + " at a SimpleSAMLphp 1.19 directory"

// Timeout bounds how long Start waits for the server to listen.
var Timeout = 30 * time.Second

// AuthSource is the name of the SP's auth source in authsources.php; it is
// part of the SP's endpoint URLs.
const AuthSource = "default-sp"

//go:embed php/*.php
var phpFiles embed.FS

// Options describe the IdP the SP talks to and how the SP behaves.
type Options struct {
	IdPEntityID string              // the IdP's entity ID (for crewjam/saml, its metadata URL)
	IdPSSOURL   string              // the IdP's SSO URL for the HTTP-Redirect binding
	IdPSLOURL   string              // the IdP's SLO URL for the HTTP-Redirect binding; optional
	IdPCerts    []*x509.Certificate // the signing certificates the SP trusts

	// SignAuthnRequests makes the SP sign its AuthnRequests (for the
	// HTTP-Redirect binding: a SigAlg and Signature query parameter,
	// rsa-sha256) and say AuthnRequestsSigned="true" in its metadata.
	SignAuthnRequests bool
	// EncryptAssertions makes the SP publish its certificate for
	// encryption too and refuse assertions that are not encrypted.
	EncryptAssertions bool
	// NameIDFormat, if set, is sent as the NameIDPolicy Format of the SP's
	// AuthnRequests (AllowCreate="true"), is the Format of the Subject's
	// NameID that LoginURL asks for, and is listed in the SP's metadata.
	// If empty, the AuthnRequests carry no NameIDPolicy (SimpleSAMLphp's
	// own default would be the transient format) and the Subject's NameID
	// no Format.
	NameIDFormat string
}

// SP is a running SimpleSAMLphp service provider.
type SP struct {
	URL      string            // base URL, http://127.0.0.1:PORT, no trailing slash
	EntityID string            // the SP's entity ID, which is also its metadata URL
	ACSURL   string            // assertion consumer service, HTTP-POST binding
	SLOURL   string            // single logout service, HTTP-Redirect binding
	Cert     *x509.Certificate // the SP's signing (and encryption) certificate
	Key      *rsa.PrivateKey   // the private key of Cert
	Dir      string            // the test's SimpleSAMLphp directory (config/, metadata/, cert/, …)

	opts   Options
	out    *lockedBuffer // what php -S printed
	exited chan struct{} // closed once php -S's output has ended
}

// Log returns what the server has printed so far: its access log and
// SimpleSAMLphp's log at debug level, which often says more about a failure
// than the error page does. The server's output is read as it comes, so the
// lines of a request may arrive a little after its response: see WaitLog.
func (s *SP) Log() string { return s.out.String() }

// WaitLog waits until the server's output contains substr and reports
// whether it did within Timeout (false also when the server exits first).
func (s *SP) WaitLog(substr string) bool {
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	for {
		if strings.Contains(s.out.String(), substr) {
			return true
		}
		select {
		case <-s.out.changed:
		case <-s.exited:
			return strings.Contains(s.out.String(), substr)
		case <-timer.C:
			return false
		}
	}
}

// Start runs a SimpleSAMLphp SP for the test, configured for the IdP that o
// describes. See the package doc.
func Start(t testing.TB, o Options) *SP {
	t.Helper()
	if o.IdPEntityID == "" || o.IdPSSOURL == "" || len(o.IdPCerts) == 0 {
		t.Fatal("ssptest: Options need IdPEntityID, IdPSSOURL and IdPCerts")
	}
	php, sspDir := findPHP(t)

	dir := t.TempDir()
	for _, d := range []string{"config", "metadata", "cert", "data", "log", "tmp", "sessions"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatalf("ssptest: %v", err)
		}
	}
	copyFile := func(name, to string) {
		t.Helper()
		b, err := phpFiles.ReadFile("php/" + name)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, to), b, 0o600)
		}
		if err != nil {
			t.Fatalf("ssptest: %v", err)
		}
	}
	copyFile("config.php", "config/config.php")
	copyFile("authsources.php", "config/authsources.php")
	copyFile("saml20-idp-remote.php", "metadata/saml20-idp-remote.php")
	copyFile("router.php", "router.php")

	out := &lockedBuffer{changed: make(chan struct{}, 1)}
	exited := make(chan struct{})
	s := &SP{Dir: dir, opts: o, out: out, exited: exited}
	s.Key, s.Cert = makeCert(t)
	keyFile := filepath.Join(dir, "cert", "sp.pem")
	certFile := filepath.Join(dir, "cert", "sp.crt")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(s.Key)}), 0o600); err != nil {
		t.Fatalf("ssptest: %v", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Cert.Raw}), 0o600); err != nil {
		t.Fatalf("ssptest: %v", err)
	}

	// The server chooses its port (php -S accepts port 0 and prints the
	// one it took), so no other process can take it between our choice
	// and its listen. SimpleSAMLphp reads keystep.json on each request,
	// and the first request comes after Start has written it.
	cmd := exec.Command(php, "-S", "127.0.0.1:0", "-t", filepath.Join(sspDir, "www"), filepath.Join(dir, "router.php"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SIMPLESAMLPHP_CONFIG_DIR="+filepath.Join(dir, "config"))
	// Should the test binary die without its cleanups, the server gets
	// SIGKILL instead of living on.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatalf("ssptest: %v", err)
	}
	cmd.Stdout = out
	// Pdeathsig follows the thread that started the child; keep it on one
	// the runtime will not retire while the child starts.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		t.Fatalf("ssptest: start %s: %v", php, err)
	}
	port := make(chan int, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := startedLine.FindStringSubmatch(line); m != nil {
				if p, err := strconv.Atoi(m[1]); err == nil {
					select {
					case port <- p:
					default:
					}
				}
			}
			out.WriteString(line + "\n")
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited // all of stderr is read before Wait closes the pipe
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("ssptest: php -S output (SimpleSAMLphp log):\n%s", out.String())
		}
	})

	deadline := time.Now().Add(Timeout)
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	var p int
	select {
	case p = <-port:
	case <-exited:
		t.Fatalf("ssptest: php -S exited before it listened:\n%s", out.String())
	case <-timer.C:
		t.Fatalf("ssptest: php -S did not say which port it took within %v:\n%s", Timeout, out.String())
	}
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	s.URL = "http://" + host
	s.EntityID = s.URL + "/module.php/saml/sp/metadata.php/" + AuthSource
	s.ACSURL = s.URL + "/module.php/saml/sp/saml2-acs.php/" + AuthSource
	s.SLOURL = s.URL + "/module.php/saml/sp/saml2-logout.php/" + AuthSource

	certs := make([]string, 0, len(o.IdPCerts))
	for _, c := range o.IdPCerts {
		certs = append(certs, base64.StdEncoding.EncodeToString(c.Raw))
	}
	settings := map[string]any{
		"ssp":           sspDir,
		"dir":           dir,
		"baseurl":       s.URL + "/",
		"host":          host,
		"secretsalt":    randomHex(t, 16),
		"adminpassword": randomHex(t, 16),
		"sp": map[string]any{
			"entity_id":           s.EntityID,
			"private_key":         keyFile,
			"certificate":         certFile,
			"sign_authn_requests": o.SignAuthnRequests,
			"encrypt_assertions":  o.EncryptAssertions,
			"name_id_format":      o.NameIDFormat,
		},
		"idp": map[string]any{
			"entity_id":    o.IdPEntityID,
			"sso_url":      o.IdPSSOURL,
			"slo_url":      o.IdPSLOURL,
			"certificates": certs,
		},
	}
	js, err := json.MarshalIndent(settings, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "config", "keystep.json"), js, 0o600)
	}
	if err != nil {
		t.Fatalf("ssptest: %v", err)
	}

	// The "started" line comes once the server listens; still, check that
	// the port accepts connections.
	if err := daemontest.WaitListening(host, deadline, exited); err != nil {
		t.Fatalf("ssptest: php -S on %s: %v\n%s", host, err, out.String())
	}
	return s
}

// startedLine is what php -S prints on stderr once it listens.
var startedLine = regexp.MustCompile(`Development Server \(http://127\.0\.0\.1:(\d+)\) started`)

// Metadata returns the SP's metadata for the IdP's configuration: its
// entity ID, its assertion consumer service (HTTP-POST, index 0, the one
// SimpleSAMLphp's AuthnRequests name), its single logout service
// (HTTP-Redirect) and its certificate, for signing and, with
// Options.EncryptAssertions, for encryption. It describes what
// SimpleSAMLphp does, with two differences from SimpleSAMLphp's own metadata
// (served at EntityID): that lists more assertion consumer services (SAML
// 1.1 and HTTP-Artifact) that the keystep IdP does not use, and always lists
// the certificate for encryption too, whereas Metadata leaves it out unless
// Options.EncryptAssertions is set, so that an IdP sends plain assertions
// to an SP that does not ask for encrypted ones.
func (s *SP) Metadata() *saml.EntityDescriptor {
	yes, signed := true, s.opts.SignAuthnRequests
	keyInfo := saml.KeyInfo{X509Data: saml.X509Data{X509Certificates: []saml.X509Certificate{
		{Data: base64.StdEncoding.EncodeToString(s.Cert.Raw)},
	}}}
	keys := []saml.KeyDescriptor{{Use: "signing", KeyInfo: keyInfo}}
	if s.opts.EncryptAssertions {
		keys = append(keys, saml.KeyDescriptor{Use: "encryption", KeyInfo: keyInfo})
	}
	var formats []saml.NameIDFormat
	if s.opts.NameIDFormat != "" {
		formats = []saml.NameIDFormat{saml.NameIDFormat(s.opts.NameIDFormat)}
	}
	index := 0
	return &saml.EntityDescriptor{
		EntityID: s.EntityID,
		SPSSODescriptors: []saml.SPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{
				RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: "urn:oasis:names:tc:SAML:2.0:protocol",
					KeyDescriptors:             keys,
				},
				SingleLogoutServices: []saml.Endpoint{{Binding: saml.HTTPRedirectBinding, Location: s.SLOURL}},
				NameIDFormats:        formats,
			},
			AuthnRequestsSigned:  &signed,
			WantAssertionsSigned: &yes,
			AssertionConsumerServices: []saml.IndexedEndpoint{{
				Binding:   saml.HTTPPostBinding,
				Location:  s.ACSURL,
				Index:     index,
				IsDefault: &yes,
			}},
		}},
	}
}

// Login is what an SP-initiated login asks the IdP for; see LoginURLFor.
type Login struct {
	NameID        string   // the request's <Subject><NameID>; empty: no Subject
	AuthnContexts []string // RequestedAuthnContext class refs; empty: none
	Comparison    string   // exact (the default), minimum, maximum or better
	ForceAuthn    bool     // ForceAuthn="true"
	IsPassive     bool     // IsPassive="true"
}

// LoginURL returns a URL on the SP that starts SP-initiated SSO (an
// AuthnRequest with the HTTP-Redirect binding) asking the IdP for nameID in
// its <Subject><NameID> (none when empty) and, when authnContextClassRef is
// not empty, for that class in an exact RequestedAuthnContext. After the
// IdP's Response reaches the SP's assertion consumer service, the browser
// is sent to a page that prints JSON for ParseResult.
func (s *SP) LoginURL(nameID, authnContextClassRef string) string {
	l := Login{NameID: nameID}
	if authnContextClassRef != "" {
		l.AuthnContexts = []string{authnContextClassRef}
	}
	return s.LoginURLFor(l)
}

// LoginURLFor is LoginURL with more of the AuthnRequest to choose.
func (s *SP) LoginURLFor(l Login) string {
	q := url.Values{}
	if l.NameID != "" {
		q.Set("nameid", l.NameID)
		if s.opts.NameIDFormat != "" {
			q.Set("nameid_format", s.opts.NameIDFormat)
		}
	}
	for _, c := range l.AuthnContexts {
		q.Add("accr[]", c)
	}
	if l.Comparison != "" {
		q.Set("comparison", l.Comparison)
	}
	if l.ForceAuthn {
		q.Set("force", "1")
	}
	if l.IsPassive {
		q.Set("passive", "1")
	}
	u := s.URL + "/keystep/login"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// ResultURL returns the SP's result page, which prints the SP's session as
// JSON (or an error when there is none); a login returns to it.
func (s *SP) ResultURL() string { return s.URL + "/keystep/result" }

// Result is what the SP's result page prints after a login.
type Result struct {
	NameID       string              `json:"nameid"`        // the assertion's Subject NameID
	NameIDFormat string              `json:"nameid_format"` // its Format
	Attributes   map[string][]string `json:"attributes"`    // by attribute Name
	AuthnContext string              `json:"authncontext"`  // the AuthnStatement's AuthnContextClassRef
	IdP          string              `json:"idp"`           // the issuer's entity ID
	SessionIndex string              `json:"sessionindex"`  // the AuthnStatement's SessionIndex
	Error        *ResultError        `json:"error"`         // set when the login failed
}

// ResultError is how the SP reported a failed login: a SAML error status
// from the IdP (Status and SubStatus set), an assertion it refused (an
// error page, Code set), or no session at all.
type ResultError struct {
	Status    string `json:"status"`    // top-level StatusCode of an error Response
	SubStatus string `json:"substatus"` // second-level StatusCode
	Message   string `json:"message"`   // StatusMessage, or SimpleSAMLphp's exception message
	Class     string `json:"class"`     // the PHP exception class, for a status error
	Code      string `json:"code"`      // SimpleSAMLphp's error code, for an error page
	TrackID   string `json:"trackid"`   // SimpleSAMLphp's track ID, to find it in the log
}

// Error describes e in one line.
func (e *ResultError) Error() string {
	var b strings.Builder
	b.WriteString("simplesamlphp:")
	for _, kv := range [][2]string{{"status", e.Status}, {"substatus", e.SubStatus}, {"code", e.Code}, {"class", e.Class}} {
		if kv[1] != "" {
			fmt.Fprintf(&b, " %s=%s", kv[0], kv[1])
		}
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// ParseResult parses the result page's JSON (body), or the JSON of one of
// SimpleSAMLphp's error pages. When the SP reported an error it returns the
// Result with Error set and that *ResultError as the error; a body that is
// not such JSON is an error too.
func ParseResult(body []byte) (Result, error) {
	var r Result
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Result{}, fmt.Errorf("ssptest: not a result page (%v): %.300q", err, body)
	}
	if r.Error != nil {
		return r, r.Error
	}
	if r.NameID == "" && r.IdP == "" {
		return r, errors.New("ssptest: the result has neither a NameID nor an IdP")
	}
	return r, nil
}

var (
	findOnce sync.Once
	phpPath  string
	sspPath  string
	findErr  error
)

// findPHP returns php and the SimpleSAMLphp directory, or ends the test.
func findPHP(t testing.TB) (php, ssp string) {
	t.Helper()
	findOnce.Do(func() {
		phpPath, findErr = exec.LookPath("php")
		if findErr != nil {
			return
		}
		sspPath = os.Getenv(EnvDir)
		if sspPath == "" {
			sspPath = DefaultDir
		}
		for _, f := range []string{"www/_include.php", "www/module.php", "lib/SimpleSAML/Auth/Simple.php", "modules/saml/www/sp/saml2-acs.php"} {
			if _, err := os.Stat(filepath.Join(sspPath, f)); err != nil {
				findErr = fmt.Errorf("no SimpleSAMLphp in %s: %w", sspPath, err)
				return
			}
		}
		out, err := exec.Command(phpPath, "-r", `foreach (["dom", "openssl", "json", "session", "zlib"] as $e) { if (!extension_loaded($e)) { echo "$e "; } }`).CombinedOutput()
		if err != nil {
			findErr = fmt.Errorf("%s: %v: %s", phpPath, err, out)
		} else if missing := strings.TrimSpace(string(out)); missing != "" {
			findErr = fmt.Errorf("%s lacks the PHP extensions %s (dom is in the Debian package php-xml)", phpPath, missing)
		}
	})
	if findErr != nil {
		msg := fmt.Sprintf("ssptest: %v: %s", findErr, InstallHint)
		t.Fatal(msg) // never a skip: a missing tool must not pass for a passing test
	}
	return phpPath, sspPath
}

// makeCert returns a fresh RSA key and a self-signed certificate for it.
func makeCert(t testing.TB) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("ssptest: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "keystep ssptest SP"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("ssptest: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("ssptest: %v", err)
	}
	return key, cert
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("ssptest: %v", err)
	}
	return hex.EncodeToString(b)
}

// lockedBuffer is a bytes.Buffer safe for writers and readers; changed gets
// a value (1 deep) after each write.
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	b.notify()
	return n, err
}

func (b *lockedBuffer) WriteString(s string) {
	b.mu.Lock()
	b.buf.WriteString(s)
	b.mu.Unlock()
	b.notify()
}

func (b *lockedBuffer) notify() {
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
