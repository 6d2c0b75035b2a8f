package ldaptest_test

import (
	"maps"
	"slices"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/ldaptest"
	"github.com/keystep/keystep/internal/slapdtest"
)

func TestOverride(t *testing.T) {
	got := ldaptest.Override(map[string][]string{
		"objectClass": {"inetOrgPerson"},
		"Mail":        {"old@example.org"},
		"sn":          {"x"},
	}, map[string][]string{
		"mail":        {"new@example.org"},
		"displayName": {"X"},
		"sn":          nil,
	})
	want := map[string][]string{
		"objectClass": {"inetOrgPerson"},
		"mail":        {"new@example.org"},
		"displayName": {"X"},
		"sn":          nil,
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("Override = %v, want %v", got, want)
	}
}

// TestAdmin runs each call against a real slapd, as its rootdn over ldaps.
func TestAdmin(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{LogLevel: "none"})
	a := &ldaptest.Admin{Name: "test", URL: s.LDAPSURL, TLS: s.TLSConfig(), DN: s.AdminDN, Password: s.AdminPassword}

	dn := "uid=ann," + slapdtest.PeopleDN
	a.Add(t, dn, map[string][]string{
		"objectClass": {"inetOrgPerson"}, "uid": {"ann"}, "cn": {"Ann"}, "sn": {"A"},
		"mail": {"ann@example.org"}, "userPassword": {"pw-1"},
	})
	if !a.Exists(t, dn) || a.Exists(t, "uid=nobody,"+slapdtest.PeopleDN) {
		t.Fatal("Exists is wrong after Add")
	}
	e := a.Entry(t, dn, "mail", "entryUUID")
	if e.GetAttributeValue("mail") != "ann@example.org" || e.GetAttributeValue("entryUUID") == "" || e.GetAttributeValue("cn") != "" {
		t.Errorf("Entry with mail and entryUUID: %v", e.Attributes)
	}
	if e := a.Entry(t, dn); e.GetAttributeValue("cn") != "Ann" || e.GetAttributeValue("entryUUID") != "" {
		t.Errorf("Entry with the user attributes: %v", e.Attributes)
	}

	a.Replace(t, dn, map[string][]string{"mail": nil, "displayName": {"Ann A"}})
	if e := a.Entry(t, dn); e.GetAttributeValue("mail") != "" || e.GetAttributeValue("displayName") != "Ann A" {
		t.Errorf("after Replace: %v", e.Attributes)
	}

	if err := a.CheckBind(dn, "pw-1"); err != nil {
		t.Errorf("CheckBind with the password: %v", err)
	}
	if err := a.CheckBind(dn, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("CheckBind with a wrong password: %v", err)
	}

	group := "cn=team," + slapdtest.GroupsDN
	a.Add(t, group, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {"team"}, "member": {s.AdminDN}})
	a.AddMember(t, group, dn)
	if got := a.Entry(t, group, "member").GetAttributeValues("member"); !slices.Equal(got, []string{s.AdminDN, dn}) {
		t.Errorf("members after AddMember: %q", got)
	}
	a.RemoveMember(t, group, dn)
	if got := a.Entry(t, group, "member").GetAttributeValues("member"); !slices.Equal(got, []string{s.AdminDN}) {
		t.Errorf("members after RemoveMember: %q", got)
	}

	// Rename in place, then move.
	renamed := a.Rename(t, dn, "uid=anne", "")
	if renamed != "uid=anne,"+slapdtest.PeopleDN || a.Exists(t, dn) {
		t.Errorf("Rename = %s", renamed)
	}
	if uid := a.Entry(t, renamed, "uid").GetAttributeValues("uid"); !slices.Equal(uid, []string{"anne"}) {
		t.Errorf("uid after Rename = %q, want the old value removed", uid)
	}
	moved := a.Rename(t, renamed, "uid=anne", slapdtest.StaffDN)
	if moved != "uid=anne,"+slapdtest.StaffDN || !a.Exists(t, moved) {
		t.Errorf("Rename under StaffDN = %s", moved)
	}

	a.Delete(t, moved)
	if a.Exists(t, moved) {
		t.Error("Exists after Delete")
	}
}
