package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

func testAccountRoundTrip(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	a := account("acc-1", "Alice")
	// A time in another zone comes back as the same instant, in UTC.
	paris := time.FixedZone("CEST", 2*3600)
	a.StateChangedAt = time.Date(2025, 5, 31, 9, 30, 0, 987654321, paris)
	must(t, "create", s.CreateAccount(ctx, a))

	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	want := a
	want.StateChangedAt = a.StateChangedAt.UTC()
	wantEqual(t, "account read back", got, want)
	if got.StateChangedAt.Location() != time.UTC {
		t.Errorf("StateChangedAt in %v, want UTC", got.StateChangedAt.Location())
	}

	// The zero time round-trips as the zero time.
	b := account("acc-2", "bob")
	b.UpdatedAt, b.StateChangedAt = time.Time{}, time.Time{}
	b.Email, b.Phone, b.DisplayName, b.StateReason = "", "", "", ""
	must(t, "create with zero times", s.CreateAccount(ctx, b))
	got, err = s.GetAccount(ctx, "acc-2")
	must(t, "get", err)
	wantEqual(t, "account with zero times read back", got, b)
}

func testAccountNotFound(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	_, err := s.GetAccount(ctx, "nobody")
	wantErr(t, "GetAccount of an unknown id", err, flows.ErrNotFound)
	_, err = s.GetAccountByUsername(ctx, "nobody")
	wantErr(t, "GetAccountByUsername of an unknown username", err, flows.ErrNotFound)
	wantErr(t, "UpdateAccount of an unknown id", s.UpdateAccount(ctx, account("nobody", "nobody")), flows.ErrNotFound)
}

func testAccountDuplicateID(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create", s.CreateAccount(ctx, account("acc-1", "alice")))
	wantErr(t, "second account with the same id", s.CreateAccount(ctx, account("acc-1", "bob")), flows.ErrConflict)
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	if got.Username != "alice" {
		t.Errorf("after a refused duplicate the account's username is %q, want alice", got.Username)
	}
	if _, err := s.GetAccountByUsername(ctx, "bob"); err == nil {
		t.Errorf("the refused duplicate's username bob was stored")
	}
}

func testAccountInvalid(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	bad := account("acc-1", "alice")
	bad.State = "frozen"
	wantErr(t, "account with an unknown state", s.CreateAccount(ctx, bad), flows.ErrInvalid)
	wantErr(t, "account without id", s.CreateAccount(ctx, account("", "alice")), flows.ErrInvalid)
	wantErr(t, "account without username", s.CreateAccount(ctx, account("acc-1", "")), flows.ErrInvalid)
	_, err := s.GetAccount(ctx, "acc-1")
	wantErr(t, "a refused account was stored", err, flows.ErrNotFound)
	_, err = s.ListAccounts(ctx, flows.AccountFilter{State: "frozen"})
	wantErr(t, "list by an unknown state", err, flows.ErrInvalid)
}

func testUsernameCaseInsensitive(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "create Alice", s.CreateAccount(ctx, account("acc-1", "Alice")))
	wantErr(t, "aLICE while Alice is active", s.CreateAccount(ctx, account("acc-2", "aLICE")), flows.ErrConflict)
	for _, name := range []string{"alice", "ALICE", "Alice", "aLiCe"} {
		got, err := s.GetAccountByUsername(ctx, name)
		must(t, "get by username "+name, err)
		if got.ID != "acc-1" || got.Username != "Alice" {
			t.Errorf("GetAccountByUsername(%q) = %s/%q, want acc-1/\"Alice\" (spelling kept)", name, got.ID, got.Username)
		}
	}
	_, err := s.GetAccount(ctx, "acc-2")
	wantErr(t, "the refused aLICE account", err, flows.ErrNotFound)
}

