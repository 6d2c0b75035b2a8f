package directory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/slapdtest"
)

// validConfig is a configuration that validates once defaulted.
func validConfig() SourceConfig {
	return SourceConfig{
		Name:         "corp-ldap",
		URLs:         []string{"ldaps://ldap1.example.test", "ldap://ldap2.example.test:389/"},
		BindDN:       "cn=keystep,dc=example,dc=test",
		BindPassword: "s3cret-Pa55",
		BaseDN:       "ou=people,dc=example,dc=test",
	}
}

func TestWithDefaults(t *testing.T) {
	c := validConfig().withDefaults()
	if !c.StartTLS || c.PageSize != 500 || c.Timeout != 30*time.Second || c.FullSyncInterval != time.Hour ||
		c.PollInterval != 30*time.Second || c.Incremental != "auto" || c.MaxRemovals != 0.10 ||
		c.LiveCheck.Timeout != 2*time.Second || c.LiveCheck.CacheTTL != 30*time.Second ||
		c.Suspension.Preset != PresetNone || c.UserFilter != "(objectClass=inetOrgPerson)" ||
		c.Attributes != (AttributeMap{ID: "entryUUID", Username: "uid", Email: "mail", Phone: "mobile", DisplayName: "displayName"}) {
		t.Errorf("withDefaults = %+v", c)
	}
	ad := validConfig()
	ad.Suspension.Preset = PresetActiveDir
	ad = ad.withDefaults()
	if ad.UserFilter != "(&(objectCategory=person)(objectClass=user))" || ad.Attributes.ID != "objectGUID" || ad.Attributes.Username != "sAMAccountName" {
		t.Errorf("AD defaults = %+v", ad)
	}
	set := SourceConfig{InsecureNoTLS: true, PageSize: 7, Timeout: time.Second, FullSyncInterval: time.Minute, PollInterval: time.Second,
		Incremental: "none", MaxRemovals: 0.5, UserFilter: "(uid=*)", LiveCheck: LiveCheckConfig{Timeout: time.Second, CacheTTL: time.Minute}}
	got := set.withDefaults()
	if got.StartTLS || got.PageSize != 7 || got.Timeout != time.Second || got.FullSyncInterval != time.Minute || got.PollInterval != time.Second ||
		got.Incremental != "none" || got.MaxRemovals != 0.5 || got.UserFilter != "(uid=*)" || got.LiveCheck.Timeout != time.Second || got.LiveCheck.CacheTTL != time.Minute {
		t.Errorf("withDefaults changed set fields: %+v", got)
	}
	if err := validConfig().withDefaults().validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}

