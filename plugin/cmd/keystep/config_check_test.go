package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkOutput runs keystep config check on path with env as the
// environment and returns its exit code and output lines.
func checkOutput(t *testing.T, path string, env map[string]string, args ...string) (int, []string, string) {
	t.Helper()
	root := newRootCmd(nil, nil)
	for _, c := range root.Commands() {
		if c.Name() == "config" {
			root.RemoveCommand(c)
		}
	}
	cfg := group(newConfigCmd())
	cfg.RemoveCommand(cfg.Commands()...)
	cfg.AddCommand(newConfigCheckCmd(envOf(env)))
	root.AddCommand(cfg)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"config", "check", path}, args...))
	code := exitOK
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitFailure
		errOut.WriteString(err.Error())
	}
	return code, strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"), errOut.String()
}

// TestConfigCheckReportsEveryError checks a file with many errors of
// every kind at once: each is reported on its own line with its line in
// the file, in the file's order, and the exit code is 1.
func TestConfigCheckReportsEveryError(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, `listen: 127.0.0.1:99999
colour: blue
store:
  driver: mysql
signin:
  number_digits: 9
  ttl: forever
alerts:
  webhook_url: https://alerts.example.com/hook
  webhook_secret_file: `+filepath.Join(dir, "missing-secret")+`
directory:
  sources:
    - name: corp
      urls: [ldaps://ldap.example.com]
      bind_dn: cn=keystep,dc=example,dc=com
      bind_password_file: `+filepath.Join(dir, "missing-password")+`
      base_dn: dc=example,dc=com
      bsae_dn: x
      suspension: {preset: openldap_ppolicy, lockot: true}
    - name: ad
      urls: [http://dc.example.com]
      bind_dn: cn=keystep
      bind_password_env: KEYSTEP_TEST_AD_PASSWORD
oidc:
  clients:
    - id: kc
      secret_file: `+filepath.Join(dir, "missing-client-secret")+`
      redirect_uris: [https://sso.example.com/cb]
`)
	code, lines, stderr := checkOutput(t, path, map[string]string{"KEYSTEP_STORE_DSN": "x"})
	want := []string{
		path + `:1: listen: must be host:port with a port from 0 to 65535, not "127.0.0.1:99999"`,
		path + `:2: colour: unknown key`,
		path + `:4: store.driver: must be sqlite or postgres, not "mysql"`,
		path + `:6: signin.number_digits: number digits must be 2 to 6`,
		path + `:7: signin.ttl: must be a duration such as 90s, 10m, 36h or 7d, not "forever"`,
		path + `:10: alerts.webhook_secret_file: stat ` + filepath.Join(dir, "missing-secret") + `: no such file or directory (file check)`,
		path + `:18: directory.sources: source 1: unknown key bsae_dn (known: `,
		path + `:19: directory.sources: source 1: suspension: unknown key lockot (known: preset, lockout, filter)`,
		path + `:20: directory.sources: source 2 (ad, line 20): urls: "http://dc.example.com" must start with ldaps:// or ldap://`,
		path + `:20: directory.sources: source 2 (ad, line 20): base_dn is required`,
		path + `:20: directory.sources: source 2 (ad): bind_password_env: the environment variable KEYSTEP_TEST_AD_PASSWORD is not set or empty (environment check)`,
		path + `:26: oidc.clients: client 1 (kc): secret_file: secret file: stat ` + filepath.Join(dir, "missing-client-secret") + `: no such file or directory (file check)`,
	}
	if code != exitFailure || len(lines) != len(want) {
		t.Fatalf("exit %d, %d lines, want %d:\n%s\nstderr: %s", code, len(lines), len(want), strings.Join(lines, "\n"), stderr)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s…", i+1, lines[i], w)
		}
	}
	if !strings.Contains(stderr, path+": 12 errors") {
		t.Errorf("stderr = %q", stderr)
	}
	// The bind password in the environment is read as serve reads it.
	if code, lines, _ := checkOutput(t, path, map[string]string{"KEYSTEP_TEST_AD_PASSWORD": "secret"}); code != exitFailure ||
		len(lines) != len(want)-1 || strings.Contains(strings.Join(lines, "\n"), "KEYSTEP_TEST_AD_PASSWORD") {
		t.Errorf("with the password in the environment:\n%s", strings.Join(lines, "\n"))
	}

	// serve refuses the same file, with every error too.
	_, err := loadConfig(path, envOf(nil), nil)
	if err == nil {
		t.Fatal("serve accepted the file")
	}
	for _, w := range []string{"unknown key colour", "signin.ttl", "store.driver", "bsae_dn", "lockot", "source 2 (ad, line 20)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("serve's error lacks %q:\n%v", w, err)
		}
	}
}

