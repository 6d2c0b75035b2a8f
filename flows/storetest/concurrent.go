package storetest

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// Race runs fn(i) for i in [0, n) on n goroutines released together, waits
// for them all, and returns their errors by i.
func Race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one call succeeded and every other failed
// with loser, and returns the winner's index (-1 if none).
func oneWinner(t *testing.T, what string, errs []error, loser error) int {
	t.Helper()
	winner, wins, losses := -1, 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			winner = i
		case errors.Is(err, loser):
			losses++
		default:
			t.Errorf("%s: call %d failed with %v, want nil or %v", what, i, err, loser)
		}
	}
	if wins != 1 || losses != len(errs)-1 {
		t.Errorf("%s: %d succeeded and %d got %v, want 1 and %d", what, wins, losses, loser, len(errs)-1)
	}
	return winner
}

func testConcurrentDecide(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "sign-in", s.CreateSignIn(ctx, signIn("si-1", "acc-1", t0, t0.Add(time.Minute))))
	for i := range 200 {
		must(t, "device", s.CreateDevice(ctx, device(fmt.Sprintf("dev-%d", i), "acc-1", t0)))
	}
	errs := Race(200, func(i int) error {
		status := flows.StatusApproved
		if i%2 == 1 {
			status = flows.StatusDenied
		}
		return s.DecideSignIn(ctx, flows.SignIn{ID: "si-1", Status: status, DecidedAt: t0.Add(time.Duration(i)),
			DecidedBy: flows.MethodPush, DeviceID: fmt.Sprintf("dev-%d", i), Reason: fmt.Sprintf("call %d", i)})
	})
	winner := oneWinner(t, "200 concurrent DecideSignIn", errs, flows.ErrAlreadyDecided)
	got, err := s.GetSignIn(ctx, "si-1")
	must(t, "get", err)
	if winner >= 0 && (got.DeviceID != fmt.Sprintf("dev-%d", winner) || got.Reason != fmt.Sprintf("call %d", winner)) {
		t.Errorf("stored decision is %q/%q, want the winner's (call %d)", got.DeviceID, got.Reason, winner)
	}
}

func testConcurrentRedeem(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "invitation", s.CreateInvitation(ctx, invitation("inv-1", "acc-1", t0.Add(time.Hour))))
	errs := Race(200, func(i int) error {
		return s.RedeemInvitation(ctx, "inv-1", t0, fmt.Sprintf("dev-%d", i))
	})
	winner := oneWinner(t, "200 concurrent RedeemInvitation", errs, flows.ErrAlreadyUsed)
	got, err := s.GetInvitationByTokenHash(ctx, []byte("hash-of-inv-1"))
	must(t, "get", err)
	if winner >= 0 && got.UsedDevice != fmt.Sprintf("dev-%d", winner) {
		t.Errorf("invitation used by %q, want the winner dev-%d", got.UsedDevice, winner)
	}
}

func testConcurrentNonce(t *testing.T, s flows.Store) {
	ctx := t.Context()
	errs := Race(200, func(int) error { return s.UseNonce(ctx, "sig:same", t0.Add(time.Minute)) })
	oneWinner(t, "200 concurrent UseNonce", errs, flows.ErrReplay)
}

func testConcurrentAudit(t *testing.T, s flows.Store) {
	ctx := t.Context()
	const n = 100
	got := make([]flows.AuditEvent, n)
	errs := Race(n, func(i int) error {
		var err error
		got[i], err = s.AppendAudit(ctx, flows.AuditEvent{Time: t0, Actor: "test", Action: "x", Detail: fmt.Sprintf("call %d", i)})
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("AppendAudit call %d: %v", i, err)
		}
	}
	var placed []int64
	for _, ev := range got {
		placed = append(placed, ev.Seq)
	}
	sort.Slice(placed, func(i, j int) bool { return placed[i] < placed[j] })
	for i, seq := range placed {
		if seq != int64(i+1) {
			t.Errorf("concurrent appends got seqs %v, want 1..%d once each", placed, n)
			break
		}
	}
	res, err := flows.VerifyAuditChain(ctx, s)
	must(t, "verify", err)
	if !res.OK || res.Events != n {
		t.Errorf("chain after %d concurrent appends: %+v, want OK with %d events", n, res, n)
	}
	evs, err := s.ListAudit(ctx, flows.AuditFilter{})
	must(t, "list", err)
	details := map[string]bool{}
	for _, ev := range evs {
		details[ev.Detail] = true
	}
	for i := range n {
		if !details[fmt.Sprintf("call %d", i)] {
			t.Errorf("the event of call %d is missing", i)
		}
	}
}

// testConcurrentSignInsWithAudit mixes transactions that write a row and then
// append to the chain with bare appends, as the service does.
func testConcurrentSignInsWithAudit(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	const n = 60
	errs := Race(n, func(i int) error {
		if i%3 == 2 {
			_, err := s.AppendAudit(ctx, flows.AuditEvent{Time: t0, Actor: "admin", Action: "x"})
			return err
		}
		id := fmt.Sprintf("si-%02d", i)
		return s.InTx(ctx, func(tx flows.Tx) error {
			if err := tx.CreateSignIn(ctx, signIn(id, "acc-1", t0, t0.Add(time.Minute))); err != nil {
				return err
			}
			_, err := tx.AppendAudit(ctx, flows.AuditEvent{Time: t0, Actor: "test", Action: flows.AuditSignInStarted, SignInID: id})
			return err
		})
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	pending, err := s.ListPendingSignIns(ctx, "acc-1", t0)
	must(t, "list pending", err)
	if len(pending) != n/3*2 {
		t.Errorf("%d sign-ins stored, want %d", len(pending), n/3*2)
	}
	res, err := flows.VerifyAuditChain(ctx, s)
	must(t, "verify", err)
	if !res.OK || res.Events != n {
		t.Errorf("chain: %+v, want OK with %d events", res, n)
	}
}

// testConcurrentStateChange races restores and removals of one suspended
// account, each reading the state inside its transaction and moving from
// it: exactly one lands, every other finds the account moved (ErrConflict),
// and the state is the winner's.
func testConcurrentStateChange(t *testing.T, s flows.Store) {
	ctx := t.Context()
	a := account("acc-1", "alice")
	a.State = flows.AccountSuspended
	must(t, "account", s.CreateAccount(ctx, a))
	errs := Race(100, func(i int) error {
		to := flows.AccountActive
		if i%2 == 1 {
			to = flows.AccountRemoved
		}
		return s.InTx(ctx, func(tx flows.Tx) error {
			cur, err := tx.GetAccount(ctx, "acc-1")
			if err != nil {
				return err
			}
			if cur.State != flows.AccountSuspended {
				return fmt.Errorf("read %s: %w", cur.State, flows.ErrConflict) // already moved when read
			}
			return tx.SetAccountState(ctx, "acc-1", cur.State, to, flows.SourceAdmin, fmt.Sprintf("call %d", i), t0)
		})
	})
	winner := oneWinner(t, "100 concurrent state changes", errs, flows.ErrConflict)
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	want := flows.AccountActive
	if winner%2 == 1 {
		want = flows.AccountRemoved
	}
	if winner >= 0 && (got.State != want || got.StateReason != fmt.Sprintf("call %d", winner)) {
		t.Errorf("account is %s (%q), want the winner's %s (call %d)", got.State, got.StateReason, want, winner)
	}
}
