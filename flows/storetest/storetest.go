// Package storetest is the conformance suite every flows.Store passes, in
// the spirit of Dex's storage/conformance: a backend's tests call Run with a
// function that makes a fresh, empty store.
//
// The functional tests run twice: once calling the Store directly, and once
// with every call in a transaction of its own (InTx), so that both code
// paths of a backend are held to the same contract. The concurrency tests
// are meant to run under -race.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// t0 is the suite's "now": a time with nanoseconds, so that a backend that
// loses precision fails.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

// Run runs the conformance suite. newStore must return a new, empty store
// each time it is called, and close it when t ends (t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) flows.Store) {
	functional := []struct {
		name string
		fn   func(t *testing.T, s flows.Tx)
	}{
		{"AccountRoundTrip", testAccountRoundTrip},
		{"AccountNotFound", testAccountNotFound},
		{"AccountDuplicateID", testAccountDuplicateID},
		{"AccountInvalid", testAccountInvalid},
		{"UsernameCaseInsensitive", testUsernameCaseInsensitive},
		{"UsernameTombstoneReuse", testUsernameTombstoneReuse},
		{"UsernameHeldBySuspended", testUsernameHeldBySuspended},
		{"ListAccounts", testListAccounts},
		{"UpdateAccount", testUpdateAccount},
		{"PurgeRemovedAccounts", testPurgeRemovedAccounts},
		{"Devices", testDevices},
		{"DeviceErrors", testDeviceErrors},
		{"UnregisterDevice", testUnregisterDevice},
		{"Invitations", testInvitations},
		{"RedeemInvitation", testRedeemInvitation},
		{"RedeemExpiredInvitation", testRedeemExpiredInvitation},
		{"RevokeInvitations", testRevokeInvitations},
		{"SignInRoundTrip", testSignInRoundTrip},
		{"SignInErrors", testSignInErrors},
		{"ListPendingSignIns", testListPendingSignIns},
		{"DecideSignIn", testDecideSignIn},
		{"DecideByDevice", testDecideByDevice},
		{"SetAccountState", testSetAccountState},
		{"LockActiveAccount", testLockActiveAccount},
		{"CancelPendingSignIns", testCancelPendingSignIns},
		{"Nonces", testNonces},
		{"AuditEmpty", testAuditEmpty},
		{"Audit", testAudit},
	}
	functional = append(functional, codeFunctional...)
	functional = append(functional, pushFunctional...)
	functional = append(functional, federationFunctional...)
	functional = append(functional, directoryFunctional...)
	functional = append(functional, leaseFunctional...)
	functional = append(functional, sessionFunctional...)
	for _, mode := range []struct {
		name string
		wrap func(flows.Store) flows.Tx
	}{
		{"Direct", func(s flows.Store) flows.Tx { return s }},
		{"InTx", func(s flows.Store) flows.Tx { return eachInTx{s} }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			for _, tc := range functional {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, mode.wrap(newStore(t))) })
			}
		})
	}

	transactional := []struct {
		name string
		fn   func(t *testing.T, s flows.Store)
	}{
		{"Commit", testTxCommit},
		{"RollbackNew", testTxRollbackNew},
		{"RollbackChanges", testTxRollbackChanges},
		{"RollbackOnPanic", testTxRollbackOnPanic},
		{"AuditAfterRollback", testTxAuditAfterRollback},
		{"UseAfterClose", testUseAfterClose},
		{"CodeUnknownAccount", testCodeUnknownAccount},
	}
	transactional = append(transactional, federationTransactional...)
	transactional = append(transactional, directoryTransactional...)
	t.Run("Tx", func(t *testing.T) {
		for _, tc := range transactional {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
		}
	})

	concurrent := []struct {
		name string
		fn   func(t *testing.T, s flows.Store)
	}{
		{"DecideSignIn", testConcurrentDecide},
		{"SetAccountState", testConcurrentStateChange},
		{"RedeemInvitation", testConcurrentRedeem},
		{"UseNonce", testConcurrentNonce},
		{"AppendAudit", testConcurrentAudit},
		{"SignInsWithAudit", testConcurrentSignInsWithAudit},
	}
	concurrent = append(concurrent, codeConcurrent...)
	concurrent = append(concurrent, federationConcurrent...)
	concurrent = append(concurrent, directoryConcurrent...)
	concurrent = append(concurrent, leaseConcurrent...)
	t.Run("Concurrent", func(t *testing.T) {
		for _, tc := range concurrent {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
		}
	})
}

