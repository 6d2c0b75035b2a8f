package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// envOf is a lookupEnv over a map.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keystep.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// same compares configurations without their sources.
func same(a, b Config) bool {
	a.sources, b.sources = nil, nil
	return a.Listen == b.Listen && a.PublicURL == b.PublicURL && a.DataDir == b.DataDir && a.Store == b.Store &&
		a.SignIn == b.SignIn && a.InvitationTTL == b.InvitationTTL && a.TombstoneRetention == b.TombstoneRetention &&
		sameCodes(a, b) && slices.Equal(a.TrustedProxies, b.TrustedProxies) && slices.Equal(a.Admins, b.Admins)
}

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig("", envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Listen: "127.0.0.1:8080", DataDir: "keystep-data", Store: StoreConfig{Driver: "sqlite"}}
	if !same(c, want) {
		t.Errorf("defaults = %+v", c)
	}
	for _, empty := range []string{"", "# only a comment\n", "---\n"} {
		c, err := loadConfig(writeConfig(t, empty), envOf(nil), nil)
		if err != nil || !same(c, want) {
			t.Errorf("file %q: %+v, %v", empty, c, err)
		}
	}
}

func TestConfigFile(t *testing.T) {
	path := writeConfig(t, `
# keystep.yaml
listen: 0.0.0.0:9443
public_url: https://idp.example.com/keystep/
data_dir: /var/lib/keystep
store:
  driver: postgres
  dsn: postgres://keystep@db/keystep
signin:
  number_digits: 3
  ttl: 90s
invitation_ttl: 3d
tombstone_retention: 2160h
`)
	c, err := loadConfig(path, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen: "0.0.0.0:9443", PublicURL: "https://idp.example.com/keystep", DataDir: "/var/lib/keystep",
		Store:  StoreConfig{Driver: "postgres", DSN: "postgres://keystep@db/keystep"},
		SignIn: SignInConfig{NumberDigits: 3, TTL: 90 * time.Second}, InvitationTTL: 72 * time.Hour, TombstoneRetention: 90 * 24 * time.Hour,
	}
	if !same(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	fc := c.flowsConfig("https://x")
	if fc.NumberDigits != 3 || fc.SignInTTL != 90*time.Second || fc.InvitationTTL != 72*time.Hour || fc.TombstoneRetention != 2160*time.Hour {
		t.Errorf("flows config = %+v", fc)
	}
}

func TestConfigPrecedence(t *testing.T) {
	path := writeConfig(t, "listen: 127.0.0.1:1000\npublic_url: https://file.example\ndata_dir: file-data\nstore:\n  dsn: /file/keystep.db\n")
	env := envOf(map[string]string{
		"KEYSTEP_LISTEN":     "127.0.0.1:2000",
		"KEYSTEP_PUBLIC_URL": "https://env.example",
		"KEYSTEP_DATA_DIR":   "", // empty: not set
		"KEYSTEP_STORE_DSN":  "/env/keystep.db",
	})
	flags := []flagOverride{{key: "listen", flag: "listen", value: "127.0.0.1:3000"}}
	c, err := loadConfig(path, env, flags)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:3000" || c.PublicURL != "https://env.example" || c.DataDir != "file-data" || c.Store.DSN != "/env/keystep.db" {
		t.Errorf("precedence: %+v", c)
	}
	// The environment alone overrides the defaults.
	c, err = loadConfig("", envOf(map[string]string{"KEYSTEP_STORE_DRIVER": "postgres", "KEYSTEP_STORE_DSN": "host=db"}), nil)
	if err != nil || c.Store.Driver != "postgres" || c.Store.DSN != "host=db" {
		t.Errorf("env over defaults: %+v, %v", c, err)
	}
}

