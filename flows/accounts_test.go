package flows_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

func TestAddAccountValidation(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("Alice")
	if _, err := e.svc.AddAccount(e.ctx, "admin", flows.NewAccount{Username: "alice"}); !errors.Is(err, flows.ErrConflict) {
		t.Fatalf("username differing only in case: %v, want ErrConflict", err)
	}
	if a, err := e.svc.FindAccount(e.ctx, "ALICE"); err != nil || a.Username != "Alice" {
		t.Fatalf("case-insensitive lookup: %+v, %v", a, err)
	}
	for _, n := range []flows.NewAccount{
		{Username: ""},
		{Username: "a b"},
		{Username: " a"},
		{Username: "a\x00"},
		{Username: "bob", Email: "not-an-email"},
		{Username: "bob", Email: "Bob <bob@example.com>"},
		{Username: "bob", Phone: "5551234"},
		{Username: "bob", Phone: "+0123456789"},
		{Username: "bob", ID: "bad id"},
	} {
		if _, err := e.svc.AddAccount(e.ctx, "admin", n); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("add %+v: %v, want ErrInvalid", n, err)
		}
	}
	if list, _ := e.svc.ListAccounts(e.ctx, flows.AccountFilter{}); len(list) != 1 {
		t.Fatalf("rejected input created accounts: %v", list)
	}
}

func TestSuspendAndRestore(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	a, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceAdmin, "on leave")
	if err != nil || a.State != flows.AccountSuspended || a.StateReason != "on leave" {
		t.Fatalf("suspend: %+v, %v", a, err)
	}
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusCancelled {
		t.Fatalf("pending sign-in of a suspended account is %s, want cancelled", s.Status)
	}
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: "alice", Client: "App"}); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("begin while suspended: %v", err)
	}
	if _, _, err := e.svc.Invite(e.ctx, "admin", "alice"); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("invite while suspended: %v", err)
	}
	if _, err := e.svc.RestoreAccount(e.ctx, "admin", "alice", flows.SourceAdmin, "back"); err != nil {
		t.Fatal(err)
	}
	ch = e.begin("alice")
	if s, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); err != nil || s.Status != flows.StatusApproved {
		t.Fatalf("approve after restore: %v", err)
	}
}

func TestDecisionRefusedOnceSuspended(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	d := e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Decide(e.ctx, d); err == nil {
		t.Fatal("a suspended account's sign-in was approved")
	}
}

func TestRemoveAccount(t *testing.T) {
	e := newEnv(t, flows.Config{})
	alice := e.addUser("alice")
	p1 := e.enroll("alice")
	p2 := e.enroll("alice")
	ch := e.begin("alice")
	if _, err := e.svc.RemoveAccount(e.ctx, "admin", "alice", flows.SourceAdmin, "left the company"); err != nil {
		t.Fatal(err)
	}
	_, devs, err := e.svc.ListDevices(e.ctx, alice.ID)
	if err != nil || len(devs) != 2 {
		t.Fatalf("devices of the tombstone: %v, %v", devs, err)
	}
	for _, d := range devs {
		if d.State != flows.DeviceUnregistered || d.UnregisterReason != "account removed" {
			t.Fatalf("device after removal: %+v", d)
		}
	}
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusCancelled {
		t.Fatalf("pending sign-in after removal: %s", s.Status)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(p1, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); err == nil {
		t.Fatal("decision accepted after removal")
	}
	if _, err := e.svc.FindAccount(e.ctx, "alice"); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("removed account found by username: %v", err)
	}
	if _, err := e.svc.RestoreAccount(e.ctx, "admin", alice.ID, flows.SourceAdmin, ""); !errors.Is(err, flows.ErrAccountRemoved) {
		t.Fatalf("restore a removed account: %v", err)
	}
	if list, _ := e.svc.ListAccounts(e.ctx, flows.AccountFilter{}); len(list) != 0 {
		t.Fatalf("removed account listed: %v", list)
	}
	// The username is free again; the tombstone stays until retention ends.
	e.addUser("alice")
	e.clock.Advance(29 * 24 * time.Hour)
	if err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetAccount(e.ctx, alice.ID); err != nil {
		t.Fatalf("tombstone purged before its retention: %v", err)
	}
	e.clock.Advance(2 * 24 * time.Hour)
	if err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetAccount(e.ctx, alice.ID); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("tombstone after retention: %v", err)
	}
	if _, err := e.store.GetDevice(e.ctx, p2.device.ID); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("device of a purged account: %v", err)
	}
	if !slices.Contains(e.auditActions(), flows.AuditAccountPurged) {
		t.Fatal("purge not audited")
	}
	if v, err := e.svc.VerifyAudit(e.ctx); err != nil || !v.OK {
		t.Fatalf("audit chain after purge: %+v, %v", v, err)
	}
}

