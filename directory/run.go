package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/flows"
)

// Backoff bounds of a failing source.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// backoff is the wait after the n-th failure in a row (1 s, 2 s, 4 s… up
// to 5 minutes).
func backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

// TriggerConfirmed asks a running Run to start a full sync now that may
// remove up to n accounts past the guard (an admin's confirmation of a
// real mass departure, for this one sync).
func (s *Source) TriggerConfirmed(n int) {
	s.confirmRemovals.Store(int64(max(n, 0)))
	s.Trigger()
}

// RequestFullSync asks for a full sync now, letting up to confirmRemovals
// removals through the guard: the request is kept in the store and
// announced to every instance, and whichever holds the source's lease runs
// it (this one, or another behind the same load balancer).
func (s *Source) RequestFullSync(ctx context.Context, confirmRemovals int) error {
	req, err := json.Marshal(SyncRequest{At: s.now(), ConfirmRemovals: max(confirmRemovals, 0)})
	if err != nil {
		return err
	}
	// Its own row, not the status one, which the syncing instance rewrites.
	st := flows.DirectoryState{Source: requestKey(s.cfg.Name), Status: req, UpdatedAt: s.now()}
	if err := s.store.PutDirectoryState(ctx, st); err != nil {
		return fmt.Errorf("directory %s: request a full sync: %w", s.cfg.Name, err)
	}
	s.flows.Events().Publish(requestTopic(s.cfg.Name))
	return nil
}

// requestKey is the store row of a source's pending full sync request.
func requestKey(name string) string { return name + "/request" }

// pendingRequest returns the source's pending full sync request, or nil.
func (s *Source) pendingRequest(ctx context.Context) (*SyncRequest, error) {
	st, err := s.store.GetDirectoryState(ctx, requestKey(s.cfg.Name))
	if err != nil || len(st.Status) == 0 {
		return nil, err
	}
	var req SyncRequest
	if err := json.Unmarshal(st.Status, &req); err != nil {
		return nil, nil // unreadable: dropped
	}
	return &req, nil
}

// requestTopic is the event announcing a full sync request for a source.
func requestTopic(name string) string { return "directory/" + name }

