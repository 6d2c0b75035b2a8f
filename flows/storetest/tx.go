package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

func testTxCommit(t *testing.T, s flows.Store) {
	ctx := t.Context()
	err := s.InTx(ctx, func(tx flows.Tx) error {
		if err := tx.CreateAccount(ctx, account("acc-1", "alice")); err != nil {
			return err
		}
		if err := tx.CreateSignIn(ctx, signIn("si-1", "acc-1", t0, t0.Add(time.Minute))); err != nil {
			return err
		}
		// The transaction reads its own writes.
		if _, err := tx.GetSignIn(ctx, "si-1"); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, flows.AuditEvent{Time: t0, Actor: "test", Action: flows.AuditSignInStarted, SignInID: "si-1"})
		return err
	})
	must(t, "InTx", err)
	_, err = s.GetAccount(ctx, "acc-1")
	must(t, "committed account", err)
	_, err = s.GetSignIn(ctx, "si-1")
	must(t, "committed sign-in", err)
	evs, err := s.ListAudit(ctx, flows.AuditFilter{})
	must(t, "list audit", err)
	if len(evs) != 1 || evs[0].SignInID != "si-1" {
		t.Errorf("committed audit events: %+v, want the one for si-1", evs)
	}
}

// writeEverything creates one of each kind of row, checking inside the
// transaction that they are there.
func writeEverything(t *testing.T, tx flows.Tx) error {
	ctx := t.Context()
	steps := []func() error{
		func() error { return tx.CreateAccount(ctx, account("acc-1", "alice")) },
		func() error { return tx.CreateDevice(ctx, device("dev-1", "acc-1", t0)) },
		func() error { return tx.CreateInvitation(ctx, invitation("inv-1", "acc-1", t0.Add(time.Hour))) },
		func() error { return tx.CreateSignIn(ctx, signIn("si-1", "acc-1", t0, t0.Add(time.Minute))) },
		func() error { return tx.UseNonce(ctx, "nonce-1", t0.Add(time.Hour)) },
		func() error {
			_, err := tx.AppendAudit(ctx, flows.AuditEvent{Time: t0, Actor: "test", Action: flows.AuditAccountCreated, AccountID: "acc-1"})
			return err
		},
		func() error { _, err := tx.GetAccountByUsername(ctx, "ALICE"); return err },
		func() error { _, err := tx.GetDevice(ctx, "dev-1"); return err },
		func() error { _, err := tx.GetInvitationByTokenHash(ctx, []byte("hash-of-inv-1")); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			t.Errorf("inside the transaction: %v", err)
			return err
		}
	}
	return nil
}

func wantNothingWritten(t *testing.T, s flows.Store) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetAccount(ctx, "acc-1")
	wantErr(t, "rolled-back account", err, flows.ErrNotFound)
	_, err = s.GetDevice(ctx, "dev-1")
	wantErr(t, "rolled-back device", err, flows.ErrNotFound)
	_, err = s.GetInvitationByTokenHash(ctx, []byte("hash-of-inv-1"))
	wantErr(t, "rolled-back invitation", err, flows.ErrNotFound)
	_, err = s.GetSignIn(ctx, "si-1")
	wantErr(t, "rolled-back sign-in", err, flows.ErrNotFound)
	evs, err := s.ListAudit(ctx, flows.AuditFilter{})
	must(t, "list audit", err)
	if len(evs) != 0 {
		t.Errorf("%d audit events survived the rollback", len(evs))
	}
	// The nonce was not recorded: it can be used now.
	must(t, "use the rolled-back nonce", s.UseNonce(ctx, "nonce-1", t0.Add(time.Hour)))
}

