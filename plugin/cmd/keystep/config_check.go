package main

import (
	"cmp"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

func newConfigCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "config",
		Short: "Check a configuration file",
	})
	cmd.AddCommand(newConfigCheckCmd(os.LookupEnv))
	return cmd
}

func newConfigCheckCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	var insecureDev bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Report every error in a configuration file, each with its line",
		Long: `Read a configuration file as keystep serve --config FILE would, with the
KEYSTEP_* environment over it, and report every error, one per line:

  FILE:LINE: key: message

Then read the files it names (code key, admin tokens, secrets, keys, CA
certificates, SAML metadata and certificates, directory passwords and
certificates) and report what is wrong with them too, marked "(file check)" (a directory password in the environment: "(environment check)"):
run it as the user keystep runs as. An error that is not from the file (an
environment variable) says where its value came from instead of a line.

Exit 0 with "ok" and a summary when there is nothing to report, 1 otherwise.
Nothing is contacted: not the store, not the directory, not a metadata URL.`,
		Args: nArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			w := cmd.OutOrStdout()
			problems, cfg := checkConfigFile(path, lookupEnv, insecureDev)
			for _, p := range problems {
				fmt.Fprintln(w, p)
			}
			if len(problems) > 0 {
				n := "1 error"
				if len(problems) > 1 {
					n = strconv.Itoa(len(problems)) + " errors"
				}
				return fmt.Errorf("%s: %s", path, n)
			}
			fmt.Fprintf(w, "%s: ok\n", path)
			for _, l := range cfg.summary() {
				fmt.Fprintf(w, "  %s\n", l)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&insecureDev, "insecure-dev", false, "check as keystep serve --insecure-dev would run")
	return cmd
}

// checkConfigFile reads and checks the configuration file at path and
// returns every problem as a line "FILE:LINE: key: message", in the
// order of the file, with the configuration as far as it could be read.
func checkConfigFile(path string, lookupEnv func(string) (string, bool), insecureDev bool) ([]string, Config) {
	data, err := readConfigFile(path)
	if err != nil {
		return []string{fmt.Sprintf("%s: %v", path, strings.TrimPrefix(err.Error(), "config: "))}, Config{}
	}
	cfg, err := readConfig(data, path, lookupEnv, nil)
	cfg.InsecureDev = insecureDev
	errs := splitErrors(err)
	if cfg.fromFile {
		errs = append(errs, cfg.checkServe()...)
		errs = append(errs, cfg.checkFiles(lookupEnv)...)
	}
	// In the order of the file; what is not from it (the environment) last.
	located := make([]struct {
		line int
		text string
	}, len(errs))
	for i, e := range errs {
		located[i].line, located[i].text = formatConfigError(path, e)
	}
	slices.SortStableFunc(located, func(a, b struct {
		line int
		text string
	}) int {
		if (a.line == 0) != (b.line == 0) {
			return cmp.Compare(b.line, a.line) // 0 last
		}
		return cmp.Compare(a.line, b.line)
	})
	out := make([]string, len(located))
	for i, l := range located {
		out[i] = l.text
	}
	return out, cfg
}

// yamlLine finds the line in a YAML library error ("yaml: line 3: …").
var yamlLine = regexp.MustCompile(`\bline (\d+)\b`)

// formatConfigError writes one error as "FILE:LINE: key: message" (or
// "FILE: key (source): message" for a value not from the file) and
// returns its line.
func formatConfigError(path string, err error) (int, string) {
	var ce *configError
	if !errors.As(err, &ce) {
		msg := strings.TrimPrefix(err.Error(), "config "+path+": ")
		msg = strings.TrimPrefix(msg, "config: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			return line, fmt.Sprintf("%s:%d: %s", path, line, msg)
		}
		return 0, fmt.Sprintf("%s: %s", path, msg)
	}
	msg := ce.msg
	if ce.checked != "" {
		msg += " (" + ce.checked + ")"
	}
	where := path
	if ce.line > 0 {
		where = fmt.Sprintf("%s:%d", path, ce.line)
	}
	switch {
	case ce.key == "":
		return ce.line, fmt.Sprintf("%s: %s", where, msg)
	case ce.line == 0 && ce.src != "":
		return 0, fmt.Sprintf("%s: %s (%s): %s", where, ce.key, ce.src, msg)
	default:
		return ce.line, fmt.Sprintf("%s: %s: %s", where, ce.key, msg)
	}
}

