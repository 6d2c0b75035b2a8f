package storetest

import (
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

func testDevices(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "other account", s.CreateAccount(ctx, account("acc-2", "bob")))

	none, err := s.ListDevices(ctx, "acc-1")
	must(t, "list none", err)
	if len(none) != 0 {
		t.Errorf("account without devices lists %d", len(none))
	}

	// Two devices enrolled at the same instant come in id order, after an
	// older one.
	for _, d := range []flows.Device{
		device("dev-b", "acc-1", t0),
		device("dev-a", "acc-1", t0),
		device("dev-c", "acc-1", t0.Add(-time.Hour)),
		device("dev-x", "acc-2", t0.Add(-2*time.Hour)),
	} {
		must(t, "create "+d.ID, s.CreateDevice(ctx, d))
	}
	list, err := s.ListDevices(ctx, "acc-1")
	must(t, "list", err)
	wantEqual(t, "devices of acc-1", deviceIDs(list), []string{"dev-c", "dev-a", "dev-b"})
	if len(list) == 3 {
		wantEqual(t, "listed device", list[1], device("dev-a", "acc-1", t0))
	}
	list, err = s.ListDevices(ctx, "acc-2")
	must(t, "list other", err)
	wantEqual(t, "devices of acc-2", deviceIDs(list), []string{"dev-x"})
	list, err = s.ListDevices(ctx, "nobody")
	must(t, "list of an unknown account", err)
	if len(list) != 0 {
		t.Errorf("unknown account lists %d devices", len(list))
	}

	got, err := s.GetDevice(ctx, "dev-b")
	must(t, "get", err)
	wantEqual(t, "device read back", got, device("dev-b", "acc-1", t0))

	// Zero times and an empty push route round-trip too.
	bare := flows.Device{ID: "dev-bare", AccountID: "acc-2", PublicKey: []byte{0x30, 0x59, 0x00, 0x01}, State: flows.DeviceActive, CreatedAt: t0}
	must(t, "create bare", s.CreateDevice(ctx, bare))
	got, err = s.GetDevice(ctx, "dev-bare")
	must(t, "get bare", err)
	wantEqual(t, "bare device read back", got, bare)
}

func testDeviceErrors(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "create", s.CreateDevice(ctx, device("dev-1", "acc-1", t0)))
	dup := device("dev-1", "acc-1", t0.Add(time.Hour))
	dup.Name = "impostor"
	wantErr(t, "second device with the same id", s.CreateDevice(ctx, dup), flows.ErrConflict)
	got, err := s.GetDevice(ctx, "dev-1")
	must(t, "get", err)
	if got.Name != "phone dev-1" {
		t.Errorf("a refused duplicate overwrote the device: name %q", got.Name)
	}
	wantErr(t, "device of an unknown account", s.CreateDevice(ctx, device("dev-2", "nobody", t0)), flows.ErrNotFound)
	_, err = s.GetDevice(ctx, "dev-2")
	wantErr(t, "the refused device", err, flows.ErrNotFound)
	bad := device("dev-3", "acc-1", t0)
	bad.State = "lost"
	wantErr(t, "device with an unknown state", s.CreateDevice(ctx, bad), flows.ErrInvalid)
	_, err = s.GetDevice(ctx, "nothing")
	wantErr(t, "GetDevice of an unknown id", err, flows.ErrNotFound)
}

func testUnregisterDevice(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "device", s.CreateDevice(ctx, device("dev-1", "acc-1", t0)))
	must(t, "other device", s.CreateDevice(ctx, device("dev-2", "acc-1", t0)))

	at := t0.Add(time.Hour)
	must(t, "unregister", s.UnregisterDevice(ctx, "dev-1", at, "lost"))
	got, err := s.GetDevice(ctx, "dev-1")
	must(t, "get", err)
	want := device("dev-1", "acc-1", t0)
	want.State, want.UnregisteredAt, want.UnregisterReason = flows.DeviceUnregistered, at, "lost"
	wantEqual(t, "unregistered device", got, want)

	wantErr(t, "second unregister", s.UnregisterDevice(ctx, "dev-1", at.Add(time.Hour), "again"), flows.ErrNotFound)
	got, err = s.GetDevice(ctx, "dev-1")
	must(t, "get", err)
	wantEqual(t, "device after a refused second unregister", got, want)
	wantErr(t, "unregister an unknown device", s.UnregisterDevice(ctx, "nothing", at, "x"), flows.ErrNotFound)

	list, err := s.ListDevices(ctx, "acc-1")
	must(t, "list", err)
	wantEqual(t, "devices, unregistered included", deviceIDs(list), []string{"dev-1", "dev-2"})
	other, err := s.GetDevice(ctx, "dev-2")
	must(t, "get other", err)
	if other.State != flows.DeviceActive {
		t.Errorf("the other device is %q, want active", other.State)
	}
}