// TestConfigCheckOK checks a good file: "ok", the summary, exit 0; the
// environment counts as it does for serve.
func TestConfigCheckOK(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "kc.secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	path := writeConfig(t, `listen: 127.0.0.1:8443
public_url: https://keystep.example.com
data_dir: `+filepath.Join(dir, "data")+`
oidc:
  clients:
    - id: kc
      secret_file: `+secret+`
      redirect_uris: [https://sso.example.com/cb]
`)
	code, lines, stderr := checkOutput(t, path, map[string]string{"KEYSTEP_STORE_DRIVER": "postgres", "KEYSTEP_STORE_DSN": "postgres://keystep:hunter2@db/keystep"})
	text := strings.Join(lines, "\n")
	if code != exitOK || lines[0] != path+": ok" {
		t.Fatalf("exit %d:\n%s\n%s", code, text, stderr)
	}
	for _, w := range []string{"store: postgres postgres://keystep:xxxxx@db/keystep", "listen: 127.0.0.1:8443", "public URL: https://keystep.example.com",
		"OIDC clients: 1 (kc)", "SAML service providers: none", "directory sources: none"} {
		if !strings.Contains(text, w) {
			t.Errorf("summary lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(text, "hunter2") {
		t.Errorf("the summary shows the database password:\n%s", text)
	}

	// An environment variable's bad value is reported with its name.
	code, lines, _ = checkOutput(t, path, map[string]string{"KEYSTEP_STORE_DRIVER": "postgres"})
	if code != exitFailure || len(lines) != 1 || lines[0] != path+": store.dsn (default): is required with the postgres driver, like postgres://keystep@db.example.com/keystep" {
		t.Errorf("exit %d: %q", code, lines)
	}
	code, lines, _ = checkOutput(t, path, map[string]string{"KEYSTEP_LISTEN": "nowhere"})
	if code != exitFailure || len(lines) != 1 || lines[0] != path+`: listen (KEYSTEP_LISTEN): must be host:port, like 127.0.0.1:8080, not "nowhere"` {
		t.Errorf("exit %d: %q", code, lines)
	}
}

// TestConfigCheckFiles checks the files a configuration names: a secret
// open to others, a CA file without a certificate, a short code key.
func TestConfigCheckFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	path := writeConfig(t, `public_url: http://keystep.example.com
codes:
  key_file: `+write("code-key", "short", 0o600)+`
smtp:
  host: smtp.example.com
  from: keystep@example.com
  password_file: `+write("smtp-password", "a password that is long enough", 0o644)+`
  ca_file: `+write("ca.pem", "not a certificate", 0o644)+`
admins:
  - name: alice
    token_file: `+filepath.Join(dir, "no-token")+`
`)
	code, lines, _ := checkOutput(t, path, nil)
	text := strings.Join(lines, "\n")
	want := []string{
		path + ":1: public_url: http://keystep.example.com is plain http on a host other than this machine",
		path + ":3: codes.key_file: code key file " + filepath.Join(dir, "code-key") + " must hold at least",
		path + ":7: smtp.password_file: " + filepath.Join(dir, "smtp-password") + " is open to other users (mode 0644); chmod 600 it (file check)",
		path + ":8: smtp.ca_file: " + filepath.Join(dir, "ca.pem") + " holds no PEM certificate (file check)",
		path + ":10: admins: admin alice: token_file: admin token: stat ",
	}
	if code != exitFailure || len(lines) != len(want) {
		t.Fatalf("exit %d:\n%s", code, text)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d:\n got %s\nwant %s…", i+1, lines[i], w)
		}
	}
	// --insecure-dev accepts the http public URL, as serve --insecure-dev does.
	if _, lines, _ := checkOutput(t, path, nil, "--insecure-dev"); len(lines) != len(want)-1 {
		t.Errorf("--insecure-dev:\n%s", strings.Join(lines, "\n"))
	}
}

func TestConfigCheckUnreadable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "none.yaml")
	if code, lines, _ := checkOutput(t, missing, nil); code != exitFailure || len(lines) != 1 || !strings.HasPrefix(lines[0], missing+": open ") {
		t.Errorf("missing file: %d %q", code, lines)
	}
	bad := writeConfig(t, "listen: 127.0.0.1:1\n  store: [\n")
	if code, lines, _ := checkOutput(t, bad, nil); code != exitFailure || len(lines) != 1 || !strings.HasPrefix(lines[0], bad+":2: yaml: line 2:") {
		t.Errorf("bad YAML: %d %q", code, lines)
	}
	list := writeConfig(t, "- listen\n")
	if code, lines, _ := checkOutput(t, list, nil); code != exitFailure || len(lines) != 1 || lines[0] != list+":1: the configuration must be a mapping of keys to values" {
		t.Errorf("not a mapping: %d %q", code, lines)
	}
	if code := run(context.Background(), []string{"config", "check"}, &bytes.Buffer{}, &bytes.Buffer{}); code != exitUsage {
		t.Errorf("config check without a file: exit %d", code)
	}
}