func testUsernameTombstoneReuse(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	old := account("acc-old", "alice")
	must(t, "create", s.CreateAccount(ctx, old))
	old.State, old.StateChangedAt = flows.AccountRemoved, t0
	must(t, "remove", s.UpdateAccount(ctx, old))

	_, err := s.GetAccountByUsername(ctx, "alice")
	wantErr(t, "GetAccountByUsername of a removed account", err, flows.ErrNotFound)

	must(t, "re-add ALICE over a tombstone", s.CreateAccount(ctx, account("acc-new", "ALICE")))
	got, err := s.GetAccountByUsername(ctx, "alice")
	must(t, "get by username", err)
	if got.ID != "acc-new" {
		t.Errorf("GetAccountByUsername(alice) = %s, want acc-new", got.ID)
	}
	tomb, err := s.GetAccount(ctx, "acc-old")
	must(t, "get tombstone", err)
	if tomb.State != flows.AccountRemoved {
		t.Errorf("tombstone state %q, want removed", tomb.State)
	}

	// The tombstone cannot come back while its username is taken again.
	restored := old
	restored.State = flows.AccountActive
	wantErr(t, "restore a tombstone whose username is taken", s.UpdateAccount(ctx, restored), flows.ErrConflict)
	tomb, err = s.GetAccount(ctx, "acc-old")
	must(t, "get tombstone", err)
	if tomb.State != flows.AccountRemoved {
		t.Errorf("after a refused restore the tombstone is %q, want removed", tomb.State)
	}
	wantErr(t, "a third alice while acc-new is active", s.CreateAccount(ctx, account("acc-3", "alice")), flows.ErrConflict)

	// Any number of tombstones may share a username.
	gone := account("acc-new", "ALICE")
	gone.State = flows.AccountRemoved
	must(t, "remove acc-new", s.UpdateAccount(ctx, gone))
	must(t, "a third alice over two tombstones", s.CreateAccount(ctx, account("acc-3", "alice")))
	all, err := s.ListAccounts(ctx, flows.AccountFilter{IncludeRemoved: true})
	must(t, "list", err)
	wantEqual(t, "accounts", accountIDs(all), []string{"acc-3", "acc-new", "acc-old"})
}

func testUsernameHeldBySuspended(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	b := account("acc-1", "bob")
	b.State = flows.AccountSuspended
	must(t, "create suspended", s.CreateAccount(ctx, b))
	wantErr(t, "BOB while bob is suspended", s.CreateAccount(ctx, account("acc-2", "BOB")), flows.ErrConflict)
	got, err := s.GetAccountByUsername(ctx, "Bob")
	must(t, "get suspended by username", err)
	if got.ID != "acc-1" || got.State != flows.AccountSuspended {
		t.Errorf("GetAccountByUsername(Bob) = %s/%s, want acc-1/suspended", got.ID, got.State)
	}
}

func testListAccounts(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	empty, err := s.ListAccounts(ctx, flows.AccountFilter{})
	must(t, "list empty", err)
	if len(empty) != 0 {
		t.Errorf("empty store lists %d accounts", len(empty))
	}
	mk := func(id, name string, st flows.AccountState) {
		a := account(id, name)
		a.State = st
		must(t, "create "+id, s.CreateAccount(ctx, a))
	}
	mk("id-carol", "carol", flows.AccountActive)
	mk("id-alice", "Alice", flows.AccountActive)
	mk("id-bob", "bob", flows.AccountSuspended)
	mk("id-dave", "dave", flows.AccountRemoved)
	mk("id-eve", "Eve", flows.AccountActive)

	cases := []struct {
		f    flows.AccountFilter
		want []string
	}{
		{flows.AccountFilter{}, []string{"id-alice", "id-bob", "id-carol", "id-eve"}},
		{flows.AccountFilter{IncludeRemoved: true}, []string{"id-alice", "id-bob", "id-carol", "id-dave", "id-eve"}},
		{flows.AccountFilter{State: flows.AccountActive}, []string{"id-alice", "id-carol", "id-eve"}},
		{flows.AccountFilter{State: flows.AccountSuspended}, []string{"id-bob"}},
		{flows.AccountFilter{State: flows.AccountRemoved}, []string{"id-dave"}},
	}
	for _, c := range cases {
		got, err := s.ListAccounts(ctx, c.f)
		must(t, "list", err)
		wantEqual(t, fmt.Sprintf("ListAccounts(%+v) ids", c.f), accountIDs(got), c.want)
	}
	susp, err := s.ListAccounts(ctx, flows.AccountFilter{State: flows.AccountSuspended})
	must(t, "list", err)
	if len(susp) == 1 {
		want := account("id-bob", "bob")
		want.State = flows.AccountSuspended
		wantEqual(t, "listed account", susp[0], want)
	}
}

