package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Defaults of SourceConfig.
const (
	defaultPageSize         = 500
	maxPageSize             = 10000
	defaultTimeout          = 30 * time.Second
	defaultFullSyncInterval = time.Hour
	defaultPollInterval     = 30 * time.Second
	defaultMaxRemovals      = 0.10
	defaultLiveCheckTimeout = 2 * time.Second
	defaultLiveCheckTTL     = 30 * time.Second
	maxSourceName           = 64
)

// Default user filters, by suspension preset.
const (
	defaultUserFilter   = "(objectClass=inetOrgPerson)"
	defaultADUserFilter = "(&(objectCategory=person)(objectClass=user))"
)

// Incremental sync kinds.
const (
	incrementalAuto     = "auto"
	incrementalSyncrepl = "syncrepl"
	incrementalDirSync  = "dirsync"
	incrementalNone     = "none"
)

// ruleInChain is Active Directory's LDAP_MATCHING_RULE_IN_CHAIN, which
// follows nested group memberships.
const ruleInChain = "1.2.840.113556.1.4.1941"

// withDefaults returns cfg with the defaults of its empty fields filled in.
// ldap:// URLs use StartTLS unless InsecureNoTLS.
func (cfg SourceConfig) withDefaults() SourceConfig {
	if !cfg.InsecureNoTLS {
		cfg.StartTLS = true
	}
	if cfg.Suspension.Preset == "" {
		cfg.Suspension.Preset = PresetNone
	}
	if cfg.UserFilter == "" {
		cfg.UserFilter = defaultUserFilter
		if cfg.Suspension.Preset == PresetActiveDir {
			cfg.UserFilter = defaultADUserFilter
		}
	}
	cfg.Attributes = cfg.Attributes.withDefaults(cfg.Suspension.Preset)
	if cfg.PageSize == 0 {
		cfg.PageSize = defaultPageSize
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.FullSyncInterval == 0 {
		cfg.FullSyncInterval = defaultFullSyncInterval
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = defaultPollInterval
	}
	if cfg.Incremental == "" {
		cfg.Incremental = incrementalAuto
	}
	if cfg.MaxRemovals == 0 {
		cfg.MaxRemovals = defaultMaxRemovals
	}
	if cfg.LiveCheck.Timeout == 0 {
		cfg.LiveCheck.Timeout = defaultLiveCheckTimeout
	}
	if cfg.LiveCheck.CacheTTL == 0 {
		cfg.LiveCheck.CacheTTL = defaultLiveCheckTTL
	}
	return cfg
}

// validate checks a configuration whose defaults are filled in
// (withDefaults); the error names every field that is wrong.
func (cfg SourceConfig) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if !validSourceName(cfg.Name) {
		bad("Name", "%q must be 1 to %d letters, digits, '-' or '_'", cfg.Name, maxSourceName)
	}
	if len(cfg.URLs) == 0 {
		bad("URLs", "at least one ldaps:// or ldap:// URL is needed")
	}
	for i, raw := range cfg.URLs {
		u, err := parseSourceURL(raw)
		if err != nil {
			bad(fmt.Sprintf("URLs[%d]", i), "%v", err)
			continue
		}
		if u.Scheme == "ldap" && !cfg.StartTLS {
			if !cfg.InsecureNoTLS {
				bad(fmt.Sprintf("URLs[%d]", i), "%s needs StartTLS", u.Redacted())
			} else if !isLoopback(u.Hostname()) {
				bad("InsecureNoTLS", "refused for %s: plain LDAP is allowed only to a loopback address", u.Redacted())
			}
		}
	}
	if cfg.ClientCert != nil {
		if cfg.BindPassword != "" {
			bad("BindPassword", "set either ClientCert (SASL EXTERNAL) or a bind password, not both")
		}
		if !cfg.StartTLS {
			for _, raw := range cfg.URLs {
				if u, err := parseSourceURL(raw); err == nil && u.Scheme == "ldap" {
					bad("ClientCert", "needs TLS: %s uses neither ldaps:// nor StartTLS", u.Redacted())
				}
			}
		}
	} else {
		if cfg.BindDN == "" {
			bad("BindDN", "is required (or a ClientCert)")
		} else if _, err := ldap.ParseDN(cfg.BindDN); err != nil && !isUPN(cfg.BindDN) {
			bad("BindDN", "%q is neither a DN nor a user principal name (user@domain, which Active Directory accepts): %v", cfg.BindDN, err)
		}
		if cfg.BindPassword == "" {
			// go-ldap would send an unauthenticated bind, which servers
			// accept and which then sees nothing.
			bad("BindPassword", "is empty: an unauthenticated bind is refused")
		}
	}
	if cfg.BaseDN == "" {
		bad("BaseDN", "is required")
	} else if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		bad("BaseDN", "%q is not a DN: %v", cfg.BaseDN, err)
	}
	if _, err := ldap.CompileFilter(cfg.UserFilter); err != nil {
		bad("UserFilter", "%q: %v", cfg.UserFilter, err)
	}
	if cfg.Group != "" {
		if _, err := ldap.ParseDN(cfg.Group); err != nil {
			bad("Group", "%q is not a DN: %v", cfg.Group, err)
		}
	}
	if err := cfg.Attributes.validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := newRules(cfg.Suspension); err != nil {
		bad("Suspension", "%v", err)
	}
	if cfg.PageSize < 1 || cfg.PageSize > maxPageSize {
		bad("PageSize", "%d is not within 1 to %d", cfg.PageSize, maxPageSize)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"Timeout", cfg.Timeout}, {"FullSyncInterval", cfg.FullSyncInterval}, {"PollInterval", cfg.PollInterval},
		{"LiveCheck.Timeout", cfg.LiveCheck.Timeout}, {"LiveCheck.CacheTTL", cfg.LiveCheck.CacheTTL},
	} {
		if d.v <= 0 {
			bad(d.field, "%v is not positive", d.v)
		}
	}
	switch cfg.Incremental {
	case incrementalAuto, incrementalSyncrepl, incrementalDirSync, incrementalNone:
	default:
		bad("Incremental", "%q is not one of %s, %s, %s or %s", cfg.Incremental,
			incrementalAuto, incrementalSyncrepl, incrementalDirSync, incrementalNone)
	}
	if math.IsNaN(cfg.MaxRemovals) || cfg.MaxRemovals <= 0 || cfg.MaxRemovals > 1 {
		bad("MaxRemovals", "%v is not within (0, 1]", cfg.MaxRemovals)
	}
	if cfg.MaxRemovalsCount < 0 {
		bad("MaxRemovalsCount", "%d is negative", cfg.MaxRemovalsCount)
	}
	return errors.Join(errs...)
}

