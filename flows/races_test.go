package flows_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/postgres"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/flows/storetest"
	"github.com/keystep/keystep/internal/pgtest"
)

// raceStores opens a fresh store of each backend: the races below must be
// won the same way on SQLite (one writer at a time) and on PostgreSQL
// (READ COMMITTED, row locks).
var raceStores = map[string]func(t *testing.T) flows.Store{
	"sqlite": func(t *testing.T) flows.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keystep.db"))
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	},
	"postgres": func(t *testing.T) flows.Store {
		st, err := postgres.Open(context.Background(), pgtest.DSN(t))
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	},
}

// hookStore runs a competing call just before the next transaction begins:
// after the flow's own reads outside it, before its writes. That is the
// window in which the reviewer's races land.
type hookStore struct {
	flows.Store
	mu   sync.Mutex
	next func()
}

// before arranges for fn to run before the next InTx.
func (h *hookStore) before(fn func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next = fn
}

// InTx runs the pending hook, if any, then the transaction.
func (h *hookStore) InTx(ctx context.Context, fn func(tx flows.Tx) error) error {
	h.mu.Lock()
	hook := h.next
	h.next = nil
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	return h.Store.InTx(ctx, fn)
}

// newHookEnv is a codeEnv on a SQLite store wrapped in a hookStore.
func newHookEnv(t *testing.T, cfg flows.Config) (*codeEnv, *hookStore) {
	t.Helper()
	h := &hookStore{Store: raceStores["sqlite"](t)}
	return newCodeEnvOn(t, h, cfg), h
}

// TestConcurrentRedemptionExactlyOneWins races one override code across 200
// different pending sign-ins of its account: the code, not a sign-in's
// status, must admit exactly one of them.
func TestConcurrentRedemptionExactlyOneWins(t *testing.T) {
	for name, open := range raceStores {
		t.Run(name, func(t *testing.T) {
			e := newCodeEnvOn(t, open(t), flows.Config{CodeConfig: flows.CodeConfig{CodeChecksPerIPPerMinute: 1000, CodeChecksPerAccountPerMinute: 1000}})
			e.addUser("alice")
			_, code := e.override("alice", 0)
			const n = 200
			ids := make([]string, n)
			for i := range ids {
				ids[i] = e.beginCode("alice", flows.MethodOverride).SignIn.ID
			}
			errs := storetest.Race(n, func(i int) error {
				_, err := e.submit(ids[i], code)
				return err
			})
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				// A loser finds the code used: at redemption, or already
				// when it lists the live codes (then it is a wrong code,
				// counted, and may lock the account).
				case errors.Is(err, flows.ErrAlreadyUsed), errors.Is(err, flows.ErrWrongCode), errors.Is(err, flows.ErrLocked):
				default:
					t.Errorf("submission %d: %v", i, err)
				}
			}
			approved := 0
			for _, id := range ids {
				s, err := e.svc.GetSignIn(e.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if s.Status == flows.StatusApproved {
					approved++
				}
			}
			if wins != 1 || approved != 1 {
				t.Fatalf("%d submissions won and %d sign-ins are approved, want 1 and 1", wins, approved)
			}
			if n := e.countAction(flows.AuditSignInApproved); n != 1 {
				t.Fatalf("%d approvals in the audit log", n)
			}
		})
	}
}

