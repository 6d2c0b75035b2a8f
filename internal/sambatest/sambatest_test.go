package sambatest_test

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/sambatest"
)

func TestMain(m *testing.M) { sambatest.Main(m) }

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// dirSync runs DirSync searches from cookie until Samba has no more data,
// and returns the entries and the last cookie.
func dirSync(t *testing.T, c *ldap.Conn, cookie []byte, flags int64) ([]*ldap.Entry, []byte) {
	t.Helper()
	var entries []*ldap.Entry
	for range 100 {
		req := ldap.NewSearchRequest(sambatest.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=user)", nil, nil)
		res, err := c.DirSync(req, flags, 0, cookie)
		if err != nil {
			t.Fatalf("DirSync: %v", err)
		}
		entries = append(entries, res.Entries...)
		ctl, ok := ldap.FindControl(res.Controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync)
		if !ok || len(ctl.Cookie) == 0 {
			t.Fatalf("DirSync response without a cookie: %v", res.Controls)
		}
		cookie = ctl.Cookie
		if ctl.Flags == 0 { // no more data
			return entries, cookie
		}
	}
	t.Fatal("DirSync: still more data after 100 rounds")
	return nil, nil
}

func byGUID(entries []*ldap.Entry, guid string) []*ldap.Entry {
	var out []*ldap.Entry
	for _, e := range entries {
		if sambatest.FormatGUID(e.GetRawAttributeValue("objectGUID")) == guid {
			out = append(out, e)
		}
	}
	return out
}

func attrNames(e *ldap.Entry) []string {
	var names []string
	for _, a := range e.Attributes {
		names = append(names, a.Name)
	}
	slices.Sort(names)
	return names
}