// validSourceName reports whether s is 1 to 64 letters, digits, '-', '_'.
func validSourceName(s string) bool {
	if s == "" || len(s) > maxSourceName {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseSourceURL parses ldaps://host[:port] or ldap://host[:port] (a
// trailing / allowed; no DN, attributes, credentials or query).
func parseSourceURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", raw)
	}
	if u.Scheme != "ldap" && u.Scheme != "ldaps" {
		return nil, fmt.Errorf("%s: the scheme must be ldaps or ldap", u.Redacted())
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%s: only ldaps://host[:port] or ldap://host[:port]", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%s: no host", u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%s: bad port %q", u.Redacted(), p)
		}
	}
	return u, nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// isActiveDirectory reports whether the source is Active Directory (its
// preset or its id attribute says so).
func (cfg SourceConfig) isActiveDirectory() bool {
	return cfg.Suspension.Preset == PresetActiveDir || strings.EqualFold(cfg.Attributes.ID, attrObjectGUID)
}

// searchFilter is the filter of the users' search: UserFilter, narrowed to
// the members of Group when set (members of its nested groups too on
// Active Directory, through LDAP_MATCHING_RULE_IN_CHAIN).
func (cfg SourceConfig) searchFilter() string {
	if cfg.Group == "" {
		return cfg.UserFilter
	}
	member := "(memberOf=" + ldap.EscapeFilter(cfg.Group) + ")"
	if cfg.isActiveDirectory() {
		member = "(memberOf:" + ruleInChain + ":=" + ldap.EscapeFilter(cfg.Group) + ")"
	}
	return "(&" + cfg.UserFilter + member + ")"
}

// idFilter is the filter that finds the user whose stable id is
// externalID (as mapper.entry returned it), within the search filter.
func idFilter(cfg SourceConfig, externalID string) (string, error) {
	attr := cfg.Attributes.ID
	var item string
	switch kindOf(attr) {
	case idEntryUUID:
		id, err := canonicalUUID(externalID)
		if err != nil {
			return "", err
		}
		item = "(" + attr + "=" + ldap.EscapeFilter(id) + ")"
	case idObjectGUID:
		b, err := parseGUID(externalID)
		if err != nil {
			return "", fmt.Errorf("objectGUID %q: %w", externalID, err)
		}
		const hexDigits = "0123456789abcdef"
		var sb strings.Builder
		sb.WriteString("(" + attr + "=")
		for _, c := range b {
			sb.Write([]byte{'\\', hexDigits[c>>4], hexDigits[c&0xf]})
		}
		sb.WriteString(")")
		item = sb.String()
	default:
		if !validAttrDesc(attr) {
			return "", fmt.Errorf("%s: %q is not an attribute name", "Attributes.ID", attr)
		}
		if externalID == "" || len(externalID) > maxExternalID || strings.Trim(externalID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return "", fmt.Errorf("%s %q is not an id keystep maps", attr, externalID)
		}
		item = "(" + attr + "=" + ldap.EscapeFilter(externalID) + ")"
	}
	return "(&" + cfg.searchFilter() + item + ")", nil
}

