package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// exampleConfig is the documented example with every key.
const exampleConfig = "../../../docs/keystep.example.yaml"

// listItems are the schema's list keys whose items are mappings, with
// the type each item is read into.
var listItems = map[string]reflect.Type{
	"admins":                 reflect.TypeFor[AdminConfig](),
	"oidc.clients":           reflect.TypeFor[OIDCClientConfig](),
	"saml.service_providers": reflect.TypeFor[SAMLSPConfig](),
	"directory.sources":      reflect.TypeFor[DirectorySourceConfig](),
}

// schemaKeys lists every key the loader reads: the schema's, and inside
// list items (written "list[].key") the yaml names of the item type's
// fields, nested mappings and lists of mappings included. A map-valued
// key (authn_context) is one key.
func schemaKeys() []string {
	var keys []string
	var walkType func(prefix string, t reflect.Type)
	walkType = func(prefix string, t reflect.Type) {
		for f := range t.Fields() {
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			key := prefix + name
			keys = append(keys, key)
			switch ft := f.Type; {
			case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]():
				walkType(key+".", ft)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walkType(key+"[].", ft.Elem())
			}
		}
	}
	var walk func(prefix string, s schema)
	walk = func(prefix string, s schema) {
		for k, v := range s {
			key := prefix + k
			keys = append(keys, key)
			if sub, ok := v.(schema); ok {
				walk(key+".", sub)
			} else if t, ok := listItems[key]; ok {
				walkType(key+"[].", t)
			}
		}
	}
	c := defaultConfig()
	walk("", c.schema())
	slices.Sort(keys)
	return keys
}

// yamlKeys lists the keys of a YAML document the same way: "a.b", and
// "list[].key" for the keys of any item of a list, with the line of each
// (the first one's); leaves are those whose value holds no mapping.
func yamlKeys(n *yaml.Node, prefix string, into map[string]int, leaves map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			yamlKeys(c, prefix, into, leaves)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := prefix + n.Content[i].Value
			if _, ok := into[key]; !ok {
				into[key] = n.Content[i].Line
			}
			v := n.Content[i+1]
			if v.Kind == yaml.ScalarNode || (v.Kind == yaml.SequenceNode && (len(v.Content) == 0 || v.Content[0].Kind == yaml.ScalarNode)) ||
				(v.Kind == yaml.MappingNode && len(v.Content) == 0) {
				leaves[key] = true
			}
			yamlKeys(v, key+".", into, leaves)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			yamlKeys(c, strings.TrimSuffix(prefix, ".")+"[].", into, leaves)
		}
	}
}

// TestExampleConfigHasEveryKey fails when a key the configuration loader
// reads is missing from docs/keystep.example.yaml, or when the example has
// a key without a comment on its line or the lines above.
func TestExampleConfigHasEveryKey(t *testing.T) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	have, leaves := map[string]int{}, map[string]bool{}
	yamlKeys(&doc, "", have, leaves)
	keys := schemaKeys()
	if len(keys) < 150 {
		t.Fatalf("only %d keys in the schema: the walk misses some", len(keys))
	}
	for _, k := range keys {
		if _, ok := have[k]; !ok {
			t.Errorf("%s: the key %s is missing; document it (what it does, its default, its units)", exampleConfig, k)
		}
	}
	// Every value is explained by a comment on its line (the first time
	// its key appears: the second OIDC client only shows the entra profile).
	lines := strings.Split(string(data), "\n")
	for k, line := range have {
		if leaves[k] && !strings.Contains(lines[line-1], "#") {
			t.Errorf("%s:%d: %s has no comment", exampleConfig, line, k)
		}
	}
}

// TestExampleConfigChecks runs keystep config check on the example, its
// /etc/keystep/ files made in a temporary directory: the example must be
// a configuration keystep accepts.
func TestExampleConfigChecks(t *testing.T) {
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	if err := os.Mkdir(etc, 0o700); err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "/etc/keystep/", etc+"/")
	text = strings.ReplaceAll(text, "/var/lib/keystep", filepath.Join(dir, "data"))
	path := filepath.Join(dir, "keystep.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	// Before its files exist, each is reported as such.
	code, lines, _ := checkOutput(t, path, nil)
	if code != exitFailure || len(lines) < 5 {
		t.Fatalf("without its files: exit %d:\n%s", code, strings.Join(lines, "\n"))
	}
	for _, l := range lines {
		if !strings.HasSuffix(l, "(file check)") {
			t.Errorf("without its files, an error that is not about one: %s", l)
		}
	}

	writeExampleFiles(t, etc)
	code, lines, stderr := checkOutput(t, path, nil)
	if code != exitOK || lines[0] != path+": ok" {
		t.Fatalf("keystep config check on the example: exit %d\n%s\n%s", code, strings.Join(lines, "\n"), stderr)
	}
	for _, w := range []string{"OIDC clients: 2 (keycloak, 00000000-entra-eam-client-id)", "SAML service providers: 1 (keycloak)", "directory sources: 1 (corp)"} {
		if !slices.Contains(lines, "  "+w) {
			t.Errorf("summary lacks %q:\n%s", w, strings.Join(lines, "\n"))
		}
	}
}

// writeExampleFiles makes the files the example names, in dir.
func writeExampleFiles(t *testing.T, dir string) {
	t.Helper()
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	secret := []byte(base64.RawURLEncoding.EncodeToString(make([]byte, 32)) + "\n")
	for _, name := range []string{"alice-admin-token", "smtp-password", "twilio-auth-token", "keycloak.secret", "ldap-password"} {
		write(name, secret)
	}
	write("otlp-headers", []byte("Authorization: Bearer "+strings.TrimSpace(string(secret))+"\n"))
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	write("AuthKey_ABCDE12345.p8", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err = x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "keystep-example", "private_key_id": "k1",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "keystep@keystep-example.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	write("fcm-service-account.json", sa)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Example CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ec.PublicKey, ec)
	if err != nil {
		t.Fatal(err)
	}
	write("ldap-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert}))
	write("keycloak-sp.xml", []byte(`<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://sso.example.com/realms/corp"/>
`))
}
