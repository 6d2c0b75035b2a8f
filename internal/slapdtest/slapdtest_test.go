package slapdtest_test

import (
	"context"
	"crypto/tls"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/internal/slapdtest"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func search(t *testing.T, c *ldap.Conn, base, filter string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s %s: %v", base, filter, err)
	}
	return res.Entries
}

func whoami(t *testing.T, c *ldap.Conn) string {
	t.Helper()
	res, err := c.WhoAmI(nil)
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	return res.AuthzID
}

func TestServer(t *testing.T) {
	s := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(3, "people")})

	t.Run("ldaps", func(t *testing.T) {
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.TLSConfig()))
		if err != nil {
			t.Fatalf("dial %s: %v", s.LDAPSURL, err)
		}
		defer c.Close()
		if st, ok := c.TLSConnectionState(); !ok || len(st.VerifiedChains) == 0 {
			t.Fatalf("ldaps connection not verified: %+v", st)
		}
		if err := c.Bind(s.AdminDN, s.AdminPassword); err != nil {
			t.Fatalf("bind: %v", err)
		}
		if got := whoami(t, c); got != "dn:"+s.AdminDN {
			t.Errorf("whoami = %q", got)
		}
		// A CA that did not sign the server's certificate is refused.
		_, err = ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{ServerName: s.Host}))
		if err == nil {
			t.Error("ldaps with the system roots: no error")
		}
	})

	t.Run("StartTLS", func(t *testing.T) {
		c := s.Conn(t)
		if st, ok := c.TLSConnectionState(); !ok || len(st.VerifiedChains) == 0 {
			t.Fatal("StartTLS connection not verified")
		}
		if got := whoami(t, c); got != "dn:"+s.AdminDN {
			t.Errorf("whoami = %q", got)
		}
	})

	t.Run("SASL EXTERNAL", func(t *testing.T) {
		c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(s.ClientTLSConfig()))
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		if err := c.ExternalBind(); err != nil {
			t.Fatalf("EXTERNAL bind over ldaps: %v", err)
		}
		if got := whoami(t, c); got != "dn:"+s.SyncDN {
			t.Errorf("whoami = %q, want dn:%s", got, s.SyncDN)
		}
		// Over StartTLS too.
		c2, err := ldap.DialURL(s.URL)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c2.Close()
		if err := c2.StartTLS(s.ClientTLSConfig()); err != nil {
			t.Fatalf("StartTLS: %v", err)
		}
		if err := c2.ExternalBind(); err != nil {
			t.Fatalf("EXTERNAL bind over StartTLS: %v", err)
		}
		if got := whoami(t, c2); got != "dn:"+s.SyncDN {
			t.Errorf("whoami = %q, want dn:%s", got, s.SyncDN)
		}
		if n := len(search(t, c2, s.BaseDN, "(uid=user000002)", "entryUUID")); n != 1 {
			t.Errorf("EXTERNAL-bound sync account found %d entries, want 1", n)
		}
		// Without a client certificate there is no identity to bind as.
		c3 := s.Dial(t)
		if err := c3.ExternalBind(); err == nil {
			t.Error("EXTERNAL bind without a client certificate succeeded")
		}
	})

	t.Run("sync account reads all but passwords", func(t *testing.T) {
		c := s.SyncConn(t)
		users := search(t, c, slapdtest.PeopleDN, "(objectClass=inetOrgPerson)", "*", "+")
		if len(users) != 3 {
			t.Fatalf("sync account sees %d users, want 3", len(users))
		}
		for _, e := range users {
			for _, a := range []string{"entryUUID", "entryCSN", "mail", "mobile", "displayName", "createTimestamp"} {
				if e.GetAttributeValue(a) == "" {
					t.Errorf("%s: no %s for the sync account", e.DN, a)
				}
			}
			if v := e.GetAttributeValues("userPassword"); len(v) != 0 {
				t.Errorf("%s: the sync account reads userPassword", e.DN)
			}
		}
		if !uuidRE.MatchString(users[0].GetAttributeValue("entryUUID")) {
			t.Errorf("entryUUID %q", users[0].GetAttributeValue("entryUUID"))
		}
		// The admin does read userPassword.
		admin := search(t, s.Conn(t), slapdtest.PeopleDN, "(uid=user000001)", "userPassword")
		if len(admin) != 1 || admin[0].GetAttributeValue("userPassword") != slapdtest.UserPassword {
			t.Errorf("admin read of userPassword: %+v", admin)
		}
		if got := search(t, c, slapdtest.DefaultPolicyDN, "(objectClass=pwdPolicy)", "pwdMaxFailure"); len(got) != 1 || got[0].GetAttributeValue("pwdMaxFailure") != "3" {
			t.Errorf("default policy: %+v", got)
		}
		// The sync account writes nothing.
		req := ldap.NewModifyRequest(slapdtest.UserDN("user000001", "people"), nil)
		req.Replace("mail", []string{"x@example.org"})
		if err := c.Modify(req); !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
			t.Errorf("sync account modify: %v, want insufficientAccessRights", err)
		}
		// Users and the sync account bind with their passwords.
		if err := s.CheckBind(slapdtest.UserDN("user000003", "people"), slapdtest.UserPassword); err != nil {
			t.Errorf("user bind: %v", err)
		}
	})

	t.Run("anonymous sees nothing", func(t *testing.T) {
		c := s.Dial(t)
		res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", nil, nil))
		if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Fatalf("anonymous search: %v", err)
		}
		if err == nil && len(res.Entries) != 0 {
			t.Errorf("anonymous search returned %d entries", len(res.Entries))
		}
		// A failed bind leaves the connection anonymous.
		if err := c.Bind(s.SyncDN, "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("bind with a wrong password: %v", err)
		}
		res, err = c.Search(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", nil, nil))
		if err == nil && len(res.Entries) != 0 {
			t.Errorf("search after a failed bind returned %d entries", len(res.Entries))
		}
		// The root DSE stays readable, as clients expect.
		dse, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", []string{"namingContexts", "supportedControl"}, nil))
		if err != nil || len(dse.Entries) != 1 || dse.Entries[0].GetAttributeValue("namingContexts") != s.BaseDN {
			t.Errorf("root DSE: %v %+v", err, dse)
		}
	})

	t.Run("users, groups and memberOf", func(t *testing.T) {
		alice, aliceUUID := s.AddUser(t, "alice", "people", map[string][]string{"mail": {"alice@example.org"}})
		bob, _ := s.AddUser(t, "bob", "", nil)
		if alice != "uid=alice,ou=people,dc=example,dc=org" || !uuidRE.MatchString(aliceUUID) {
			t.Fatalf("AddUser = %q, %q", alice, aliceUUID)
		}
		if got := s.EntryUUID(t, alice); got != aliceUUID {
			t.Errorf("EntryUUID = %q, want %q", got, aliceUUID)
		}
		group := s.AddGroup(t, "admins", []string{alice})
		memberOf := func(dn string) []string {
			t.Helper()
			e := search(t, s.SyncConn(t), dn, "(objectClass=*)", "memberOf")
			if len(e) != 1 {
				t.Fatalf("%s: %d entries", dn, len(e))
			}
			return e[0].GetAttributeValues("memberOf")
		}
		if got := memberOf(alice); !slices.Equal(got, []string{group}) {
			t.Errorf("alice memberOf = %q, want [%s]", got, group)
		}
		s.AddMember(t, group, bob)
		s.RemoveMember(t, group, alice)
		if got := memberOf(alice); len(got) != 0 {
			t.Errorf("alice memberOf after removal = %q", got)
		}
		if got := memberOf(bob); !slices.Equal(got, []string{group}) {
			t.Errorf("bob memberOf = %q", got)
		}
		if got := search(t, s.SyncConn(t), slapdtest.GroupsDN, "(memberOf=*)", "1.1"); len(got) != 0 {
			t.Errorf("groups with memberOf: %d", len(got))
		}
		if got := search(t, s.SyncConn(t), s.BaseDN, "(memberOf="+group+")", "1.1"); len(got) != 1 || got[0].DN != bob {
			t.Errorf("search by memberOf: %+v", got)
		}

		// A move keeps entryUUID and the group follows it (memberof-refint).
		moved := s.Rename(t, bob, "uid=bob", "staff")
		if moved != "uid=bob,ou=staff,dc=example,dc=org" {
			t.Fatalf("Rename = %q", moved)
		}
		if s.Exists(t, bob) || !s.Exists(t, moved) {
			t.Errorf("after the move: old exists %v, new exists %v", s.Exists(t, bob), s.Exists(t, moved))
		}
		if got := s.Entry(t, group).GetAttributeValues("member"); !slices.Equal(got, []string{moved}) {
			t.Errorf("group members after the move = %q", got)
		}
		renamed := s.Rename(t, moved, "uid=robert", "")
		if renamed != "uid=robert,ou=staff,dc=example,dc=org" || s.Entry(t, renamed).GetAttributeValue("uid") != "robert" {
			t.Errorf("Rename in place = %q", renamed)
		}
		s.Modify(t, alice, map[string][]string{"mail": {"a@example.org"}, "mobile": {"+15550001111"}, "displayName": nil})
		e := s.Entry(t, alice)
		if e.GetAttributeValue("mail") != "a@example.org" || e.GetAttributeValue("mobile") != "+15550001111" {
			t.Errorf("after Modify: %v", e.Attributes)
		}
		s.Delete(t, alice)
		if s.Exists(t, alice) {
			t.Error("alice still exists after Delete")
		}
	})

	t.Run("locks", func(t *testing.T) {
		carol, _ := s.AddUser(t, "carol", "people", nil)
		s.LockPermanently(t, carol)
		got := search(t, s.SyncConn(t), carol, "(objectClass=*)", "pwdAccountLockedTime")
		if len(got) != 1 || got[0].GetAttributeValue("pwdAccountLockedTime") != slapdtest.PermanentLockTime {
			t.Fatalf("pwdAccountLockedTime for the sync account: %+v", got)
		}
		if err := s.CheckBind(carol, slapdtest.UserPassword); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("bind while locked: %v, want invalidCredentials", err)
		}
		s.Unlock(t, carol)
		if err := s.CheckBind(carol, slapdtest.UserPassword); err != nil {
			t.Errorf("bind after Unlock: %v", err)
		}

		when := s.LockByFailedBinds(t, carol)
		if when == slapdtest.PermanentLockTime || !strings.HasSuffix(when, "Z") {
			t.Errorf("lock time after failed binds = %q", when)
		}
		if err := s.CheckBind(carol, slapdtest.UserPassword); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("bind after %d failures: %v, want invalidCredentials", slapdtest.MaxFailure, err)
		}
		s.Unlock(t, carol)
		if err := s.CheckBind(carol, slapdtest.UserPassword); err != nil {
			t.Errorf("bind after Unlock: %v", err)
		}
	})

	t.Run("restart keeps data and sync state", func(t *testing.T) {
		// A refresh-only sync as the sync account, to get a cookie.
		refresh := func(cookie []byte) (entries []*ldap.Entry, newCookie []byte) {
			t.Helper()
			c := s.SyncConn(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
				0, 0, false, "(objectClass=inetOrgPerson)", []string{"*", "+"}, nil)
			r := c.Syncrepl(ctx, req, 64, ldap.SyncRequestModeRefreshOnly, cookie, false)
			for r.Next() {
				if e := r.Entry(); e != nil {
					entries = append(entries, e)
				}
				for _, ctl := range r.Controls() {
					switch ctl := ctl.(type) {
					case *ldap.ControlSyncDone:
						newCookie = ctl.Cookie
					case *ldap.ControlSyncInfo:
						if ctl.NewCookie != nil && len(ctl.NewCookie.Cookie) > 0 {
							newCookie = ctl.NewCookie.Cookie
						}
					}
				}
			}
			if err := r.Err(); err != nil {
				t.Fatalf("syncrepl: %v", err)
			}
			return entries, newCookie
		}
		before, cookie := refresh(nil)
		if len(before) == 0 || len(cookie) == 0 {
			t.Fatalf("first refresh: %d entries, cookie %q", len(before), cookie)
		}
		pid := s.PID()
		s.Restart(t)
		if s.PID() == pid || s.PID() == 0 {
			t.Errorf("PID after Restart = %d (was %d)", s.PID(), pid)
		}
		if !s.Exists(t, slapdtest.UserDN("user000001", "people")) {
			t.Fatal("user000001 gone after Restart")
		}
		dave, _ := s.AddUser(t, "dave", "people", nil)
		after, cookie2 := refresh(cookie)
		var dns []string
		for _, e := range after {
			dns = append(dns, e.DN)
		}
		if !slices.Contains(dns, dave) || len(after) >= len(before) {
			t.Errorf("refresh with the old cookie after Restart returned %q, want only the change (dave)", dns)
		}
		if string(cookie2) == string(cookie) || len(cookie2) == 0 {
			t.Errorf("cookie did not advance: %q -> %q", cookie, cookie2)
		}

		// After SIGKILL the data and the contextCSN survive too.
		s.Kill()
		if s.PID() != 0 || s.Running() {
			t.Fatal("still running after Kill")
		}
		s.Restart(t)
		if again, _ := refresh(cookie2); len(again) != 0 {
			t.Errorf("refresh with the latest cookie after Kill+Restart returned %d entries, want 0", len(again))
		}
	})
}