// TestConcurrentWrongGuessesStopAtTheLock sends 20 wrong codes at once with
// MaxFailedCodes 3: no more than 3 are judged and counted, the rest are
// refused as locked, and the right code is refused after.
func TestConcurrentWrongGuessesStopAtTheLock(t *testing.T) {
	for name, open := range raceStores {
		t.Run(name, func(t *testing.T) {
			e := newCodeEnvOn(t, open(t), flows.Config{CodeConfig: flows.CodeConfig{MaxFailedCodes: 3,
				CodeChecksPerIPPerMinute: 1000, CodeChecksPerAccountPerMinute: 1000}})
			alice := e.addUser("alice")
			_, code := e.override("alice", 0)
			ch := e.beginCode("alice", flows.MethodOverride)
			errs := storetest.Race(20, func(int) error {
				_, err := e.submit(ch.SignIn.ID, wrongCode(code))
				return err
			})
			judged := 0
			for i, err := range errs {
				switch {
				case errors.Is(err, flows.ErrWrongCode):
					judged++
				case errors.Is(err, flows.ErrLocked):
				default:
					t.Errorf("guess %d: %v, want a wrong code or locked", i, err)
				}
			}
			if judged > 3 {
				t.Errorf("%d guesses were judged wrong, want at most 3", judged)
			}
			if l := e.limits(alice.ID); l.FailedCodes != 3 {
				t.Errorf("%d failures recorded, want 3", l.FailedCodes)
			}
			if n := e.countAction(flows.AuditCodeFailed); n != 3 {
				t.Errorf("%d code failures in the audit log, want 3", n)
			}
			if _, err := e.submit(ch.SignIn.ID, code); !errors.Is(err, flows.ErrLocked) {
				t.Fatalf("the right code after the lock: %v, want ErrLocked", err)
			}
			if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusPending {
				t.Fatalf("sign-in %s after the lock, want pending", s.Status)
			}
		})
	}
}

// TestLockedAccountRedeemsNothing locks the account between SubmitCode's
// early check and its transaction: the right code is still refused.
func TestLockedAccountRedeemsNothing(t *testing.T) {
	e, h := newHookEnv(t, flows.Config{CodeConfig: flows.CodeConfig{MaxFailedCodes: 3}})
	alice := e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	h.before(func() {
		if _, _, err := h.Store.RecordCodeFailure(e.ctx, alice.ID, e.clock.Now(), 1, time.Hour); err != nil {
			t.Errorf("lock: %v", err)
		}
	})
	if _, err := e.submit(ch.SignIn.ID, code); !errors.Is(err, flows.ErrLocked) {
		t.Fatalf("right code on an account locked meanwhile: %v, want ErrLocked", err)
	}
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusPending {
		t.Fatalf("sign-in %s, want pending", s.Status)
	}
}

// TestDecideLosesToUnregistration unregisters the deciding device, or
// suspends its account, after Decide's checks and before its write.
func TestDecideLosesToUnregistration(t *testing.T) {
	e, h := newHookEnv(t, flows.Config{})
	alice := e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	h.before(func() {
		if err := h.Store.UnregisterDevice(e.ctx, p.device.ID, e.clock.Now(), "stolen"); err != nil {
			t.Errorf("unregister: %v", err)
		}
	})
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrDeviceUnregistered) {
		t.Fatalf("approval by a device unregistered meanwhile: %v, want ErrDeviceUnregistered", err)
	}
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusPending {
		t.Fatalf("sign-in %s, want pending", s.Status)
	}

	q := e.enroll("alice")
	ch = e.begin("alice")
	h.before(func() {
		if err := h.Store.SetAccountState(e.ctx, alice.ID, flows.AccountActive, flows.AccountSuspended, flows.SourceAdmin, "", e.clock.Now()); err != nil {
			t.Errorf("suspend: %v", err)
		}
	})
	if _, err := e.svc.Decide(e.ctx, e.decision(q, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("approval on an account suspended meanwhile: %v, want ErrAccountSuspended", err)
	}
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusPending {
		t.Fatalf("sign-in %s, want pending", s.Status)
	}
}

// TestApprovalResetsCodeFailures: a push or QR approval is a successful
// sign-in, and resets the consecutive code failures.
func TestApprovalResetsCodeFailures(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addUser("alice")
	p := e.enroll("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodPush, flows.MethodOverride)
	e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	if l := e.limits(alice.ID); l.FailedCodes != 2 {
		t.Fatalf("%d failures after two wrong codes", l.FailedCodes)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); err != nil {
		t.Fatal(err)
	}
	if l := e.limits(alice.ID); l.FailedCodes != 0 {
		t.Fatalf("%d failures after a push approval, want 0", l.FailedCodes)
	}
	// A denial is no success.
	e.mustRefuse(e.beginCode("alice", flows.MethodPush, flows.MethodOverride).SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	ch = e.beginCode("alice", flows.MethodPush, flows.MethodOverride)
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionDeny, flows.MethodPush, "")); err != nil {
		t.Fatal(err)
	}
	if l := e.limits(alice.ID); l.FailedCodes != 1 {
		t.Fatalf("%d failures after a denial, want 1", l.FailedCodes)
	}
}

