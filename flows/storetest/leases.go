package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// The conformance tests of leases: one holder at a time, renewal, expiry,
// release.

var leaseFunctional = []struct {
	name string
	fn   func(t *testing.T, s flows.Tx)
}{
	{"Lease", testLease},
	{"LeaseErrors", testLeaseErrors},
}

var leaseConcurrent = []struct {
	name string
	fn   func(t *testing.T, s flows.Store)
}{
	{"AcquireLease", testConcurrentAcquireLease},
}

func acquire(t *testing.T, s flows.Tx, name, holder string, now time.Time, ttl time.Duration) bool {
	t.Helper()
	ok, err := s.AcquireLease(context.Background(), name, holder, now, ttl)
	must(t, fmt.Sprintf("acquire %s for %s", name, holder), err)
	return ok
}

func testLease(t *testing.T, s flows.Tx) {
	ctx := context.Background()
	const ttl = 30 * time.Second
	if !acquire(t, s, "directory:corp", "a", t0, ttl) {
		t.Fatal("a could not take a free lease")
	}
	if acquire(t, s, "directory:corp", "b", t0.Add(time.Second), ttl) {
		t.Fatal("b took a's running lease")
	}
	if !acquire(t, s, "directory:other", "b", t0, ttl) {
		t.Fatal("b could not take another lease")
	}
	// a renews before expiry: the lease now runs to t0+20s+30s.
	if !acquire(t, s, "directory:corp", "a", t0.Add(20*time.Second), ttl) {
		t.Fatal("a could not renew its lease")
	}
	if acquire(t, s, "directory:corp", "b", t0.Add(40*time.Second), ttl) {
		t.Fatal("b took a's renewed lease before it expired")
	}
	// It expires at t0+50s exactly: b takes it over, and a has lost it.
	if !acquire(t, s, "directory:corp", "b", t0.Add(50*time.Second), ttl) {
		t.Fatal("b could not take over an expired lease")
	}
	if acquire(t, s, "directory:corp", "a", t0.Add(51*time.Second), ttl) {
		t.Fatal("a renewed a lease b took over")
	}
	// Releasing a lease one does not hold changes nothing.
	must(t, "release by a", s.ReleaseLease(ctx, "directory:corp", "a"))
	if acquire(t, s, "directory:corp", "a", t0.Add(52*time.Second), ttl) {
		t.Fatal("a's release freed b's lease")
	}
	must(t, "release by b", s.ReleaseLease(ctx, "directory:corp", "b"))
	must(t, "release again", s.ReleaseLease(ctx, "directory:corp", "b"))
	if !acquire(t, s, "directory:corp", "a", t0.Add(53*time.Second), ttl) {
		t.Fatal("a could not take a released lease")
	}
	must(t, "release unknown", s.ReleaseLease(ctx, "nothing", "a"))
}

func testLeaseErrors(t *testing.T, s flows.Tx) {
	ctx := context.Background()
	for _, c := range []struct {
		name, holder string
		ttl          time.Duration
	}{{"", "a", time.Second}, {"l", "", time.Second}, {"l", "a", 0}, {"l", "a", -time.Second}} {
		ok, err := s.AcquireLease(ctx, c.name, c.holder, t0, c.ttl)
		wantErr(t, fmt.Sprintf("acquire %q/%q/%s", c.name, c.holder, c.ttl), err, flows.ErrInvalid)
		if ok {
			t.Errorf("acquire %q/%q/%s: held", c.name, c.holder, c.ttl)
		}
	}
	// Nothing was written: anyone can take "l".
	if !acquire(t, s, "l", "z", t0, time.Second) {
		t.Fatal("a refused acquisition left a lease behind")
	}
}

// testConcurrentAcquireLease: many holders race for one free lease; one
// gets it.
func testConcurrentAcquireLease(t *testing.T, s flows.Store) {
	const n = 16
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  []string
		errs []error
	)
	start := make(chan struct{})
	for i := range n {
		holder := fmt.Sprintf("holder-%d", i)
		wg.Go(func() {
			<-start
			ok, err := s.AcquireLease(context.Background(), "race", holder, t0, time.Minute)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				won = append(won, holder)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if len(won) != 1 {
		t.Fatalf("%d holders got the lease: %v", len(won), won)
	}
}

func (e eachInTx) AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (bool, error) { return tx.AcquireLease(ctx, name, holder, now, ttl) })
}

func (e eachInTx) ReleaseLease(ctx context.Context, name, holder string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.ReleaseLease(ctx, name, holder) })
}