// --- fixtures ---

func account(id, username string) flows.Account {
	return flows.Account{
		ID:             id,
		Username:       username,
		Email:          username + "@example.com",
		Phone:          "+33 1 23 45 67 89",
		DisplayName:    "User " + username,
		State:          flows.AccountActive,
		StateSource:    flows.SourceDirectory,
		StateReason:    "in directory",
		StateChangedAt: t0.Add(-time.Hour),
		CreatedAt:      t0.Add(-2 * time.Hour),
		UpdatedAt:      t0.Add(-time.Hour),
	}
}

func device(id, accountID string, created time.Time) flows.Device {
	return flows.Device{
		ID:                 id,
		AccountID:          accountID,
		Name:               "phone " + id,
		PublicKey:          []byte("pkix-der-" + id),
		PushRoute:          "fcm:" + id,
		State:              flows.DeviceActive,
		CreatedAt:          created,
		LastSeenAt:         created.Add(time.Minute),
		EnrolledInvitation: "inv-of-" + id,
	}
}

func invitation(id, accountID string, expires time.Time) flows.Invitation {
	return flows.Invitation{
		ID:        id,
		AccountID: accountID,
		TokenHash: []byte("hash-of-" + id),
		CreatedBy: "admin:root",
		CreatedAt: t0.Add(-time.Hour),
		ExpiresAt: expires,
	}
}

func signIn(id, accountID string, created, expires time.Time) flows.SignIn {
	return flows.SignIn{
		ID:           id,
		AccountID:    accountID,
		Client:       "portal",
		IP:           "192.0.2.7",
		UserAgent:    "Mozilla/5.0",
		Methods:      []flows.Method{flows.MethodPush, flows.MethodQR},
		Number:       "42",
		QRSecretHash: []byte("qr-hash-" + id),
		Nonce:        "nonce-" + id,
		CreatedAt:    created,
		ExpiresAt:    expires,
		Status:       flows.StatusPending,
	}
}

// --- assertions ---

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

func wantEqual[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func accountIDs(as []flows.Account) []string {
	return ids(as, func(a flows.Account) string { return a.ID })
}
func deviceIDs(ds []flows.Device) []string {
	return ids(ds, func(d flows.Device) string { return d.ID })
}
func signInIDs(ss []flows.SignIn) []string {
	return ids(ss, func(s flows.SignIn) string { return s.ID })
}
func seqs(evs []flows.AuditEvent) []int64 {
	out := []int64{}
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

// nonNil turns a nil string slice into an empty one, so that "nothing" is
// compared alike whichever a backend returns.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// --- every call in its own transaction ---

// eachInTx is a flows.Tx that runs every call in a transaction of its own,
// so the functional tests exercise a backend's in-transaction code path.
type eachInTx struct{ s flows.Store }

func inTx[T any](ctx context.Context, s flows.Store, fn func(tx flows.Tx) (T, error)) (T, error) {
	var out T
	err := s.InTx(ctx, func(tx flows.Tx) error {
		var err error
		out, err = fn(tx)
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

func inTx0(ctx context.Context, s flows.Store, fn func(tx flows.Tx) error) error {
	return s.InTx(ctx, fn)
}

func (e eachInTx) CreateAccount(ctx context.Context, a flows.Account) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateAccount(ctx, a) })
}

func (e eachInTx) GetAccount(ctx context.Context, id string) (flows.Account, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.Account, error) { return tx.GetAccount(ctx, id) })
}

func (e eachInTx) GetAccountByUsername(ctx context.Context, username string) (flows.Account, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.Account, error) { return tx.GetAccountByUsername(ctx, username) })
}

func (e eachInTx) ListAccounts(ctx context.Context, f flows.AccountFilter) ([]flows.Account, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.Account, error) { return tx.ListAccounts(ctx, f) })
}