func testInvitations(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	inv := invitation("inv-1", "acc-1", t0.Add(24*time.Hour))
	must(t, "create", s.CreateInvitation(ctx, inv))
	got, err := s.GetInvitationByTokenHash(ctx, []byte("hash-of-inv-1"))
	must(t, "get by hash", err)
	wantEqual(t, "invitation read back", got, inv)

	_, err = s.GetInvitationByTokenHash(ctx, []byte("hash-of-nothing"))
	wantErr(t, "unknown token hash", err, flows.ErrNotFound)

	dupID := invitation("inv-1", "acc-1", t0)
	dupID.TokenHash = []byte("another-hash")
	wantErr(t, "second invitation with the same id", s.CreateInvitation(ctx, dupID), flows.ErrConflict)
	dupHash := invitation("inv-2", "acc-1", t0)
	dupHash.TokenHash = inv.TokenHash
	wantErr(t, "second invitation with the same token hash", s.CreateInvitation(ctx, dupHash), flows.ErrConflict)
	_, err = s.GetInvitationByTokenHash(ctx, []byte("another-hash"))
	wantErr(t, "the refused invitation", err, flows.ErrNotFound)
	wantErr(t, "invitation of an unknown account", s.CreateInvitation(ctx, invitation("inv-3", "nobody", t0)), flows.ErrNotFound)
	noHash := invitation("inv-4", "acc-1", t0)
	noHash.TokenHash = nil
	wantErr(t, "invitation without token hash", s.CreateInvitation(ctx, noHash), flows.ErrInvalid)
}

func testRedeemInvitation(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	inv := invitation("inv-1", "acc-1", t0.Add(time.Hour))
	must(t, "create", s.CreateInvitation(ctx, inv))

	at := t0.Add(time.Minute)
	must(t, "redeem", s.RedeemInvitation(ctx, "inv-1", at, "dev-1"))
	got, err := s.GetInvitationByTokenHash(ctx, inv.TokenHash)
	must(t, "get", err)
	want := inv
	want.UsedAt, want.UsedDevice = at, "dev-1"
	wantEqual(t, "redeemed invitation", got, want)

	wantErr(t, "second redeem", s.RedeemInvitation(ctx, "inv-1", at.Add(time.Second), "dev-2"), flows.ErrAlreadyUsed)
	got, err = s.GetInvitationByTokenHash(ctx, inv.TokenHash)
	must(t, "get", err)
	wantEqual(t, "invitation after a refused second redeem", got, want)
	wantErr(t, "redeem an unknown invitation", s.RedeemInvitation(ctx, "nothing", at, "dev-1"), flows.ErrNotFound)
}

func testRedeemExpiredInvitation(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	inv := invitation("inv-1", "acc-1", t0.Add(time.Hour))
	must(t, "create", s.CreateInvitation(ctx, inv))

	wantErr(t, "redeem at the expiry instant", s.RedeemInvitation(ctx, "inv-1", t0.Add(time.Hour), "dev-1"), flows.ErrExpired)
	wantErr(t, "redeem after expiry", s.RedeemInvitation(ctx, "inv-1", t0.Add(2*time.Hour), "dev-1"), flows.ErrExpired)
	got, err := s.GetInvitationByTokenHash(ctx, inv.TokenHash)
	must(t, "get", err)
	wantEqual(t, "expired invitation, unused", got, inv)
	// One nanosecond before expiry it still works.
	must(t, "redeem just in time", s.RedeemInvitation(ctx, "inv-1", t0.Add(time.Hour-1), "dev-1"))
}

func testRevokeInvitations(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "other account", s.CreateAccount(ctx, account("acc-2", "bob")))
	for _, inv := range []flows.Invitation{
		invitation("open-1", "acc-1", t0.Add(time.Hour)),
		invitation("open-2", "acc-1", t0.Add(time.Hour)),
		invitation("used", "acc-1", t0.Add(time.Hour)),
		invitation("other", "acc-2", t0.Add(time.Hour)),
	} {
		must(t, "create "+inv.ID, s.CreateInvitation(ctx, inv))
	}
	must(t, "redeem used", s.RedeemInvitation(ctx, "used", t0, "dev-9"))

	at := t0.Add(time.Minute)
	n, err := s.RevokeInvitations(ctx, "acc-1", at)
	must(t, "revoke", err)
	if n != 2 {
		t.Errorf("revoked %d invitations, want 2 (the open ones)", n)
	}
	for _, id := range []string{"open-1", "open-2"} {
		got, err := s.GetInvitationByTokenHash(ctx, []byte("hash-of-"+id))
		must(t, "get "+id, err)
		want := invitation(id, "acc-1", t0.Add(time.Hour))
		want.RevokedAt = at
		wantEqual(t, "revoked invitation", got, want)
		wantErr(t, "redeem revoked "+id, s.RedeemInvitation(ctx, id, at, "dev-1"), flows.ErrExpired)
	}
	used, err := s.GetInvitationByTokenHash(ctx, []byte("hash-of-used"))
	must(t, "get used", err)
	if !used.RevokedAt.IsZero() {
		t.Errorf("a used invitation was revoked at %v", used.RevokedAt)
	}
	n, err = s.RevokeInvitations(ctx, "acc-1", at.Add(time.Minute))
	must(t, "revoke again", err)
	if n != 0 {
		t.Errorf("second revoke revoked %d, want 0", n)
	}
	must(t, "the other account's invitation is still open", s.RedeemInvitation(ctx, "other", at, "dev-2"))
}