func testTxRollbackNew(t *testing.T, s flows.Store) {
	err := s.InTx(t.Context(), func(tx flows.Tx) error {
		if err := writeEverything(t, tx); err != nil {
			return err
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx returned %v, want fn's error %v", err, errRollback)
	}
	wantNothingWritten(t, s)
}

func testTxRollbackOnPanic(t *testing.T, s flows.Store) {
	type boom struct{}
	func() {
		defer func() {
			if r := recover(); r != (boom{}) {
				t.Errorf("InTx let through %v, want fn's panic", r)
			}
		}()
		_ = s.InTx(t.Context(), func(tx flows.Tx) error {
			if err := writeEverything(t, tx); err != nil {
				return err
			}
			panic(boom{})
		})
		t.Errorf("InTx returned instead of panicking")
	}()
	// The store is usable again (on SQLite the transaction held its only
	// connection) and nothing was written.
	wantNothingWritten(t, s)
}

func testTxRollbackChanges(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "device", s.CreateDevice(ctx, device("dev-1", "acc-1", t0)))
	must(t, "invitation", s.CreateInvitation(ctx, invitation("inv-1", "acc-1", t0.Add(time.Hour))))
	must(t, "sign-in", s.CreateSignIn(ctx, signIn("si-1", "acc-1", t0, t0.Add(time.Minute))))
	must(t, "nonce", s.UseNonce(ctx, "nonce-1", t0))
	must(t, "removed account", s.CreateAccount(ctx, flows.Account{ID: "acc-gone", Username: "gone", State: flows.AccountRemoved}))
	must(t, "session", s.CreateSession(ctx, session("sess-1", t0, time.Hour)))
	must(t, "old session", s.CreateSession(ctx, session("sess-old", t0, time.Minute)))

	err := s.InTx(ctx, func(tx flows.Tx) error {
		a := account("acc-1", "alice2")
		a.State = flows.AccountSuspended
		steps := []func() error{
			func() error { return tx.UpdateAccount(ctx, a) },
			func() error { return tx.UnregisterDevice(ctx, "dev-1", t0, "lost") },
			func() error { return tx.RedeemInvitation(ctx, "inv-1", t0, "dev-2") },
			func() error { _, err := tx.RevokeInvitations(ctx, "acc-1", t0); return err },
			func() error {
				return tx.DecideSignIn(ctx, flows.SignIn{ID: "si-1", Status: flows.StatusApproved, DecidedAt: t0})
			},
			func() error { _, err := tx.CancelPendingSignIns(ctx, "acc-1", t0, "x"); return err },
			func() error { return tx.PurgeNonces(ctx, t0.Add(time.Hour)) },
			func() error { _, err := tx.PurgeRemovedAccounts(ctx, t0); return err },
			func() error { return tx.TouchSession(ctx, "sess-1", t0.Add(time.Minute)) },
			func() error { return tx.CreateSession(ctx, session("sess-2", t0, time.Hour)) },
			func() error { return tx.DeleteSession(ctx, "sess-1") },
			func() error { return tx.PurgeSessions(ctx, t0.Add(time.Hour)) },
		}
		for _, step := range steps {
			if err := step(); err != nil {
				t.Errorf("inside the transaction: %v", err)
				return err
			}
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx returned %v, want fn's error %v", err, errRollback)
	}

	a, err := s.GetAccount(ctx, "acc-1")
	must(t, "get account", err)
	wantEqual(t, "account after rollback", a, account("acc-1", "alice"))
	d, err := s.GetDevice(ctx, "dev-1")
	must(t, "get device", err)
	wantEqual(t, "device after rollback", d, device("dev-1", "acc-1", t0))
	inv, err := s.GetInvitationByTokenHash(ctx, []byte("hash-of-inv-1"))
	must(t, "get invitation", err)
	wantEqual(t, "invitation after rollback", inv, invitation("inv-1", "acc-1", t0.Add(time.Hour)))
	si, err := s.GetSignIn(ctx, "si-1")
	must(t, "get sign-in", err)
	wantEqual(t, "sign-in after rollback", si, signIn("si-1", "acc-1", t0, t0.Add(time.Minute)))
	wantErr(t, "nonce after a rolled-back purge", s.UseNonce(ctx, "nonce-1", t0), flows.ErrReplay)
	_, err = s.GetAccount(ctx, "acc-gone")
	must(t, "tombstone after a rolled-back purge", err)
	sess, err := s.GetSession(ctx, "sess-1")
	must(t, "session after a rolled-back delete", err)
	sameSession(t, "session after rollback", sess, session("sess-1", t0, time.Hour))
	_, err = s.GetSession(ctx, "sess-old")
	must(t, "session after a rolled-back purge", err)
	_, err = s.GetSession(ctx, "sess-2")
	wantErr(t, "session created in a rolled-back transaction", err, flows.ErrNotFound)
}

func testTxAuditAfterRollback(t *testing.T, s flows.Store) {
	ctx := t.Context()
	err := s.InTx(ctx, func(tx flows.Tx) error {
		for range 3 {
			if _, err := tx.AppendAudit(ctx, flows.AuditEvent{Time: t0, Actor: "test", Action: "x"}); err != nil {
				return err
			}
		}
		return errRollback
	})
	if !errors.Is(err, errRollback) {
		t.Fatalf("InTx returned %v, want %v", err, errRollback)
	}
	ev, err := s.AppendAudit(ctx, flows.AuditEvent{Time: t0, Actor: "test", Action: "y"})
	must(t, "append", err)
	if ev.Seq != 1 || len(ev.PrevHash) != 0 {
		t.Errorf("first event after a rolled-back append: seq %d prev %x, want seq 1 and no prev", ev.Seq, ev.PrevHash)
	}
	res, err := flows.VerifyAuditChain(ctx, s)
	must(t, "verify", err)
	if !res.OK || res.Events != 1 {
		t.Errorf("chain: %+v, want OK with 1 event", res)
	}
}
