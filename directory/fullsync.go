package directory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
)

// SyncOptions changes one full sync.
type SyncOptions struct {
	// DryRun reads the directory and reports what the sync would change,
	// changing nothing.
	DryRun bool
	// ConfirmRemovals lets up to this many removals through the guard (an
	// admin's confirmation of a real mass departure).
	ConfirmRemovals int
	// Progress, when set, is called after each page.
	Progress func(Progress)
}

// Progress is how far a full sync has read.
type Progress struct {
	Entries int
	// Expected is how many entries the last full sync read (0: unknown).
	Expected int
	Elapsed  time.Duration
}

// stagePage is how many staged entries or unseen links are read at once
// when applying.
const stagePage = 500

// FullSync reads every user of the source, page by page (memory bounded by
// the page size), and makes the accounts match: new entries become
// accounts, changed ones are updated, suspended or restored, and accounts
// whose entries are gone or out of scope are removed. It first stages what
// it would change and checks the guard: an empty result, or more removals
// than the guard allows, stops it with ErrGuard before anything changed. A
// failure while reading (the server dies mid-sync) changes nothing either.
func (s *Source) FullSync(ctx context.Context, opt SyncOptions) (RunReport, error) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if !opt.DryRun {
		s.fullWanted.Store(false)
	}
	rep, err := s.fullSync(ctx, opt)
	if err != nil && !errors.Is(err, ErrGuard) && !opt.DryRun {
		s.recordFailure(ctx, err, time.Time{})
	}
	return rep, err
}

func (s *Source) fullSync(ctx context.Context, opt SyncOptions) (RunReport, error) {
	rep := RunReport{Run: flows.NewID(), Kind: "full", DryRun: opt.DryRun, Started: s.now()}
	name := s.cfg.Name
	expected := 0
	if st, err := s.Status(ctx); err == nil && st.LastFull != nil {
		expected = st.LastFull.Entries
	}
	// A dry run stages nothing (it would clear the staging of a sync that
	// runs meanwhile); a real one starts from an empty staging area.
	if !opt.DryRun {
		if err := s.store.ClearStagedDirectoryEntries(ctx, name); err != nil {
			return rep, fmt.Errorf("directory %s: %w", name, err)
		}
		defer func() {
			if err := s.store.ClearStagedDirectoryEntries(context.WithoutCancel(ctx), name); err != nil {
				s.log.Error("clearing staged entries", "err", err)
			}
		}()
	}

	// Plan: read every user, stage what changed and count the accounts
	// seen. An unchanged sync writes nothing.
	var plan plan
	url, err := s.eachPage(ctx, "", func(page []*ldap.Entry) error {
		if err := s.planPage(ctx, &rep, &plan, page, opt.DryRun); err != nil {
			return err
		}
		if opt.Progress != nil {
			opt.Progress(Progress{Entries: rep.Entries, Expected: expected, Elapsed: s.now().Sub(rep.Started)})
		}
		return nil
	})
	rep.Server = url
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}

	// Guard. The accounts not seen are those to remove: counted first, and
	// found (by a second read that marks the seen ones) only when there
	// are any and the guard lets them go.
	if rep.Entries == 0 {
		return rep, s.tripGuard(ctx, &rep, "the directory returned no users (check the base DN, the filter and the bind account's rights)")
	}
	total, err := s.store.CountDirectoryLinks(ctx, name)
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}
	removals := max(total-plan.seenLinked, 0)
	if err := s.checkGuard(ctx, &rep, removals, total, opt); err != nil {
		return rep, err
	}
	if opt.DryRun {
		rep.Removed = removals
		rep.Finished = s.now()
		return rep, nil
	}
	if removals > 0 || plan.seenLinked > total {
		if _, err := s.eachPage(ctx, url, func(page []*ldap.Entry) error { return s.markPage(ctx, rep.Run, page) }); err != nil {
			return rep, fmt.Errorf("directory %s: %w", name, err)
		}
		if removals, err = s.countUnseen(ctx, rep.Run); err != nil {
			return rep, fmt.Errorf("directory %s: %w", name, err)
		}
		if err := s.checkGuard(ctx, &rep, removals, total, opt); err != nil {
			return rep, err
		}
	}

	// Apply.
	if err := s.applyStaged(ctx, &rep); err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}
	if removals > 0 {
		if err := s.removeUnseen(ctx, &rep); err != nil {
			return rep, fmt.Errorf("directory %s: %w", name, err)
		}
	}
	rep.Finished = s.now()
	s.removalsSinceFull = 0
	if err := s.updateState(ctx, func(_ *flows.DirectoryState, st *Status) {
		r := rep
		st.LastFull, st.Server, st.Health, st.Guard = &r, url, HealthOK, ""
		st.Failures, st.NextRetry, st.Incremental = 0, time.Time{}, nil
	}); err != nil {
		return rep, err
	}
	s.log.Info("directory full sync", "run", rep.Run, "entries", rep.Entries, "created", rep.Created, "updated", rep.Updated,
		"suspended", rep.Suspended, "restored", rep.Restored, "removed", rep.Removed, "skipped", rep.Skipped,
		"conflicts", rep.Conflicts, "failed", rep.Failed, "took", rep.Duration())
	if rep.Changes() > 0 || rep.Conflicts > 0 {
		detail := fmt.Sprintf("%s: %d entries, %d created, %d updated, %d suspended, %d restored, %d removed, %d conflicts",
			name, rep.Entries, rep.Created, rep.Updated, rep.Suspended, rep.Restored, rep.Removed, rep.Conflicts)
		if err := s.flows.RecordEvent(ctx, s.actor(), "directory.sync", detail); err != nil {
			s.log.Error("auditing the sync", "err", err)
		}
	}
	return rep, nil
}

