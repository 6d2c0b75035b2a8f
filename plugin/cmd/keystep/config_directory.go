package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
)

// DirectoryConfig is the company directory (LDAP / Active Directory) that
// keystep's accounts follow: one or more sources (docs/directory.md).
type DirectoryConfig struct {
	Sources []DirectorySourceConfig
}

// DirectorySourceConfig is one directory source in the file. The bind
// password is never in the file: it is read from BindPasswordFile or the
// environment variable BindPasswordEnv.
type DirectorySourceConfig struct {
	Name             string                    `yaml:"name"`
	URLs             []string                  `yaml:"urls"`
	StartTLS         *bool                     `yaml:"start_tls"` // nil: true for ldap:// URLs unless insecure_no_tls
	InsecureNoTLS    bool                      `yaml:"insecure_no_tls"`
	CAFile           string                    `yaml:"ca_file"`
	ServerName       string                    `yaml:"server_name"`
	ClientCertFile   string                    `yaml:"client_cert_file"`
	ClientKeyFile    string                    `yaml:"client_key_file"`
	BindDN           string                    `yaml:"bind_dn"`
	BindPasswordFile string                    `yaml:"bind_password_file"`
	BindPasswordEnv  string                    `yaml:"bind_password_env"`
	BaseDN           string                    `yaml:"base_dn"`
	UserFilter       string                    `yaml:"user_filter"`
	Group            string                    `yaml:"group"`
	Attributes       DirectoryAttributesConfig `yaml:"attributes"`
	Suspension       DirectorySuspensionConfig `yaml:"suspension"`
	PageSize         int                       `yaml:"page_size"`
	Timeout          time.Duration             `yaml:"timeout"`
	FullSyncInterval time.Duration             `yaml:"full_sync_interval"`
	Incremental      string                    `yaml:"incremental"`
	PollInterval     time.Duration             `yaml:"poll_interval"`
	MaxRemovals      string                    `yaml:"max_removals"` // "10%" or "25"
	Invite           bool                      `yaml:"invite"`
	LiveCheck        DirectoryLiveCheckConfig  `yaml:"live_check"`

	line int // where the source begins in the file, for errors (0: unknown)
	num  int // its place in the file's list, counting those that could not be read (0: unknown)
}

// DirectoryAttributesConfig names the directory attributes that fill an
// account (directory.AttributeMap); empty ones take the directory's
// defaults.
type DirectoryAttributesConfig struct {
	ID          string `yaml:"id"`
	Username    string `yaml:"username"`
	Email       string `yaml:"email"`
	Phone       string `yaml:"phone"`
	DisplayName string `yaml:"display_name"`
}

// DirectorySuspensionConfig is what makes a directory user suspended
// (directory.Suspension).
type DirectorySuspensionConfig struct {
	Preset  string `yaml:"preset"`
	Lockout bool   `yaml:"lockout"`
	Filter  string `yaml:"filter"`
}

// DirectoryLiveCheckConfig is the look-up at each sign-in
// (directory.LiveCheckConfig).
type DirectoryLiveCheckConfig struct {
	Enabled  bool          `yaml:"enabled"`
	Timeout  time.Duration `yaml:"timeout"`
	CacheTTL time.Duration `yaml:"cache_ttl"`
	FailOpen bool          `yaml:"fail_open"`
}

// The nested mappings of a source are read as strictly as the source
// itself: an unknown or repeated key is an error with its line.

// UnmarshalYAML reads the attributes mapping strictly.
func (a *DirectoryAttributesConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain DirectoryAttributesConfig
	return strictDecode(resolve(n), (*plain)(a))
}

// UnmarshalYAML reads the suspension mapping strictly.
func (s *DirectorySuspensionConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain DirectorySuspensionConfig
	return strictDecode(resolve(n), (*plain)(s))
}

// UnmarshalYAML reads the live_check mapping strictly.
func (l *DirectoryLiveCheckConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain DirectoryLiveCheckConfig
	return strictDecode(resolve(n), (*plain)(l))
}

