package directory

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/slapdtest"
)

// testEntry builds an entry from name, value, value, …, name, … groups:
// each name is followed by its values up to the next "|".
func testEntry(dn string, kv ...string) *ldap.Entry {
	e := &ldap.Entry{DN: dn}
	var cur *ldap.EntryAttribute
	for i := 0; i < len(kv); i++ {
		if cur == nil {
			cur = &ldap.EntryAttribute{Name: kv[i]}
			continue
		}
		if kv[i] == "|" {
			e.Attributes = append(e.Attributes, cur)
			cur = nil
			continue
		}
		cur.Values = append(cur.Values, kv[i])
		cur.ByteValues = append(cur.ByteValues, []byte(kv[i]))
	}
	if cur != nil {
		e.Attributes = append(e.Attributes, cur)
	}
	return e
}

func matcherEntry() *ldap.Entry {
	return testEntry("uid=alice,ou=people,dc=example,dc=test",
		"objectClass", "top", "person", "inetOrgPerson", "|",
		"uid", "alice", "|",
		"CN", "  Alice   Liddell ", "|",
		"mail", "Alice@Example.TEST", "|",
		"userAccountControl", "514", "|",
		"groupType", "-2147483646", "|",
		"employeeNumber", "42", "|",
		"pwdChangedTime", "20240131120000Z", "|",
		"description", "Straße", "|",
		"title", "KELVIN \u212a", "|",
		"objectGUID", "\x01\xff\x80(", "|",
	)
}

func TestMatcher(t *testing.T) {
	e := matcherEntry()
	tests := []struct {
		filter string
		want   bool
	}{
		// equality: case-insensitive values and names, insignificant spaces
		{"(uid=alice)", true},
		{"(UID=ALICE)", true},
		{"(uid=alic)", false},
		{"(cn=alice liddell)", true},
		{"(cn= ALICE LIDDELL  )", true},
		{"(cn=alice  liddell)", true},
		{"(cn=aliceliddell)", false},
		{"(objectClass=INETORGPERSON)", true},
		{"(objectclass=person)", true},
		{"(objectClass=group)", false},
		{"(missing=x)", false},
		{"(description=STRASSE)", false}, // simple folding only
		{"(description=STRAßE)", true},
		{"(title=kelvin k)", true}, // Kelvin sign folds to k
		{"(objectGUID=\\01\\ff\\80\\28)", true},
		{"(objectGUID=\\01\\fe\\80\\28)", false},
		{"(cn~=alice liddell)", true},
		{"(cn:=Alice Liddell)", true},
		// presence
		{"(mail=*)", true},
		{"(MAIL=*)", true},
		{"(telephoneNumber=*)", false},
		// substrings
		{"(cn=alice*)", true},
		{"(cn=*liddell)", true},
		{"(cn=*ICE LID*)", true},
		{"(cn=a*l*l)", true},
		{"(cn=alice *)", true},
		{"(cn=alicel*)", false},
		{"(cn=*alice)", false},
		{"(cn=**)", true},
		{"(sn=*a*)", false},
		{"(mail=*@example.test)", true},
		{"(uid=a*i*e)", true},
		{"(uid=al*li*ce)", false}, // pieces may not overlap
		// ordering: integers
		{"(employeeNumber>=42)", true},
		{"(employeeNumber>=43)", false},
		{"(employeeNumber<=42)", true},
		{"(employeeNumber<=5)", false},   // 42 > 5 numerically …
		{"(employeeNumber>=100)", false}, // … though "42" > "100" as text
		{"(groupType<=0)", true},
		// ordering: generalized time
		{"(pwdChangedTime>=20240101000000Z)", true},
		{"(pwdChangedTime>=202402010000Z)", false},
		{"(pwdChangedTime<=20240131130000+0100)", true}, // 12:00Z
		{"(pwdChangedTime<=20240131125959+0100)", false},
		// ordering: strings
		{"(uid>=ALICE)", true},
		{"(uid>=b)", false},
		{"(uid<=B)", true},
		{"(uid<=alic)", false},
		// bitwise
		{"(userAccountControl:1.2.840.113556.1.4.803:=2)", true},
		{"(userAccountControl:1.2.840.113556.1.4.803:=514)", true},
		{"(userAccountControl:1.2.840.113556.1.4.803:=16)", false},
		{"(userAccountControl:1.2.840.113556.1.4.803:=18)", false},
		{"(userAccountControl:1.2.840.113556.1.4.804:=18)", true},
		{"(userAccountControl:1.2.840.113556.1.4.804:=16)", false},
		{"(useraccountcontrol:integerBitAndMatch:=512)", true},
		{"(groupType:1.2.840.113556.1.4.803:=2147483648)", true},
		{"(groupType:1.2.840.113556.1.4.803:=2)", true},
		{"(uid:1.2.840.113556.1.4.803:=2)", false}, // not an integer
		{"(missing:1.2.840.113556.1.4.804:=2)", false},
		// boolean operators
		{"(&(uid=alice)(mail=*))", true},
		{"(&(uid=alice)(mail=bob*))", false},
		{"(|(uid=bob)(mail=alice*))", true},
		{"(|(uid=bob)(mail=bob*))", false},
		{"(!(uid=bob))", true},
		{"(!(uid=alice))", false},
		{"(!(missing=x))", true},
		{"(&)", true},
		{"(|)", false},
		{"(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", false},
		{"(|(&(uid=alice)(!(cn=bob*)))(uid=carol))", true},
	}
	for _, tt := range tests {
		m, err := CompileMatcher(tt.filter)
		if err != nil {
			t.Errorf("CompileMatcher(%q): %v", tt.filter, err)
			continue
		}
		if got := m.Match(e); got != tt.want {
			t.Errorf("%s: Match = %v, want %v", tt.filter, got, tt.want)
		}
		if m.String() != tt.filter {
			t.Errorf("String() = %q", m.String())
		}
	}
}