// checkServe is what keystep serve refuses when it starts, beyond
// validate: an http:// public URL (or, without one, listen address)
// off loopback without --insecure-dev.
func (c *Config) checkServe() []error {
	if c.InsecureDev {
		return nil
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err == nil && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
			return []error{c.keyError("public_url", "%s is plain http on a host other than this machine: keystep serve refuses it (use https, or --insecure-dev for development)", c.PublicURL)}
		}
		return nil
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil || host == "" || isLoopbackHost(host) {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil // serve uses http://localhost:<port> (and warns)
	}
	return []error{c.keyError("public_url", "is required when listen (%s) is not a loopback or wildcard address: the default, http://%s, is plain http off this machine", c.Listen, c.Listen)}
}

// checkFiles reads every file the configuration names, as keystep serve
// would, and returns an error for each that it could not use. (The
// tracing headers file, keys and secrets; not the store.)
func (c *Config) checkFiles(lookupEnv func(string) (string, bool)) []error {
	var errs []error
	bad := func(key string, line int, err error) {
		ce := c.keyErrorAt(key, line, "%v", err).(*configError)
		ce.checked = "file check"
		if strings.Contains(ce.msg, "bind_password_env: ") {
			ce.checked = "environment check"
		}
		errs = append(errs, ce)
	}
	// The data directory, and what serve would read in it.
	if fi, err := os.Stat(c.DataDir); err == nil {
		if !fi.IsDir() {
			bad("data_dir", 0, fmt.Errorf("%s is not a directory", c.DataDir))
		} else {
			token := filepath.Join(c.DataDir, adminTokenFile)
			if _, err := os.Stat(token); err == nil {
				if _, err := readTokenFile(token); err != nil {
					bad("data_dir", 0, err)
				}
			}
			if key := filepath.Join(c.DataDir, codeKeyFile); c.Codes.KeyFile == "" {
				if _, err := os.Stat(key); err == nil {
					if _, err := readCodeKey(key); err != nil {
						bad("data_dir", 0, err)
					}
				}
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		bad("data_dir", 0, err)
	}
	if c.Codes.KeyFile != "" {
		if _, err := readCodeKey(c.Codes.KeyFile); err != nil {
			bad("codes.key_file", 0, err)
		}
	}
	if c.Tracing.HeadersFile != "" {
		if _, err := readHeadersFile(c.Tracing.HeadersFile); err != nil {
			bad("tracing.headers_file", 0, errors.New(strings.TrimPrefix(strings.TrimPrefix(err.Error(), "tracing.headers_file: "), "tracing.headers_file ")))
		}
	}
	if c.Alerts.WebhookSecretFile != "" {
		if _, err := readSecretFile(c.Alerts.WebhookSecretFile); err != nil {
			bad("alerts.webhook_secret_file", 0, err)
		}
	}
	for _, a := range c.Admins {
		if a.TokenFile != "" {
			if _, err := readTokenFile(a.TokenFile); err != nil {
				bad("admins", 0, fmt.Errorf("admin %s: token_file: %w", a.Name, err))
			}
		}
	}
	errs = append(errs, c.checkSenderFiles(bad)...)
	for i, cc := range c.OIDC.Clients {
		if cc.SecretFile != "" {
			if _, err := readClientSecret(cc.SecretFile); err != nil {
				bad("oidc.clients", cc.line, fmt.Errorf("client %d (%s): secret_file: %w", itemNum(i, cc.num), cc.ID, err))
			}
		}
		for _, f := range []struct{ key, path string }{{"jwks_file", cc.JWKSFile}, {"hint_jwks_file", cc.HintJWKSFile}} {
			if f.path == "" {
				continue
			}
			if err := checkJWKSFile(f.path); err != nil {
				bad("oidc.clients", cc.line, fmt.Errorf("client %d (%s): %s: %w", itemNum(i, cc.num), cc.ID, f.key, err))
			}
		}
	}
	for i, sc := range c.SAML.ServiceProviders {
		if sc.MetadataFile != "" {
			if err := checkMetadataFile(sc.MetadataFile); err != nil {
				bad("saml.service_providers", sc.line, fmt.Errorf("service provider %d (%s): metadata_file: %w", itemNum(i, sc.num), sc.ID, err))
			}
		}
		if sc.MetadataSigningCert != "" {
			if _, err := readCertFile(sc.MetadataSigningCert); err != nil {
				bad("saml.service_providers", sc.line, fmt.Errorf("service provider %d (%s): metadata_signing_cert: %w", itemNum(i, sc.num), sc.ID, err))
			}
		}
	}
	for i, s := range c.Directory.Sources {
		if _, err := s.resolve(lookupEnv); err != nil {
			bad("directory.sources", s.line, fmt.Errorf("source %d (%s): %w", itemNum(i, s.num), s.Name, err))
		}
	}
	return errs
}

// checkSenderFiles reads the senders' files, then builds each sender
// whose files are good (which checks the rest of its section).
func (c *Config) checkSenderFiles(bad func(key string, line int, err error)) []error {
	s := c.Senders
	secrets := []struct{ key, path string }{
		{"smtp.password_file", s.SMTP.PasswordFile},
		{"apns.key_file", s.APNs.KeyFile},
		{"fcm.service_account_file", s.FCM.ServiceAccountFile},
	}
	switch s.SMS.Provider {
	case "twilio":
		secrets = append(secrets, struct{ key, path string }{"sms.auth_token_file", s.SMS.AuthTokenFile})
	case "webhook":
		secrets = append(secrets, struct{ key, path string }{"sms.secret_file", s.SMS.SecretFile})
	}
	failed := map[string]bool{}
	for _, f := range secrets {
		if f.path == "" {
			continue
		}
		if _, err := readSecretFile(f.path); err != nil {
			bad(f.key, 0, err)
			failed[strings.Split(f.key, ".")[0]] = true
		}
	}
	if s.SMTP.CAFile != "" {
		if err := checkCAFile(s.SMTP.CAFile); err != nil {
			bad("smtp.ca_file", 0, err)
			failed["smtp"] = true
		}
	}
	var errs []error
	for _, section := range []struct {
		name string
		only SendersConfig
	}{
		{"smtp", SendersConfig{SMTP: s.SMTP}}, {"sms", SendersConfig{SMS: s.SMS}},
		{"apns", SendersConfig{APNs: s.APNs}}, {"fcm", SendersConfig{FCM: s.FCM}},
	} {
		if failed[section.name] || section.only == (SendersConfig{}) {
			continue
		}
		one := Config{Senders: section.only}
		if _, _, err := one.buildSenders(); err != nil {
			msg := strings.TrimPrefix(err.Error(), "config: ")
			key, rest, ok := strings.Cut(msg, ": ")
			if !ok || !strings.HasPrefix(key, section.name) || strings.Contains(key, " ") {
				key, rest = section.name, msg
			}
			errs = append(errs, c.keyErrorAt(key, c.sectionLine(section.name), "%s", rest))
		}
	}
	return errs
}

// sectionLine is the first line of the file that sets a key of section
// (0: none).
func (c *Config) sectionLine(section string) int {
	line := 0
	for k, l := range c.lines {
		if strings.HasPrefix(k, section+".") && l > 0 && (line == 0 || l < line) {
			line = l
		}
	}
	return line
}

// checkCAFile reads a file of PEM CA certificates.
func checkCAFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return fmt.Errorf("%s holds no PEM certificate", path)
	}
	return nil
}