// tlsConfig is the TLS configuration for a server named host.
func (cfg SourceConfig) tlsConfig(host string) *tls.Config {
	tc := &tls.Config{RootCAs: cfg.RootCAs, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	if cfg.ClientCert != nil {
		tc.Certificates = []tls.Certificate{*cfg.ClientCert}
	}
	return tc
}

// dial connects and binds to the first of cfg.URLs that answers, in order,
// and returns the connection and the URL it used. ldaps:// URLs use TLS,
// ldap:// ones StartTLS (unless InsecureNoTLS on loopback); keystep binds
// with SASL EXTERNAL when it has a ClientCert, else with BindDN and
// BindPassword. Each dial is bounded by cfg.Timeout, StartTLS and the bind
// together by twice that; the connection's operations then time out after
// cfg.Timeout. An authentication failure stops the failover: trying the
// password on every server would only count more failures against the
// account. Errors name the URLs and never hold the password.
func dial(ctx context.Context, cfg SourceConfig) (*ldap.Conn, string, error) {
	return failover(ctx, cfg, dialOne)
}

// failover calls one with each of cfg.URLs in order until it succeeds, and
// returns its result and the URL. An authentication failure or the end of
// ctx stops it.
func failover[C any](ctx context.Context, cfg SourceConfig, one func(context.Context, SourceConfig, string) (C, error)) (C, string, error) {
	var zero C
	if len(cfg.URLs) == 0 {
		return zero, "", errors.New("no directory URL configured")
	}
	var errs []error
	for _, raw := range cfg.URLs {
		c, err := one(ctx, cfg, raw)
		if err == nil {
			return c, raw, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil || isAuthError(err) {
			break
		}
	}
	return zero, "", fmt.Errorf("cannot connect to the directory: %w", joinErrors(errs))
}

// joinedErrors is errors.Join on one line, for the logs.
type joinedErrors []error

func joinErrors(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return joinedErrors(errs)
}

func (e joinedErrors) Error() string {
	var b strings.Builder
	for i, err := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e joinedErrors) Unwrap() []error { return e }

// isAuthError reports a bind refused for its credentials.
func isAuthError(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultInappropriateAuthentication,
		ldap.LDAPResultAuthMethodNotSupported, ldap.LDAPResultStrongAuthRequired, ldap.LDAPResultConfidentialityRequired)
}

// dialOne connects and binds to one URL.
func dialOne(ctx context.Context, cfg SourceConfig, raw string) (*ldap.Conn, error) {
	u, err := parseSourceURL(raw)
	if err != nil {
		return nil, err
	}
	where := u.Redacted()
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	tc := cfg.tlsConfig(u.Hostname())

	d := &net.Dialer{Timeout: timeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	type result struct {
		conn *ldap.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ldap.DialURL(raw, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
		done <- result{c, err}
	}()
	var conn *ldap.Conn
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%s: connect: %w", where, r.err)
		}
		conn = r.conn
	case <-ctx.Done():
		go func() { // the dial ends within the timeout: close what it made
			if r := <-done; r.conn != nil {
				r.conn.Close()
			}
		}()
		return nil, fmt.Errorf("%s: connect: %w", where, ctx.Err())
	}
	conn.SetTimeout(timeout)

	// StartTLS's handshake has no deadline of its own: closing the
	// connection when setupCtx ends interrupts it, and the bind.
	setupCtx, cancel := context.WithTimeout(ctx, 2*timeout)
	defer cancel()
	stop := context.AfterFunc(setupCtx, func() { conn.Close() })
	err = setup(conn, cfg, u.Scheme, tc)
	if !stop() { // setupCtx ended: the connection is closing
		conn.Close()
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case err == nil:
			err = fmt.Errorf("StartTLS and bind took over %v", 2*timeout)
		default:
			err = fmt.Errorf("StartTLS and bind took over %v: %w", 2*timeout, err)
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return conn, nil
}

// setup runs StartTLS when needed and binds.
func setup(conn *ldap.Conn, cfg SourceConfig, scheme string, tc *tls.Config) error {
	if scheme == "ldap" && cfg.StartTLS {
		if err := conn.StartTLS(tc); err != nil {
			return fmt.Errorf("StartTLS: %w", err)
		}
	}
	if cfg.ClientCert != nil {
		if err := conn.ExternalBind(); err != nil {
			return fmt.Errorf("SASL EXTERNAL bind: %w", err)
		}
		return nil
	}
	if cfg.BindPassword == "" {
		return errors.New("bind: empty password refused (it would be an unauthenticated bind)")
	}
	if err := conn.Bind(cfg.BindDN, cfg.BindPassword); err != nil {
		return fmt.Errorf("bind as %s: %w", cfg.BindDN, err)
	}
	return nil
}

// isUPN reports whether s looks like a user principal name (user@domain),
// which Active Directory accepts as a simple bind's name.
func isUPN(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && strings.Count(s, "@") == 1 && !strings.ContainsAny(s, "=,\\ \t\r\n")
}