// watchRequests runs, while this instance holds the lease, the full syncs
// admins request (RequestFullSync), on any instance.
func (s *Source) watchRequests(ctx context.Context) {
	ch, stop := s.flows.Events().Subscribe(requestTopic(s.cfg.Name))
	defer stop()
	for {
		if req, err := s.pendingRequest(ctx); err == nil && req != nil {
			err := s.store.PutDirectoryState(ctx, flows.DirectoryState{Source: requestKey(s.cfg.Name), UpdatedAt: s.now()})
			if err == nil {
				s.log.Info("running the full sync an admin asked for", "at", req.At, "confirm_removals", req.ConfirmRemovals)
				s.TriggerConfirmed(req.ConfirmRemovals)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
	}
}

// Trigger asks a running Run to start a full sync now.
func (s *Source) Trigger() {
	s.fullWanted.Store(true)
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// RunHooks lets a caller (the tests, the server) follow a running sync.
type RunHooks struct {
	// Following is called when the incremental sync has caught up and
	// follows changes as they come (syncrepl), or after each DirSync poll.
	Following func(mode string)
	// FullSynced is called after each full sync, with its error.
	FullSynced func(RunReport, error)
	// Failed is called when a sync failed, once the retry is scheduled.
	Failed func(error)
	// Lease is called with true when Run takes the source's lease (it
	// syncs from then on), and with false after each attempt that does not
	// get it (another instance holds it; a Run that lost it tries again at
	// once). The next attempt or renewal is already waiting on the clock
	// when Lease is called.
	Lease func(held bool)
}

// Run keeps the source in sync until ctx ends: a full sync at start and
// every FullSyncInterval (or when triggered), and the incremental sync in
// between. A failing directory keeps the last known states: Run records
// the failure in the status and tries again with backoff. A sync stopped by
// the guard waits for the next interval or a trigger (an admin's confirmed
// sync). Run returns ctx's error.
//
// Several instances may run the same source on one store: Run syncs only
// while it holds the source's lease ("directory:<name>" in the store),
// which it renews every third of its TTL. Without it, Run tries again
// every third of the TTL, so that it takes over within about a TTL when
// the holder dies; when it loses it (a renewal fails, another instance
// took it), it stops syncing and goes back to waiting. A Run that ends
// releases the lease.
func (s *Source) Run(ctx context.Context, hooks RunHooks) error {
	name, ttl := s.leaseName(), s.leaseTTL
	for {
		next, err := s.awaitLease(ctx, hooks)
		if err != nil {
			return err
		}
		s.log.Info("directory sync lease taken; this instance syncs the source", "holder", s.holder)
		hctx, cancel := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			s.renewLease(hctx, cancel, next)
		}()
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			s.watchRequests(hctx)
		}()
		if hooks.Lease != nil {
			hooks.Lease(true)
		}
		_ = s.runHeld(hctx, hooks) // it returns hctx's error
		cancel()
		<-renewed
		<-watched
		if ctx.Err() != nil {
			if !s.keepLease {
				rctx, done := context.WithTimeout(context.WithoutCancel(ctx), ttl)
				if err := s.store.ReleaseLease(rctx, name, s.holder); err != nil {
					s.log.Warn("releasing the directory sync lease; another instance takes over when it expires", "err", err)
				}
				done()
			}
			return ctx.Err()
		}
		s.log.Warn("lost the directory sync lease; this instance stops syncing the source")
	}
}

// ErrLeaseHeld is a one-off sync refused because an instance is syncing
// the source (it holds the source's lease).
var ErrLeaseHeld = errors.New("another keystep instance is syncing this directory source")

// FullSyncLeased is FullSync for a process that is not running the source
// (the keystep directory sync command): it takes the source's lease for
// the sync's length, renewing it, so that it never runs beside an
// instance's sync of the same source; ErrLeaseHeld if one holds it. A dry
// run changes nothing and takes no lease.
func (s *Source) FullSyncLeased(ctx context.Context, opt SyncOptions) (RunReport, error) {
	if opt.DryRun {
		return s.FullSync(ctx, opt)
	}
	held, err := s.store.AcquireLease(ctx, s.leaseName(), s.holder, s.now(), s.leaseTTL)
	if err != nil {
		return RunReport{}, fmt.Errorf("directory %s: the sync lease: %w", s.cfg.Name, err)
	}
	if !held {
		return RunReport{}, fmt.Errorf("directory %s: %w; ask it instead (keystep directory trigger %s)", s.cfg.Name, ErrLeaseHeld, s.cfg.Name)
	}
	hctx, cancel := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.renewLease(hctx, cancel, s.clock.After(s.leaseTTL/3))
	}()
	rep, err := s.FullSync(hctx, opt)
	cancel()
	<-renewed
	rctx, done := context.WithTimeout(context.WithoutCancel(ctx), s.leaseTTL)
	defer done()
	if rerr := s.store.ReleaseLease(rctx, s.leaseName(), s.holder); rerr != nil {
		s.log.Warn("releasing the directory sync lease; it expires on its own", "err", rerr)
	}
	return rep, err
}

// leaseName is the name of the source's lease in the store.
func (s *Source) leaseName() string { return "directory:" + s.cfg.Name }

// awaitLease returns once Run holds the source's lease, with the timer of
// its first renewal; it tries every third of the TTL.
func (s *Source) awaitLease(ctx context.Context, hooks RunHooks) (<-chan time.Time, error) {
	for logged := false; ; {
		timer := s.clock.After(s.leaseTTL / 3)
		held, err := s.store.AcquireLease(ctx, s.leaseName(), s.holder, s.now(), s.leaseTTL)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("directory sync lease: the store did not answer; trying again", "err", err)
		}
		if held && err == nil {
			return timer, nil
		}
		if err == nil && !logged {
			s.log.Info("another instance holds the directory sync lease; this one takes over if it stops renewing it",
				"holder", s.holder, "retry_every", s.leaseTTL/3)
			logged = true
		}
		if hooks.Lease != nil {
			hooks.Lease(false)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer:
		}
	}
}

// renewLease renews the lease when timer fires and every third of the TTL
// after, until ctx ends; when a renewal fails it cancels the sync (lost).
func (s *Source) renewLease(ctx context.Context, lost context.CancelFunc, timer <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer:
		}
		timer = s.clock.After(s.leaseTTL / 3)
		held, err := s.store.AcquireLease(ctx, s.leaseName(), s.holder, s.now(), s.leaseTTL)
		if ctx.Err() != nil {
			return
		}
		if err != nil || !held {
			if err == nil {
				err = errors.New("another instance holds the lease")
			}
			s.log.Warn("directory sync lease not renewed", "err", err)
			lost()
			return
		}
	}
}

