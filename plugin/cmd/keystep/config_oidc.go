package main

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/oidcop"
)

// OIDCConfig is the OpenID Provider: its clients (the host IdPs) and keys.
type OIDCConfig struct {
	Clients     []OIDCClientConfig
	RequestTTL  time.Duration // how long a user has for the step (default 10m)
	RotateEvery time.Duration // signing key lifetime (default 90 days)
	// DemoClient registers the demo client (id demo) for keystep demo-app;
	// nil: only when keystep runs without a configuration file.
	DemoClient *bool
	// AuthorizePerIPPerMinute bounds new auth requests per client address
	// (0: oidcop's default).
	AuthorizePerIPPerMinute int
}

// OIDCClientConfig is one client in the file.
type OIDCClientConfig struct {
	ID                     string        `yaml:"id"`
	Name                   string        `yaml:"name"`
	SecretFile             string        `yaml:"secret_file"`
	AuthMethod             string        `yaml:"auth_method"`
	JWKSURL                string        `yaml:"jwks_url"`
	JWKSFile               string        `yaml:"jwks_file"`
	RedirectURIs           []string      `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string      `yaml:"post_logout_redirect_uris"`
	Methods                []string      `yaml:"methods"`
	NameBy                 string        `yaml:"name_by"`
	Match                  string        `yaml:"match"`
	HintClaim              string        `yaml:"hint_claim"`
	LinkClaim              string        `yaml:"link_claim"`
	HintIssuer             string        `yaml:"hint_issuer"`
	HintJWKSURL            string        `yaml:"hint_jwks_url"`
	HintJWKSFile           string        `yaml:"hint_jwks_file"`
	HintAudience           string        `yaml:"hint_audience"`
	Tenants                []string      `yaml:"tenants"`
	Profile                string        `yaml:"profile"`
	SigningAlg             string        `yaml:"signing_alg"`
	DeviceAMR              string        `yaml:"device_amr"`
	IDTokenLifetime        time.Duration `yaml:"id_token_lifetime"`
	AccessTokenLifetime    time.Duration `yaml:"access_token_lifetime"`
	RefreshTokenLifetime   time.Duration `yaml:"refresh_token_lifetime"`
	AllowHTTPRedirects     bool          `yaml:"allow_http_redirects"`

	line int // where the client begins in the file, for errors (0: unknown)
	num  int // its place in the file's list, counting those that could not be read (0: unknown)
}

func (c *Config) oidcSchema() schema {
	return schema{
		"oidc": schema{
			"clients":                     oidcClientsValue(&c.OIDC.Clients),
			"request_ttl":                 durationValue(&c.OIDC.RequestTTL),
			"rotate_every":                durationValue(&c.OIDC.RotateEvery),
			"demo_client":                 optionalBoolValue(&c.OIDC.DemoClient),
			"authorize_per_ip_per_minute": intValue(&c.OIDC.AuthorizePerIPPerMinute),
		},
	}
}

func optionalBoolValue(p **bool) setter {
	return func(n *yaml.Node) error {
		var b bool
		if err := boolValue(&b)(n); err != nil {
			return err
		}
		*p = &b
		return nil
	}
}

// oidcClientsValue reads the clients list strictly: every key of an item
// must be a field of OIDCClientConfig.
func oidcClientsValue(p *[]OIDCClientConfig) setter {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return errors.New("must be a list of clients")
		}
		out := []OIDCClientConfig{}
		var errs []error
		for i, item := range n.Content {
			var cc OIDCClientConfig
			if err := strictDecode(resolve(item), &cc); err != nil {
				errs = append(errs, prefixErrors(fmt.Sprintf("client %d: ", i+1), err)...)
				continue
			}
			cc.line, cc.num = resolve(item).Line, i+1
			out = append(out, cc)
		}
		*p = out
		return errors.Join(errs...)
	}
}

// strictDecode decodes a mapping into the struct out points to, refusing
// keys the struct does not have and keys given twice. It returns every
// error (joined), each a lineError.
func strictDecode(n *yaml.Node, out any) error {
	if n.Kind != yaml.MappingNode {
		return lineError{n.Line, errors.New("must be a mapping")}
	}
	v := reflect.ValueOf(out).Elem()
	fields := map[string]reflect.Value{}
	var names []string
	for i := range v.NumField() {
		tag := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "" && tag != "-" {
			fields[tag] = v.Field(i)
			names = append(names, tag)
		}
	}
	seen := map[string]bool{}
	var errs []error
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, vn := resolve(n.Content[j]), resolve(n.Content[j+1])
		f, ok := fields[k.Value]
		if !ok {
			errs = append(errs, lineError{k.Line, fmt.Errorf("unknown key %s (known: %s)", k.Value, strings.Join(names, ", "))})
			continue
		}
		if seen[k.Value] {
			errs = append(errs, lineError{k.Line, fmt.Errorf("%s is given twice", k.Value)})
			continue
		}
		seen[k.Value] = true
		if f.Type() == reflect.TypeFor[time.Duration]() {
			var d time.Duration
			if err := durationValue(&d)(vn); err != nil {
				errs = append(errs, lineError{vn.Line, fmt.Errorf("%s: %w", k.Value, err)})
				continue
			}
			f.Set(reflect.ValueOf(d))
			continue
		}
		if err := vn.Decode(f.Addr().Interface()); err != nil {
			// A nested mapping read strictly (UnmarshalYAML) has its own
			// errors, each at its line.
			for _, e := range splitErrors(err) {
				errs = append(errs, lineError{vn.Line, fmt.Errorf("%s: %w", k.Value, e)})
			}
		}
	}
	return errors.Join(errs...)
}

// validateOIDC checks what can be checked without reading files.
func (c *Config) validateOIDC() []error {
	var errs []error
	if c.OIDC.AuthorizePerIPPerMinute < 0 {
		errs = append(errs, c.keyError("oidc.authorize_per_ip_per_minute", "must not be negative"))
	}
	seen := map[string]bool{}
	for i, cc := range c.OIDC.Clients {
		if seen[cc.ID] {
			errs = append(errs, c.keyErrorAt("oidc.clients", cc.line, "client %d: id %q is given twice", itemNum(i, cc.num), cc.ID))
		}
		seen[cc.ID] = true
		if cc.ID == demoClientID && c.demoClientOn() {
			errs = append(errs, c.keyErrorAt("oidc.clients", cc.line, "client %d: id %q is the demo client's; set oidc.demo_client: false to use it", itemNum(i, cc.num), cc.ID))
		}
		if _, err := cc.toClient(func(string) (string, error) { return strings.Repeat("x", 32), nil }); err != nil {
			errs = append(errs, c.keyErrorAt("oidc.clients", cc.line, "client %d: %v", itemNum(i, cc.num), err))
		}
	}
	return errs
}

// demoClientOn reports whether the demo client is registered.
func (c *Config) demoClientOn() bool {
	if c.OIDC.DemoClient != nil {
		return *c.OIDC.DemoClient
	}
	return !c.fromFile
}

// demoClientID is the demo client's id; its secret is in <data_dir>/demo-client-secret.
const (
	demoClientID         = "demo"
	demoClientSecretFile = "demo-client-secret"
	demoAppPort          = "5556"
)

// demoClient is the client keystep demo-app uses.
func demoClient(secret string) oidcop.ClientConfig {
	return oidcop.ClientConfig{
		ID: demoClientID, Name: "keystep demo app", Secret: secret,
		RedirectURIs: []string{"http://127.0.0.1:" + demoAppPort + "/callback", "http://localhost:" + demoAppPort + "/callback"},
		Methods:      []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride},
		// demo-app --listen may pick another port: its redirect URI is
		// http://127.0.0.1:<its port>/callback.
		LoopbackAnyPort: true,
	}
}

// toClient turns a file entry into the provider's client; readSecret
// reads the secret file.
func (cc OIDCClientConfig) toClient(readSecret func(string) (string, error)) (oidcop.ClientConfig, error) {
	out := oidcop.ClientConfig{
		ID: cc.ID, Name: cc.Name, AuthMethod: cc.AuthMethod, JWKSURL: cc.JWKSURL, JWKSFile: cc.JWKSFile,
		RedirectURIs: cc.RedirectURIs, PostLogoutRedirectURIs: cc.PostLogoutRedirectURIs, NameBy: cc.NameBy, Match: cc.Match,
		HintClaim: cc.HintClaim, LinkClaim: cc.LinkClaim, HintIssuer: cc.HintIssuer, HintJWKSURL: cc.HintJWKSURL,
		HintJWKSFile: cc.HintJWKSFile, HintAudience: cc.HintAudience, Tenants: cc.Tenants, Profile: cc.Profile,
		SigningAlg: cc.SigningAlg, DeviceAMR: cc.DeviceAMR, IDTokenLifetime: cc.IDTokenLifetime,
		AccessTokenLifetime: cc.AccessTokenLifetime, RefreshTokenLifetime: cc.RefreshTokenLifetime,
		AllowHTTPRedirects: cc.AllowHTTPRedirects,
	}
	for _, m := range cc.Methods {
		out.Methods = append(out.Methods, flows.Method(m))
	}
	if cc.SecretFile != "" {
		s, err := readSecret(cc.SecretFile)
		if err != nil {
			return out, err
		}
		out.Secret = s
	} else if cc.AuthMethod != oidcop.AuthPrivateKeyJWT && cc.Profile != oidcop.ProfileEntra {
		return out, errors.New("secret_file is required (or auth_method: private_key_jwt)")
	}
	check := out
	if _, err := oidcop.CheckClient(check); err != nil {
		return out, err
	}
	return out, nil
}

// readClientSecret reads a client secret from a file that only its owner
// can read.
func readClientSecret(path string) (string, error) {
	b, err := readSecretFile(path)
	if err != nil {
		return "", fmt.Errorf("secret file: %w", err)
	}
	return string(b), nil
}