func TestValidate(t *testing.T) {
	cert := &tls.Certificate{}
	tests := []struct {
		name   string
		change func(*SourceConfig)
		want   string // "" = valid
	}{
		{"empty name", func(c *SourceConfig) { c.Name = "" }, "Name:"},
		{"bad name", func(c *SourceConfig) { c.Name = "corp ldap" }, "Name:"},
		{"long name", func(c *SourceConfig) { c.Name = strings.Repeat("a", 65) }, "Name:"},
		{"no URLs", func(c *SourceConfig) { c.URLs = nil }, "URLs:"},
		{"http URL", func(c *SourceConfig) { c.URLs = []string{"http://ldap.example.test"} }, "URLs[0]"},
		{"URL with DN", func(c *SourceConfig) { c.URLs = []string{"ldaps://h/dc=x"} }, "URLs[0]"},
		{"URL with query", func(c *SourceConfig) { c.URLs = []string{"ldaps://h/?cn"} }, "URLs[0]"},
		{"URL with user", func(c *SourceConfig) { c.URLs = []string{"ldaps://u:pw@h"} }, "URLs[0]"},
		{"URL without host", func(c *SourceConfig) { c.URLs = []string{"ldaps://"} }, "URLs[0]"},
		{"URL bad port", func(c *SourceConfig) { c.URLs = []string{"ldaps://h", "ldap://h:99999"} }, "URLs[1]"},
		{"URL garbage", func(c *SourceConfig) { c.URLs = []string{"ldaps://h", ":"} }, "URLs[1]"},
		{"insecure remote", func(c *SourceConfig) { c.InsecureNoTLS = true }, "InsecureNoTLS"},
		{"insecure loopback", func(c *SourceConfig) {
			c.InsecureNoTLS = true
			c.URLs = []string{"ldap://127.0.0.1:389", "ldap://localhost", "ldap://[::1]:1389", "ldaps://ldap.example.test"}
		}, ""},
		{"insecure loopback with StartTLS", func(c *SourceConfig) { c.InsecureNoTLS, c.StartTLS = true, true }, ""},
		{"no bind DN", func(c *SourceConfig) { c.BindDN = "" }, "BindDN:"},
		{"bad bind DN", func(c *SourceConfig) { c.BindDN = "keystep" }, "BindDN:"},
		{"bind UPN", func(c *SourceConfig) { c.BindDN = "svc-keystep@corp.example" }, ""},
		{"bad bind UPN", func(c *SourceConfig) { c.BindDN = "svc keystep@corp.example" }, "BindDN:"},
		{"empty password", func(c *SourceConfig) { c.BindPassword = "" }, "BindPassword:"},
		{"client cert", func(c *SourceConfig) { c.ClientCert, c.BindDN, c.BindPassword = cert, "", "" }, ""},
		{"client cert and password", func(c *SourceConfig) { c.ClientCert = cert }, "BindPassword:"},
		{"client cert without TLS", func(c *SourceConfig) {
			c.ClientCert, c.BindPassword, c.InsecureNoTLS, c.URLs = cert, "", true, []string{"ldap://127.0.0.1"}
		}, "ClientCert:"},
		{"no base", func(c *SourceConfig) { c.BaseDN = "" }, "BaseDN:"},
		{"bad base", func(c *SourceConfig) { c.BaseDN = "ou=people,,dc=x" }, "BaseDN:"},
		{"bad user filter", func(c *SourceConfig) { c.UserFilter = "(objectClass=person" }, "UserFilter:"},
		{"server-side user filter", func(c *SourceConfig) { c.UserFilter = "(memberOf:1.2.840.113556.1.4.1941:=cn=g,dc=x)" }, ""},
		{"group", func(c *SourceConfig) { c.Group = "cn=keystep users,ou=groups,dc=example,dc=test" }, ""},
		{"bad group", func(c *SourceConfig) { c.Group = "keystep users" }, "Group:"},
		{"bad attribute", func(c *SourceConfig) { c.Attributes.Email = "e mail" }, "Attributes.Email"},
		{"page size 0 defaults", func(c *SourceConfig) { c.PageSize = 0 }, ""},
		{"page size 10000", func(c *SourceConfig) { c.PageSize = 10000 }, ""},
		{"page size 10001", func(c *SourceConfig) { c.PageSize = 10001 }, "PageSize:"},
		{"page size negative", func(c *SourceConfig) { c.PageSize = -1 }, "PageSize:"},
		{"negative timeout", func(c *SourceConfig) { c.Timeout = -time.Second }, "Timeout:"},
		{"negative full sync", func(c *SourceConfig) { c.FullSyncInterval = -1 }, "FullSyncInterval:"},
		{"negative poll", func(c *SourceConfig) { c.PollInterval = -1 }, "PollInterval:"},
		{"negative live timeout", func(c *SourceConfig) { c.LiveCheck.Timeout = -1 }, "LiveCheck.Timeout:"},
		{"negative live TTL", func(c *SourceConfig) { c.LiveCheck.CacheTTL = -1 }, "LiveCheck.CacheTTL:"},
		{"incremental syncrepl", func(c *SourceConfig) { c.Incremental = "syncrepl" }, ""},
		{"incremental dirsync", func(c *SourceConfig) { c.Incremental = "dirsync" }, ""},
		{"incremental none", func(c *SourceConfig) { c.Incremental = "none" }, ""},
		{"incremental bad", func(c *SourceConfig) { c.Incremental = "poll" }, "Incremental:"},
		{"max removals 1", func(c *SourceConfig) { c.MaxRemovals = 1 }, ""},
		{"max removals >1", func(c *SourceConfig) { c.MaxRemovals = 1.5 }, "MaxRemovals:"},
		{"max removals negative", func(c *SourceConfig) { c.MaxRemovals = -0.1 }, "MaxRemovals:"},
		{"max removals count negative", func(c *SourceConfig) { c.MaxRemovalsCount = -1 }, "MaxRemovalsCount:"},
		{"preset bad", func(c *SourceConfig) { c.Suspension.Preset = "okta" }, "Suspension:"},
		{"suspension filter bad", func(c *SourceConfig) { c.Suspension.Filter = "(a=b" }, "Suspension:"},
		{"suspension filter in-chain", func(c *SourceConfig) { c.Suspension.Filter = "(memberOf:1.2.840.113556.1.4.1941:=cn=x)" }, "Suspension:"},
		{"all presets", func(c *SourceConfig) { c.Suspension = Suspension{Preset: Preset389DS, Lockout: true, Filter: "(x=y)"} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.withDefaults().validate()
			if tt.want == "" {
				if err != nil {
					t.Errorf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("validate = %v, want an error about %s", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret-Pa55") {
				t.Errorf("the error holds the password: %v", err)
			}
		})
	}
	// Every problem is reported at once.
	err := SourceConfig{PageSize: -1, MaxRemovals: 2}.validate()
	for _, f := range []string{"Name:", "URLs:", "BindDN:", "BindPassword:", "BaseDN:", "UserFilter:", "Attributes.ID", "PageSize:", "Timeout:", "Incremental:", "MaxRemovals:"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("zero config: error %v does not name %s", err, f)
		}
	}
}

func TestSearchFilter(t *testing.T) {
	c := validConfig().withDefaults()
	if got := c.searchFilter(); got != "(objectClass=inetOrgPerson)" {
		t.Errorf("no group: %s", got)
	}
	c.Group = "cn=R&D (EU)*,ou=groups,dc=example,dc=test"
	want := `(&(objectClass=inetOrgPerson)(memberOf=cn=R&D \28EU\29\2a,ou=groups,dc=example,dc=test))`
	if got := c.searchFilter(); got != want {
		t.Errorf("group:\n got %s\nwant %s", got, want)
	}
	ad := validConfig()
	ad.Suspension.Preset = PresetActiveDir
	ad.Group = `CN=Keystep\, Users,OU=Groups,DC=corp,DC=example`
	ad = ad.withDefaults()
	want = `(&(&(objectCategory=person)(objectClass=user))(memberOf:1.2.840.113556.1.4.1941:=CN=Keystep\5c, Users,OU=Groups,DC=corp,DC=example))`
	if got := ad.searchFilter(); got != want {
		t.Errorf("AD group:\n got %s\nwant %s", got, want)
	}
	guid := validConfig()
	guid.Attributes.ID = "objectGUID"
	guid.Group = "cn=g,dc=x"
	guid = guid.withDefaults()
	if got := guid.searchFilter(); !strings.Contains(got, "(memberOf:1.2.840.113556.1.4.1941:=cn=g,dc=x)") {
		t.Errorf("objectGUID source: %s", got)
	}
	for _, cc := range []SourceConfig{c, ad, guid} {
		if _, err := ldap.CompileFilter(cc.searchFilter()); err != nil {
			t.Errorf("%s does not compile: %v", cc.searchFilter(), err)
		}
	}
}

func TestIDFilter(t *testing.T) {
	c := validConfig().withDefaults()
	got, err := idFilter(c, "0B6B6A1E-3F2E-4C5A-9D1B-1A2B3C4D5E6F")
	if want := "(&(objectClass=inetOrgPerson)(entryUUID=0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f))"; err != nil || got != want {
		t.Errorf("entryUUID: %s, %v; want %s", got, err, want)
	}
	c.Group = "cn=g,dc=x"
	got, err = idFilter(c, "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f")
	if want := "(&(&(objectClass=inetOrgPerson)(memberOf=cn=g,dc=x))(entryUUID=0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f))"; err != nil || got != want {
		t.Errorf("entryUUID in group: %s, %v; want %s", got, err, want)
	}

	ad := validConfig()
	ad.Suspension.Preset = PresetActiveDir
	ad = ad.withDefaults()
	got, err = idFilter(ad, "6f9619ff-8b86-d011-b42d-00c04fc964ff")
	want := `(&(&(objectCategory=person)(objectClass=user))(objectGUID=\ff\19\96\6f\86\8b\11\d0\b4\2d\00\c0\4f\c9\64\ff))`
	if err != nil || got != want {
		t.Errorf("objectGUID:\n got %s, %v\nwant %s", got, err, want)
	}
	// The filter finds the entry the mapper read the id from.
	m, err := CompileMatcher(got)
	if err != nil {
		t.Fatal(err)
	}
	e := testEntry("cn=a", "objectClass", "user", "|", "objectCategory", "person", "|",
		"objectGUID", "\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff")
	if !m.Match(e) {
		t.Errorf("%s does not match the entry", got)
	}

	other := validConfig()
	other.Attributes.ID = "employeeNumber"
	other = other.withDefaults()
	if got, err := idFilter(other, "E-1234.5_x"); err != nil || got != "(&(objectClass=inetOrgPerson)(employeeNumber=E-1234.5_x))" {
		t.Errorf("other: %s, %v", got, err)
	}

	for _, tc := range []struct {
		cfg SourceConfig
		id  string
	}{
		{c, ""}, {c, "*"}, {c, "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f)(uid=*"}, {c, "0b6b6a1e3f2e4c5a9d1b1a2b3c4d5e6f"},
		{ad, "*"}, {ad, "6f9619ff8b86d011b42d00c04fc964ff"}, {ad, "6f9619ff-8b86-d011-b42d-00c04fc964fz"},
		{other, ""}, {other, "*"}, {other, "a)(uid=*"}, {other, "a\\2a"}, {other, strings.Repeat("a", 129)},
	} {
		if f, err := idFilter(tc.cfg, tc.id); err == nil {
			t.Errorf("idFilter(%s, %q) = %s", tc.cfg.Attributes.ID, tc.id, f)
		}
	}
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// silentServer accepts connections and never answers; it returns its
// address.
func silentServer(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

func TestDialFailoverUnreachable(t *testing.T) {
	silent := silentServer(t)
	c := validConfig()
	c.URLs = []string{"ldap://127.0.0.1:1", "ldaps://" + closedPort(t), "ldap://" + silent, "ldaps://" + silent}
	c.Timeout = 300 * time.Millisecond
	c = c.withDefaults()
	start := time.Now()
	conn, used, err := dial(context.Background(), c)
	if err == nil {
		conn.Close()
		t.Fatalf("dial succeeded with %s", used)
	}
	// Each URL was tried, in order, and each error names its URL.
	msg := err.Error()
	last := -1
	for _, u := range c.URLs {
		i := strings.Index(msg, u+": ")
		if i < 0 {
			t.Errorf("error does not name %s: %v", u, err)
			continue
		}
		if i < last {
			t.Errorf("%s was tried out of order: %v", u, err)
		}
		last = i
	}
	if strings.Contains(msg, c.BindPassword) {
		t.Errorf("error holds the password: %v", err)
	}
	// The silent server cost about a timeout each (StartTLS waits for an
	// answer, ldaps:// for the handshake), not more.
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("dial took %v", el)
	}
	t.Log(err)
}

func TestDialContext(t *testing.T) {
	c := validConfig()
	c.URLs = []string{"ldap://" + silentServer(t), "ldap://127.0.0.1:1"}
	c.Timeout = time.Minute
	c = c.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := dial(ctx, c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial = %v, want the context's deadline", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("dial took %v after the context ended", el)
	}
	// The failover stopped with the context: the second URL was not tried.
	if strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("dial went on after the context ended: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, _, err := dial(ctx, c); !errors.Is(err, context.Canceled) {
		t.Errorf("dial with a cancelled context = %v", err)
	}
}

func TestDialRefusesEmptyPassword(t *testing.T) {
	// Even a configuration that skipped validate never binds without a
	// password.
	s := slapdtest.Start(t, slapdtest.Options{LogLevel: "none"})
	c := SourceConfig{URLs: []string{s.LDAPSURL}, RootCAs: s.CAPool, BindDN: s.SyncDN, Timeout: 5 * time.Second, StartTLS: true}
	_, _, err := dial(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "empty password") {
		t.Errorf("dial with an empty password = %v", err)
	}
}

// slapdConfig is a configuration for the test slapd.
func slapdConfig(s *slapdtest.Server, urls ...string) SourceConfig {
	return SourceConfig{
		Name:         "slapd",
		URLs:         urls,
		RootCAs:      s.CAPool,
		BindDN:       s.SyncDN,
		BindPassword: s.SyncPassword,
		BaseDN:       s.BaseDN,
		Timeout:      10 * time.Second,
	}.withDefaults()
}

// whoAmI returns the authorization identity the connection is bound as.
func whoAmI(t *testing.T, conn *ldap.Conn) string {
	t.Helper()
	r, err := conn.WhoAmI(nil)
	if err != nil {
		t.Fatalf("WhoAmI: %v", err)
	}
	return r.AuthzID
}

func TestDialSlapd(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{})
	wantID := "dn:" + s.SyncDN

	check := func(t *testing.T, cfg SourceConfig, wantURL string, wantTLS bool) {
		t.Helper()
		if err := cfg.validate(); err != nil {
			t.Fatalf("validate: %v", err)
		}
		conn, used, err := dial(context.Background(), cfg)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		if used != wantURL {
			t.Errorf("dial used %s, want %s", used, wantURL)
		}
		if _, ok := conn.TLSConnectionState(); ok != wantTLS {
			t.Errorf("TLS = %v, want %v", ok, wantTLS)
		}
		if id := whoAmI(t, conn); !strings.EqualFold(id, wantID) {
			t.Errorf("bound as %q, want %q", id, wantID)
		}
	}

	t.Run("ldaps", func(t *testing.T) {
		check(t, slapdConfig(s, s.LDAPSURL), s.LDAPSURL, true)
	})
	t.Run("StartTLS", func(t *testing.T) {
		check(t, slapdConfig(s, s.URL), s.URL, true)
	})
	t.Run("failover", func(t *testing.T) {
		check(t, slapdConfig(s, "ldap://127.0.0.1:1", "ldaps://"+closedPort(t), s.LDAPSURL, s.URL), s.LDAPSURL, true)
	})
	t.Run("insecure loopback", func(t *testing.T) {
		cfg := slapdConfig(s, s.URL)
		cfg.InsecureNoTLS, cfg.StartTLS = true, false
		check(t, cfg, s.URL, false)
	})
	t.Run("SASL EXTERNAL", func(t *testing.T) {
		cfg := slapdConfig(s, s.URL, s.LDAPSURL)
		cfg.ClientCert, cfg.BindDN, cfg.BindPassword = &s.ClientCert, "", ""
		check(t, cfg, s.URL, true)
		cfg.URLs = []string{s.LDAPSURL}
		check(t, cfg, s.LDAPSURL, true)
	})
	t.Run("server name", func(t *testing.T) {
		cfg := slapdConfig(s, s.LDAPSURL)
		cfg.ServerName = s.Host
		check(t, cfg, s.LDAPSURL, true)
	})
	t.Run("search", func(t *testing.T) {
		cfg := slapdConfig(s, s.LDAPSURL)
		conn, _, err := dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		res, err := conn.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"entryUUID"}, nil))
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("search: %v", err)
		}
	})
}