// runHeld is Run while the lease is held: it returns when ctx ends.
func (s *Source) runHeld(ctx context.Context, hooks RunHooks) error {
	failures := 0
	fail := func(err error) error {
		failures++
		wait := backoff(failures)
		n := s.recordFailure(ctx, err, s.now().Add(wait))
		s.log.Error("directory sync failed; the last known states stay", "err", err, "failures", n, "retry_in", wait)
		if n == 5 {
			s.flows.AlertAdmins(ctx, flows.AdminAlert{Kind: flows.AlertDirectoryDown,
				Detail: fmt.Sprintf("directory %s: %d syncs failed in a row: %v", s.cfg.Name, n, err)})
		}
		timer := s.clock.After(wait)
		if hooks.Failed != nil {
			hooks.Failed(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer:
		case <-s.trigger:
		}
		return nil
	}
	for {
		mode, err := s.mode(ctx)
		if err != nil {
			if err := fail(err); err != nil {
				return err
			}
			continue
		}
		// DirSync first takes the server's cookie, so that what changes
		// during the full sync is seen by the next poll.
		fresh := false // the cookie was just taken: a full sync must follow
		if mode == ModeDirSync {
			cookie, err := s.loadCookie(ctx, ModeDirSync)
			if err == nil && cookie == nil {
				_, err = s.dirSync(ctx)
				fresh = true
			}
			if err != nil {
				if err := fail(err); err != nil {
					return err
				}
				continue
			}
		}
		// A restart with a cookie and a recent full sync resumes the
		// incremental sync where it stopped.
		wait, resume := s.resumable(ctx, mode)
		resume = resume && !fresh
		guarded := false
		if !resume {
			rep, err := s.FullSync(ctx, SyncOptions{ConfirmRemovals: int(s.confirmRemovals.Swap(0))})
			if hooks.FullSynced != nil {
				hooks.FullSynced(rep, err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil && !errors.Is(err, ErrGuard) {
				if err := fail(err); err != nil {
					return err
				}
				continue
			}
			guarded, wait = err != nil, s.cfg.FullSyncInterval
		}
		failures = 0
		if err := s.followUntilNextFull(ctx, mode, guarded, wait, hooks); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := fail(err); err != nil {
				return err
			}
		}
	}
}

// resumable reports whether the incremental sync can go on from its
// stored cookie without a full sync first (the last full sync is younger
// than FullSyncInterval and worked), and how long until the next full sync.
func (s *Source) resumable(ctx context.Context, mode string) (time.Duration, bool) {
	if mode != ModeSyncrepl && mode != ModeDirSync || s.fullWanted.Load() {
		return 0, false
	}
	cookie, err := s.loadCookie(ctx, mode)
	if err != nil || cookie == nil {
		return 0, false
	}
	st, err := s.Status(ctx)
	if err != nil || st.LastFull == nil || st.LastFull.Finished.IsZero() || st.Health == HealthGuard {
		return 0, false
	}
	left := s.cfg.FullSyncInterval - s.now().Sub(st.LastFull.Finished)
	return left, left > 0
}

// mode detects the incremental sync to use.
func (s *Source) mode(ctx context.Context) (string, error) {
	if s.cfg.Incremental != "auto" && s.cfg.Incremental != "" {
		return s.cfg.Incremental, nil
	}
	conn, _, err := dial(ctx, s.cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return s.detectMode(conn)
}

// followUntilNextFull runs the incremental sync until the next full sync
// is due or triggered. After the guard stopped a full sync, nothing runs
// until then.
func (s *Source) followUntilNextFull(ctx context.Context, mode string, guarded bool, wait time.Duration, hooks RunHooks) error {
	next := s.clock.After(wait)
	if guarded || mode == ModeNone {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
		case <-s.trigger:
		}
		return nil
	}
	if mode == ModeSyncrepl {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() {
			s.syncMu.Lock()
			defer s.syncMu.Unlock()
			done <- s.syncrepl(fctx, func() {
				if hooks.Following != nil {
					hooks.Following(mode)
				}
			})
		}()
		select {
		case err := <-done:
			return err
		case <-next:
		case <-s.trigger:
		case <-ctx.Done():
		}
		cancel()
		<-done
		return ctx.Err()
	}
	// DirSync polls.
	for {
		s.syncMu.Lock()
		_, err := s.dirSync(ctx)
		s.syncMu.Unlock()
		if err != nil {
			return err
		}
		if hooks.Following != nil {
			hooks.Following(mode)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-next:
			return nil
		case <-s.trigger:
			return nil
		case <-s.clock.After(s.cfg.PollInterval):
		}
	}
}
