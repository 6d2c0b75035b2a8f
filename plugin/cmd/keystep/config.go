package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keystep/keystep/flows"
)

// Config is the server's configuration: defaults, then the YAML file, then
// the KEYSTEP_* environment, then the command line flags.
type Config struct {
	Listen             string // address to listen on, host:port
	PublicURL          string // the URL devices and admins use; empty: http://<listen address>
	DataDir            string // where the SQLite file and the admin token live
	Store              StoreConfig
	SignIn             SignInConfig
	InvitationTTL      time.Duration // 0: flows' default
	TombstoneRetention time.Duration // 0: flows' default
	Devices            DevicesConfig
	Codes              CodesConfig   // one-time codes and their limits
	Push               PushConfig    // push limits
	Fraud              FraudConfig   // what a fraud report does
	Alerts             AlertsConfig  // where admin alerts go
	Senders            SendersConfig // email, SMS and push delivery
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// names the client (for the rate limits and the audit log).
	TrustedProxies []netip.Prefix
	// Admins are named admins besides the default one ("admin", whose
	// token is <data_dir>/admin-token).
	Admins []AdminConfig
	// OIDC is the OpenID Provider's clients and keys.
	OIDC OIDCConfig
	// SAML is the SAML Identity Provider's service providers and keys.
	SAML SAMLConfig
	// Directory is the company directory the accounts follow.
	Directory DirectoryConfig
	// LogFormat is text (the default) or json (one object a line).
	LogFormat string
	// Tracing is OpenTelemetry tracing (off without an endpoint).
	Tracing TracingConfig
	// Readiness is what /readyz waits for.
	Readiness ReadinessConfig
	// InsecureDev allows an http:// public URL on a non-loopback host and
	// cookies without Secure (--insecure-dev; never in production).
	InsecureDev bool

	// sources says where each key's value came from, for error messages.
	sources map[string]string
	// lines are the file's line of each key it sets.
	lines map[string]int
	// failed are the keys whose value in the file could not be read: their
	// defaults are not checked again.
	failed map[string]bool
	// fromFile is set when a configuration file was read.
	fromFile bool
}

// StoreConfig chooses the store.
type StoreConfig struct {
	Driver string // sqlite or postgres
	DSN    string // sqlite: the database file (default <data_dir>/keystep.db); postgres: the connection string
}

// DevicesConfig is the device policy.
type DevicesConfig struct {
	// ReplaceOnEnroll unregisters a user's other devices when they enroll
	// a new one with a new invitation (a new phone without a backup).
	ReplaceOnEnroll bool `yaml:"replace_on_enroll"`
}

// SignInConfig is the sign-in policy.
type SignInConfig struct {
	NumberDigits int           // 0: flows' default
	TTL          time.Duration // 0: flows' default
}

// Defaults of a configuration with no file.
const (
	defaultListen  = "127.0.0.1:8080"
	defaultDataDir = "keystep-data"
	defaultDriver  = "sqlite"
	maxConfigFile  = 1 << 20
)

// Environment variables that override the file.
var configEnv = []struct{ name, key string }{
	{"KEYSTEP_LISTEN", "listen"},
	{"KEYSTEP_PUBLIC_URL", "public_url"},
	{"KEYSTEP_DATA_DIR", "data_dir"},
	{"KEYSTEP_STORE_DRIVER", "store.driver"},
	{"KEYSTEP_STORE_DSN", "store.dsn"},
	{"KEYSTEP_LOG_FORMAT", "log_format"},
}

// defaultConfig is the working single-machine configuration.
func defaultConfig() Config {
	return Config{Listen: defaultListen, DataDir: defaultDataDir, Store: StoreConfig{Driver: defaultDriver}, sources: map[string]string{}, lines: map[string]int{}, failed: map[string]bool{}}
}

// flagOverride is a flag given on the command line, for the key it sets.
type flagOverride struct{ key, flag, value string }

// loadConfig builds the configuration from the file at path (none if
// empty), the environment as lookupEnv sees it, and the flags given, and
// checks it.
func loadConfig(path string, lookupEnv func(string) (string, bool), flags []flagOverride) (Config, error) {
	if path == "" {
		return loadConfigData(nil, "", lookupEnv, flags)
	}
	data, err := readConfigFile(path)
	if err != nil {
		return Config{}, err
	}
	return loadConfigData(data, path, lookupEnv, flags)
}