func (c *Config) directorySchema() schema {
	return schema{
		"directory": schema{
			"sources": directorySourcesValue(&c.Directory.Sources),
		},
	}
}

// secretKeys are keys that would put a secret into the file: refused, with
// where the secret goes instead.
var secretKeys = map[string]string{
	"bind_password": "the bind password is never read from the configuration file: put it in a file that only keystep can read (bind_password_file) or in an environment variable (bind_password_env)",
	"password":      "the bind password is never read from the configuration file: use bind_password_file or bind_password_env",
}

// directorySourcesValue reads the sources list strictly: every key of an
// item must be a field of DirectorySourceConfig, and a password key is
// refused.
func directorySourcesValue(p *[]DirectorySourceConfig) setter {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return errors.New("must be a list of directory sources")
		}
		out := []DirectorySourceConfig{}
		var errs []error
		for i, item := range n.Content {
			item = resolve(item)
			prefix := fmt.Sprintf("source %d: ", i+1)
			if item.Kind == yaml.MappingNode {
				secret := false
				for j := 0; j+1 < len(item.Content); j += 2 {
					k := resolve(item.Content[j])
					if why, ok := secretKeys[k.Value]; ok {
						errs = append(errs, fmt.Errorf("%s%w", prefix, lineError{k.Line, fmt.Errorf("%s: %s", k.Value, why)}))
						secret = true
					}
				}
				if secret {
					continue
				}
			}
			var sc DirectorySourceConfig
			if err := strictDecode(item, &sc); err != nil {
				errs = append(errs, prefixErrors(prefix, err)...)
				continue
			}
			sc.line, sc.num = item.Line, i+1
			out = append(out, sc)
		}
		*p = out
		return errors.Join(errs...)
	}
}

// sourceName is what a source's name may be: it keys the source's
// accounts in the store, so it must never change once in use.
var sourceName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Incremental sync modes of the file.
var incrementalModes = []string{"auto", directory.ModeSyncrepl, directory.ModeDirSync, directory.ModeNone}

// validateDirectory checks the sources without reading their files or
// the environment: names, URLs, TLS and bind choices, and what the
// directory package itself checks (with placeholder secrets).
func (c *Config) validateDirectory() []error {
	const key = "directory.sources"
	var errs []error
	seen := map[string]bool{}
	for i, s := range c.Directory.Sources {
		var about []string
		if s.Name != "" {
			about = append(about, s.Name)
		}
		if s.line > 0 {
			about = append(about, fmt.Sprintf("line %d", s.line))
		}
		label := fmt.Sprintf("source %d", itemNum(i, s.num))
		if len(about) > 0 {
			label += " (" + strings.Join(about, ", ") + ")"
		}
		bad := func(format string, args ...any) {
			errs = append(errs, c.keyErrorAt(key, s.line, "%s: %s", label, fmt.Sprintf(format, args...)))
		}
		switch {
		case !sourceName.MatchString(s.Name):
			bad("name must be 1 to 64 letters, digits, '-' or '_', not %q", s.Name)
		case seen[strings.ToLower(s.Name)]:
			bad("the name %q is given to two sources", s.Name)
		}
		seen[strings.ToLower(s.Name)] = true
		if s.Invite && c.Senders.SMTP.Host == "" {
			bad("invite needs an email sender: configure smtp (host, from, …)")
		}
		own := s.check()
		for _, err := range own {
			bad("%v", err)
		}
		if len(own) > 0 {
			continue // the directory's own check would only repeat them
		}
		if err := checkDirectorySource(s); err != nil {
			bad("%v", err)
		}
	}
	return errs
}