func testUpdateAccount(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	orig := account("acc-1", "alice")
	must(t, "create", s.CreateAccount(ctx, orig))
	must(t, "create other", s.CreateAccount(ctx, account("acc-2", "bob")))

	upd := flows.Account{
		ID:             "acc-1",
		Username:       "Alice.Martin",
		Email:          "alice.martin@example.org",
		Phone:          "+1 555 0100",
		DisplayName:    "Alice Martin",
		State:          flows.AccountSuspended,
		StateSource:    flows.SourceAdmin,
		StateReason:    "lost phone",
		StateChangedAt: t0,
		CreatedAt:      t0.Add(time.Hour), // not mutable: ignored
		UpdatedAt:      t0,
	}
	must(t, "update", s.UpdateAccount(ctx, upd))
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	want := upd
	want.CreatedAt = orig.CreatedAt
	wantEqual(t, "updated account", got, want)

	_, err = s.GetAccountByUsername(ctx, "alice")
	wantErr(t, "old username after a rename", err, flows.ErrNotFound)
	got, err = s.GetAccountByUsername(ctx, "alice.martin")
	must(t, "get by new username", err)
	if got.ID != "acc-1" {
		t.Errorf("new username finds %s, want acc-1", got.ID)
	}

	taken := upd
	taken.Username = "BOB"
	wantErr(t, "rename to a taken username", s.UpdateAccount(ctx, taken), flows.ErrConflict)
	got, err = s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	if got.Username != "Alice.Martin" {
		t.Errorf("after a refused rename the username is %q", got.Username)
	}
	bad := upd
	bad.State = ""
	wantErr(t, "update to an empty state", s.UpdateAccount(ctx, bad), flows.ErrInvalid)
}

func testPurgeRemovedAccounts(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	mk := func(id string, st flows.AccountState, changed time.Time) {
		a := account(id, id)
		a.State, a.StateChangedAt = st, changed
		must(t, "create "+id, s.CreateAccount(ctx, a))
		must(t, "device of "+id, s.CreateDevice(ctx, device("dev-"+id, id, t0.Add(-72*time.Hour))))
		must(t, "invitation of "+id, s.CreateInvitation(ctx, invitation("inv-"+id, id, t0.Add(time.Hour))))
		must(t, "sign-in of "+id, s.CreateSignIn(ctx, signIn("si-"+id, id, t0.Add(-72*time.Hour), t0.Add(-71*time.Hour))))
		_, err := s.AppendAudit(ctx, flows.AuditEvent{Time: changed, Actor: "test", Action: flows.AuditAccountCreated, AccountID: id})
		must(t, "audit of "+id, err)
	}
	mk("gone-2", flows.AccountRemoved, t0.Add(-48*time.Hour))
	mk("gone-1", flows.AccountRemoved, t0.Add(-30*time.Hour))
	mk("recent", flows.AccountRemoved, t0.Add(-time.Hour))
	mk("active", flows.AccountActive, t0.Add(-100*time.Hour))
	mk("suspended", flows.AccountSuspended, t0.Add(-100*time.Hour))

	purged, err := s.PurgeRemovedAccounts(ctx, t0.Add(-24*time.Hour))
	must(t, "purge", err)
	wantEqual(t, "purged ids", nonNil(purged), []string{"gone-1", "gone-2"})

	for _, id := range []string{"gone-1", "gone-2"} {
		_, err := s.GetAccount(ctx, id)
		wantErr(t, "purged account "+id, err, flows.ErrNotFound)
		_, err = s.GetDevice(ctx, "dev-"+id)
		wantErr(t, "device of purged account "+id, err, flows.ErrNotFound)
		_, err = s.GetInvitationByTokenHash(ctx, []byte("hash-of-inv-"+id))
		wantErr(t, "invitation of purged account "+id, err, flows.ErrNotFound)
		_, err = s.GetSignIn(ctx, "si-"+id)
		wantErr(t, "sign-in of purged account "+id, err, flows.ErrNotFound)
		evs, err := s.ListAudit(ctx, flows.AuditFilter{AccountID: id})
		must(t, "audit of "+id, err)
		if len(evs) != 1 {
			t.Errorf("purged account %s has %d audit events, want its 1 kept", id, len(evs))
		}
	}
	for _, id := range []string{"recent", "active", "suspended"} {
		_, err := s.GetAccount(ctx, id)
		must(t, "kept account "+id, err)
		_, err = s.GetDevice(ctx, "dev-"+id)
		must(t, "device of kept account "+id, err)
		_, err = s.GetInvitationByTokenHash(ctx, []byte("hash-of-inv-"+id))
		must(t, "invitation of kept account "+id, err)
		_, err = s.GetSignIn(ctx, "si-"+id)
		must(t, "sign-in of kept account "+id, err)
	}
	again, err := s.PurgeRemovedAccounts(ctx, t0.Add(-24*time.Hour))
	must(t, "purge again", err)
	wantEqual(t, "second purge", nonNil(again), []string{})
	res, err := flows.VerifyAuditChain(ctx, s)
	must(t, "verify", err)
	if !res.OK || res.Events != 5 {
		t.Errorf("audit chain after purge: %+v, want OK with 5 events", res)
	}
}