// loadConfigData is loadConfig for a configuration file's text that was
// read already (name says where from, in errors; "" means no file).
func loadConfigData(data []byte, name string, lookupEnv func(string) (string, bool), flags []flagOverride) (Config, error) {
	c, err := readConfig(data, name, lookupEnv, flags)
	if err != nil {
		return Config{}, err
	}
	return c, nil
}

// readConfig is loadConfigData, returning what it could read along with
// every error (keystep config check looks further).
func readConfig(data []byte, name string, lookupEnv func(string) (string, bool), flags []flagOverride) (Config, error) {
	c := defaultConfig()
	var parseErr error
	if name != "" {
		// A file that cannot be read as YAML, or is not one mapping, has
		// nothing more to check; otherwise every bad key is reported, then
		// every bad value of the keys that were read.
		if parseErr = c.parseYAML(data, name); parseErr != nil && !c.fromFile {
			return c, parseErr
		}
		c.fromFile = true
	}
	for _, e := range append(configEnv, codesEnv...) {
		if v, ok := lookupEnv(e.name); ok && v != "" {
			c.setString(e.key, v, e.name)
		}
	}
	for _, f := range flags {
		c.setString(f.key, f.value, "--"+f.flag)
	}
	if err := c.validate(); err != nil || parseErr != nil {
		return c, errors.Join(parseErr, c.withoutFailed(err))
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/") // the origin devices sign has no trailing slash
	return c, nil
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxConfigFile)
	}
	return data, nil
}

// setString sets a string-valued key from the environment or a flag.
func (c *Config) setString(key, v, source string) {
	switch key {
	case "listen":
		c.Listen = v
	case "public_url":
		c.PublicURL = v
	case "data_dir":
		c.DataDir = v
	case "store.driver":
		c.Store.Driver = v
	case "store.dsn":
		c.Store.DSN = v
	case "log_format":
		c.LogFormat = v
	default:
		if !c.setCodesString(key, v) {
			panic("keystep: no such string key " + key)
		}
	}
	c.sources[key] = source
	delete(c.lines, key)
	delete(c.failed, key)
}

// configError is one error in a configuration: a key's bad value, or a
// file that cannot be read as a configuration. keystep config check
// prints each on its own line, with the key's line in the file.
type configError struct {
	line    int    // the line in the file; 0: not from the file, or unknown
	key     string // the key, like smtp.port; "": the file as a whole
	src     string // where the value came from, when not from the file (KEYSTEP_LISTEN, --listen, default)
	msg     string // what is wrong, without the key
	text    string // the whole message, for Error
	checked string // "file check": found by reading a file the configuration names, "environment check": by reading the environment (keystep config check only)
}

func (e *configError) Error() string { return e.text }

// keyError is a bad value, named by its key and where it came from.
func (c *Config) keyError(key, format string, args ...any) error {
	return c.keyErrorAt(key, 0, format, args...)
}

// keyErrorAt is keyError for a value whose line in the file is known
// better than its key's (an item of a list); 0: the key's line.
func (c *Config) keyErrorAt(key string, line int, format string, args ...any) error {
	src := c.sources[key]
	if src == "" {
		src = "default"
	}
	msg := fmt.Sprintf(format, args...)
	if line == 0 {
		line = c.lines[key]
	}
	return &configError{line: line, key: key, src: src, msg: msg, text: fmt.Sprintf("config: %s (%s): %s", key, src, msg)}
}

// withoutFailed drops, from validate's errors, those of keys whose value
// in the file could not be read (their defaults are not the problem).
func (c *Config) withoutFailed(err error) error {
	if err == nil || len(c.failed) == 0 {
		return err
	}
	var keep []error
	for _, e := range splitErrors(err) {
		var ce *configError
		if errors.As(e, &ce) && c.failed[ce.key] {
			continue
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}

// splitErrors lists the errors errors.Join joined (err itself if it is
// not a join), recursively.
func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, splitErrors(e)...)
	}
	return out
}

// lineError is an error at a line of the file, inside a key's value (an
// item of a list): "line 9: unknown key bsae_dn".
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e lineError) Unwrap() error { return e.err }