// check is what can be said of one source from its own keys.
func (s DirectorySourceConfig) check() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(s.URLs) == 0 {
		bad("urls: give at least one, like [ldaps://dc1.example.com:636]")
	}
	plain := false
	for _, u := range s.URLs {
		scheme, host, err := parseLDAPURL(u)
		if err != nil {
			bad("urls: %v", err)
			continue
		}
		if scheme == "ldap" {
			plain = true
			if s.InsecureNoTLS && !isLoopbackHost(host) {
				bad("urls: %s: insecure_no_tls is for a directory on this machine (loopback) only; use ldaps:// or StartTLS", u)
			}
		}
	}
	if s.InsecureNoTLS {
		if s.StartTLS != nil && *s.StartTLS {
			bad("start_tls and insecure_no_tls contradict each other: choose one")
		}
		if !plain && len(s.URLs) > 0 {
			bad("insecure_no_tls applies to ldap:// URLs only")
		}
	} else if plain && s.StartTLS != nil && !*s.StartTLS {
		bad("start_tls: false with an ldap:// URL would send the bind password in clear; use ldaps://, leave start_tls on, or (loopback only) set insecure_no_tls")
	}
	if (s.ClientCertFile == "") != (s.ClientKeyFile == "") {
		bad("client_cert_file and client_key_file go together")
	}
	switch {
	case s.BindPasswordFile != "" && s.BindPasswordEnv != "":
		bad("give bind_password_file or bind_password_env, not both")
	case s.ClientCertFile != "" && (s.BindDN != "" || s.BindPasswordFile != "" || s.BindPasswordEnv != ""):
		bad("a client certificate binds with SASL EXTERNAL: leave bind_dn and bind_password_file/env out")
	case s.ClientCertFile == "" && s.BindDN == "":
		bad("bind_dn is required (or a client certificate: client_cert_file and client_key_file)")
	case s.ClientCertFile == "" && s.BindPasswordFile == "" && s.BindPasswordEnv == "":
		bad("bind_dn needs its password: bind_password_file or bind_password_env")
	}
	if s.BindPasswordEnv != "" && !envName.MatchString(s.BindPasswordEnv) {
		bad("bind_password_env must name an environment variable, like KEYSTEP_LDAP_PASSWORD, not %q", s.BindPasswordEnv)
	}
	if s.BaseDN == "" {
		bad("base_dn is required, like ou=people,dc=example,dc=com")
	}
	if s.Incremental != "" && !slices.Contains(incrementalModes, s.Incremental) {
		bad("incremental must be one of %s, not %q", strings.Join(incrementalModes, ", "), s.Incremental)
	}
	if s.PageSize < 0 {
		bad("page_size must not be negative")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"timeout", s.Timeout}, {"full_sync_interval", s.FullSyncInterval}, {"poll_interval", s.PollInterval},
		{"live_check.timeout", s.LiveCheck.Timeout}, {"live_check.cache_ttl", s.LiveCheck.CacheTTL},
	} {
		if d.v < 0 {
			bad("%s must not be negative", d.key)
		}
	}
	if _, _, err := parseMaxRemovals(s.MaxRemovals); err != nil {
		bad("max_removals: %v", err)
	}
	return errs
}

// envName is what an environment variable's name may be.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// parseLDAPURL checks an ldap:// or ldaps:// URL of a server: a host, an
// optional port, nothing else.
func parseLDAPURL(s string) (scheme, host string, err error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL", s)
	}
	scheme = strings.ToLower(u.Scheme)
	if scheme != "ldap" && scheme != "ldaps" {
		return "", "", fmt.Errorf("%q must start with ldaps:// or ldap://", s)
	}
	if u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", "", fmt.Errorf("%q must be scheme://host[:port] only (the base DN and filter have their own keys)", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", "", fmt.Errorf("%q has a bad port", s)
		}
	}
	return scheme, u.Hostname(), nil
}

// isLoopbackHost reports whether host is this machine: localhost or a
// loopback address.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// parseMaxRemovals reads max_removals: a share ("10%", "2.5%") or a count
// ("25"); empty is the directory's default (10 %).
func parseMaxRemovals(s string) (share float64, count int, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, 0, nil
	}
	if pct, ok := strings.CutSuffix(s, "%"); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || !(f > 0 && f <= 100) { // NaN too
			return 0, 0, fmt.Errorf("must be a share above 0%% and at most 100%%, like 10%%, or a count, like 25; not %q", s)
		}
		return f / 100, 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, 0, fmt.Errorf("must be a share, like 10%%, or a count of at least 1, like 25; not %q", s)
	}
	return 0, n, nil
}

