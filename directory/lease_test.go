package directory

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/slapdtest"
)

// leaseRun is a Source.Run in the background, followed through its hooks.
type leaseRun struct {
	lease     chan bool
	full      chan error
	following chan string
	cancel    context.CancelFunc
	done      chan error
}

func startLeaseRun(t *testing.T, ctx context.Context, src *Source) *leaseRun {
	t.Helper()
	r := &leaseRun{lease: make(chan bool, 100), full: make(chan error, 100), following: make(chan string, 100), done: make(chan error, 1)}
	ctx, r.cancel = context.WithCancel(ctx)
	go func() {
		r.done <- src.Run(ctx, RunHooks{
			Lease:      func(held bool) { r.lease <- held },
			FullSynced: func(_ RunReport, err error) { r.full <- err },
			Following:  func(m string) { r.following <- m },
		})
	}()
	t.Cleanup(r.stop)
	return r
}

// stop ends the Run and waits for it (a second stop returns at once).
func (r *leaseRun) stop() {
	r.cancel()
	<-r.done
	r.done <- context.Canceled
}

// wantLease waits for the next lease report of r.
func wantLease(t *testing.T, who string, r *leaseRun, want bool) {
	t.Helper()
	if got := awaitCh(t, who+"'s lease report", r.lease); got != want {
		t.Fatalf("%s: lease held %v, want %v", who, got, want)
	}
}

// twoInstances is one source run by two instances (two Sources with their
// own holders) on one store and one fake clock.
func twoInstances(t *testing.T) (*syncEnv, *Source, *Source) {
	srv := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(10, "people")})
	e := newSyncEnv(t, srv, nil)
	a := e.src
	a.holder = "instance-a"
	b, err := NewSource(e.src.cfg, e.svc, WithClock(e.clock), WithLease("instance-b", 0))
	if err != nil {
		t.Fatal(err)
	}
	return e, a, b
}

// TestLeaseOneInstanceSyncs: of two instances, only the lease holder
// syncs; when it dies (its lease left in the store), the other takes over
// once the lease expires and follows the directory's changes.
func TestLeaseOneInstanceSyncs(t *testing.T) {
	e, a, b := twoInstances(t)
	ra := startLeaseRun(t, e.ctx, a)
	wantLease(t, "a", ra, true)
	if err := awaitCh(t, "a's full sync", ra.full); err != nil {
		t.Fatal(err)
	}
	awaitCh(t, "a to follow", ra.following)
	rb := startLeaseRun(t, e.ctx, b)
	wantLease(t, "b", rb, false)
	if n, _ := e.store.CountDirectoryLinks(e.ctx, "corp"); n != 10 {
		t.Fatalf("accounts after a's sync: %d", n)
	}

	// a dies: its lease stays until it expires.
	a.keepLease = true
	ra.stop()
	for i := 1; i < 3; i++ { // at +10 s and +20 s the lease still runs
		e.clock.Advance(DefaultLeaseTTL / 3)
		wantLease(t, "b", rb, false)
	}
	select {
	case err := <-rb.full:
		t.Fatalf("b synced without the lease: %v", err)
	case m := <-rb.following:
		t.Fatalf("b followed (%s) without the lease", m)
	default:
	}
	e.clock.Advance(DefaultLeaseTTL / 3) // +30 s: expired
	wantLease(t, "b", rb, true)
	// b resumes the incremental sync from the stored cookie.
	awaitCh(t, "b to follow", rb.following)
	e.srv.LockPermanently(t, people("user000005"))
	e.waitFor("user000005 suspended by b's sync", func() bool {
		return e.account("user000005").State == flows.AccountSuspended
	})
}