func TestConfigStrict(t *testing.T) {
	cases := map[string]struct{ yaml, want string }{
		"unknown key":           {"listen: a:1\nlisten_addr: b:2\n", "line 2: unknown key listen_addr"},
		"unknown nested key":    {"store:\n  driver: sqlite\n  path: x\n", "line 3: unknown key store.path"},
		"duplicate key":         {"listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", "line 2: listen is given twice"},
		"section not a mapping": {"signin: 3\n", "signin must be a mapping"},
		"not a mapping":         {"- listen\n", "the configuration must be a mapping"},
		"list value":            {"listen: [a, b]\n", "listen: must be a single value"},
		"null value":            {"public_url:\n", "public_url: has no value"},
		"int as text":           {"signin:\n  number_digits: two\n", `signin.number_digits: must be a whole number, not "two"`},
		"int as quoted text":    {"signin:\n  number_digits: \"4\"\n", `signin.number_digits: must be a whole number, not "4"`},
		"bad duration":          {"signin:\n  ttl: 120\n", `signin.ttl: must be a duration such as 90s, 10m, 36h or 7d, not "120"`},
		"two documents":         {"listen: 127.0.0.1:1\n---\nlisten: 127.0.0.1:2\n", "only one YAML document"},
		"merge key":             {"base: &b {listen: 127.0.0.1:1}\n<<: *b\n", "unknown key base"},
		"syntax":                {"listen: [\n", "keystep.yaml"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, c.yaml), envOf(nil), nil)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestConfigBadValues(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		env   map[string]string
		flags []flagOverride
		want  []string
	}{
		{name: "digits", yaml: "signin:\n  number_digits: 9\n", want: []string{"signin.number_digits (", "line 2): number digits must be 2 to 6, not 9"}},
		{name: "ttl over NIST's 10 minutes", yaml: "signin:\n  ttl: 11m\n", want: []string{"signin.ttl (", "line 2): sign-in lifetime must be 10s to 10m"}},
		{name: "invitation ttl", yaml: "invitation_ttl: 100d\n", want: []string{"invitation_ttl (", "invitation lifetime must be 1m to 90 days"}},
		{name: "negative retention", yaml: "tombstone_retention: -1h\n", want: []string{"tombstone_retention (", "must not be negative"}},
		{name: "driver from env", env: map[string]string{"KEYSTEP_STORE_DRIVER": "mysql"}, want: []string{`store.driver (KEYSTEP_STORE_DRIVER): must be sqlite or postgres, not "mysql"`}},
		{name: "postgres without dsn", yaml: "store:\n  driver: postgres\n", want: []string{"store.dsn (default): is required with the postgres driver"}},
		{name: "listen from flag", flags: []flagOverride{{"listen", "listen", "localhost"}}, want: []string{`listen (--listen): must be host:port`}},
		{name: "listen port", yaml: "listen: 127.0.0.1:99999\n", want: []string{"listen (", "a port from 0 to 65535"}},
		{name: "public url", env: map[string]string{"KEYSTEP_PUBLIC_URL": "idp.example.com"}, want: []string{`public_url (KEYSTEP_PUBLIC_URL): server URL "idp.example.com" must be http(s)://host[:port][/path]`}},
		{name: "empty data dir", flags: []flagOverride{{"data_dir", "data", ""}}, want: []string{"data_dir (--data): must not be empty"}},
		{name: "every bad key at once", yaml: "listen: x\nsignin:\n  number_digits: 1\n", want: []string{"listen (", "signin.number_digits ("}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.yaml != "" {
				path = writeConfig(t, c.yaml)
			}
			_, err := loadConfig(path, envOf(c.env), c.flags)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigMissingFile(t *testing.T) {
	_, err := loadConfig(filepath.Join(t.TempDir(), "nope.yaml"), envOf(nil), nil)
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Errorf("error = %v", err)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "7d": 7 * 24 * time.Hour, "0d": 0, "1h30m": 90 * time.Minute, "-2m": -2 * time.Minute} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v", in, got, err)
		}
		back, err := parseDuration(formatDuration(got))
		if err != nil || back != got {
			t.Errorf("formatDuration(%v) = %q does not read back", got, formatDuration(got))
		}
	}
	for _, bad := range []string{"", "d", "7", "1.5d", "-1d", "7days", "99999999d"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) accepted it", bad)
		}
	}
}

// FuzzParseConfig feeds arbitrary files to the parser: it must not panic,
// and what it accepts must survive being written out and read back.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"listen: 127.0.0.1:8080\npublic_url: https://idp.example.com\ndata_dir: ./data\n",
		"store:\n  driver: postgres\n  dsn: postgres://k@db/k\nsignin:\n  number_digits: 2\n  ttl: 2m\ninvitation_ttl: 7d\ntombstone_retention: 30d\n",
		"signin: {number_digits: 6, ttl: 10m}\n",
		"codes:\n  methods: [override, sms]\n  otp_digits: 7\n  lockout: 2h\npush: {limit: 3, window: 5m}\nfraud: {push_block: 1d}\nalerts:\n  email_to: []\n",
		"codes: {methods: []}\nalerts: {webhook_url: https://x.example, webhook_secret_file: /s}\n",
		"a: &x 1\nb: *x\n",
		"listen: [1, 2]\n",
		"---\n...\n",
		"listen: \"\\u00e9\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := defaultConfig()
		if err := c.parseYAML(data, "fuzz.yaml"); err != nil {
			return
		}
		_ = c.validate() // never panics, whatever the values
		out, err := c.marshalYAML()
		if err != nil {
			t.Fatalf("marshal %+v: %v", c, err)
		}
		again := defaultConfig()
		if err := again.parseYAML(out, "again.yaml"); err != nil {
			t.Fatalf("written config %q does not read back: %v", out, err)
		}
		if !same(c, again) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v\nvia %q", c, again, out)
		}
	})
}