// toSource turns a file entry into the directory's configuration, with
// the secrets and certificates given (no file is read here).
func (s DirectorySourceConfig) toSource(password string, roots *x509.CertPool, cert *tls.Certificate) directory.SourceConfig {
	share, count, _ := parseMaxRemovals(s.MaxRemovals)
	out := directory.SourceConfig{
		Name: s.Name, URLs: append([]string(nil), s.URLs...), InsecureNoTLS: s.InsecureNoTLS,
		RootCAs: roots, ServerName: s.ServerName, ClientCert: cert,
		BindDN: s.BindDN, BindPassword: password, BaseDN: s.BaseDN, UserFilter: s.UserFilter, Group: s.Group,
		Attributes: directory.AttributeMap{
			ID: s.Attributes.ID, Username: s.Attributes.Username, Email: s.Attributes.Email,
			Phone: s.Attributes.Phone, DisplayName: s.Attributes.DisplayName,
		},
		Suspension:       directory.Suspension{Preset: s.Suspension.Preset, Lockout: s.Suspension.Lockout, Filter: s.Suspension.Filter},
		PageSize:         s.PageSize,
		Timeout:          s.Timeout,
		FullSyncInterval: s.FullSyncInterval,
		Incremental:      s.Incremental,
		PollInterval:     s.PollInterval,
		MaxRemovals:      share,
		MaxRemovalsCount: count,
		Invite:           s.Invite,
		LiveCheck: directory.LiveCheckConfig{
			Enabled: s.LiveCheck.Enabled, Timeout: s.LiveCheck.Timeout, CacheTTL: s.LiveCheck.CacheTTL, FailOpen: s.LiveCheck.FailOpen,
		},
	}
	// StartTLS is on for ldap:// URLs unless the file turns it off (only
	// with insecure_no_tls, which validate checks).
	out.StartTLS = !s.InsecureNoTLS
	if s.StartTLS != nil {
		out.StartTLS = *s.StartTLS
	}
	return out
}

// checkDirectorySource asks the directory package whether a source is
// acceptable, with placeholder secrets, and returns its reason if not.
func checkDirectorySource(s DirectorySourceConfig) error {
	password := ""
	var cert *tls.Certificate
	if s.ClientCertFile != "" {
		cert = &tls.Certificate{}
	} else {
		password = "placeholder"
	}
	svc, err := noStoreService()
	if err != nil {
		return err
	}
	if _, err := directory.NewSource(s.toSource(password, nil, cert), svc); err != nil {
		msg := strings.TrimPrefix(err.Error(), fmt.Sprintf("directory source %q: ", s.Name))
		lines := strings.Split(msg, "\n")
		for i, l := range lines {
			lines[i] = fileKeyOf(l)
		}
		return errors.New(strings.Join(lines, "; "))
	}
	return nil
}

// sourceKeys are the file's keys of directory.SourceConfig's fields, which
// the directory's errors name.
var sourceKeys = []struct{ field, key string }{
	{"Attributes.DisplayName", "attributes.display_name"},
	{"Attributes.Username", "attributes.username"},
	{"Attributes.Email", "attributes.email"},
	{"Attributes.Phone", "attributes.phone"},
	{"Attributes.ID", "attributes.id"},
	{"LiveCheck.Timeout", "live_check.timeout"},
	{"LiveCheck.CacheTTL", "live_check.cache_ttl"},
	{"MaxRemovalsCount", "max_removals"},
	{"MaxRemovals", "max_removals"},
	{"FullSyncInterval", "full_sync_interval"},
	{"PollInterval", "poll_interval"},
	{"InsecureNoTLS", "insecure_no_tls"},
	{"ClientCert", "client_cert_file"},
	{"BindPassword", "bind_password_file"},
	{"BindDN", "bind_dn"},
	{"BaseDN", "base_dn"},
	{"UserFilter", "user_filter"},
	{"Group", "group"},
	{"Suspension", "suspension"},
	{"PageSize", "page_size"},
	{"Timeout", "timeout"},
	{"Incremental", "incremental"},
	{"URLs", "urls"},
	{"Name", "name"},
}