func (e eachInTx) UpdateAccount(ctx context.Context, a flows.Account) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.UpdateAccount(ctx, a) })
}

func (e eachInTx) SetAccountState(ctx context.Context, id string, from, to flows.AccountState, source flows.StateSource, reason string, at time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.SetAccountState(ctx, id, from, to, source, reason, at) })
}

func (e eachInTx) LockActiveAccount(ctx context.Context, id string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.LockActiveAccount(ctx, id) })
}

func (e eachInTx) PurgeRemovedAccounts(ctx context.Context, before time.Time) ([]string, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]string, error) { return tx.PurgeRemovedAccounts(ctx, before) })
}

func (e eachInTx) CreateDevice(ctx context.Context, d flows.Device) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateDevice(ctx, d) })
}

func (e eachInTx) GetDevice(ctx context.Context, id string) (flows.Device, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.Device, error) { return tx.GetDevice(ctx, id) })
}

func (e eachInTx) ListDevices(ctx context.Context, accountID string) ([]flows.Device, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.Device, error) { return tx.ListDevices(ctx, accountID) })
}

func (e eachInTx) UnregisterDevice(ctx context.Context, id string, at time.Time, reason string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.UnregisterDevice(ctx, id, at, reason) })
}

func (e eachInTx) CreateInvitation(ctx context.Context, inv flows.Invitation) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateInvitation(ctx, inv) })
}

func (e eachInTx) GetInvitationByTokenHash(ctx context.Context, h []byte) (flows.Invitation, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.Invitation, error) { return tx.GetInvitationByTokenHash(ctx, h) })
}

func (e eachInTx) RedeemInvitation(ctx context.Context, id string, at time.Time, deviceID string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.RedeemInvitation(ctx, id, at, deviceID) })
}

func (e eachInTx) RevokeInvitations(ctx context.Context, accountID string, at time.Time) (int, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (int, error) { return tx.RevokeInvitations(ctx, accountID, at) })
}

func (e eachInTx) CreateSignIn(ctx context.Context, s flows.SignIn) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateSignIn(ctx, s) })
}

func (e eachInTx) GetSignIn(ctx context.Context, id string) (flows.SignIn, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.SignIn, error) { return tx.GetSignIn(ctx, id) })
}

func (e eachInTx) ListPendingSignIns(ctx context.Context, accountID string, now time.Time) ([]flows.SignIn, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.SignIn, error) { return tx.ListPendingSignIns(ctx, accountID, now) })
}

func (e eachInTx) DecideSignIn(ctx context.Context, d flows.SignIn) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.DecideSignIn(ctx, d) })
}

func (e eachInTx) CancelPendingSignIns(ctx context.Context, accountID string, at time.Time, reason string) ([]string, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]string, error) {
		return tx.CancelPendingSignIns(ctx, accountID, at, reason)
	})
}

func (e eachInTx) UseNonce(ctx context.Context, key string, expires time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.UseNonce(ctx, key, expires) })
}

func (e eachInTx) PurgeNonces(ctx context.Context, before time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PurgeNonces(ctx, before) })
}

func (e eachInTx) AppendAudit(ctx context.Context, ev flows.AuditEvent) (flows.AuditEvent, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.AuditEvent, error) { return tx.AppendAudit(ctx, ev) })
}

func (e eachInTx) ListAudit(ctx context.Context, f flows.AuditFilter) ([]flows.AuditEvent, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.AuditEvent, error) { return tx.ListAudit(ctx, f) })
}

var _ flows.Tx = eachInTx{}

// errRollback is what the transaction tests return to make InTx roll back.
var errRollback = fmt.Errorf("storetest: roll back")

// testUseAfterClose checks that a closed store answers errors, not panics.
func testUseAfterClose(t *testing.T, s flows.Store) {
	ctx := context.Background()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := s.GetAccount(ctx, "x"); err == nil {
		t.Fatal("GetAccount on a closed store succeeded")
	}
	if err := s.InTx(ctx, func(tx flows.Tx) error { return nil }); err == nil {
		t.Fatal("InTx on a closed store succeeded")
	}
}
