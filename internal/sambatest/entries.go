package sambatest

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/ldaptest"
)

// userAccountControl bits.
const (
	UACAccountDisable = 0x2   // ACCOUNTDISABLE
	UACNormalAccount  = 0x200 // NORMAL_ACCOUNT; 512 is an enabled user
)

// NeverExpires is the accountExpires value of a new account. SetAccountExpires
// with the zero time writes the other "never" value, 0, as AD's tools do.
const NeverExpires = "9223372036854775807"

// FormatGUID returns the canonical text form of an objectGUID as AD sends
// it (16 bytes, the first three groups little-endian), e.g.
// "5b1e8a2c-3f4d-4e6a-9b7c-0d1e2f3a4b5c"; "" if b is not 16 bytes. Samba
// and AD also accept it as a DN, "<GUID=…>", for a base-object search.
func FormatGUID(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%08x-%04x-%04x-%s-%s",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]), binary.LittleEndian.Uint16(b[6:8]),
		hex.EncodeToString(b[8:10]), hex.EncodeToString(b[10:16]))
}

// ParseGUID is the inverse of FormatGUID.
func ParseGUID(s string) ([]byte, error) {
	raw, err := hex.DecodeString(strings.ReplaceAll(s, "-", ""))
	if err != nil || len(raw) != 16 || len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, fmt.Errorf("sambatest: bad GUID %q", s)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(b[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(b[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(b[8:], raw[8:])
	return b, nil
}

// EscapeFilterBytes escapes every byte of b for an LDAP filter, as binary
// attributes such as objectGUID need: "(objectGUID=" + EscapeFilterBytes(b) + ")".
func EscapeFilterBytes(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "\\%02x", c)
	}
	return sb.String()
}

// EncodePassword returns a password as unicodePwd wants it: in double
// quotes, UTF-16LE.
func EncodePassword(pw string) string {
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return string(b)
}

// FileTime converts t to an AD timestamp (100 ns intervals since 1601), as
// accountExpires and pwdLastSet hold it.
func FileTime(t time.Time) int64 {
	return t.UnixNano()/100 + 116444736000000000
}

// Dial connects to LDAPSURL, verifying Samba's certificate, without
// binding. The connection is closed when the test ends.
func (s *Server) Dial(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
	if err != nil {
		t.Fatalf("sambatest: dial %s: %v", s.LDAPSURL, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Conn returns a connection bound as the Administrator over LDAPS. It is
// closed when the test ends.
func (s *Server) Conn(t testing.TB) *ldap.Conn {
	t.Helper()
	return s.ConnAs(t, s.AdminUPN, s.AdminPassword)
}

// ConnAs returns a connection bound as user (a DN or a UPN) over LDAPS. It
// is closed when the test ends.
func (s *Server) ConnAs(t testing.TB, user, password string) *ldap.Conn {
	t.Helper()
	c := s.Dial(t)
	if err := c.Bind(user, password); err != nil {
		t.Fatalf("sambatest: bind as %s: %v", user, err)
	}
	return c
}

// CheckBind binds as user (a DN or a UPN) with password on a new LDAPS
// connection and returns the bind's error: nil on success;
// invalidCredentials (with AD's data code in the message: 52e wrong
// password, 533 disabled, 701 expired, 775 locked) otherwise.
func (s *Server) CheckBind(user, password string) error {
	return s.admin().CheckBind(user, password)
}

// admin writes and reads as the Administrator over LDAPS, one connection a
// call.
func (s *Server) admin() *ldaptest.Admin {
	return &ldaptest.Admin{Name: "sambatest", URL: s.LDAPSURL, TLS: s.TLSConfig(), DN: s.AdminUPN, Password: s.AdminPassword}
}

// AddUser adds an enabled user (userAccountControl 512, password
// UserPassword) with sAMAccountName sam under UsersDN and returns its DN,
// CN=SAM,CN=Users,DC=keystep,DC=test, and its objectGUID in text form.
// userPrincipalName defaults to SAM@keystep.test; attrs adds attributes or
// replaces those.
func (s *Server) AddUser(t testing.TB, sam string, attrs map[string][]string) (dn, objectGUID string) {
	t.Helper()
	return s.AddUserIn(t, s.UsersDN, sam, attrs)
}

// AddUserIn is AddUser with the user under parentDN (see AddOU).
func (s *Server) AddUserIn(t testing.TB, parentDN, sam string, attrs map[string][]string) (dn, objectGUID string) {
	t.Helper()
	dn = "CN=" + ldap.EscapeDN(sam) + "," + parentDN
	s.admin().Add(t, dn, ldaptest.Override(map[string][]string{
		"objectClass":        {"top", "person", "organizationalPerson", "user"},
		"sAMAccountName":     {sam},
		"userPrincipalName":  {sam + "@" + DNSDomain},
		"unicodePwd":         {EncodePassword(UserPassword)},
		"userAccountControl": {strconv.Itoa(UACNormalAccount)},
	}, attrs))
	return dn, s.ObjectGUID(t, dn)
}

// AddOU adds the organizationalUnit OU=name under BaseDN and returns its DN.
func (s *Server) AddOU(t testing.TB, name string) string {
	t.Helper()
	dn := "OU=" + ldap.EscapeDN(name) + "," + s.BaseDN
	s.admin().Add(t, dn, map[string][]string{"objectClass": {"top", "organizationalUnit"}, "ou": {name}})
	return dn
}

// AddGroup adds a global security group CN=name under UsersDN and returns
// its DN and objectGUID.
func (s *Server) AddGroup(t testing.TB, name string) (dn, objectGUID string) {
	t.Helper()
	dn = "CN=" + ldap.EscapeDN(name) + "," + s.UsersDN
	s.admin().Add(t, dn, map[string][]string{
		"objectClass":    {"top", "group"},
		"sAMAccountName": {name},
		"groupType":      {"-2147483646"}, // global, security
	})
	return dn, s.ObjectGUID(t, dn)
}

// AddToGroup adds memberDN to the group groupDN; AD then lists the group in
// the member's memberOf.
func (s *Server) AddToGroup(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	s.admin().AddMember(t, groupDN, memberDN)
}

// RemoveFromGroup removes memberDN from the group groupDN.
func (s *Server) RemoveFromGroup(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	s.admin().RemoveMember(t, groupDN, memberDN)
}

// Modify replaces the attributes of dn with the given values; an attribute
// given no values is removed.
func (s *Server) Modify(t testing.TB, dn string, replace map[string][]string) {
	t.Helper()
	s.admin().Replace(t, dn, replace)
}

// Move moves dn under newParentDN, keeping its RDN, and returns the new DN.
func (s *Server) Move(t testing.TB, dn, newParentDN string) string {
	t.Helper()
	rdn, _, _ := strings.Cut(dn, ",") // test RDNs have no escaped commas
	return s.admin().Rename(t, dn, rdn, newParentDN)
}

// SetPassword sets dn's password (as the Administrator: a reset, not a
// change).
func (s *Server) SetPassword(t testing.TB, dn, password string) {
	t.Helper()
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace("unicodePwd", []string{EncodePassword(password)})
	s.admin().Modify(t, req)
}

// UserAccountControl returns dn's userAccountControl.
func (s *Server) UserAccountControl(t testing.TB, dn string) int {
	t.Helper()
	v := s.Entry(t, dn, "userAccountControl").GetAttributeValue("userAccountControl")
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("sambatest: %s userAccountControl %q: %v", dn, v, err)
	}
	return n
}

// Disable sets the ACCOUNTDISABLE bit (0x2) of dn's userAccountControl.
func (s *Server) Disable(t testing.TB, dn string) {
	t.Helper()
	s.setUAC(t, dn, s.UserAccountControl(t, dn)|UACAccountDisable)
}

// Enable clears the ACCOUNTDISABLE bit (0x2) of dn's userAccountControl.
func (s *Server) Enable(t testing.TB, dn string) {
	t.Helper()
	s.setUAC(t, dn, s.UserAccountControl(t, dn)&^UACAccountDisable)
}

func (s *Server) setUAC(t testing.TB, dn string, uac int) {
	t.Helper()
	s.Modify(t, dn, map[string][]string{"userAccountControl": {strconv.Itoa(uac)}})
}

// SetAccountExpires sets dn's accountExpires to when (AD keeps 100 ns
// ticks); the zero time means never (0).
func (s *Server) SetAccountExpires(t testing.TB, dn string, when time.Time) {
	t.Helper()
	v := "0"
	if !when.IsZero() {
		v = strconv.FormatInt(FileTime(when), 10)
	}
	s.Modify(t, dn, map[string][]string{"accountExpires": {v}})
}

// Delete deletes dn; AD keeps a tombstone, which a search with the Show
// Deleted control (1.2.840.113556.1.4.417) finds under CN=Deleted Objects.
func (s *Server) Delete(t testing.TB, dn string) {
	t.Helper()
	s.admin().Delete(t, dn)
}

// Entry reads dn as the Administrator with the given attributes (all user
// attributes when none are given).
func (s *Server) Entry(t testing.TB, dn string, attrs ...string) *ldap.Entry {
	t.Helper()
	return s.admin().Entry(t, dn, attrs...)
}

// ObjectGUID returns dn's objectGUID in text form.
func (s *Server) ObjectGUID(t testing.TB, dn string) string {
	t.Helper()
	g := FormatGUID(s.Entry(t, dn, "objectGUID").GetRawAttributeValue("objectGUID"))
	if g == "" {
		t.Fatalf("sambatest: %s has no objectGUID", dn)
	}
	return g
}