func TestMatcherMissingAndNil(t *testing.T) {
	m, err := CompileMatcher("(!(uid=x))")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Match(&ldap.Entry{}) {
		t.Error("(!(uid=x)) does not match an entry without attributes")
	}
	if m.Match(nil) {
		t.Error("nil entry matched")
	}
	var nm *Matcher
	if nm.Match(&ldap.Entry{}) {
		t.Error("nil Matcher matched")
	}
	// A nil attribute in the entry does not crash.
	e := &ldap.Entry{Attributes: []*ldap.EntryAttribute{nil, {Name: "uid", Values: []string{"y"}}}}
	if !m.Match(e) {
		t.Error("nil attribute broke matching")
	}
}

func TestCompileMatcherErrors(t *testing.T) {
	tests := []struct{ filter, want string }{
		{"", "filter does not start"},
		{"uid=alice", "filter does not start"},
		{"(uid=alice", "unexpected end"},
		{"(uid=alice))", "extra at end"},
		{"(&(uid=a)", "unexpected end"},
		{"(uid=\\zz)", "invalid characters for escape"},
		{"(=alice)", "invalid attribute description"},
		{"(u id=alice)", "invalid attribute description"},
		{"(1uid=alice)", "invalid attribute description"},
		{"(1..2=alice)", "invalid attribute description"},
		{"(cn;=x)", "invalid attribute description"},
		{"(memberOf:1.2.840.113556.1.4.1941:=cn=g,dc=x)", `matching rule "1.2.840.113556.1.4.1941" is not supported`},
		{"(cn:caseExactMatch:=Alice)", "is not supported"},
		{"(cn:dn:2.4.6.8.10:=Dino)", ":dn is not supported"},
		{"(:1.2.840.113556.1.4.803:=2)", "without an attribute"},
		{"(userAccountControl:1.2.840.113556.1.4.803:=two)", "needs an integer"},
		{"(uid=" + strings.Repeat("a", maxFilterLen) + ")", "longer than"},
		{strings.Repeat("(!", maxFilterDepth+1) + "(uid=a)" + strings.Repeat(")", maxFilterDepth+1), "nested deeper"},
		{"(uid=\xff)", "not valid UTF-8"},
	}
	for _, tt := range tests {
		_, err := CompileMatcher(tt.filter)
		if err == nil {
			t.Errorf("CompileMatcher(%q) succeeded", tt.filter)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CompileMatcher(%q) = %v, want it to mention %q", tt.filter, err, tt.want)
		}
		if len(tt.filter) < 200 && !strings.Contains(err.Error(), strconv.Quote(tt.filter)) {
			t.Errorf("error %q does not quote the filter %q", err, tt.filter)
		}
	}
}

