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
	if err := s.store.ClearStagedDirectoryEntries(ctx, name); err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}
	defer func() {
		if err := s.store.ClearStagedDirectoryEntries(context.WithoutCancel(ctx), name); err != nil {
			s.log.Error("clearing staged entries", "err", err)
		}
	}()

	// Read: pages come from one goroutine while this one plans the one
	// before, so reading and writing overlap; at most two pages are held.
	conn, url, err := dialPaged(ctx, s.cfg)
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}
	defer conn.Close()
	rep.Server = url
	pages := make(chan []*ldap.Entry)
	readErr := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		defer close(pages)
		readErr <- s.readPages(rctx, conn, pages)
	}()
	for page := range pages {
		if err := s.planPage(ctx, &rep, page, opt.DryRun); err != nil {
			stop()
			for range pages {
			}
			return rep, fmt.Errorf("directory %s: %w", name, err)
		}
		if opt.Progress != nil {
			opt.Progress(Progress{Entries: rep.Entries, Expected: expected, Elapsed: s.now().Sub(rep.Started)})
		}
	}
	if err := <-readErr; err != nil {
		return rep, fmt.Errorf("directory %s: reading from %s: %w", name, url, err)
	}

	// Guard.
	if rep.Entries == 0 {
		return rep, s.tripGuard(ctx, &rep, "the directory returned no users (check the base DN, the filter and the bind account's rights)")
	}
	removals, err := s.countUnseen(ctx, rep.Run)
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}
	total, err := s.store.CountDirectoryLinks(ctx, name)
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}
	if limit := s.guardLimit(total); removals > limit && removals > opt.ConfirmRemovals {
		rep.Removed = removals
		return rep, s.tripGuard(ctx, &rep, fmt.Sprintf("the sync would remove %d of %d accounts, more than the %d allowed", removals, total, limit))
	}
	if opt.DryRun {
		rep.Removed = removals
		rep.Finished = s.now()
		return rep, nil
	}

	// Apply.
	if err := s.applyStaged(ctx, &rep); err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
	}
	if err := s.removeUnseen(ctx, &rep); err != nil {
		return rep, fmt.Errorf("directory %s: %w", name, err)
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

// planPage maps a page, marks its known entries seen, and stages those
// that changed.
func (s *Source) planPage(ctx context.Context, rep *RunReport, page []*ldap.Entry, dry bool) error {
	entries, ids, byID, err := s.mapPage(ctx, rep, page)
	if err != nil {
		return err
	}
	seen := ids[:0]
	var staged []flows.DirectoryEntry
	for _, e := range entries {
		l, linked := byID[e.ExternalID]
		if linked {
			seen = append(seen, e.ExternalID)
			if bytes.Equal(l.Hash, hashEntry(e)) {
				rep.Unchanged++
				continue
			}
		}
		staged = append(staged, e)
		if dry {
			if err := s.classify(ctx, rep, e, l, linked); err != nil {
				return err
			}
		}
	}
	if err := s.store.MarkDirectorySeen(ctx, s.cfg.Name, rep.Run, seen); err != nil {
		return err
	}
	if len(staged) == 0 {
		return nil
	}
	return s.store.StageDirectoryEntries(ctx, s.cfg.Name, rep.Run, staged)
}

// mapPage maps a page of entries (counting and reporting those it cannot
// map) and reads their links, by external id.
func (s *Source) mapPage(ctx context.Context, rep *RunReport, page []*ldap.Entry) ([]flows.DirectoryEntry, []string, map[string]flows.DirectoryLink, error) {
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
		return nil, nil, nil, err
	}
	byID := make(map[string]flows.DirectoryLink, len(links))
	for _, l := range links {
		byID[l.ExternalID] = l
	}
	return entries, ids, byID, nil
}

// classify counts what applying e would do, for a dry run.
func (s *Source) classify(ctx context.Context, rep *RunReport, e flows.DirectoryEntry, l flows.DirectoryLink, linked bool) error {
	if !linked {
		rep.Created++
		return nil
	}
	a, err := s.store.GetAccount(ctx, l.AccountID)
	if errors.Is(err, flows.ErrNotFound) || err == nil && a.State == flows.AccountRemoved {
		rep.Created++
		return nil
	}
	if err != nil {
		return err
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
	return nil
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
	same := s.cfg
	same.URLs = []string{url}
	pc, _, err := dialPaged(ctx, same)
	if err != nil {
		return rep, fmt.Errorf("directory %s: %w", s.cfg.Name, err)
	}
	defer pc.Close()
	pages := make(chan []*ldap.Entry)
	readErr := make(chan error, 1)
	go func() {
		defer close(pages)
		readErr <- s.readPages(ctx, pc, pages)
	}()
	now := s.now()
	for page := range pages {
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
	}
	if err := <-readErr; err != nil {
		return rep, fmt.Errorf("directory %s: reading from %s: %w", s.cfg.Name, url, err)
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