// innermostLine is the line of the innermost lineError in err's chain; 0
// if there is none.
func innermostLine(err error) int {
	line := 0
	for e := err; e != nil; e = errors.Unwrap(e) {
		if le, ok := e.(lineError); ok {
			line = le.line
		}
	}
	return line
}

// prefixErrors wraps each error of err (a join, or one error) with
// prefix, keeping them apart.
func prefixErrors(prefix string, err error) []error {
	var out []error
	for _, e := range splitErrors(err) {
		out = append(out, fmt.Errorf("%s%w", prefix, e))
	}
	return out
}

// itemNum is the number of the i-th item read from a list whose place
// in the file's list is num (0: unknown, i+1).
func itemNum(i, num int) int {
	if num > 0 {
		return num
	}
	return i + 1
}

// fileError is an error about the file at a line, naming a key (or none).
func fileError(name string, line int, key, msg string) *configError {
	text := fmt.Sprintf("config %s: line %d: ", name, line)
	if key != "" {
		text += key + ": "
	}
	return &configError{line: line, key: key, msg: msg, text: text + msg}
}

// setter reads one YAML value into a field.
type setter func(n *yaml.Node) error

// schema is the shape of the file: a setter, or a nested mapping.
type schema map[string]any

func (c *Config) schema() schema {
	s := schema{
		"listen":     stringValue(&c.Listen),
		"public_url": stringValue(&c.PublicURL),
		"data_dir":   stringValue(&c.DataDir),
		"store": schema{
			"driver": stringValue(&c.Store.Driver),
			"dsn":    stringValue(&c.Store.DSN),
		},
		"signin": schema{
			"number_digits": intValue(&c.SignIn.NumberDigits),
			"ttl":           durationValue(&c.SignIn.TTL),
		},
		"invitation_ttl":      durationValue(&c.InvitationTTL),
		"tombstone_retention": durationValue(&c.TombstoneRetention),
		"devices": schema{
			"replace_on_enroll": boolValue(&c.Devices.ReplaceOnEnroll),
		},
		"trusted_proxies": prefixesValue(&c.TrustedProxies),
		"admins":          adminsValue(&c.Admins),
	}
	maps.Copy(s, c.codesSchema())
	maps.Copy(s, c.sendersSchema())
	maps.Copy(s, c.oidcSchema())
	maps.Copy(s, c.samlSchema())
	maps.Copy(s, c.directorySchema())
	maps.Copy(s, c.observabilitySchema())
	return s
}

// parseYAML reads a configuration file into c. It is strict: an unknown or
// repeated key, a value of the wrong kind or a second document is an error
// that names the key and its line. It reports every such error (joined),
// and sets c.fromFile when the file was one mapping whose other keys
// were read.
func (c *Config) parseYAML(data []byte, name string) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file: all defaults
		}
		return fmt.Errorf("config %s: %w", name, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("config %s: %w", name, err)
		}
		return fileError(name, more.Line, "", "only one YAML document is allowed")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil // a document of comments only
	}
	if resolve(root).Kind != yaml.MappingNode {
		return fileError(name, root.Line, "", "the configuration must be a mapping of keys to values")
	}
	var errs []error
	c.walk(root, "", c.schema(), name, &errs)
	c.fromFile = true
	return errors.Join(errs...)
}