func TestDomainController(t *testing.T) {
	start := time.Now()
	s := sambatest.Start(t)
	t.Logf("Start took %v, of which provisioning %v", time.Since(start).Round(time.Millisecond), sambatest.ProvisionDuration().Round(time.Millisecond))

	// LDAPS verifies against CAPool.
	admin := s.Conn(t)
	if st, ok := admin.TLSConnectionState(); !ok || len(st.VerifiedChains) == 0 {
		t.Fatal("LDAPS connection not verified")
	}
	// StartTLS on 389 too, and the DN form of the Administrator binds.
	c389, err := ldap.DialURL(s.LDAPURL)
	if err != nil {
		t.Fatalf("dial %s: %v", s.LDAPURL, err)
	}
	defer c389.Close()
	if err := c389.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := c389.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("bind as %s over StartTLS: %v", s.AdminDN, err)
	}

	_, cookie := dirSync(t, admin, nil, 0)

	dn, guid := s.AddUser(t, "jdoe", map[string][]string{
		"givenName": {"John"}, "sn": {"Doe"}, "displayName": {"John Doe"}, "mail": {"jdoe@keystep.test"},
	})
	if dn != "CN=jdoe,CN=Users,DC=keystep,DC=test" || !guidRE.MatchString(guid) {
		t.Fatalf("AddUser = %q, %q", dn, guid)
	}
	if got := s.UserAccountControl(t, dn); got != 512 {
		t.Errorf("userAccountControl = %d, want 512", got)
	}
	// The text form is the one AD takes in <GUID=…> DNs.
	if e := s.Entry(t, "<GUID="+guid+">", "sAMAccountName"); e.GetAttributeValue("sAMAccountName") != "jdoe" {
		t.Errorf("<GUID=%s> is %v", guid, e.Attributes)
	}
	if err := s.CheckBind("jdoe@"+sambatest.DNSDomain, sambatest.UserPassword); err != nil {
		t.Fatalf("bind as jdoe: %v", err)
	}

	// DirSync: the add, then only the change.
	added, cookie := dirSync(t, admin, cookie, 0)
	if got := byGUID(added, guid); len(got) != 1 || got[0].DN != dn {
		t.Fatalf("DirSync after AddUser: %d entries for jdoe in %d", len(got), len(added))
	}
	s.Modify(t, dn, map[string][]string{"mail": {"john.doe@keystep.test"}, "telephoneNumber": {"+15551234567"}})
	changed, cookie := dirSync(t, admin, cookie, 0)
	if len(changed) != 1 || changed[0].DN != dn {
		t.Fatalf("DirSync after Modify returned %d entries, want jdoe only: %v", len(changed), changed)
	}
	if got, want := attrNames(changed[0]), []string{"instanceType", "mail", "objectGUID", "telephoneNumber"}; !slices.Equal(got, want) {
		t.Errorf("DirSync after Modify: attributes %q, want %q", got, want)
	}
	if changed[0].GetAttributeValue("mail") != "john.doe@keystep.test" ||
		sambatest.FormatGUID(changed[0].GetRawAttributeValue("objectGUID")) != guid {
		t.Errorf("DirSync after Modify: %v", changed[0].Attributes)
	}

	// Disable and enable.
	s.Disable(t, dn)
	if got := s.UserAccountControl(t, dn); got != 514 {
		t.Errorf("userAccountControl after Disable = %d, want 514", got)
	}
	if err := s.CheckBind(dn, sambatest.UserPassword); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind while disabled: %v, want invalidCredentials", err)
	}
	disabled, cookie := dirSync(t, admin, cookie, 0)
	if len(disabled) != 1 || disabled[0].GetAttributeValue("userAccountControl") != "514" {
		t.Errorf("DirSync after Disable: %v", disabled)
	}
	s.Enable(t, dn)
	if got := s.UserAccountControl(t, dn); got != 512 {
		t.Errorf("userAccountControl after Enable = %d, want 512", got)
	}
	if err := s.CheckBind(dn, sambatest.UserPassword); err != nil {
		t.Errorf("bind after Enable: %v", err)
	}

	// Account expiry.
	when := time.Now().Add(48 * time.Hour)
	s.SetAccountExpires(t, dn, when)
	if got := s.Entry(t, dn, "accountExpires").GetAttributeValue("accountExpires"); got != strconv.FormatInt(sambatest.FileTime(when), 10) {
		t.Errorf("accountExpires = %s, want %d", got, sambatest.FileTime(when))
	}
	s.SetAccountExpires(t, dn, time.Time{})
	if got := s.Entry(t, dn, "accountExpires").GetAttributeValue("accountExpires"); got != "0" {
		t.Errorf("accountExpires after never = %s, want 0", got)
	}

	// Groups: memberOf is AD's back-link.
	group, groupGUID := s.AddGroup(t, "keystep-admins")
	s.AddToGroup(t, group, dn)
	if got := s.Entry(t, dn, "memberOf").GetAttributeValues("memberOf"); !slices.Equal(got, []string{group}) {
		t.Errorf("memberOf = %q, want [%s]", got, group)
	}
	if !guidRE.MatchString(groupGUID) {
		t.Errorf("group GUID %q", groupGUID)
	}
	_, cookie = dirSync(t, admin, cookie, 0)

	// Delete: a tombstone with the same objectGUID.
	s.Delete(t, dn)
	deleted, _ := dirSync(t, admin, cookie, 0)
	if len(deleted) != 1 {
		t.Fatalf("DirSync after Delete returned %d entries, want 1: %v", len(deleted), deleted)
	}
	d := deleted[0]
	if sambatest.FormatGUID(d.GetRawAttributeValue("objectGUID")) != guid || d.GetAttributeValue("isDeleted") != "TRUE" ||
		!strings.HasPrefix(d.DN, `CN=jdoe\0ADEL:`+guid+",CN=Deleted Objects,"+s.BaseDN) {
		t.Errorf("DirSync after Delete: %s %v", d.DN, d.Attributes)
	}
	filter := "(objectGUID=" + sambatest.EscapeFilterBytes(mustParseGUID(t, guid)) + ")"
	search := func(controls []ldap.Control) []*ldap.Entry {
		t.Helper()
		res, err := admin.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, filter, []string{"isDeleted", "objectGUID", "lastKnownParent", "sAMAccountName"}, controls))
		if err != nil {
			t.Fatalf("search %s: %v", filter, err)
		}
		return res.Entries
	}
	if got := search(nil); len(got) != 0 {
		t.Errorf("deleted user found without Show Deleted: %v", got[0].DN)
	}
	tomb := search([]ldap.Control{ldap.NewControlMicrosoftShowDeleted()})
	if len(tomb) != 1 {
		t.Fatalf("Show Deleted search found %d entries", len(tomb))
	}
	if tomb[0].GetAttributeValue("isDeleted") != "TRUE" ||
		!bytes.Equal(tomb[0].GetRawAttributeValue("objectGUID"), mustParseGUID(t, guid)) ||
		tomb[0].GetAttributeValue("lastKnownParent") != sambatest.UsersDN {
		t.Errorf("tombstone: %s %v", tomb[0].DN, tomb[0].Attributes)
	}

	// Move keeps the objectGUID.
	ou := s.AddOU(t, "moved")
	mover, moverGUID := s.AddUser(t, "mover", nil)
	if got := s.Move(t, mover, ou); got != "CN=mover,"+ou || s.ObjectGUID(t, got) != moverGUID {
		t.Errorf("Move = %s", got)
	}

	// Restart keeps the data; the DirSync cookie still works.
	pid := s.PID()
	s.Restart(t)
	if s.PID() == 0 || s.PID() == pid {
		t.Errorf("PID after Restart = %d (was %d)", s.PID(), pid)
	}
	if err := s.CheckBind(s.AdminUPN, s.AdminPassword); err != nil {
		t.Fatalf("bind after Restart: %v", err)
	}
	if got := s.ObjectGUID(t, group); got != groupGUID {
		t.Errorf("group GUID after Restart = %s, want %s", got, groupGUID)
	}
}

func mustParseGUID(t *testing.T, s string) []byte {
	t.Helper()
	b, err := sambatest.ParseGUID(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFormatGUID(t *testing.T) {
	b := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10}
	const want = "04030201-0605-0807-090a-0b0c0d0e0f10"
	if got := sambatest.FormatGUID(b); got != want {
		t.Errorf("FormatGUID = %s, want %s", got, want)
	}
	back, err := sambatest.ParseGUID(want)
	if err != nil || !bytes.Equal(back, b) {
		t.Errorf("ParseGUID = %x, %v", back, err)
	}
	if sambatest.FormatGUID(b[:15]) != "" {
		t.Error("FormatGUID of 15 bytes is not empty")
	}
	for _, bad := range []string{"", "04030201-0605-0807-090a-0b0c0d0e0f1", "0403020106050807090a0b0c0d0e0f10aaaa", "zz030201-0605-0807-090a-0b0c0d0e0f10"} {
		if _, err := sambatest.ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) succeeded", bad)
		}
	}
	if got := sambatest.EscapeFilterBytes([]byte{0x00, 0xab}); got != `\00\ab` {
		t.Errorf("EscapeFilterBytes = %s", got)
	}
	if got := sambatest.EncodePassword("ab"); got != "\"\x00a\x00b\x00\"\x00" {
		t.Errorf("EncodePassword = %q", got)
	}
}