// readPages runs the paged search of the source's users and sends each
// page on out.
func (s *Source) readPages(ctx context.Context, conn *pagedConn, out chan<- []*ldap.Entry) error {
	return conn.search(ctx, pagedSearch{baseDN: s.cfg.BaseDN, filter: s.filter, attributes: s.mapper.attributes(),
		pageSize: s.cfg.PageSize, timeLimit: s.cfg.Timeout}, out)
}

// plan is what the first pass of a full sync learnt beyond its report.
type plan struct {
	// seenLinked counts the entries seen whose accounts exist and are not
	// removed: the source's accounts less those, if any, are to go.
	seenLinked int
}

// eachPage runs the paged search of the source's users (on url, or the
// first of the source's URLs that answers when url is empty) and calls fn
// with each page, in order. Pages come from one goroutine while fn works on
// the one before, so reading and planning overlap; at most two pages are
// held. It returns the URL used.
func (s *Source) eachPage(ctx context.Context, url string, fn func([]*ldap.Entry) error) (string, error) {
	cfg := s.cfg
	if url != "" {
		cfg.URLs = []string{url}
	}
	conn, url, err := dialPaged(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	pages := make(chan []*ldap.Entry)
	readErr := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(pages)
		readErr <- s.readPages(rctx, conn, pages)
	}()
	for page := range pages {
		if err := fn(page); err != nil {
			stop()
			for range pages {
			}
			<-readErr
			return url, err
		}
	}
	if err := <-readErr; err != nil {
		return url, fmt.Errorf("reading from %s: %w", url, err)
	}
	return url, nil
}

// checkGuard stops the sync (ErrGuard) when it would remove more accounts
// than the guard allows and than the admin confirmed.
func (s *Source) checkGuard(ctx context.Context, rep *RunReport, removals, total int, opt SyncOptions) error {
	if limit := s.guardLimit(total); removals > limit && removals > opt.ConfirmRemovals {
		rep.Removed = removals
		return s.tripGuard(ctx, rep, fmt.Sprintf("the sync would remove %d of %d accounts, more than the %d allowed", removals, total, limit))
	}
	return nil
}

