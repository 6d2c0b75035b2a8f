package directory

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
)

// OIDs of the incremental sync controls a server may offer.
const (
	oidSyncRequest = "1.3.6.1.4.1.4203.1.9.1.1" // RFC 4533 content synchronisation
	oidDirSync     = "1.2.840.113556.1.4.841"   // Active Directory DirSync
)

// Incremental sync modes.
const (
	ModeSyncrepl = "syncrepl"
	ModeDirSync  = "dirsync"
	ModeNone     = "none"
)

// detectMode picks the incremental sync the configuration asks for, or in
// auto mode the one the server offers (its root DSE's supportedControl).
func (s *Source) detectMode(conn *ldap.Conn) (string, error) {
	switch s.cfg.Incremental {
	case ModeSyncrepl, ModeDirSync, ModeNone:
		return s.cfg.Incremental, nil
	}
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"supportedControl"}, nil))
	if err != nil {
		return "", fmt.Errorf("reading the root DSE: %w", err)
	}
	if len(res.Entries) != 1 {
		return ModeNone, nil
	}
	ctrls := res.Entries[0].GetAttributeValues("supportedControl")
	has := func(oid string) bool {
		for _, c := range ctrls {
			if c == oid {
				return true
			}
		}
		return false
	}
	switch {
	case has(oidSyncRequest) && strings.EqualFold(s.mapper.idAttr(), "entryUUID"):
		return ModeSyncrepl, nil
	case has(oidDirSync) && strings.EqualFold(s.mapper.idAttr(), "objectGUID"):
		return ModeDirSync, nil
	}
	return ModeNone, nil
}

// cookieScope identifies the search an incremental cookie belongs to: a
// cookie of another server kind, base or filter is not reused.
func (s *Source) cookieScope(mode string) string {
	return mode + "|" + s.cfg.BaseDN + "|" + s.filter + "|" + strings.Join(s.mapper.attributes(), ",")
}

// loadCookie returns the stored cookie for mode, or nil.
func (s *Source) loadCookie(ctx context.Context, mode string) ([]byte, error) {
	st, err := s.store.GetDirectoryState(ctx, s.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("directory %s state: %w", s.cfg.Name, err)
	}
	if st.CookieScope != s.cookieScope(mode) {
		return nil, nil
	}
	return st.Cookie, nil
}

// saveCookie stores the cookie, and what the incremental sync did.
func (s *Source) saveCookie(ctx context.Context, mode string, cookie []byte, rep *RunReport) error {
	return s.updateState(ctx, func(st *flows.DirectoryState, status *Status) {
		if cookie != nil {
			st.Cookie, st.CookieScope = cookie, s.cookieScope(mode)
		}
		status.Mode = mode
		if rep.Changes() > 0 || rep.Conflicts > 0 || rep.Failed > 0 {
			status.LastChange = s.now()
		}
		r := *rep
		status.Incremental = &r
		if status.Health == HealthFailing || status.Health == HealthNever {
			status.Health, status.Failures, status.LastError = HealthOK, 0, ""
		}
	})
}