func TestMatcherAttributes(t *testing.T) {
	m, err := CompileMatcher("(&(objectClass=user)(|(UAC:1.2.840.113556.1.4.803:=2)(uac>=3)(cn=a*)(mail=*)(objectclass=x)(cn;lang-en~=y)))")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"objectClass", "UAC", "cn", "mail", "cn;lang-en"}
	if got := m.Attributes(); !slices.Equal(got, want) {
		t.Errorf("Attributes() = %q, want %q", got, want)
	}
	m.Attributes()[0] = "changed"
	if m.Attributes()[0] != "objectClass" {
		t.Error("Attributes() returns the Matcher's own slice")
	}
}

func TestValidAttrDesc(t *testing.T) {
	for _, a := range []string{"cn", "CN", "msDS-User-Account-Control-Computed", "2.5.4.3", "cn;lang-en", "userCertificate;binary;x-1"} {
		if !validAttrDesc(a) {
			t.Errorf("validAttrDesc(%q) = false", a)
		}
	}
	for _, a := range []string{"", "-cn", "c n", "2.5.", ".2", "2..5", "cn;", ";x", "cn;a b", "cn;;x", "é"} {
		if validAttrDesc(a) {
			t.Errorf("validAttrDesc(%q) = true", a)
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in          string
		left, right bool
		want        string
	}{
		{"  a  b  ", true, true, "A B"},
		{"  a  b  ", false, false, " A B "},
		{"  a  b  ", true, false, "A B "},
		{"\ta\u00a0\nb", true, true, "A B"},
		{"", true, true, ""},
		{"   ", true, true, ""},
		{"   ", false, false, " "},
		{"x\xffy", true, true, "X\xffY"},
	}
	for _, tt := range tests {
		if got := normalize(tt.in, tt.left, tt.right); got != tt.want {
			t.Errorf("normalize(%q, %v, %v) = %q, want %q", tt.in, tt.left, tt.right, got, tt.want)
		}
	}
	if equalNorm("a\xff", "a\xfe") || !equalNorm("A\xff ", " a\xff") || equalNorm("ab", "a b") {
		t.Error("equalNorm mishandles invalid bytes or spaces")
	}
}

func TestMatchAllocations(t *testing.T) {
	m, err := CompileMatcher("(&(objectClass=person)(|(userAccountControl:1.2.840.113556.1.4.803:=2)(cn=alice liddell)(!(mail=*))))")
	if err != nil {
		t.Fatal(err)
	}
	e := matcherEntry()
	if n := testing.AllocsPerRun(100, func() { m.Match(e) }); n != 0 {
		t.Errorf("Match allocates %v times", n)
	}
}

func BenchmarkMatch(b *testing.B) {
	m, err := CompileMatcher("(&(objectClass=person)(|(userAccountControl:1.2.840.113556.1.4.803:=2)(cn=*liddell)(!(mail=*))))")
	if err != nil {
		b.Fatal(err)
	}
	e := matcherEntry()
	b.ReportAllocs()
	for b.Loop() {
		m.Match(e)
	}
}

// FuzzCompileMatcher checks that no filter text makes CompileMatcher or
// Match panic or hang, and that what compiles evaluates.
func FuzzCompileMatcher(f *testing.F) {
	for _, s := range []string{
		"(uid=alice)",
		"(&(objectClass=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
		"(|(cn=a*b*c)(mail=*)(employeeNumber>=10)(pwdChangedTime<=20240101000000Z))",
		"(cn~=x)",
		"(cn:=x)",
		"(objectGUID=\\01\\02)",
		"((uid=a))",
		"(&)",
		"(!(!(!(x=y))))",
	} {
		f.Add(s)
	}
	e := matcherEntry()
	f.Fuzz(func(t *testing.T, filter string) {
		m, err := CompileMatcher(filter)
		if err != nil {
			if m != nil {
				t.Fatal("Matcher with an error")
			}
			return
		}
		m.Match(e)
		m.Match(&ldap.Entry{})
		for _, a := range m.Attributes() {
			if !validAttrDesc(a) {
				t.Fatalf("Attributes() holds %q", a)
			}
		}
	})
}

// TestMatcherAgreesWithSlapd evaluates filters both in slapd and with
// Matcher on the same entries: they must select the same ones.
func TestMatcherAgreesWithSlapd(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{LogLevel: "none"})
	posix := func(uid, num string, extra map[string][]string) {
		attrs := map[string][]string{
			"objectClass":   {"inetOrgPerson", "posixAccount"},
			"uidNumber":     {num},
			"gidNumber":     {"100"},
			"homeDirectory": {"/home/" + uid},
		}
		maps.Copy(attrs, extra)
		s.AddUser(t, uid, "", attrs)
	}
	posix("alice", "1001", map[string][]string{"cn": {"  Alice   Liddell "}, "mail": {"Alice@Example.org"}, "title": {"Chief Cat"}, "employeeType": {"staff"}})
	posix("bob", "1002", map[string][]string{"cn": {"Bob Builder"}, "title": {"builder"}, "employeeType": {"contractor", "staff"}})
	posix("eric", "6", map[string][]string{"cn": {"Éric Été"}, "description": {"a*b(c)d\\e"}})
	posix("zed", "15", nil)
	s.AddUser(t, "noposix", "", map[string][]string{"cn": {"No Posix"}, "mail": {"np@example.org"}})

	filters := []string{
		"(uid=alice)", "(UID=ALICE)", "(cn=alice liddell)", "(cn= ALICE  LIDDELL)", "(cn=*liddell)", "(cn=alice*)",
		"(cn=*ICE LID*)", "(cn=a*l*l)", "(cn=alice *)", "(cn=*alice)", "(mail=*)", "(mail=alice@example.org)",
		"(mail=*@EXAMPLE.ORG)", "(title=chief*)", "(employeeType=staff)", "(employeeType=contractor)",
		"(!(employeeType=contractor))", "(&(employeeType=staff)(!(title=builder)))", "(|(uid=eric)(uid=zed))",
		"(cn=éric été)", "(cn=ÉRIC*)", "(description=a\\2ab\\28c\\29d\\5ce)", "(description=*\\2a*)",
		"(uidNumber>=1001)", "(uidNumber<=15)", "(uidNumber>=7)", "(uidNumber<=6)",
		"(uidNumber:1.2.840.113556.1.4.803:=2)", "(uidNumber:1.2.840.113556.1.4.803:=3)",
		"(uidNumber:1.2.840.113556.1.4.804:=9)", "(uidNumber:1.2.840.113556.1.4.804:=16)",
		"(uidNumber:integerBitAndMatch:=1000)", "(!(uidNumber:1.2.840.113556.1.4.803:=1))",
		"(objectClass=posixAccount)", "(objectclass=POSIXACCOUNT)", "(!(objectClass=posixAccount))",
		"(&)", "(|)", "(uid:=bob)",
	}
	conn := s.SyncConn(t)
	all, err := conn.Search(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"*"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Entries) != 5 {
		t.Fatalf("%d entries", len(all.Entries))
	}
	selecting := 0
	for _, f := range filters {
		res, err := conn.Search(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			f, []string{"uid"}, nil))
		if err != nil {
			t.Errorf("slapd %s: %v", f, err)
			continue
		}
		var server []string
		for _, e := range res.Entries {
			server = append(server, e.GetAttributeValue("uid"))
		}
		m, err := CompileMatcher(f)
		if err != nil {
			t.Errorf("CompileMatcher(%s): %v", f, err)
			continue
		}
		var client []string
		for _, e := range all.Entries {
			if m.Match(e) {
				client = append(client, e.GetAttributeValue("uid"))
			}
		}
		if len(server) > 0 {
			selecting++
		}
		slices.Sort(server)
		slices.Sort(client)
		if !slices.Equal(server, client) {
			t.Errorf("%s: slapd selects %q, Matcher %q", f, server, client)
		}
	}
	if selecting < len(filters)*2/3 {
		t.Errorf("only %d of %d filters select an entry: the comparison says little", selecting, len(filters))
	}
}
