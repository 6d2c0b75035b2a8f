package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestConfigAdminsAndProxies(t *testing.T) {
	p := writeConfig(t, `
trusted_proxies: [127.0.0.1, 10.0.0.0/8, "2001:db8::1/48"]
admins:
  - name: alice
    token_file: /etc/keystep/alice-token
  - {name: bob.b, token_file: bob-token}
`)
	c, err := loadConfig(p, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	wantProxies := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/48")}
	if !slices.Equal(c.TrustedProxies, wantProxies) {
		t.Errorf("trusted proxies %v, want %v", c.TrustedProxies, wantProxies)
	}
	wantAdmins := []AdminConfig{{"alice", "/etc/keystep/alice-token"}, {"bob.b", "bob-token"}}
	if !slices.Equal(c.Admins, wantAdmins) {
		t.Errorf("admins %+v, want %+v", c.Admins, wantAdmins)
	}
	// It writes back out as it reads.
	out, err := c.marshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := loadConfig(writeConfig(t, string(out)), envOf(nil), nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !slices.Equal(again.TrustedProxies, wantProxies) || !slices.Equal(again.Admins, wantAdmins) {
		t.Errorf("round trip: %v %+v\n%s", again.TrustedProxies, again.Admins, out)
	}
}

func TestConfigAdminsAndProxiesBad(t *testing.T) {
	for file, want := range map[string]string{
		"trusted_proxies: 10.0.0.0/8":                                      "must be a list",
		"trusted_proxies: [10.0.0.0/33]":                                   "not a CIDR prefix",
		"trusted_proxies: [proxy.example.com]":                             "not an address",
		"trusted_proxies: [\"fe80::1%eth0\"]":                              "not an address",
		"admins: alice":                                                    "must be a list",
		"admins: [alice]":                                                  "item 1 must be a mapping",
		"admins: [{name: alice, token_file: a, role: root}]":               "unknown key role",
		"admins: [{name: alice, token_file: a, name: bob}]":                "name is given twice",
		"admins: [{name: alice}]":                                          "token_file is required",
		"admins: [{name: al ice, token_file: a}]":                          "name must be",
		"admins: [{name: admin, token_file: a}]":                           "the default admin's",
		"admins: [{name: a, token_file: x}, {name: a, token_file: y}]":     "listed twice",
		"admins: [{name: a, token_file: [x]}]":                             "must be a single value",
		"admins: [{name: \"\", token_file: x}]":                            "name must be",
		"admins: [{name: " + strings.Repeat("a", 65) + ", token_file: x}]": "name must be",
	} {
		_, err := loadConfig(writeConfig(t, file), envOf(nil), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", file, err, want)
		}
	}
}

// TestServeNamedAdmins runs the server with a named admin besides the
// default one: each token works, the audit log names who issued each
// override, and a token file open to others stops the server.
func TestServeNamedAdmins(t *testing.T) {
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER", "KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	opsToken := filepath.Join(dir, "ops-token")
	if err := os.WriteFile(opsToken, []byte("ops-token-0123456789abcdefghij\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf("admins:\n  - {name: ops, token_file: %q}\ntrusted_proxies: [127.0.0.1]\n", opsToken))
	s := start("serve", "--config", cfg, "--listen", "127.0.0.1:0", "--data", dataDir)
	url := s.err.next(t, listening)[1]
	defer s.stop(t)
	admin := cli{t: t, server: url, tokenFile: filepath.Join(dataDir, "admin-token")}
	ops := cli{t: t, server: url, tokenFile: opsToken}
	admin.must(admin.admin("user", "add", "erin", "--email", "erin@example.com")...)
	ops.must(ops.admin("override", "erin", "--reason", "lost phone")...)
	admin.must(admin.admin("override", "erin", "--reason", "again")...)
	out := admin.must(admin.admin("audit", "--json")...)
	var issuers []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		ev := decode[struct{ Action, Actor string }](t, line)
		if ev.Action == "override.issued" {
			issuers = append(issuers, ev.Actor)
		}
	}
	if got := strings.Join(issuers, ","); got != "admin:ops,admin:admin" {
		t.Fatalf("overrides issued by %q, want admin:ops,admin:admin\n%s", got, out)
	}

	// A named admin's token file that others may read is refused.
	if err := os.Chmod(opsToken, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := start("serve", "--config", cfg, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data2"))
	if code := bad.wait(t); code == 0 || !strings.Contains(bad.err.String(), "open to other users") {
		t.Fatalf("serve with a readable token file: exit %d\n%s", code, bad.err.String())
	}
}
