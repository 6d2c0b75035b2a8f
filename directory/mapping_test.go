package directory

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/slapdtest"
)

func TestAttributeMapDefaults(t *testing.T) {
	got := AttributeMap{}.withDefaults(PresetOpenLDAP)
	want := AttributeMap{ID: "entryUUID", Username: "uid", Email: "mail", Phone: "mobile", DisplayName: "displayName"}
	if got != want {
		t.Errorf("defaults = %+v, want %+v", got, want)
	}
	got = AttributeMap{}.withDefaults(PresetActiveDir)
	want = AttributeMap{ID: "objectGUID", Username: "sAMAccountName", Email: "mail", Phone: "mobile", DisplayName: "displayName"}
	if got != want {
		t.Errorf("AD defaults = %+v, want %+v", got, want)
	}
	set := AttributeMap{ID: "nsUniqueId", Username: "userPrincipalName", Email: "otherMail", Phone: "telephoneNumber", DisplayName: "cn"}
	if got := set.withDefaults(PresetActiveDir); got != set {
		t.Errorf("withDefaults changed a full map: %+v", got)
	}
	for _, bad := range []AttributeMap{{ID: "entry UUID"}, {Username: "uid;"}, {Email: "(mail)"}, {Phone: "-x"}, {DisplayName: "display*"}} {
		err := bad.withDefaults("").validate()
		if err == nil || !strings.Contains(err.Error(), "Attributes.") {
			t.Errorf("validate(%+v) = %v", bad, err)
		}
	}
}