// TestIssueLosesToSuspension suspends the account after IssueOverride's
// and Invite's checks and before their transactions: nothing is issued.
func TestIssueLosesToSuspension(t *testing.T) {
	e, h := newHookEnv(t, flows.Config{})
	alice := e.addUser("alice")
	suspend := func() {
		if err := h.Store.SetAccountState(e.ctx, alice.ID, flows.AccountActive, flows.AccountSuspended, flows.SourceAdmin, "", e.clock.Now()); err != nil {
			t.Errorf("suspend: %v", err)
		}
	}
	h.before(suspend)
	if _, _, err := e.svc.IssueOverride(e.ctx, "admin:root", "alice", 0, ""); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("override for an account suspended meanwhile: %v, want ErrAccountSuspended", err)
	}
	if cs, err := h.Store.ListActiveCodes(e.ctx, alice.ID, "", e.clock.Now()); err != nil || len(cs) != 0 {
		t.Fatalf("live codes %v, %v; want none", cs, err)
	}
	if _, err := e.svc.RestoreAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); err != nil {
		t.Fatal(err)
	}
	h.before(suspend)
	_, link, err := e.svc.Invite(e.ctx, "admin", "alice")
	if !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("invitation for an account suspended meanwhile: %v, want ErrAccountSuspended", err)
	}
	if _, err := h.Store.GetInvitationByTokenHash(e.ctx, flows.HashSecret(link.Token)); link.Token != "" || err == nil {
		t.Fatalf("an invitation was stored: %v", err)
	}
}

// TestRemovedAccountStaysRemoved races restores and removals of a suspended
// account: once removed, nothing brings it back.
func TestRemovedAccountStaysRemoved(t *testing.T) {
	for name, open := range raceStores {
		t.Run(name, func(t *testing.T) {
			e := newEnvOn(t, open(t), flows.Config{})
			e.addUser("alice")
			if _, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); err != nil {
				t.Fatal(err)
			}
			a, err := e.svc.FindAccount(e.ctx, "alice")
			if err != nil {
				t.Fatal(err)
			}
			errs := storetest.Race(20, func(i int) error {
				var err error
				if i%2 == 0 {
					_, err = e.svc.RestoreAccount(e.ctx, "admin", a.ID, flows.SourceAdmin, "")
				} else {
					_, err = e.svc.RemoveAccount(e.ctx, "admin", a.ID, flows.SourceAdmin, "")
				}
				return err
			})
			for i, err := range errs {
				if err != nil && !errors.Is(err, flows.ErrAccountRemoved) {
					t.Errorf("call %d: %v", i, err)
				}
			}
			got, err := e.store.GetAccount(e.ctx, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != flows.AccountRemoved {
				t.Fatalf("account is %s after the race, want removed", got.State)
			}
			if n := e.countAction(flows.AuditAccountRemoved); n != 1 {
				t.Fatalf("%d removals in the audit log, want 1", n)
			}
		})
	}
}

// TestRestoreDoesNotUndoARemoval removes the account after RestoreAccount
// has found it: the restore must not land.
func TestRestoreDoesNotUndoARemoval(t *testing.T) {
	e, h := newHookEnv(t, flows.Config{})
	alice := e.addUser("alice")
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); err != nil {
		t.Fatal(err)
	}
	h.before(func() {
		if err := h.Store.SetAccountState(e.ctx, alice.ID, flows.AccountSuspended, flows.AccountRemoved, flows.SourceAdmin, "", e.clock.Now()); err != nil {
			t.Errorf("remove: %v", err)
		}
	})
	if _, err := e.svc.RestoreAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); !errors.Is(err, flows.ErrAccountRemoved) {
		t.Fatalf("restore of an account removed meanwhile: %v, want ErrAccountRemoved", err)
	}
	if got, _ := h.Store.GetAccount(e.ctx, alice.ID); got.State != flows.AccountRemoved {
		t.Fatalf("account is %s, want removed", got.State)
	}
}