// testSetAccountState checks that a state moves only from the state given,
// recording who moved it, why and when, and nothing else.
func testSetAccountState(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	a := account("acc-1", "alice")
	must(t, "create", s.CreateAccount(ctx, a))
	at := t0.Add(time.Hour)
	must(t, "suspend", s.SetAccountState(ctx, "acc-1", flows.AccountActive, flows.AccountSuspended, flows.SourceDirectory, "left", at))
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	want := a
	want.State, want.StateSource, want.StateReason, want.StateChangedAt, want.UpdatedAt = flows.AccountSuspended, flows.SourceDirectory, "left", at, at
	wantEqual(t, "suspended account", got, want)

	// A move from a state the account is no longer in changes nothing.
	wantErr(t, "suspend from active again", s.SetAccountState(ctx, "acc-1", flows.AccountActive, flows.AccountRemoved, flows.SourceAdmin, "x", at.Add(time.Hour)), flows.ErrConflict)
	got, err = s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	wantEqual(t, "account after a stale move", got, want)

	must(t, "remove", s.SetAccountState(ctx, "acc-1", flows.AccountSuspended, flows.AccountRemoved, flows.SourceAdmin, "gone", at))
	wantErr(t, "restore from suspended after removal", s.SetAccountState(ctx, "acc-1", flows.AccountSuspended, flows.AccountActive, flows.SourceAdmin, "back", at), flows.ErrConflict)
	got, err = s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	if got.State != flows.AccountRemoved {
		t.Errorf("state %s after a stale restore, want removed", got.State)
	}

	// Back from removed, a username now held by another account clashes.
	must(t, "new alice", s.CreateAccount(ctx, account("acc-2", "Alice")))
	wantErr(t, "restore a tombstone whose username is taken", s.SetAccountState(ctx, "acc-1", flows.AccountRemoved, flows.AccountActive, flows.SourceAdmin, "", at), flows.ErrConflict)
	wantErr(t, "unknown account", s.SetAccountState(ctx, "nobody", flows.AccountActive, flows.AccountSuspended, flows.SourceAdmin, "", at), flows.ErrNotFound)
	wantErr(t, "unknown state", s.SetAccountState(ctx, "acc-2", flows.AccountActive, "frozen", flows.SourceAdmin, "", at), flows.ErrInvalid)
}

// testLockActiveAccount checks LockActiveAccount's answers; that it
// serialises transactions is testConcurrentStateChange's and the flows'
// concurrency tests' to show.
func testLockActiveAccount(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	a := account("acc-1", "alice")
	must(t, "create", s.CreateAccount(ctx, a))
	must(t, "lock active", s.LockActiveAccount(ctx, "acc-1"))
	got, err := s.GetAccount(ctx, "acc-1")
	must(t, "get", err)
	wantEqual(t, "account after the lock", got, a)
	must(t, "suspend", s.SetAccountState(ctx, "acc-1", flows.AccountActive, flows.AccountSuspended, flows.SourceAdmin, "", t0))
	wantErr(t, "lock suspended", s.LockActiveAccount(ctx, "acc-1"), flows.ErrAccountSuspended)
	must(t, "remove", s.SetAccountState(ctx, "acc-1", flows.AccountSuspended, flows.AccountRemoved, flows.SourceAdmin, "", t0))
	wantErr(t, "lock removed", s.LockActiveAccount(ctx, "acc-1"), flows.ErrAccountRemoved)
	wantErr(t, "lock unknown", s.LockActiveAccount(ctx, "nobody"), flows.ErrNotFound)
}
