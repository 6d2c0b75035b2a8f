package slapdtest

import (
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/ldaptest"
)

// AddUser adds the inetOrgPerson uid=UID under ou ("people", "ou=staff" or
// a full DN; "" means people) and returns its DN and the entryUUID slapd
// gave it. By default the entry has cn and sn set to uid and userPassword
// UserPassword; attrs adds attributes or replaces those (objectClass too).
func (s *Server) AddUser(t testing.TB, uid, ou string, attrs map[string][]string) (dn, entryUUID string) {
	t.Helper()
	dn = UserDN(uid, ou)
	s.admin().Add(t, dn, ldaptest.Override(map[string][]string{
		"objectClass":  {"inetOrgPerson"},
		"uid":          {uid},
		"cn":           {uid},
		"sn":           {uid},
		"userPassword": {UserPassword},
	}, attrs))
	return dn, s.EntryUUID(t, dn)
}

// Modify replaces the attributes of dn with the given values; an attribute
// given no values is removed.
func (s *Server) Modify(t testing.TB, dn string, replace map[string][]string) {
	t.Helper()
	s.admin().Replace(t, dn, replace)
}

// Delete deletes the entry dn (it must have no children).
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	s.admin().Delete(t, dn)
}

// Rename renames dn to newRDN (e.g. "uid=new") and, when newSuperior is not
// "", moves it under newSuperior ("staff", "ou=staff" or a full DN, as
// AddUser's ou). The old RDN value is removed. It returns the new DN.
func (s *Server) Rename(t testing.TB, dn, newRDN, newSuperior string) string {
	t.Helper()
	parent := ""
	if newSuperior != "" {
		parent = ouDN(newSuperior)
	}
	return s.admin().Rename(t, dn, newRDN, parent)
}

// Entry reads dn as AdminDN with every user and operational attribute.
func (s *Server) Entry(t testing.TB, dn string) *ldap.Entry {
	t.Helper()
	return s.admin().Entry(t, dn, "*", "+")
}

// Exists reports whether dn exists.
func (s *Server) Exists(t testing.TB, dn string) bool {
	t.Helper()
	return s.admin().Exists(t, dn)
}

// EntryUUID returns the entryUUID of dn.
func (s *Server) EntryUUID(t testing.TB, dn string) string {
	t.Helper()
	u := s.Entry(t, dn).GetAttributeValue("entryUUID")
	if u == "" {
		t.Fatalf("slapdtest: %s has no entryUUID", dn)
	}
	return u
}

// AddGroup adds the groupOfNames cn=CN under GroupsDN with the given member
// DNs and returns its DN. groupOfNames needs at least one member, so
// members must not be empty; memberof then adds memberOf to each member.
func (s *Server) AddGroup(t testing.TB, cn string, members []string) string {
	t.Helper()
	if len(members) == 0 {
		t.Fatalf("slapdtest: AddGroup %s: a groupOfNames needs at least one member", cn)
	}
	dn := GroupDN(cn)
	s.admin().Add(t, dn, map[string][]string{
		"objectClass": {"groupOfNames"},
		"cn":          {cn},
		"member":      members,
	})
	return dn
}

// AddMember adds memberDN to the group groupDN.
func (s *Server) AddMember(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	s.admin().AddMember(t, groupDN, memberDN)
}

// RemoveMember removes memberDN from the group groupDN (which must keep at
// least one member).
func (s *Server) RemoveMember(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	s.admin().RemoveMember(t, groupDN, memberDN)
}

// relax returns the Relax Rules control, critical: slapd refuses to write
// pwdAccountLockedTime (NO-USER-MODIFICATION) without it, even as rootdn.
func relax() ldap.Control { return ldap.NewControlString(RelaxControlOID, true, "") }

// LockPermanently locks dn as an administrator does: pwdAccountLockedTime
// PermanentLockTime, which ppolicy keeps until Unlock. It is written as
// AdminDN with the Relax Rules control.
func (s *Server) LockPermanently(t testing.TB, dn string) {
	t.Helper()
	req := ldap.NewModifyRequest(dn, []ldap.Control{relax()})
	req.Replace("pwdAccountLockedTime", []string{PermanentLockTime})
	s.admin().Modify(t, req)
}

// Unlock removes pwdAccountLockedTime and pwdFailureTime from dn, ending a
// permanent lock or one caused by failed binds.
func (s *Server) Unlock(t testing.TB, dn string) {
	t.Helper()
	req := ldap.NewModifyRequest(dn, []ldap.Control{relax()})
	req.Replace("pwdAccountLockedTime", nil)
	req.Replace("pwdFailureTime", nil)
	s.admin().Modify(t, req)
}

// FailBinds makes n simple binds as dn with a wrong password, each of
// which must fail with invalidCredentials. ppolicy records each in
// pwdFailureTime.
func (s *Server) FailBinds(t testing.TB, dn string, n int) {
	t.Helper()
	for i := range n {
		err := s.CheckBind(dn, "wrong-password")
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("slapdtest: failed bind %d as %s: want invalidCredentials, got %v", i+1, dn, err)
		}
	}
}

// LockByFailedBinds locks dn the way ppolicy does on its own: MaxFailure
// failed binds. The lock lasts LockoutDuration seconds (or until Unlock).
// It returns the pwdAccountLockedTime slapd set, a GeneralizedTime of now.
func (s *Server) LockByFailedBinds(t testing.TB, dn string) string {
	t.Helper()
	s.FailBinds(t, dn, MaxFailure)
	locked := s.Entry(t, dn).GetAttributeValue("pwdAccountLockedTime")
	if locked == "" {
		t.Fatalf("slapdtest: %s not locked after %d failed binds", dn, MaxFailure)
	}
	return locked
}

// CheckBind binds as dn with password on a new connection and returns the
// bind's error (nil on success); a locked account fails with
// invalidCredentials.
func (s *Server) CheckBind(dn, password string) error {
	return s.admin().CheckBind(dn, password)
}