// TestSlapadd loads 2,000 users with slapadd and checks that they are all
// there, with the generated attributes and working passwords.
func TestSlapadd(t *testing.T) {
	const n = 2000
	s := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(n, "people"), LogLevel: "none"})
	c := s.SyncConn(t)
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(slapdtest.PeopleDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=inetOrgPerson)", []string{"uid", "mail", "mobile", "entryUUID"}, nil), 500)
	if err != nil {
		t.Fatalf("search: %v", err)
	}
	if len(res.Entries) != n {
		t.Fatalf("%d users, want %d", len(res.Entries), n)
	}
	uuids := map[string]bool{}
	for _, e := range res.Entries {
		uuids[e.GetAttributeValue("entryUUID")] = true
	}
	if len(uuids) != n {
		t.Errorf("%d distinct entryUUIDs for %d users", len(uuids), n)
	}
	e := s.Entry(t, slapdtest.UserDN("user001234", "people"))
	want := map[string]string{
		"cn": "User 001234", "sn": "001234", "displayName": "User 001234",
		"mail": "user001234@example.org", "mobile": "+15550001234",
	}
	for a, v := range want {
		if got := e.GetAttributeValue(a); got != v {
			t.Errorf("user001234 %s = %q, want %q", a, got, v)
		}
	}
	if err := s.CheckBind(e.DN, slapdtest.UserPassword); err != nil {
		t.Errorf("bind as user001234: %v", err)
	}
	if got := search(t, c, slapdtest.PeopleDN, "(uid=user002000)", "1.1"); len(got) != 1 {
		t.Errorf("user002000: %d entries", len(got))
	}
}

func TestUsersLDIF(t *testing.T) {
	got := slapdtest.UsersLDIF(2, "staff")
	want := `dn: uid=user000001,ou=staff,dc=example,dc=org
objectClass: inetOrgPerson
uid: user000001
cn: User 000001
sn: 000001
displayName: User 000001
mail: user000001@example.org
mobile: +15550000001
userPassword: ` + slapdtest.UserPassword + `

dn: uid=user000002,ou=staff,dc=example,dc=org
`
	if !strings.HasPrefix(got, want) {
		t.Errorf("UsersLDIF:\n%s\nwant prefix:\n%s", got, want)
	}
}

// TestLDAP100kScript checks that integration/ldap100k.sh writes the same
// entries as UsersLDIF.
func TestLDAP100kScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	out, err := exec.Command(bash, "../../integration/ldap100k.sh", "25", "-", slapdtest.StaffDN).Output()
	if err != nil {
		t.Fatalf("ldap100k.sh: %v", err)
	}
	if want := slapdtest.UsersLDIF(25, "staff"); string(out) != want {
		t.Errorf("ldap100k.sh 25 wrote:\n%s\nUsersLDIF(25, staff) is:\n%s", out, want)
	}
}
