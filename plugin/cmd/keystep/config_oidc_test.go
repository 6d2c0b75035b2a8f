package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestConfigREADMEExample: the configuration the README shows is valid.
func TestConfigREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## Configuration.*?```yaml\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no yaml block under Configuration")
	}
	c, err := loadConfig(writeConfig(t, string(m[1])), envOf(nil), nil)
	if err != nil {
		t.Fatalf("the README's configuration: %v", err)
	}
	if len(c.OIDC.Clients) != 2 || c.OIDC.Clients[0].ID != "keycloak" || c.OIDC.Clients[1].Profile != "entra" ||
		c.OIDC.RotateEvery != 90*24*time.Hour || c.demoClientOn() {
		t.Errorf("oidc = %+v", c.OIDC)
	}
}

func TestConfigOIDCErrors(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown key": {`
oidc:
  clients:
    - id: a
      secret_file: /x
      redirect_uri: [https://a.example/cb]
`, "line 6: unknown key redirect_uri"},
		"twice": {`
oidc:
  clients:
    - {id: a, secret_file: /x, redirect_uris: [https://a.example/cb]}
    - {id: a, secret_file: /x, redirect_uris: [https://a.example/cb]}
`, `id "a" is given twice`},
		"no secret": {`
oidc:
  clients:
    - {id: a, redirect_uris: [https://a.example/cb]}
`, "secret_file is required"},
		"http redirect": {`
oidc:
  clients:
    - {id: a, secret_file: /x, redirect_uris: [http://a.example/cb]}
`, "must use https"},
		"entra without tenants": {`
oidc:
  clients:
    - {id: a, profile: entra, redirect_uris: [https://login.microsoftonline.com/common/federation/externalauthprovider]}
`, "tenant ids"},
		"bad method": {`
oidc:
  clients:
    - {id: a, secret_file: /x, redirect_uris: [https://a.example/cb], methods: [push, telepathy]}
`, `method "telepathy" is unknown`},
		"demo id taken": {`
oidc:
  demo_client: true
  clients:
    - {id: demo, secret_file: /x, redirect_uris: [https://a.example/cb]}
`, "demo client"},
		"bad duration": {`
oidc:
  clients:
    - {id: a, secret_file: /x, redirect_uris: [https://a.example/cb], id_token_lifetime: soon}
`, "id_token_lifetime"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml), envOf(nil), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want it to say %q", err, tc.want)
			}
		})
	}
}
