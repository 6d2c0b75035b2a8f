package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
)

// writeFile writes a file with the given mode into a fresh directory.
func writeFile(t *testing.T, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	return p
}

// testCertPEM makes a self-signed certificate and its key, in PEM.
func testCertPEM(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

func TestConfigDirectory(t *testing.T) {
	caPEM, _ := testCertPEM(t, "test CA")
	caFile := writeFile(t, "ca.pem", string(caPEM), 0o644)
	pwFile := writeFile(t, "ldap-password", " s3cret pass \n", 0o600)
	c, err := loadConfig(writeConfig(t, `
smtp: {host: smtp.corp.example, port: 587, from: keystep@corp.example}
directory:
  sources:
    - name: corp
      urls: [ldaps://dc1.corp.example:636, ldaps://dc2.corp.example:636]
      ca_file: `+caFile+`
      server_name: dc.corp.example
      bind_dn: cn=keystep,ou=services,dc=corp,dc=example
      bind_password_file: `+pwFile+`
      base_dn: ou=people,dc=corp,dc=example
      user_filter: (objectClass=inetOrgPerson)
      group: cn=keystep-users,ou=groups,dc=corp,dc=example
      attributes: {id: entryUUID, username: uid, email: mail, phone: mobile, display_name: displayName}
      suspension: {preset: openldap_ppolicy, lockout: true, filter: "(employeeType=contractor)"}
      page_size: 250
      timeout: 10s
      full_sync_interval: 2h
      incremental: syncrepl
      poll_interval: 45s
      max_removals: 5%
      invite: true
      live_check: {enabled: true, timeout: 1s, cache_ttl: 1m, fail_open: true}
    - name: ad
      urls: [ldap://dc.ad.example]
      start_tls: true
      bind_dn: CN=keystep,CN=Users,DC=ad,DC=example
      bind_password_env: KEYSTEP_AD_PASSWORD
      base_dn: DC=ad,DC=example
      suspension: {preset: active_directory}
      max_removals: "25"
    - name: local
      urls: [ldap://127.0.0.1:3389]
      insecure_no_tls: true
      bind_dn: cn=admin,dc=example,dc=org
      bind_password_env: LOCAL_PW
      base_dn: dc=example,dc=org
`), envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Directory.Sources); n != 3 {
		t.Fatalf("%d sources", n)
	}
	srcs, err := c.directorySources(envOf(map[string]string{"KEYSTEP_AD_PASSWORD": "ad-pass", "LOCAL_PW": "local-pass"}))
	if err != nil {
		t.Fatal(err)
	}
	corp, ad, local := srcs[0], srcs[1], srcs[2]
	if corp.Name != "corp" || len(corp.URLs) != 2 || corp.URLs[1] != "ldaps://dc2.corp.example:636" || corp.RootCAs == nil ||
		corp.ServerName != "dc.corp.example" || corp.BindDN != "cn=keystep,ou=services,dc=corp,dc=example" ||
		corp.BindPassword != " s3cret pass " || corp.BaseDN != "ou=people,dc=corp,dc=example" ||
		corp.UserFilter != "(objectClass=inetOrgPerson)" || corp.Group != "cn=keystep-users,ou=groups,dc=corp,dc=example" ||
		corp.Attributes != (directory.AttributeMap{ID: "entryUUID", Username: "uid", Email: "mail", Phone: "mobile", DisplayName: "displayName"}) ||
		corp.Suspension != (directory.Suspension{Preset: directory.PresetOpenLDAP, Lockout: true, Filter: "(employeeType=contractor)"}) ||
		corp.PageSize != 250 || corp.Timeout != 10*time.Second || corp.FullSyncInterval != 2*time.Hour ||
		corp.Incremental != "syncrepl" || corp.PollInterval != 45*time.Second || corp.MaxRemovals != 0.05 ||
		corp.MaxRemovalsCount != 0 || !corp.Invite || !corp.StartTLS || corp.InsecureNoTLS ||
		corp.LiveCheck != (directory.LiveCheckConfig{Enabled: true, Timeout: time.Second, CacheTTL: time.Minute, FailOpen: true}) {
		t.Errorf("corp = %+v", corp)
	}
	if ad.BindPassword != "ad-pass" || ad.MaxRemovalsCount != 25 || ad.MaxRemovals != 0 || !ad.StartTLS || ad.RootCAs != nil || ad.ClientCert != nil {
		t.Errorf("ad = %+v", ad)
	}
	if local.BindPassword != "local-pass" || local.StartTLS || !local.InsecureNoTLS {
		t.Errorf("local = %+v", local)
	}
	for _, sc := range srcs {
		if _, err := directory.NewSource(sc, nil0(t)); err != nil {
			t.Errorf("NewSource(%s): %v", sc.Name, err)
		}
	}
}

// TestConfigDirectoryClientCert: a client certificate and its key make the
// SASL EXTERNAL bind, with no bind DN or password.
func TestConfigDirectoryClientCert(t *testing.T) {
	certPEM, keyPEM := testCertPEM(t, "keystep")
	certFile := writeFile(t, "client.pem", string(certPEM), 0o644)
	keyFile := writeFile(t, "client.key", string(keyPEM), 0o600)
	c, err := loadConfig(writeConfig(t, `
directory:
  sources:
    - name: corp
      urls: [ldaps://dc1.corp.example]
      client_cert_file: `+certFile+`
      client_key_file: `+keyFile+`
      base_dn: dc=corp,dc=example
`), envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := c.directorySources(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if srcs[0].ClientCert == nil || len(srcs[0].ClientCert.Certificate) != 1 || srcs[0].BindPassword != "" {
		t.Errorf("source = %+v", srcs[0])
	}

	// A key file others may read is refused.
	if err := os.Chmod(keyFile, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := c.directorySources(envOf(nil)); err == nil || !strings.Contains(err.Error(), "client_key_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("err = %v", err)
	}
	// A key that is not the certificate's.
	_, otherKey := testCertPEM(t, "other")
	if err := os.WriteFile(keyFile, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.directorySources(envOf(nil)); err == nil || !strings.Contains(err.Error(), "not a certificate and its key") {
		t.Errorf("err = %v", err)
	}
}

// nil0 is a flows service with no store, which NewSource accepts.
func nil0(t *testing.T) *flows.Service {
	t.Helper()
	svc, err := noStoreService()
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// TestConfigDirectoryErrors: every mistake is refused with the key (and,
// for the file's shape, the line) at fault.
func TestConfigDirectoryErrors(t *testing.T) {
	const base = `
directory:
  sources:
    - name: corp
      urls: [ldaps://dc1.corp.example]
      bind_dn: cn=keystep,dc=corp,dc=example
      bind_password_env: PW
      base_dn: dc=corp,dc=example
`
	cases := map[string]struct{ yaml, want string }{
		"password in the file": {base + "      bind_password: hunter2\n", "line 9: bind_password: the bind password is never read from the configuration file"},
		"unknown key":          {base + "      bsae_dn: x\n", "line 9: unknown key bsae_dn"},
		"invite without smtp":  {base + "      invite: true\n", "invite needs an email sender"},
		"unknown nested key":   {base + "      attributes: {usrname: uid}\n", "unknown key usrname"},
		"unknown live key":     {base + "      live_check: {enabled: true, failopen: true}\n", "unknown key failopen"},
		"bad live duration":    {base + "      live_check: {timeout: soon}\n", "must be a duration"},
		"twice":                {base + "      base_dn: dc=other\n", "line 9: base_dn is given twice"},
		"not a list":           {"directory:\n  sources: {name: corp}\n", "line 2: directory.sources: must be a list of directory sources"},
		"not a mapping":        {"directory:\n  sources: [corp]\n", "source 1: line 2: must be a mapping"},
		"unknown section key":  {"directory:\n  source: []\n", "line 2: unknown key directory.source"},
		"same name": {base + `    - name: CORP
      urls: [ldaps://dc2.corp.example]
      bind_dn: cn=keystep,dc=corp,dc=example
      bind_password_env: PW
      base_dn: dc=corp,dc=example
`, `source 2 (CORP, line 9): the name "CORP" is given to two sources`},
		"bad name":              {strings.Replace(base, "name: corp", "name: corp dir", 1), `name must be 1 to 64 letters`},
		"no name":               {strings.Replace(base, "name: corp", "invite: false", 1), `source 1 (line 4): name must be`},
		"no urls":               {strings.Replace(base, "urls: [ldaps://dc1.corp.example]", "urls: []", 1), "urls: give at least one"},
		"http url":              {strings.Replace(base, "ldaps://dc1.corp.example", "https://dc1.corp.example", 1), "must start with ldaps:// or ldap://"},
		"url with dn":           {strings.Replace(base, "ldaps://dc1.corp.example", "ldaps://dc1.corp.example/dc=corp", 1), "must be scheme://host[:port] only"},
		"bad port":              {strings.Replace(base, "ldaps://dc1.corp.example", "ldaps://dc1.corp.example:99999", 1), "bad port"},
		"insecure remote":       {strings.Replace(base, "ldaps://dc1.corp.example]", "ldap://dc1.corp.example]\n      insecure_no_tls: true", 1), "insecure_no_tls is for a directory on this machine"},
		"insecure with ldaps":   {strings.Replace(base, "ldaps://dc1.corp.example]", "ldaps://127.0.0.1]\n      insecure_no_tls: true", 1), "insecure_no_tls applies to ldap:// URLs only"},
		"insecure and starttls": {strings.Replace(base, "ldaps://dc1.corp.example]", "ldap://127.0.0.1]\n      insecure_no_tls: true\n      start_tls: true", 1), "contradict each other"},
		"starttls off":          {strings.Replace(base, "ldaps://dc1.corp.example]", "ldap://dc1.corp.example]\n      start_tls: false", 1), "would send the bind password in clear"},
		"cert without key":      {base + "      client_cert_file: /c.pem\n", "client_cert_file and client_key_file go together"},
		"cert and bind":         {base + "      client_cert_file: /c.pem\n      client_key_file: /c.key\n", "leave bind_dn and bind_password_file/env out"},
		"file and env":          {base + "      bind_password_file: /pw\n", "bind_password_file or bind_password_env, not both"},
		"no bind":               {strings.Replace(strings.Replace(base, "      bind_dn: cn=keystep,dc=corp,dc=example\n", "", 1), "      bind_password_env: PW\n", "", 1), "bind_dn is required"},
		"no password":           {strings.Replace(base, "      bind_password_env: PW\n", "", 1), "bind_dn needs its password"},
		"bad env name":          {strings.Replace(base, "bind_password_env: PW", "bind_password_env: $PW", 1), "must name an environment variable"},
		"no base":               {strings.Replace(base, "      base_dn: dc=corp,dc=example\n", "", 1), "base_dn is required"},
		"bad incremental":       {base + "      incremental: always\n", `incremental must be one of auto, syncrepl, dirsync, none, not "always"`},
		"negative page":         {base + "      page_size: -1\n", "page_size must not be negative"},
		"negative timeout":      {base + "      timeout: -1s\n", "timeout must not be negative"},
		"zero removals":         {base + "      max_removals: 0\n", "max_removals: must be a share"},
		"share over 100":        {base + "      max_removals: 150%\n", "max_removals: must be a share above 0%"},
		"removals words":        {base + "      max_removals: some\n", "max_removals: must be a share"},
		// What the directory package checks, named by the file's keys.
		"bad base dn":   {strings.Replace(base, "base_dn: dc=corp,dc=example", "base_dn: not a dn", 1), "base_dn: "},
		"bad preset":    {base + "      suspension: {preset: windows}\n", `suspension: unknown suspension preset "windows"`},
		"bad filter":    {base + "      user_filter: objectClass=person\n", "user_filter: "},
		"huge page":     {base + "      page_size: 100000\n", "page_size: 100000 is not within"},
		"bad attribute": {base + "      attributes: {username: 'u id'}\n", "attributes.username: "},
		"bad group":     {base + "      group: keystep users\n", "group: "},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml), envOf(nil), nil)
			t.Log(err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), "directory.sources") && !strings.Contains(err.Error(), "directory.source") {
				t.Errorf("err = %v, want it to name the key", err)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}

// TestConfigDirectorySecrets: the password comes from a private file (one
// trailing newline dropped) or the environment; every failure names the
// key and never shows the password.
func TestConfigDirectorySecrets(t *testing.T) {
	load := func(t *testing.T, extra string) Config {
		t.Helper()
		c, err := loadConfig(writeConfig(t, `
directory:
  sources:
    - name: corp
      urls: [ldaps://dc1.corp.example]
      bind_dn: cn=keystep,dc=corp,dc=example
      base_dn: dc=corp,dc=example
`+extra), envOf(nil), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	password := func(t *testing.T, c Config, env map[string]string) (string, error) {
		t.Helper()
		srcs, err := c.directorySources(envOf(env))
		if err != nil {
			return "", err
		}
		return srcs[0].BindPassword, nil
	}
	for content, want := range map[string]string{
		"pw\n":     "pw",
		"pw\r\n":   "pw",
		"pw":       "pw",
		" pw \n":   " pw ",
		"pw\n\n":   "", // two lines
		"\n":       "", // empty
		"a\nb\n":   "",
		"":         "",
		"pw\x00\n": "",
	} {
		f := writeFile(t, "pw", content, 0o600)
		got, err := password(t, load(t, "      bind_password_file: "+f+"\n"), nil)
		if want == "" {
			if err == nil || !strings.Contains(err.Error(), "bind_password_file") {
				t.Errorf("file %q: %q, %v", content, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("file %q: %q, %v", content, got, err)
		}
	}

	open := writeFile(t, "pw", "hunter2\n", 0o644)
	_, err := password(t, load(t, "      bind_password_file: "+open+"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "is open to other users") || !strings.Contains(err.Error(), "source 1 (corp): bind_password_file") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("a file others can read: %v", err)
	}
	_, err = password(t, load(t, "      bind_password_file: "+filepath.Join(t.TempDir(), "none")+"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "bind_password_file") {
		t.Errorf("a missing file: %v", err)
	}
	_, err = password(t, load(t, "      bind_password_file: "+t.TempDir()+"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}

	c := load(t, "      bind_password_env: KEYSTEP_LDAP_PASSWORD\n")
	if got, err := password(t, c, map[string]string{"KEYSTEP_LDAP_PASSWORD": "from env"}); err != nil || got != "from env" {
		t.Errorf("env: %q, %v", got, err)
	}
	for _, env := range []map[string]string{nil, {"KEYSTEP_LDAP_PASSWORD": ""}} {
		if _, err := password(t, c, env); err == nil || !strings.Contains(err.Error(), "KEYSTEP_LDAP_PASSWORD is not set") {
			t.Errorf("env %v: %v", env, err)
		}
	}

	// The CA file must hold a certificate.
	pw := writeFile(t, "pw", "pw\n", 0o600)
	notPEM := writeFile(t, "ca.pem", "not a certificate", 0o644)
	_, err = password(t, load(t, "      bind_password_file: "+pw+"\n      ca_file: "+notPEM+"\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "ca_file") || !strings.Contains(err.Error(), "holds no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
	_, err = password(t, load(t, "      bind_password_file: "+pw+"\n      ca_file: /nonexistent/ca.pem\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("missing CA file: %v", err)
	}

	// The configuration the source shows masks the password.
	c = load(t, "      bind_password_file: "+pw+"\n")
	srcs, err := c.directorySources(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	src, err := directory.NewSource(srcs[0], nil0(t))
	if err != nil {
		t.Fatal(err)
	}
	if got := src.Config().BindPassword; got == "pw" {
		t.Errorf("Config shows the password")
	}
}

func TestParseMaxRemovals(t *testing.T) {
	for in, want := range map[string]struct {
		share float64
		count int
	}{"": {}, "10%": {share: 0.10}, "2.5%": {share: 0.025}, "100%": {share: 1}, "25": {count: 25}, " 7 ": {count: 7}} {
		share, count, err := parseMaxRemovals(in)
		if err != nil || share != want.share || count != want.count {
			t.Errorf("%q: %v %v %v", in, share, count, err)
		}
	}
	for _, in := range []string{"0", "0%", "-1", "101%", "%", "ten", "1.5", "NaN%"} {
		if _, _, err := parseMaxRemovals(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestConfigDirectoryDocExample: the configuration docs/directory.md shows
// is valid.
func TestConfigDirectoryDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/directory.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(directory:\n.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/directory.md has no directory: yaml block")
	}
	c, err := loadConfig(writeConfig(t, string(m[1])), envOf(nil), nil)
	if err != nil {
		t.Fatalf("docs/directory.md's configuration: %v", err)
	}
	if len(c.Directory.Sources) < 2 {
		t.Errorf("directory = %+v", c.Directory)
	}
}

// FuzzDirectoryConfig feeds arbitrary directory sections to the parser and
// the checks: they must not panic.
func FuzzDirectoryConfig(f *testing.F) {
	for _, s := range []string{
		"directory:\n  sources:\n    - name: corp\n      urls: [ldaps://dc1.example]\n      bind_dn: cn=k,dc=example\n      bind_password_env: PW\n      base_dn: dc=example\n",
		"directory:\n  sources:\n    - {name: a, urls: [ldap://127.0.0.1], insecure_no_tls: true, client_cert_file: /c, client_key_file: /k, base_dn: dc=x}\n",
		"directory:\n  sources:\n    - name: a\n      attributes: {id: objectGUID}\n      suspension: {preset: active_directory, lockout: true, filter: \"(a=b)\"}\n      live_check: {enabled: true, timeout: 1s}\n      max_removals: 5%\n",
		"directory:\n  sources:\n    - name: a\n      bind_password: x\n",
		"directory:\n  sources: [&s {name: a}, *s]\n",
		"directory: {sources: [{attributes: [1]}]}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaultConfig()
		if err := c.parseYAML(data, "fuzz.yaml"); err != nil {
			return
		}
		if err := c.validate(); err != nil {
			return
		}
		_, _ = c.directorySources(envOf(map[string]string{"PW": "pw"}))
	})
}

// TestDirectorySourceFlag: --source NAME reads only that source's secrets,
// so another source's unset environment variable does not stop it; without
// --source every source's are read.
func TestDirectorySourceFlag(t *testing.T) {
	c, err := loadConfig(writeConfig(t, `
directory:
  sources:
    - name: a
      urls: [ldaps://a.example]
      bind_dn: cn=keystep,dc=a
      bind_password_env: A_PW
      base_dn: dc=a
    - name: b
      urls: [ldaps://b.example]
      bind_dn: cn=keystep,dc=b
      bind_password_env: B_PW
      base_dn: dc=b
`), envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"A_PW": "secret-a"})
	got, err := (&directoryFlags{source: "a"}).sources(c, env)
	if err != nil || len(got) != 1 || got[0].Name != "a" || got[0].BindPassword != "secret-a" {
		t.Fatalf("--source a: %+v, %v", got, err)
	}
	if _, err := (&directoryFlags{}).sources(c, env); err == nil || !strings.Contains(err.Error(), "B_PW") {
		t.Errorf("every source without B_PW: %v", err)
	}
	if _, err := (&directoryFlags{source: "c"}).sources(c, env); err == nil || !strings.Contains(err.Error(), "configured: a, b") {
		t.Errorf("an unknown source: %v", err)
	}
}