func TestDialSlapdFailures(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{})

	t.Run("wrong password stops the failover", func(t *testing.T) {
		cfg := slapdConfig(s, s.URL, s.LDAPSURL)
		cfg.BindPassword = "wrong-" + s.SyncPassword
		_, _, err := dial(context.Background(), cfg)
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("dial = %v, want invalidCredentials", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, s.URL) || strings.Contains(msg, s.LDAPSURL) {
			t.Errorf("error %q: want only %s tried", msg, s.URL)
		}
		if strings.Contains(msg, cfg.BindPassword) || strings.Contains(msg, s.SyncPassword) {
			t.Errorf("error holds the password: %s", msg)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		other := x509.NewCertPool() // trusts nothing
		for _, u := range []string{s.LDAPSURL, s.URL} {
			cfg := slapdConfig(s, u)
			cfg.RootCAs = other
			_, _, err := dial(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), u) || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("%s with an unknown CA: %v", u, err)
			}
		}
	})
	t.Run("TLS failure fails over", func(t *testing.T) {
		cfg := slapdConfig(s, s.LDAPSURL, s.URL)
		cfg.ServerName = "ldap.wrong.example" // fails both: the failover moves on
		_, _, err := dial(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), s.LDAPSURL) || !strings.Contains(err.Error(), s.URL) {
			t.Errorf("dial = %v, want both URLs tried", err)
		}
		cfg.URLs = []string{"ldaps://localhost:" + strings.Split(s.LDAPSURL, ":")[2]}
		cfg.ServerName = ""
		conn, _, err := dial(context.Background(), cfg) // the certificate names localhost too
		if err != nil {
			t.Fatalf("ldaps://localhost: %v", err)
		}
		conn.Close()
	})
	t.Run("ldaps to the plain port", func(t *testing.T) {
		cfg := slapdConfig(s, "ldaps"+strings.TrimPrefix(s.URL, "ldap"))
		cfg.Timeout = 2 * time.Second
		if _, _, err := dial(context.Background(), cfg); err == nil {
			t.Error("TLS to the plain port succeeded")
		}
	})
	t.Run("server down", func(t *testing.T) {
		s2 := slapdtest.Start(t, slapdtest.Options{LogLevel: "none"})
		cfg := slapdConfig(s2, s2.LDAPSURL)
		s2.Stop()
		if _, _, err := dial(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), s2.LDAPSURL) {
			t.Errorf("dial to a stopped server = %v", err)
		}
	})
}