// planPage maps a page, counts its entries whose accounts exist, and
// stages those that changed.
func (s *Source) planPage(ctx context.Context, rep *RunReport, plan *plan, page []*ldap.Entry, dry bool) error {
	entries, byID, err := s.mapPage(ctx, rep, page)
	if err != nil {
		return err
	}
	var staged []flows.DirectoryEntry
	for _, e := range entries {
		l, linked := byID[e.ExternalID]
		// A link whose hash matches is an account that is not removed
		// (every state change outside the sync forgets the hash).
		if linked && bytes.Equal(l.Hash, hashEntry(e)) {
			plan.seenLinked++
			rep.Unchanged++
			continue
		}
		staged = append(staged, e)
		var a *flows.Account
		if linked {
			got, err := s.store.GetAccount(ctx, l.AccountID)
			if err != nil && !errors.Is(err, flows.ErrNotFound) {
				return err
			}
			if err == nil && got.State != flows.AccountRemoved {
				plan.seenLinked++
				a = &got
			}
		}
		if dry {
			classify(rep, e, a)
		}
	}
	if dry || len(staged) == 0 {
		return nil
	}
	return s.store.StageDirectoryEntries(ctx, s.cfg.Name, rep.Run, staged)
}

// markPage marks the page's entries that have links seen by the run, so
// that the links left unmarked are those to remove.
func (s *Source) markPage(ctx context.Context, run string, page []*ldap.Entry) error {
	ids := make([]string, 0, len(page))
	for _, le := range page {
		if id, err := s.mapper.externalID(le); err == nil {
			ids = append(ids, id)
		}
	}
	return s.store.MarkDirectorySeen(ctx, s.cfg.Name, run, ids)
}

// mapPage maps a page of entries (counting and reporting those it cannot
// map) and reads their links, by external id.
func (s *Source) mapPage(ctx context.Context, rep *RunReport, page []*ldap.Entry) ([]flows.DirectoryEntry, map[string]flows.DirectoryLink, error) {
	now := s.now()
	entries := make([]flows.DirectoryEntry, 0, len(page))
	ids := make([]string, 0, len(page))
	for _, le := range page {
		rep.Entries++
		e, err := s.mapper.entry(le, now)
		if err != nil {
			rep.Skipped++
			rep.problem(fmt.Sprintf("%s: %v", le.DN, err))
			continue
		}
		entries = append(entries, e)
		ids = append(ids, e.ExternalID)
	}
	links, err := s.store.GetDirectoryLinks(ctx, s.cfg.Name, ids)
	if err != nil {
		return nil, nil, err
	}
	byID := make(map[string]flows.DirectoryLink, len(links))
	for _, l := range links {
		byID[l.ExternalID] = l
	}
	return entries, byID, nil
}

// classify counts what applying e would do to the account a (nil: none,
// or removed), for a dry run.
func classify(rep *RunReport, e flows.DirectoryEntry, a *flows.Account) {
	if a == nil {
		rep.Created++
		return
	}
	if a.Username != e.Username || a.Email != e.Email || a.Phone != e.Phone || a.DisplayName != e.DisplayName {
		rep.Updated++
	}
	switch {
	case e.State == flows.AccountSuspended && a.State == flows.AccountActive:
		rep.Suspended++
	case e.State == flows.AccountActive && a.State == flows.AccountSuspended && a.StateSource == flows.SourceDirectory:
		rep.Restored++
	}
}

// countUnseen counts the source's accounts the run did not see.
func (s *Source) countUnseen(ctx context.Context, run string) (int, error) {
	n, after := 0, ""
	for {
		ls, err := s.store.ListUnseenDirectoryLinks(ctx, s.cfg.Name, run, after, stagePage)
		if err != nil {
			return 0, err
		}
		n += len(ls)
		if len(ls) < stagePage {
			return n, nil
		}
		after = ls[len(ls)-1].ExternalID
	}
}

// applyStaged applies the run's staged entries.
func (s *Source) applyStaged(ctx context.Context, rep *RunReport) error {
	after := ""
	for {
		es, err := s.store.ListStagedDirectoryEntries(ctx, s.cfg.Name, rep.Run, after, stagePage)
		if err != nil {
			return err
		}
		for _, e := range es {
			if err := s.apply(ctx, rep, e, rep.Run); err != nil {
				return err
			}
		}
		if len(es) < stagePage {
			return nil
		}
		after = es[len(es)-1].ExternalID
	}
}