func TestMapperAttributes(t *testing.T) {
	tests := []struct {
		cfg  SourceConfig
		want []string
	}{
		{SourceConfig{}, []string{"entryUUID", "objectGUID", "uid", "mail", "mobile", "displayName", "cn"}},
		{SourceConfig{Suspension: Suspension{Preset: PresetActiveDir, Lockout: true, Filter: "(&(title=x)(UID=y)(cn=z))"}},
			[]string{"objectGUID", "entryUUID", "sAMAccountName", "mail", "mobile", "displayName", "cn",
				"userAccountControl", "accountExpires", "msDS-User-Account-Control-Computed", "lockoutTime", "title", "UID"}},
		{SourceConfig{Attributes: AttributeMap{DisplayName: "gecos"}, Suspension: Suspension{Preset: PresetOpenLDAP}},
			[]string{"entryUUID", "objectGUID", "uid", "mail", "mobile", "gecos", "pwdAccountLockedTime"}},
		{SourceConfig{Suspension: Suspension{Preset: Preset389DS}},
			[]string{"entryUUID", "objectGUID", "uid", "mail", "mobile", "displayName", "cn", "nsAccountLock"}},
	}
	for _, tt := range tests {
		m, err := newMapper(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.attributes(); !slices.Equal(got, tt.want) {
			t.Errorf("attributes = %q\nwant %q", got, tt.want)
		}
		m.attributes()[0] = "x"
		if m.attributes()[0] == "x" {
			t.Error("attributes() returns the mapper's own slice")
		}
	}
	if _, err := newMapper(SourceConfig{Suspension: Suspension{Preset: "nope"}}); err == nil {
		t.Error("unknown preset accepted")
	}
	if _, err := newMapper(SourceConfig{Attributes: AttributeMap{ID: "a b"}}); err == nil {
		t.Error("bad attribute accepted")
	}
}

func TestGUID(t *testing.T) {
	// Microsoft's example: this octet string is {6F9619FF-8B86-D011-B42D-00C04FC964FF}.
	raw := "\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff"
	const want = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
	if got := formatGUID(raw); got != want {
		t.Errorf("formatGUID = %s, want %s", got, want)
	}
	if got := formatGUID([]byte(raw)); got != want {
		t.Errorf("formatGUID([]byte) = %s, want %s", got, want)
	}
	b, err := parseGUID(strings.ToUpper(want))
	if err != nil || string(b[:]) != raw {
		t.Errorf("parseGUID = %x, %v; want %x", b, err, raw)
	}
	for _, bad := range []string{"", "6f9619ff8b86d011b42d00c04fc964ff", "{6f9619ff-8b86-d011-b42d-00c04fc964ff}", "6f9619ff-8b86-d011-b42d-00c04fc964fg"} {
		if _, err := parseGUID(bad); err == nil {
			t.Errorf("parseGUID(%q) succeeded", bad)
		}
	}
}

func TestMapperEntry(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	guid := "\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff"
	base := func(kv ...string) []string {
		return append([]string{"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", "|", "uid", "alice", "|"}, kv...)
	}
	tests := []struct {
		name  string
		cfg   SourceConfig
		entry []string
		want  flows.DirectoryEntry
		err   string
	}{
		{"basic", SourceConfig{}, base("mail", "alice@example.test", "|", "mobile", "+1 (555) 123-4567", "|", "displayName", " Alice Liddell "),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", Email: "alice@example.test",
				Phone: "+15551234567", DisplayName: "Alice Liddell", State: flows.AccountActive}, ""},
		{"uppercase uuid", SourceConfig{}, []string{"entryUUID", "0B6B6A1E-3F2E-4C5A-9D1B-1A2B3C4D5E6F", "|", "uid", "alice"},
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", State: flows.AccountActive}, ""},
		{"bad uuid", SourceConfig{}, []string{"entryUUID", "0b6b6a1e3f2e4c5a9d1b1a2b3c4d5e6f", "|", "uid", "alice"}, flows.DirectoryEntry{}, "not a UUID"},
		{"no id", SourceConfig{}, []string{"uid", "alice"}, flows.DirectoryEntry{}, "no entryUUID"},
		{"two ids", SourceConfig{}, []string{"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e60", "|", "uid", "a"}, flows.DirectoryEntry{}, "2 values"},
		{"objectGUID", SourceConfig{Suspension: Suspension{Preset: PresetActiveDir}},
			[]string{"objectGUID", guid, "|", "sAMAccountName", "alice", "|", "userAccountControl", "514"},
			flows.DirectoryEntry{ExternalID: "6f9619ff-8b86-d011-b42d-00c04fc964ff", Username: "alice", State: flows.AccountSuspended, Reason: reasonADDisabled}, ""},
		{"short objectGUID", SourceConfig{Attributes: AttributeMap{ID: "objectGUID"}}, []string{"objectGUID", guid[:15], "|", "uid", "alice"}, flows.DirectoryEntry{}, "15 bytes"},
		{"other id", SourceConfig{Attributes: AttributeMap{ID: "nsUniqueId"}}, []string{"nsuniqueid", "66a1b2c3-1dd211b2-8f8bd0ea-12345678", "|", "uid", "alice"},
			flows.DirectoryEntry{ExternalID: "66a1b2c3-1dd211b2-8f8bd0ea-12345678", Username: "alice", State: flows.AccountActive}, ""},
		{"other id bad char", SourceConfig{Attributes: AttributeMap{ID: "employeeNumber"}}, []string{"employeeNumber", "12/34", "|", "uid", "alice"}, flows.DirectoryEntry{}, "characters other than"},
		{"other id too long", SourceConfig{Attributes: AttributeMap{ID: "employeeNumber"}}, []string{"employeeNumber", strings.Repeat("1", 129), "|", "uid", "alice"}, flows.DirectoryEntry{}, "1 to 128 bytes"},
		{"other id 128", SourceConfig{Attributes: AttributeMap{ID: "employeeNumber"}}, []string{"employeeNumber", strings.Repeat("1", 128), "|", "uid", "alice"},
			flows.DirectoryEntry{ExternalID: strings.Repeat("1", 128), Username: "alice", State: flows.AccountActive}, ""},
		{"other id empty", SourceConfig{Attributes: AttributeMap{ID: "employeeNumber"}}, []string{"employeeNumber", "", "|", "uid", "alice"}, flows.DirectoryEntry{}, "1 to 128 bytes"},
		{"no username", SourceConfig{}, []string{"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f"}, flows.DirectoryEntry{}, "no uid"},
		{"two usernames", SourceConfig{}, []string{"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", "|", "uid", "alice", "alice2"}, flows.DirectoryEntry{}, "2 values"},
		{"username with space", SourceConfig{}, []string{"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", "|", "uid", "al ice"}, flows.DirectoryEntry{}, "spaces"},
		{"username with zero width", SourceConfig{}, []string{"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", "|", "uid", "al\u200bice"}, flows.DirectoryEntry{}, "invisible"},
		{"username empty", SourceConfig{}, []string{"entryUUID", "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", "|", "uid", ""}, flows.DirectoryEntry{}, "1 to 256"},
		{"upn as is", SourceConfig{Attributes: AttributeMap{ID: "objectGUID", Username: "userPrincipalName"}}, []string{"objectGUID", guid, "|", "userPrincipalName", "Alice@Corp.Example"},
			flows.DirectoryEntry{ExternalID: "6f9619ff-8b86-d011-b42d-00c04fc964ff", Username: "Alice@Corp.Example", State: flows.AccountActive}, ""},
		{"bad email and phone dropped", SourceConfig{}, base("mail", "Alice <alice@example.test>", "|", "mobile", "555-1234"),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", State: flows.AccountActive}, ""},
		{"first email", SourceConfig{}, base("mail", " a@example.test ", "b@example.test", "|", "mobile", "+44.20.7946.0958"),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", Email: "a@example.test", Phone: "+442079460958", State: flows.AccountActive}, ""},
		{"cn fallback", SourceConfig{}, base("cn", "Alice L."),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", DisplayName: "Alice L.", State: flows.AccountActive}, ""},
		{"cn fallback for blank displayName", SourceConfig{}, base("cn", "Alice L.", "|", "displayName", " \t"),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", DisplayName: "Alice L.", State: flows.AccountActive}, ""},
		{"displayName wins", SourceConfig{}, base("cn", "Alice L.", "|", "displayName", "Alice Liddell"),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", DisplayName: "Alice Liddell", State: flows.AccountActive}, ""},
		{"no fallback for another attribute", SourceConfig{Attributes: AttributeMap{DisplayName: "gecos"}}, base("cn", "Alice L."),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", State: flows.AccountActive}, ""},
		{"filter suspends", SourceConfig{Suspension: Suspension{Filter: "(employeeType=former)"}}, base("employeeType", "Former"),
			flows.DirectoryEntry{ExternalID: "0b6b6a1e-3f2e-4c5a-9d1b-1a2b3c4d5e6f", Username: "alice", State: flows.AccountSuspended, Reason: reasonFilter}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := newMapper(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.entry(testEntry("uid=alice,dc=example,dc=test", tt.entry...), now)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("entry error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.DN = "uid=alice,dc=example,dc=test"
			if got != tt.want {
				t.Errorf("entry =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestMapperWarning(t *testing.T) {
	m, err := newMapper(SourceConfig{Suspension: Suspension{Preset: PresetActiveDir}})
	if err != nil {
		t.Fatal(err)
	}
	var dns []string
	var errs []error
	m.warn = func(dn string, err error) { dns, errs = append(dns, dn), append(errs, err) }
	e := testEntry("cn=alice", "objectGUID", strings.Repeat("\x01", 16), "|", "sAMAccountName", "alice", "|", "accountExpires", "tomorrow")
	d, err := m.entry(e, time.Now())
	if err != nil || d.State != flows.AccountActive {
		t.Fatalf("entry = %+v, %v", d, err)
	}
	if len(errs) != 1 || dns[0] != "cn=alice" || !strings.Contains(errs[0].Error(), "accountExpires") {
		t.Errorf("warnings = %q %v", dns, errors.Join(errs...))
	}
	m.warn = nil
	if _, err := m.entry(e, time.Now()); err != nil {
		t.Error(err)
	}
}

func TestNormalizePhone(t *testing.T) {
	tests := map[string]string{
		"+15551234567":                           "+15551234567",
		"+1 (555) 123-4567":                      "+15551234567",
		"+33 6.12.34.56.78":                      "+33612345678",
		"+49\t30 1234567":                        "+49301234567",
		"555-1234":                               "",
		"0612345678":                             "",
		"+0612345678":                            "",
		"+1 555 CALL NOW":                        "",
		"":                                       "",
		"+123456":                                "",
		"+1234567890123456":                      "",
		"+123456789012345":                       "+123456789012345",
		strings.Repeat(" ", 40) + "+15551234567": "+15551234567",
		"+1" + strings.Repeat("5", 40):           "",
	}
	for in, want := range tests {
		if got := normalizePhone(in); got != want {
			t.Errorf("normalizePhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanDisplayName(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct{ in, want string }{
		{"Alice", "Alice"},
		{"  Alice  ", "Alice"},
		{"Alice\nLiddell", "Alice Liddell"},
		{"Alice\x00\x07Liddell", "AliceLiddell"},
		{"Al\u202eice\u200b", "Alice"},
		{"A\xffB", "AB"},
		{"\n\t Alice \r\n", "Alice"},
		{long, strings.Repeat("é", 128)},
		{strings.Repeat("a", 255) + "é", strings.Repeat("a", 255)},
		{strings.Repeat("a", 256), strings.Repeat("a", 256)},
		{strings.Repeat(" ", 300) + "Alice", "Alice"},
		{strings.Repeat("a", 255) + " b", strings.Repeat("a", 255)},
		{"", ""},
	}
	for _, tt := range tests {
		got := cleanDisplayName(tt.in)
		if got != tt.want {
			t.Errorf("cleanDisplayName(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// What comes out is what flows accepts as a display name.
		if !utf8.ValidString(got) || len(got) > 256 || strings.TrimSpace(got) != got || strings.IndexFunc(got, invisible) >= 0 {
			t.Errorf("cleanDisplayName(%q) = %q, which flows refuses", tt.in, got)
		}
	}
}

func mapperBenchEntry() (*mapper, *ldap.Entry) {
	m, err := newMapper(SourceConfig{Suspension: Suspension{Preset: PresetActiveDir, Lockout: true}})
	if err != nil {
		panic(err)
	}
	e := testEntry("CN=Alice Liddell,OU=People,DC=corp,DC=example",
		"objectClass", "top", "person", "organizationalPerson", "user", "|",
		"cn", "Alice Liddell", "|",
		"sAMAccountName", "alice", "|",
		"mail", "alice@corp.example", "|",
		"mobile", "+15551234567", "|",
		"displayName", "Alice Liddell", "|",
		"objectGUID", "\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff", "|",
		"userAccountControl", "512", "|",
		"accountExpires", "9223372036854775807", "|",
		"msDS-User-Account-Control-Computed", "0", "|",
		"lockoutTime", "0",
	)
	return m, e
}

func TestMapperEntryAllocations(t *testing.T) {
	m, e := mapperBenchEntry()
	now := time.Now()
	// The GUID string, and what net/mail's address check costs.
	n := testing.AllocsPerRun(100, func() {
		if _, err := m.entry(e, now); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%v allocations per entry", n)
	if n > 8 {
		t.Errorf("entry allocates %v times", n)
	}
}

func BenchmarkMapperEntry(b *testing.B) {
	m, e := mapperBenchEntry()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.entry(e, now); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMapperSlapd maps real entries: the operational attributes the
// mapper asks for (entryUUID, pwdAccountLockedTime) come back, and the
// ppolicy rules read them.
func TestMapperSlapd(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{})
	aliceDN, aliceUUID := s.AddUser(t, "alice", "", map[string][]string{
		"mail": {"alice@example.org"}, "mobile": {"+1 555 010 0001"}, "displayName": {"Alice Liddell"}})
	bobDN, bobUUID := s.AddUser(t, "bob", "", map[string][]string{"cn": {"Bob Builder"}, "mail": {"not an address"}})
	carolDN, carolUUID := s.AddUser(t, "carol", "", nil)
	s.LockPermanently(t, bobDN)
	s.LockByFailedBinds(t, carolDN)

	cfg := slapdConfig(s, s.LDAPSURL)
	cfg.BaseDN = slapdtest.PeopleDN
	cfg.Suspension = Suspension{Preset: PresetOpenLDAP, Lockout: true}
	search := func(t *testing.T, cfg SourceConfig) map[string]flows.DirectoryEntry {
		t.Helper()
		m, err := newMapper(cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn, _, err := dial(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		res, err := conn.Search(ldap.NewSearchRequest(cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			cfg.searchFilter(), m.attributes(), nil))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]flows.DirectoryEntry{}
		for _, e := range res.Entries {
			d, err := m.entry(e, time.Now())
			if err != nil {
				t.Fatalf("%s: %v", e.DN, err)
			}
			out[d.Username] = d
		}
		return out
	}

	got := search(t, cfg)
	want := map[string]flows.DirectoryEntry{
		"alice": {ExternalID: aliceUUID, DN: aliceDN, Username: "alice", Email: "alice@example.org", Phone: "+15550100001",
			DisplayName: "Alice Liddell", State: flows.AccountActive},
		"bob": {ExternalID: bobUUID, DN: bobDN, Username: "bob", DisplayName: "Bob Builder",
			State: flows.AccountSuspended, Reason: reasonPPolicyAdmin},
		"carol": {ExternalID: carolUUID, DN: carolDN, Username: "carol", DisplayName: "carol",
			State: flows.AccountSuspended, Reason: reasonPPolicyLocked},
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s:\n got %+v\nwant %+v", k, got[k], w)
		}
	}

	// Without Lockout, failed binds do not suspend; an administrator's
	// lock still does.
	cfg.Suspension.Lockout = false
	got = search(t, cfg)
	if got["carol"].State != flows.AccountActive || got["bob"].State != flows.AccountSuspended {
		t.Errorf("without Lockout: carol %s, bob %s", got["carol"].State, got["bob"].State)
	}

	// A group narrows the search (memberOf, from slapd's memberof overlay),
	// and idFilter finds one entry.
	group := s.AddGroup(t, "keystep users", []string{aliceDN, carolDN})
	cfg.Group = group
	got = search(t, cfg)
	if len(got) != 2 || got["alice"].ExternalID != aliceUUID || got["carol"].ExternalID != carolUUID {
		t.Errorf("in group: %+v", got)
	}
	conn, _, err := dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for uuid, n := range map[string]int{strings.ToUpper(aliceUUID): 1, bobUUID: 0, carolUUID: 1} {
		f, err := idFilter(cfg, uuid)
		if err != nil {
			t.Fatal(err)
		}
		res, err := conn.Search(ldap.NewSearchRequest(cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, f, []string{"entryUUID"}, nil))
		if err != nil || len(res.Entries) != n {
			t.Errorf("%s finds %v entries (%v), want %d", f, res, err, n)
		}
	}
}