func TestInvitations(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	_, link, err := e.svc.Invite(e.ctx, "admin", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if parsed, err := flows.ParseEnrollLink(link.String()); err != nil || parsed != link {
		t.Fatalf("link round trip: %+v, %v", parsed, err)
	}
	// A signature by another key does not enroll.
	req, _ := e.enrollRequest(link)
	other, _ := e.enrollRequest(link)
	req.Signature = other.Signature
	if _, _, err := e.svc.Enroll(e.ctx, req); !errors.Is(err, flows.ErrBadSignature) {
		t.Fatalf("enroll with a signature by another key: %v", err)
	}
	req, _ = e.enrollRequest(link)
	if _, _, err := e.svc.Enroll(e.ctx, req); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	again, _ := e.enrollRequest(link)
	if _, _, err := e.svc.Enroll(e.ctx, again); !errors.Is(err, flows.ErrAlreadyUsed) {
		t.Fatalf("second use of an invitation: %v", err)
	}
	// Re-inviting revokes the older invitation.
	_, old, _ := e.svc.Invite(e.ctx, "admin", "alice")
	_, fresh, _ := e.svc.Invite(e.ctx, "admin", "alice")
	oldReq, _ := e.enrollRequest(old)
	if _, _, err := e.svc.Enroll(e.ctx, oldReq); err == nil {
		t.Fatal("a superseded invitation enrolled a device")
	}
	// Invitations expire after 7 days by default.
	e.clock.Advance(7*24*time.Hour + time.Second)
	freshReq, _ := e.enrollRequest(fresh)
	if _, _, err := e.svc.Enroll(e.ctx, freshReq); !errors.Is(err, flows.ErrExpired) {
		t.Fatalf("expired invitation: %v", err)
	}
	_, devs, _ := e.svc.ListDevices(e.ctx, "alice")
	if len(devs) != 1 {
		t.Fatalf("%d devices, want 1", len(devs))
	}
}

func TestUnregisterDevice(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	lost := e.enroll("alice")
	kept := e.enroll("alice")
	ch := e.begin("alice")                     // push and QR
	qrOnly := e.begin("alice", flows.MethodQR) // shown on no phone
	if _, err := e.svc.UnregisterDevice(e.ctx, "admin", "alice", lost.device.ID, ""); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("unregister without a reason: %v", err)
	}
	if _, err := e.svc.UnregisterDevice(e.ctx, "admin", "alice", lost.device.ID, "phone lost"); err != nil {
		t.Fatal(err)
	}
	// The push request may have been started on the lost phone: it is
	// cancelled, for the other phone too; the QR-only one stays open.
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusCancelled || s.Reason != "a device was unregistered" {
		t.Fatalf("push sign-in after unregistering a device: %s (%q), want cancelled", s.Status, s.Reason)
	}
	if s, _ := e.svc.GetSignIn(e.ctx, qrOnly.SignIn.ID); s.Status != flows.StatusPending {
		t.Fatalf("QR-only sign-in after unregistering a device: %s, want pending", s.Status)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(kept, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("remaining device on the cancelled sign-in: %v", err)
	}
	if got := e.auditActions(); !slices.Contains(got, flows.AuditSignInCancelled) {
		t.Errorf("no cancellation in the audit log: %v", got)
	}
	// The user starts a new sign-in: the lost phone is refused, the other
	// phone approves.
	ch = e.begin("alice")
	if _, err := e.svc.Decide(e.ctx, e.decision(lost, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrDeviceUnregistered) {
		t.Fatalf("unregistered device decided: %v", err)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(kept, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); err != nil {
		t.Fatalf("remaining device: %v", err)
	}
	ch = e.begin("alice")
	n, err := e.svc.UnregisterAllDevices(e.ctx, "admin", "alice", "all phones lost")
	if err != nil || n != 1 {
		t.Fatalf("unregister all: %d, %v", n, err)
	}
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusCancelled {
		t.Fatalf("pending sign-in with no device left: %s", s.Status)
	}
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: "alice", Client: "App"}); !errors.Is(err, flows.ErrNoDevice) {
		t.Fatalf("begin with no device: %v", err)
	}
	if _, err := e.svc.UnregisterDevice(e.ctx, "admin", "alice", lost.device.ID, "again"); !errors.Is(err, flows.ErrDeviceUnregistered) {
		t.Fatalf("unregister twice: %v", err)
	}
}

func TestAuthenticateDevice(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	proof := func(nonce string, at time.Time, body string) flows.DeviceProof {
		msg, err := flows.RequestPayload(origin, "GET", "/device/v1/requests", at, nonce, []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := flows.SignES256(p.key, msg)
		return flows.DeviceProof{DeviceID: p.device.ID, Method: "GET", PathQuery: "/device/v1/requests", Time: at, Nonce: nonce, Body: []byte(body), Signature: sig}
	}
	good := proof("nonce-0000000000000001", e.clock.Now(), "")
	if d, a, err := e.svc.AuthenticateDevice(e.ctx, good); err != nil || d.ID != p.device.ID || a.Username != "alice" {
		t.Fatalf("good proof: %v", err)
	}
	if _, _, err := e.svc.AuthenticateDevice(e.ctx, good); !errors.Is(err, flows.ErrReplay) {
		t.Fatalf("replayed proof: %v", err)
	}
	altered := proof("nonce-0000000000000002", e.clock.Now(), "")
	altered.Body = []byte("{}")
	if _, _, err := e.svc.AuthenticateDevice(e.ctx, altered); !errors.Is(err, flows.ErrBadSignature) {
		t.Fatalf("altered body: %v", err)
	}
	unknown := proof("nonce-0000000000000003", e.clock.Now(), "")
	unknown.DeviceID = flows.NewID()
	if _, _, err := e.svc.AuthenticateDevice(e.ctx, unknown); !errors.Is(err, flows.ErrBadSignature) {
		t.Fatalf("unknown device: %v, want the same error as a bad signature", err)
	}
	old := proof("nonce-0000000000000004", e.clock.Now().Add(-10*time.Minute), "")
	if _, _, err := e.svc.AuthenticateDevice(e.ctx, old); !errors.Is(err, flows.ErrExpired) {
		t.Fatalf("stale proof: %v", err)
	}
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); err != nil {
		t.Fatal(err)
	}
	if _, a, err := e.svc.AuthenticateDevice(e.ctx, proof("nonce-0000000000000005", e.clock.Now(), "")); err != nil || a.State != flows.AccountSuspended {
		t.Fatalf("suspended account's device must still learn it is suspended: %v", err)
	}
	if _, err := e.svc.RemoveAccount(e.ctx, "admin", "alice", flows.SourceAdmin, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.AuthenticateDevice(e.ctx, proof("nonce-0000000000000006", e.clock.Now(), "")); !errors.Is(err, flows.ErrAccountRemoved) {
		t.Fatalf("removed account's device: %v", err)
	}
}

func TestAuditChain(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); err != nil {
		t.Fatal(err)
	}
	want := []string{flows.AuditAccountCreated, flows.AuditInvitationCreated, flows.AuditDeviceEnrolled, flows.AuditSignInStarted, flows.AuditSignInApproved}
	if got := e.auditActions(); !slices.Equal(got, want) {
		t.Fatalf("audit actions %v, want %v", got, want)
	}
	v, err := e.svc.VerifyAudit(e.ctx)
	if err != nil || !v.OK || v.Events != 5 {
		t.Fatalf("verify: %+v, %v", v, err)
	}
}