// apply applies one entry and counts what it did. Only a failure of the
// store or of ctx stops the sync; an entry that cannot be applied is
// counted and reported.
func (s *Source) apply(ctx context.Context, rep *RunReport, e flows.DirectoryEntry, run string) error {
	res, err := s.flows.ApplyDirectoryEntry(ctx, s.actor(), s.cfg.Name, e, hashEntry(e), run)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, flows.ErrConflict):
		rep.Conflicts++
		rep.problem(fmt.Sprintf("%s: %v", e.DN, err))
		s.log.Warn("directory entry not applied", "dn", e.DN, "err", err)
		return nil
	case errors.Is(err, flows.ErrInvalid):
		rep.Failed++
		rep.problem(fmt.Sprintf("%s: %v", e.DN, err))
		s.log.Warn("directory entry not applied", "dn", e.DN, "err", err)
		return nil
	default:
		return err
	}
	if res.Created {
		rep.Created++
		if s.cfg.Invite && res.Account.State == flows.AccountActive && res.Account.Email != "" {
			s.invite(ctx, rep, res.Account)
		}
	}
	if res.Updated {
		rep.Updated++
	}
	if res.Suspended {
		rep.Suspended++
	}
	if res.Restored {
		rep.Restored++
	}
	if !res.Changed() {
		rep.Unchanged++
	}
	return nil
}

// removeUnseen removes the accounts whose entries the run did not see.
func (s *Source) removeUnseen(ctx context.Context, rep *RunReport) error {
	after := ""
	for {
		ls, err := s.store.ListUnseenDirectoryLinks(ctx, s.cfg.Name, rep.Run, after, stagePage)
		if err != nil {
			return err
		}
		for _, l := range ls {
			if err := s.remove(ctx, rep, l.ExternalID, "no longer in the directory, or out of the sync's scope"); err != nil {
				return err
			}
		}
		if len(ls) < stagePage {
			return nil
		}
		after = ls[len(ls)-1].ExternalID
	}
}

// remove removes the account of one entry and counts it.
func (s *Source) remove(ctx context.Context, rep *RunReport, externalID, reason string) error {
	res, err := s.flows.RemoveDirectoryEntry(ctx, s.actor(), s.cfg.Name, externalID, reason)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if res.Removed {
		rep.Removed++
	}
	return nil
}

// TestReport is what Test found.
type TestReport struct {
	Server string
	Mode   string // the incremental sync the server offers
	// Entries is how many users the search returns; Skipped how many of
	// them could not be mapped.
	Entries int
	Skipped int
	// Sample is the first few users as keystep would map them, with the
	// state each would get.
	Sample   []flows.DirectoryEntry
	Problems []string
}

// Test binds, counts the users page by page and maps the first sample of
// them, changing nothing: what `keystep directory test` shows.
func (s *Source) Test(ctx context.Context, sample int) (TestReport, error) {
	var rep TestReport
	conn, url, err := dial(ctx, s.cfg)
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", s.cfg.Name, err)
	}
	rep.Server = url
	rep.Mode, err = s.detectMode(conn)
	conn.Close()
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", s.cfg.Name, err)
	}
	// The users are read, as the full sync reads them, from the same server.
	now := s.now()
	if _, err := s.eachPage(ctx, url, func(page []*ldap.Entry) error {
		for _, le := range page {
			rep.Entries++
			e, err := s.mapper.entry(le, now)
			if err != nil {
				rep.Skipped++
				if len(rep.Problems) < maxProblems {
					rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %v", le.DN, err))
				}
				continue
			}
			if len(rep.Sample) < sample {
				rep.Sample = append(rep.Sample, e)
			}
		}
		return nil
	}); err != nil {
		return rep, fmt.Errorf("directory %s: %w", s.cfg.Name, err)
	}
	return rep, nil
}

// invite emails a new account its enrollment invitation. A failure is
// reported, not fatal: an admin can invite again.
func (s *Source) invite(ctx context.Context, rep *RunReport, a flows.Account) {
	if _, err := s.flows.EmailInvitation(ctx, s.actor(), a.ID); err != nil {
		rep.problem(fmt.Sprintf("invitation of %s: %v", a.Username, err))
		s.log.Warn("the new account's invitation was not sent", "account", a.Username, "err", err)
		return
	}
	rep.Invited++
}