// TestLeaseLost: an instance whose lease another took stops syncing and
// waits; it syncs again once it gets the lease back. A Run that ends
// releases its lease.
func TestLeaseLost(t *testing.T) {
	e, a, _ := twoInstances(t)
	ra := startLeaseRun(t, e.ctx, a)
	wantLease(t, "a", ra, true)
	awaitCh(t, "a to follow", ra.following)

	// Another instance takes the lease (as if a's renewals had been too
	// late): at a's next renewal, a stops and waits.
	now := e.clock.Now()
	if ok, err := e.store.AcquireLease(e.ctx, "directory:corp", "thief", now.Add(DefaultLeaseTTL), DefaultLeaseTTL); err != nil || !ok {
		t.Fatalf("take the expired lease: %v %v", ok, err)
	}
	e.clock.Advance(DefaultLeaseTTL / 3)
	wantLease(t, "a", ra, false)
	// It no longer follows: a change is not applied.
	e.srv.LockPermanently(t, people("user000003"))
	if err := e.store.ReleaseLease(e.ctx, "directory:corp", "thief"); err != nil {
		t.Fatal(err)
	}
	if got := e.account("user000003").State; got != flows.AccountActive {
		t.Fatalf("user000003 is %s while nobody held the lease", got)
	}
	e.clock.Advance(DefaultLeaseTTL / 3)
	wantLease(t, "a", ra, true)
	e.waitFor("user000003 suspended once a syncs again", func() bool {
		return e.account("user000003").State == flows.AccountSuspended
	})

	ra.stop()
	if ok, err := e.store.AcquireLease(e.ctx, "directory:corp", "next", e.clock.Now(), time.Minute); err != nil || !ok {
		t.Fatalf("the lease after a stopped: held elsewhere %v, %v", !ok, err)
	}
}

// TestRequestFullSyncOnAnotherInstance: an admin's request that reaches
// the instance without the lease (behind a load balancer) is run by the
// one that holds it, with its confirmation of removals.
func TestRequestFullSyncOnAnotherInstance(t *testing.T) {
	e, a, b := twoInstances(t)
	ra := startLeaseRun(t, e.ctx, a)
	wantLease(t, "a", ra, true)
	if err := awaitCh(t, "a's full sync", ra.full); err != nil {
		t.Fatal(err)
	}
	awaitCh(t, "a to follow", ra.following)
	rb := startLeaseRun(t, e.ctx, b)
	wantLease(t, "b", rb, false)

	// Requested through b: a runs it, and b does nothing.
	if err := b.RequestFullSync(e.ctx, 0); err != nil {
		t.Fatal(err)
	}
	if err := awaitCh(t, "a's requested full sync", ra.full); err != nil {
		t.Fatal(err)
	}
	if req, err := a.pendingRequest(e.ctx); err != nil || req != nil {
		t.Errorf("the request is still pending: %+v, %v", req, err)
	}

	// A removal past the guard, confirmed through b.
	for i := 1; i <= 3; i++ {
		e.srv.Delete(t, people(fmt.Sprintf("user%06d", i)))
	}
	if err := b.RequestFullSync(e.ctx, 3); err != nil {
		t.Fatal(err)
	}
	for {
		err := awaitCh(t, "a's confirmed full sync", ra.full)
		if err != nil {
			t.Fatalf("the confirmed sync: %v", err)
		}
		if n, _ := e.store.CountDirectoryLinks(e.ctx, "corp"); n == 7 {
			break
		}
	}
	select {
	case err := <-rb.full:
		t.Fatalf("b synced without the lease: %v", err)
	default:
	}
}

// TestFullSyncLeased: a one-off sync (keystep directory sync) is refused
// while an instance syncs the source, and runs, holding the lease, when
// none does.
func TestFullSyncLeased(t *testing.T) {
	e, a, b := twoInstances(t)
	ra := startLeaseRun(t, e.ctx, a)
	wantLease(t, "a", ra, true)
	if err := awaitCh(t, "a's full sync", ra.full); err != nil {
		t.Fatal(err)
	}
	if _, err := b.FullSyncLeased(e.ctx, SyncOptions{}); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("a one-off sync beside a's: %v", err)
	}
	if _, err := b.FullSyncLeased(e.ctx, SyncOptions{DryRun: true}); err != nil {
		t.Errorf("a dry run beside a's: %v", err)
	}
	ra.stop() // a releases its lease
	rep, err := b.FullSyncLeased(e.ctx, SyncOptions{})
	if err != nil || rep.Unchanged != 10 {
		t.Fatalf("a one-off sync alone: %+v, %v", rep, err)
	}
	// It released the lease: a takes it again.
	if held, err := e.store.AcquireLease(e.ctx, a.leaseName(), "someone", e.clock.Now(), time.Minute); err != nil || !held {
		t.Errorf("the lease after the one-off sync: %v, %v", held, err)
	}
}