// checkJWKSFile reads a JSON Web Key Set file: a JSON object with keys.
func checkJWKSFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil || len(set.Keys) == 0 {
		return fmt.Errorf("%s is not a JSON Web Key Set with keys", path)
	}
	return nil
}

// checkMetadataFile reads an SP's metadata file: it must be XML (the
// SAML IdP checks the rest when it loads it).
func checkMetadataFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 512)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s is empty", path)
		}
		return err
	}
	if !strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(string(head[:n]), "\ufeff")), "<") {
		return fmt.Errorf("%s is not XML metadata", path)
	}
	return nil
}

// summary is what keystep config check says of a good configuration.
func (c *Config) summary() []string {
	store := c.Store.Driver
	switch {
	case c.Store.Driver == "postgres":
		store += " " + redactDSN(c.Store.DSN)
	case c.Store.DSN != "":
		store += " " + c.Store.DSN
	default:
		store += " " + filepath.Join(c.DataDir, sqliteFile)
	}
	public := c.PublicURL
	if public == "" {
		public = "(default: http://<listen address>)"
	}
	var clients, sps, sources []string
	for _, cc := range c.OIDC.Clients {
		clients = append(clients, cc.ID)
	}
	if c.demoClientOn() {
		clients = append(clients, demoClientID+" (demo)")
	}
	for _, sc := range c.SAML.ServiceProviders {
		sps = append(sps, sc.ID)
	}
	for _, s := range c.Directory.Sources {
		sources = append(sources, s.Name)
	}
	list := func(l []string) string {
		if len(l) == 0 {
			return "none"
		}
		return fmt.Sprintf("%d (%s)", len(l), strings.Join(l, ", "))
	}
	return []string{
		"store: " + store,
		"listen: " + c.Listen,
		"public URL: " + public,
		"data directory: " + c.DataDir,
		"OIDC clients: " + list(clients),
		"SAML service providers: " + list(sps),
		"directory sources: " + list(sources),
	}
}