// syncrepl follows the directory with RFC 4533 refreshAndPersist from the
// stored cookie until ctx ends or the connection fails: changes are
// applied as they come (a disabled user is suspended within a moment), and
// the cookie is stored after each, so a restart resumes where it stopped.
// calls ready once the refresh phase is over.
func (s *Source) syncrepl(ctx context.Context, ready func()) error {
	conn, url, err := dial(ctx, s.cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	cookie, err := s.loadCookie(ctx, ModeSyncrepl)
	if err != nil {
		return err
	}
	rep := &RunReport{Run: flows.NewID(), Kind: ModeSyncrepl, Server: url, Started: s.now()}
	// The scope group's member changes reach no member's entry (memberOf
	// is not replicated), so the search follows the group entry too, and
	// a change of it runs a full sync.
	filter := s.filter
	var group *ldap.DN
	if s.cfg.Group != "" {
		filter = "(|" + s.filter + "(entryDN=" + ldap.EscapeFilter(s.cfg.Group) + "))"
		if group, err = ldap.ParseDN(s.cfg.Group); err != nil {
			return fmt.Errorf("group %q: %w", s.cfg.Group, err)
		}
	}
	req := ldap.NewSearchRequest(s.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		filter, s.mapper.attributes(), nil)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp := conn.Syncrepl(rctx, req, s.cfg.PageSize, ldap.SyncRequestModeRefreshAndPersist, cookie, false)

	var (
		batch      []*ldap.Entry
		refreshing = true
		present    bool // the refresh runs a present phase: unmentioned entries are gone
		presentRun = rep.Run
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.applyEntries(ctx, rep, batch)
		batch = batch[:0]
		return err
	}
	save := func(c []byte) error {
		if err := flush(); err != nil {
			return err
		}
		return s.saveCookie(ctx, ModeSyncrepl, c, rep)
	}
	endRefresh := func(c []byte) error {
		if err := flush(); err != nil {
			return err
		}
		if present {
			if err := s.sweepAfterPresent(ctx, rep, presentRun); err != nil {
				return err
			}
		}
		refreshing = false
		if err := save(c); err != nil {
			return err
		}
		s.log.Info("directory incremental sync following changes", "mode", ModeSyncrepl, "server", url)
		if ready != nil {
			ready()
		}
		return nil
	}
	for resp.Next() {
		ctrls := resp.Controls()
		if e := resp.Entry(); e != nil {
			state := syncState(ctrls)
			if state == nil {
				continue
			}
			id := strings.ToLower(state.EntryUUID.String())
			switch state.State {
			case ldap.SyncStateAdd, ldap.SyncStateModify:
				if group != nil && sameDN(group, e.DN) {
					if !refreshing || cookie != nil {
						s.log.Info("the scope group changed: a full sync follows")
						s.Trigger()
					}
					break
				}
				batch = append(batch, e)
				if !refreshing || len(batch) >= s.cfg.PageSize {
					if err := flush(); err != nil {
						return err
					}
				}
			case ldap.SyncStatePresent:
				present = true
				if err := s.store.MarkDirectorySeen(ctx, s.cfg.Name, presentRun, []string{id}); err != nil {
					return err
				}
			case ldap.SyncStateDelete:
				if err := flush(); err != nil {
					return err
				}
				if err := s.removeIncremental(ctx, rep, id, "deleted from the directory, or out of the sync's scope"); err != nil {
					return err
				}
			}
			if len(state.Cookie) > 0 {
				if err := save(state.Cookie); err != nil {
					return err
				}
			}
			continue
		}
		for _, c := range ctrls {
			var err error
			switch c := c.(type) {
			case *ldap.ControlSyncInfo:
				err = s.syncInfo(ctx, rep, c, &present, presentRun, save, endRefresh)
			case *ldap.ControlSyncDone:
				err = save(c.Cookie)
			}
			if err != nil {
				return err
			}
		}
	}
	if err := resp.Err(); err != nil {
		return fmt.Errorf("syncrepl from %s: %w", url, err)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("syncrepl from %s: the server ended the search", url)
}

// syncInfo handles an RFC 4533 Sync Info message.
func (s *Source) syncInfo(ctx context.Context, rep *RunReport, c *ldap.ControlSyncInfo, present *bool, presentRun string,
	save, endRefresh func([]byte) error) error {
	switch {
	case c.NewCookie != nil:
		return save(c.NewCookie.Cookie)
	case c.RefreshDelete != nil:
		if c.RefreshDelete.RefreshDone {
			return endRefresh(c.RefreshDelete.Cookie)
		}
		return save(c.RefreshDelete.Cookie)
	case c.RefreshPresent != nil:
		*present = true
		if c.RefreshPresent.RefreshDone {
			return endRefresh(c.RefreshPresent.Cookie)
		}
		return save(c.RefreshPresent.Cookie)
	case c.SyncIdSet != nil:
		ids := make([]string, len(c.SyncIdSet.SyncUUIDs))
		for i, u := range c.SyncIdSet.SyncUUIDs {
			ids[i] = strings.ToLower(u.String())
		}
		if c.SyncIdSet.RefreshDeletes {
			for _, id := range ids {
				if err := s.removeIncremental(ctx, rep, id, "deleted from the directory, or out of the sync's scope"); err != nil {
					return err
				}
			}
		} else {
			*present = true
			if err := s.store.MarkDirectorySeen(ctx, s.cfg.Name, presentRun, ids); err != nil {
				return err
			}
		}
		return save(c.SyncIdSet.Cookie)
	}
	return nil
}

// syncState finds the Sync State control of a syncrepl entry.
func syncState(ctrls []ldap.Control) *ldap.ControlSyncState {
	for _, c := range ctrls {
		if st, ok := c.(*ldap.ControlSyncState); ok {
			return st
		}
	}
	return nil
}

// applyEntries maps and applies entries that came from an incremental
// sync, skipping those whose hash says they did not change.
func (s *Source) applyEntries(ctx context.Context, rep *RunReport, page []*ldap.Entry) error {
	entries, byID, err := s.mapPage(ctx, rep, page)
	if err != nil {
		return err
	}
	// In a present phase, an entry sent in full is present too.
	seen := make([]string, 0, len(byID))
	for id := range byID {
		seen = append(seen, id)
	}
	if err := s.store.MarkDirectorySeen(ctx, s.cfg.Name, rep.Run, seen); err != nil {
		return err
	}
	for _, e := range entries {
		if l, ok := byID[e.ExternalID]; ok && bytes.Equal(l.Hash, hashEntry(e)) {
			rep.Unchanged++
			continue
		}
		if err := s.apply(ctx, rep, e, rep.Run); err != nil {
			return err
		}
	}
	return nil
}

// removeIncremental removes the account of an entry the incremental sync
// says is gone, unless that takes the removals since the last full sync
// past the guard.
func (s *Source) removeIncremental(ctx context.Context, rep *RunReport, externalID, reason string) error {
	links, err := s.store.GetDirectoryLinks(ctx, s.cfg.Name, []string{externalID})
	if err != nil || len(links) == 0 {
		return err
	}
	total, err := s.store.CountDirectoryLinks(ctx, s.cfg.Name)
	if err != nil {
		return err
	}
	if limit := s.guardLimit(total + s.removalsSinceFull); s.removalsSinceFull+1 > limit {
		return s.tripGuard(ctx, rep, fmt.Sprintf("the incremental sync would remove more than %d accounts since the last full sync", limit))
	}
	before := rep.Removed
	if err := s.remove(ctx, rep, externalID, reason); err != nil {
		return err
	}
	s.removalsSinceFull += rep.Removed - before
	return nil
}

// sweepAfterPresent handles the end of a present phase: the source's
// accounts the server did not mention are gone, within the guard.
func (s *Source) sweepAfterPresent(ctx context.Context, rep *RunReport, run string) error {
	removals, err := s.countUnseen(ctx, run)
	if err != nil {
		return err
	}
	total, err := s.store.CountDirectoryLinks(ctx, s.cfg.Name)
	if err != nil {
		return err
	}
	if limit := s.guardLimit(total); removals > limit {
		return s.tripGuard(ctx, rep, fmt.Sprintf("the sync would remove %d of %d accounts, more than the %d allowed", removals, total, limit))
	}
	r := RunReport{Run: run}
	if err := s.removeUnseen(ctx, &r); err != nil {
		return err
	}
	rep.Removed += r.Removed
	return nil
}

// sameDN reports whether dn names the entry want.
func sameDN(want *ldap.DN, dn string) bool {
	d, err := ldap.ParseDN(dn)
	return err == nil && want.EqualFold(d)
}