// walk reads the mapping n into the keys of s, adding an error to errs
// for each key it cannot read.
func (c *Config) walk(n *yaml.Node, prefix string, s schema, name string, errs *[]error) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		what := "the configuration"
		if prefix != "" {
			what = strings.TrimSuffix(prefix, ".")
		}
		*errs = append(*errs, fileError(name, n.Line, "", what+" must be a mapping of keys to values"))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := resolve(n.Content[i]), n.Content[i+1]
		if kn.Kind != yaml.ScalarNode {
			*errs = append(*errs, fileError(name, kn.Line, "", "a key in "+strings.TrimSuffix(prefix, ".")+"(top level) is not a plain name"))
			continue
		}
		key := prefix + kn.Value
		if seen[kn.Value] {
			ce := fileError(name, kn.Line, "", key+" is given twice")
			ce.key, ce.msg = key, "is given twice"
			*errs = append(*errs, ce)
			continue
		}
		seen[kn.Value] = true
		switch f := s[kn.Value].(type) {
		case schema:
			c.walk(vn, key+".", f, name, errs)
		case setter:
			c.lines[key] = vn.Line
			if err := f(resolve(vn)); err != nil {
				leaves := splitErrors(err)
				for _, e := range leaves {
					line := vn.Line
					if l := innermostLine(e); l > 0 {
						line = l
					}
					ce := fileError(name, vn.Line, key, e.Error())
					ce.line, ce.msg = line, lineMention.ReplaceAllString(e.Error(), "")
					*errs = append(*errs, ce)
				}
				if len(leaves) == 1 && innermostLine(err) == 0 {
					c.failed[key] = true
					continue
				}
			}
			c.sources[key] = fmt.Sprintf("%s line %d", name, vn.Line)
		default:
			ce := fileError(name, kn.Line, "", "unknown key "+key)
			ce.key, ce.msg = key, "unknown key"
			*errs = append(*errs, ce)
		}
	}
}

// lineMention is a line number in an error of a key's value, which
// keystep config check says before the key.
var lineMention = regexp.MustCompile(`line \d+: `)

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// scalar returns a scalar's text, refusing mappings, lists and null.
func scalar(n *yaml.Node) (string, error) {
	if n.Kind != yaml.ScalarNode {
		return "", errors.New("must be a single value, not a mapping or a list")
	}
	if n.Tag == "!!null" {
		return "", errors.New("has no value (leave the key out to use the default)")
	}
	return n.Value, nil
}

func stringValue(p *string) setter {
	return func(n *yaml.Node) error {
		v, err := scalar(n)
		if err != nil {
			return err
		}
		*p = v
		return nil
	}
}

func boolValue(p *bool) setter {
	return func(n *yaml.Node) error {
		v, err := scalar(n)
		if err != nil {
			return err
		}
		b, err := strconv.ParseBool(v)
		if err != nil || n.Tag != "!!bool" {
			return fmt.Errorf("must be true or false, not %q", v)
		}
		*p = b
		return nil
	}
}

func intValue(p *int) setter {
	return func(n *yaml.Node) error {
		v, err := scalar(n)
		if err != nil {
			return err
		}
		i, err := strconv.Atoi(v)
		if err != nil || n.Tag != "!!int" {
			return fmt.Errorf("must be a whole number, not %q", v)
		}
		*p = i
		return nil
	}
}

func durationValue(p *time.Duration) setter {
	return func(n *yaml.Node) error {
		v, err := scalar(n)
		if err != nil {
			return err
		}
		d, err := parseDuration(v)
		if err != nil {
			return err
		}
		*p = d
		return nil
	}
}

// parseDuration reads a Go duration ("90s", "1h30m") or a whole number of
// days ("7d").
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("must be a duration such as 90s, 10m, 36h or 7d, not %q", s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, bad
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad
	}
	return d, nil
}

// formatDuration writes a duration the way parseDuration reads it, in days
// when it is a whole number of them.
func formatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// validate checks every value, naming the key of each that is wrong. The
// sign-in and retention limits are flows.Config's own.
func (c *Config) validate() error {
	var errs []error
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, c.keyError("listen", "must be host:port, like 127.0.0.1:8080, not %q", c.Listen))
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 || strings.ContainsAny(host, "/ ") {
		errs = append(errs, c.keyError("listen", "must be host:port with a port from 0 to 65535, not %q", c.Listen))
	}
	if c.PublicURL != "" {
		if err := flows.CheckServerURL(c.PublicURL); err != nil {
			errs = append(errs, c.keyError("public_url", "%s", flowsReason(err)))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, c.keyError("data_dir", "must not be empty"))
	}
	switch c.Store.Driver {
	case "sqlite":
	case "postgres":
		if c.Store.DSN == "" {
			errs = append(errs, c.keyError("store.dsn", "is required with the postgres driver, like postgres://keystep@db.example.com/keystep"))
		}
	default:
		errs = append(errs, c.keyError("store.driver", "must be sqlite or postgres, not %q", c.Store.Driver))
	}
	flowsChecks := []struct {
		key string
		set func(*flows.Config)
	}{
		{"signin.number_digits", func(f *flows.Config) { f.NumberDigits = c.SignIn.NumberDigits }},
		{"signin.ttl", func(f *flows.Config) { f.SignInTTL = c.SignIn.TTL }},
		{"invitation_ttl", func(f *flows.Config) { f.InvitationTTL = c.InvitationTTL }},
		{"tombstone_retention", func(f *flows.Config) { f.TombstoneRetention = c.TombstoneRetention }},
	}
	for _, fc := range flowsChecks {
		if err := checkFlowsConfig(fc.set); err != nil {
			errs = append(errs, c.keyError(fc.key, "%s", err))
		}
	}
	errs = append(errs, c.validateCodes()...)
	errs = append(errs, c.validateAdmins()...)
	errs = append(errs, c.validateOIDC()...)
	errs = append(errs, c.validateSAML()...)
	errs = append(errs, c.validateDirectory()...)
	errs = append(errs, c.validateObservability()...)
	return errors.Join(errs...)
}