// fileKeyOf rewrites the field an error of the directory names ("BaseDN:
// …", "URLs[1]: …") as the file's key.
func fileKeyOf(msg string) string {
	for _, k := range sourceKeys {
		rest, ok := strings.CutPrefix(msg, k.field)
		if !ok {
			continue
		}
		if strings.HasPrefix(rest, "[") {
			if i := strings.Index(rest, "]"); i >= 0 {
				rest = rest[i+1:]
			}
		}
		if strings.HasPrefix(rest, ":") {
			return k.key + rest
		}
	}
	return msg
}

// directorySources reads each source's secrets (the bind password from its
// file or from the environment as lookupEnv sees it, the client key, the
// CA file) and returns the directory's configurations. Errors name the
// source and the key; they never hold a secret.
func (c *Config) directorySources(lookupEnv func(string) (string, bool)) ([]directory.SourceConfig, error) {
	out := make([]directory.SourceConfig, 0, len(c.Directory.Sources))
	for i, s := range c.Directory.Sources {
		sc, err := s.resolve(lookupEnv)
		if err != nil {
			return nil, fmt.Errorf("config: directory.sources: source %d (%s): %w", i+1, s.Name, err)
		}
		out = append(out, sc)
	}
	return out, nil
}

// resolve reads what the source's configuration names (its password, CA
// and client certificate) and returns it as the directory package takes
// it. The error names the key at fault.
func (s DirectorySourceConfig) resolve(lookupEnv func(string) (string, bool)) (directory.SourceConfig, error) {
	fail := func(key string, err error) (directory.SourceConfig, error) {
		return directory.SourceConfig{}, fmt.Errorf("%s: %w", key, err)
	}
	var password string
	switch {
	case s.BindPasswordFile != "":
		pw, err := readPasswordFile(s.BindPasswordFile)
		if err != nil {
			return fail("bind_password_file", err)
		}
		password = pw
	case s.BindPasswordEnv != "":
		pw, ok := lookupEnv(s.BindPasswordEnv)
		if !ok || pw == "" {
			return fail("bind_password_env", fmt.Errorf("the environment variable %s is not set or empty", s.BindPasswordEnv))
		}
		password = pw
	}
	var roots *x509.CertPool
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return fail("ca_file", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fail("ca_file", fmt.Errorf("%s holds no PEM certificate", s.CAFile))
		}
	}
	var cert *tls.Certificate
	if s.ClientCertFile != "" {
		certPEM, err := os.ReadFile(s.ClientCertFile)
		if err != nil {
			return fail("client_cert_file", err)
		}
		keyPEM, err := readPrivateFile(s.ClientKeyFile)
		if err != nil {
			return fail("client_key_file", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return fail("client_cert_file", fmt.Errorf("%s and %s are not a certificate and its key: %w", s.ClientCertFile, s.ClientKeyFile, err))
		}
		cert = &pair
	}
	return s.toSource(password, roots, cert), nil
}

// readPrivateFile reads a file that only its owner may read (a key, a
// password).
func readPrivateFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is open to other users (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	return os.ReadFile(path)
}

// readPasswordFile reads a bind password: the whole file, less one
// trailing newline (a password may begin or end with spaces).
func readPasswordFile(path string) (string, error) {
	b, err := readPrivateFile(path)
	if err != nil {
		return "", err
	}
	pw := string(b)
	if p, ok := strings.CutSuffix(pw, "\n"); ok {
		pw = strings.TrimSuffix(p, "\r")
	}
	if pw == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	if strings.ContainsAny(pw, "\n\x00") {
		return "", fmt.Errorf("%s holds more than one line; it must hold the password alone", path)
	}
	return pw, nil
}

// noStoreService is a flows service without a store: what a Source needs
// to be built when only the directory is read (Source.Test, the
// configuration's check). Anything that would use the store panics, so
// nothing can be written by mistake.
func noStoreService() (*flows.Service, error) {
	key := make([]byte, flows.MinCodeKeyLen)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return flows.New(nil, flows.Config{Origin: "http://keystep.invalid", CodeConfig: flows.CodeConfig{CodeKey: key}})
}
