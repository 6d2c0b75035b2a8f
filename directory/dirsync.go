package directory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
)

// namingContext is the root of the naming context that holds dn: its
// trailing dc= components (DirSync searches only from such a root).
func namingContext(dn string) (string, error) {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return "", fmt.Errorf("base DN %q: %w", dn, err)
	}
	var parts []string
	for i := len(parsed.RDNs) - 1; i >= 0; i-- {
		rdn := parsed.RDNs[i]
		if len(rdn.Attributes) != 1 || !strings.EqualFold(rdn.Attributes[0].Type, "dc") {
			break
		}
		parts = append([]string{"DC=" + ldap.EscapeDN(rdn.Attributes[0].Value)}, parts...)
	}
	if len(parts) == 0 {
		return "", fmt.Errorf("base DN %q has no dc= components for DirSync", dn)
	}
	return strings.Join(parts, ","), nil
}

// dirSync polls Active Directory's DirSync from the stored cookie once,
// until the server has nothing more: each changed user is read again in
// full (within the base DN and filter) and applied; a deleted one
// (isDeleted, in Deleted Objects under a mangled DN, keyed on its
// objectGUID) or one now out of scope is removed. With no cookie it only
// takes the server's current cookie (a full sync covers the rest).
func (s *Source) dirSync(ctx context.Context) (RunReport, error) {
	rep := RunReport{Run: flows.NewID(), Kind: ModeDirSync, Started: s.now()}
	conn, url, err := dial(ctx, s.cfg)
	if err != nil {
		return rep, err
	}
	defer conn.Close()
	rep.Server = url
	cookie, err := s.loadCookie(ctx, ModeDirSync)
	if err != nil {
		return rep, err
	}
	initial := cookie == nil
	root, err := namingContext(s.cfg.BaseDN)
	if err != nil {
		return rep, err
	}
	// DirSync returns an object only when one of the requested attributes
	// changed. name changes with a rename and with a move too, so a user
	// moved out of the base DN is seen (and one moved within it gets its
	// new DN).
	attrs := append([]string{"objectGUID", "isDeleted", "name"}, s.mapper.attributes()...)
	filter := "(objectClass=user)"
	groupGUID := ""
	var flags int64
	if s.cfg.Group != "" && !initial {
		// Membership changes show on the group (its member attribute,
		// which must be asked for), not on its members.
		filter = "(|(objectClass=user)(objectClass=group))"
		// Only the added and removed values, not a big group's whole
		// member list at each change.
		attrs, flags = append(attrs, "member"), ldap.DirSyncIncrementalValues
		if groupGUID, err = s.guidOf(conn, s.cfg.Group); err != nil {
			return rep, err
		}
	}
	for {
		req := ldap.NewSearchRequest(root, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, attrs, nil)
		res, err := conn.DirSync(req, flags, 0, cookie)
		if err != nil {
			return rep, fmt.Errorf("DirSync from %s: %w", url, err)
		}
		if !initial {
			if err := s.dirSyncEntries(ctx, conn, &rep, res.Entries, groupGUID); err != nil {
				return rep, err
			}
		}
		c, _ := ldap.FindControl(res.Controls, ldap.ControlTypeDirSync).(*ldap.ControlDirSync)
		if c == nil {
			return rep, fmt.Errorf("DirSync from %s: the answer has no DirSync control", url)
		}
		if len(c.Cookie) > 0 {
			cookie = c.Cookie
		}
		if err := s.saveCookie(ctx, ModeDirSync, cookie, &rep); err != nil {
			return rep, err
		}
		if c.Flags == 0 { // no more data
			rep.Finished = s.now()
			return rep, nil
		}
	}
}

// dirSyncEntries applies one DirSync answer.
func (s *Source) dirSyncEntries(ctx context.Context, conn *ldap.Conn, rep *RunReport, entries []*ldap.Entry, groupGUID string) error {
	for _, e := range entries {
		raw := e.GetRawAttributeValue("objectGUID")
		if len(raw) != 16 {
			rep.Skipped++
			continue
		}
		id := formatGUID(raw)
		if id == groupGUID {
			s.log.Info("the scope group changed: a full sync follows")
			s.Trigger()
			continue
		}
		if strings.EqualFold(e.GetAttributeValue("isDeleted"), "TRUE") {
			if err := s.removeIncremental(ctx, rep, id, "deleted from Active Directory"); err != nil {
				return err
			}
			continue
		}
		full, err := s.lookup(ctx, conn, id, s.cfg.Timeout)
		if err != nil {
			return err
		}
		if full == nil {
			if err := s.removeIncremental(ctx, rep, id, "out of the sync's scope in Active Directory"); err != nil {
				return err
			}
			continue
		}
		if err := s.applyEntries(ctx, rep, []*ldap.Entry{full}); err != nil {
			return err
		}
	}
	return nil
}

// guidOf reads the objectGUID of the entry dn.
func (s *Source) guidOf(conn *ldap.Conn, dn string) (string, error) {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1,
		int(s.cfg.Timeout/time.Second), false, "(objectClass=*)", []string{"objectGUID"}, nil))
	if err != nil {
		return "", fmt.Errorf("reading the group %s: %w", dn, err)
	}
	if len(res.Entries) != 1 || len(res.Entries[0].GetRawAttributeValue("objectGUID")) != 16 {
		return "", fmt.Errorf("the group %s has no objectGUID", dn)
	}
	return formatGUID(res.Entries[0].GetRawAttributeValue("objectGUID")), nil
}
