// Package ldaptest has the writes and reads that a test makes on an LDAP
// server as its administrator, for the harnesses that run one (slapdtest,
// sambatest): add, modify, rename, delete and read an entry, each on a
// connection of its own, failing the test on any error.
//
// Attributes given as a map are sent in the order of their names, so that
// a request, and what the server logs of it, is the same on every run.
package ldaptest

import (
	"crypto/tls"
	"sort"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// Admin is an LDAP server and the administrator a test writes as. Its
// methods fail the test, with Name in the message, on any error.
type Admin struct {
	Name string      // the harness, for failure messages: "slapdtest"
	URL  string      // ldap://host:port or ldaps://host:port
	TLS  *tls.Config // for an ldaps:// URL; nil for ldap://
	DN   string      // who to bind as: a DN, or what else the server takes (a UPN)

	Password string
}

// dial connects to URL without binding.
func (a *Admin) dial() (*ldap.Conn, error) {
	var opts []ldap.DialOpt
	if a.TLS != nil {
		opts = append(opts, ldap.DialWithTLSConfig(a.TLS))
	}
	return ldap.DialURL(a.URL, opts...)
}

// Conn returns a new connection bound as the administrator, for one call;
// the caller closes it.
func (a *Admin) Conn(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := a.dial()
	if err != nil {
		t.Fatalf("%s: dial %s: %v", a.Name, a.URL, err)
	}
	if err := c.Bind(a.DN, a.Password); err != nil {
		_ = c.Close()
		t.Fatalf("%s: bind as %s: %v", a.Name, a.DN, err)
	}
	return c
}

// CheckBind binds as dn with password on a new connection to URL and
// returns the bind's error (nil on success).
func (a *Admin) CheckBind(dn, password string) error {
	c, err := a.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Bind(dn, password)
}

// Add adds the entry dn with the attributes attrs.
func (a *Admin) Add(t testing.TB, dn string, attrs map[string][]string) {
	t.Helper()
	req := ldap.NewAddRequest(dn, nil)
	for _, name := range sortedNames(attrs) {
		req.Attribute(name, attrs[name])
	}
	c := a.Conn(t)
	defer c.Close()
	if err := c.Add(req); err != nil {
		t.Fatalf("%s: add %s: %v", a.Name, dn, err)
	}
}

// Modify sends req.
func (a *Admin) Modify(t testing.TB, req *ldap.ModifyRequest) {
	t.Helper()
	c := a.Conn(t)
	defer c.Close()
	if err := c.Modify(req); err != nil {
		t.Fatalf("%s: modify %s: %v", a.Name, req.DN, err)
	}
}

// Replace replaces the attributes of dn with the given values; an
// attribute given no values is removed.
func (a *Admin) Replace(t testing.TB, dn string, replace map[string][]string) {
	t.Helper()
	req := ldap.NewModifyRequest(dn, nil)
	for _, name := range sortedNames(replace) {
		req.Replace(name, replace[name])
	}
	a.Modify(t, req)
}

// AddMember adds memberDN to the member attribute of the group groupDN.
func (a *Admin) AddMember(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	req := ldap.NewModifyRequest(groupDN, nil)
	req.Add("member", []string{memberDN})
	a.Modify(t, req)
}

// RemoveMember removes memberDN from the member attribute of the group
// groupDN.
func (a *Admin) RemoveMember(t testing.TB, groupDN, memberDN string) {
	t.Helper()
	req := ldap.NewModifyRequest(groupDN, nil)
	req.Delete("member", []string{memberDN})
	a.Modify(t, req)
}

// Rename gives dn the RDN newRDN (e.g. "uid=new"), removing the old RDN's
// value, and moves it under newParentDN unless that is "". It returns the
// new DN.
func (a *Admin) Rename(t testing.TB, dn, newRDN, newParentDN string) string {
	t.Helper()
	c := a.Conn(t)
	defer c.Close()
	if err := c.ModifyDN(ldap.NewModifyDNRequest(dn, newRDN, true, newParentDN)); err != nil {
		t.Fatalf("%s: rename %s to %s under %q: %v", a.Name, dn, newRDN, newParentDN, err)
	}
	if newParentDN == "" {
		_, newParentDN, _ = strings.Cut(dn, ",") // RDN values in tests have no escaped commas
	}
	return newRDN + "," + newParentDN
}

// Delete deletes the entry dn (it must have no children).
func (a *Admin) Delete(t testing.TB, dn string) {
	t.Helper()
	c := a.Conn(t)
	defer c.Close()
	if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatalf("%s: delete %s: %v", a.Name, dn, err)
	}
}

// Entry reads dn with the attributes attrs (all user attributes when there
// are none).
func (a *Admin) Entry(t testing.TB, dn string, attrs ...string) *ldap.Entry {
	t.Helper()
	c := a.Conn(t)
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", attrs, nil))
	if err != nil {
		t.Fatalf("%s: read %s: %v", a.Name, dn, err)
	}
	if len(res.Entries) != 1 {
		t.Fatalf("%s: read %s: %d entries", a.Name, dn, len(res.Entries))
	}
	return res.Entries[0]
}

// Exists reports whether dn exists.
func (a *Admin) Exists(t testing.TB, dn string) bool {
	t.Helper()
	c := a.Conn(t)
	defer c.Close()
	_, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return false
	}
	if err != nil {
		t.Fatalf("%s: read %s: %v", a.Name, dn, err)
	}
	return true
}

// Override returns the attributes of defaults with those of attrs added; an
// attribute of attrs replaces the one of defaults with the same name in any
// case ("mail" replaces "Mail"). It changes and returns defaults.
func Override(defaults, attrs map[string][]string) map[string][]string {
	for name, v := range attrs {
		for have := range defaults {
			if strings.EqualFold(have, name) {
				delete(defaults, have)
			}
		}
		defaults[name] = v
	}
	return defaults
}

func sortedNames(attrs map[string][]string) []string {
	names := make([]string, 0, len(attrs))
	for name := range attrs {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