// checkFlowsConfig asks flows whether one policy value is acceptable, all
// others being defaults, and returns flows' reason if not.
func checkFlowsConfig(set func(*flows.Config)) error {
	f := flows.Config{Origin: "http://keystep.invalid", CodeConfig: flows.CodeConfig{CodeKey: make([]byte, flows.MinCodeKeyLen)}}
	set(&f)
	if _, err := flows.New(nil, f); err != nil {
		return errors.New(flowsReason(err))
	}
	return nil
}

// flowsReason is the reason in a flows validation error, without the
// prefixes that say it is one.
func flowsReason(err error) string {
	msg := strings.TrimPrefix(err.Error(), "flows config: ")
	return strings.TrimPrefix(msg, flows.ErrInvalid.Error()+": ")
}

// flowsConfig is the policy part of c for flows.New.
func (c *Config) flowsConfig(origin string) flows.Config {
	return flows.Config{
		Origin:                 origin,
		NumberDigits:           c.SignIn.NumberDigits,
		SignInTTL:              c.SignIn.TTL,
		InvitationTTL:          c.InvitationTTL,
		TombstoneRetention:     c.TombstoneRetention,
		ReplaceDevicesOnEnroll: c.Devices.ReplaceOnEnroll,
		CodeConfig:             c.flowsCodeConfig(),
	}
}

// fileConfig is the file's shape, for writing a configuration back out.
type fileConfig struct {
	Listen    string `yaml:"listen"`
	PublicURL string `yaml:"public_url"`
	DataDir   string `yaml:"data_dir"`
	Store     struct {
		Driver string `yaml:"driver"`
		DSN    string `yaml:"dsn"`
	} `yaml:"store"`
	SignIn struct {
		NumberDigits int    `yaml:"number_digits"`
		TTL          string `yaml:"ttl"`
	} `yaml:"signin"`
	InvitationTTL      string        `yaml:"invitation_ttl"`
	TombstoneRetention string        `yaml:"tombstone_retention"`
	Devices            DevicesConfig `yaml:"devices"`
	fileCodes          `yaml:",inline"`
	Senders            SendersConfig `yaml:",inline"`
	TrustedProxies     []string      `yaml:"trusted_proxies,omitempty"`
	Admins             []AdminConfig `yaml:"admins,omitempty"`
}

// marshalYAML writes c as a configuration file that parseYAML reads back.
func (c *Config) marshalYAML() ([]byte, error) {
	var f fileConfig
	f.Listen, f.PublicURL, f.DataDir = c.Listen, c.PublicURL, c.DataDir
	f.Store.Driver, f.Store.DSN = c.Store.Driver, c.Store.DSN
	f.SignIn.NumberDigits, f.SignIn.TTL = c.SignIn.NumberDigits, formatDuration(c.SignIn.TTL)
	f.InvitationTTL, f.TombstoneRetention = formatDuration(c.InvitationTTL), formatDuration(c.TombstoneRetention)
	f.fileCodes = c.marshalCodes()
	f.Senders = c.Senders
	f.Devices = c.Devices
	for _, p := range c.TrustedProxies {
		f.TrustedProxies = append(f.TrustedProxies, p.String())
	}
	f.Admins = c.Admins
	return yaml.Marshal(f)
}
