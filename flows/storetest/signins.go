package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

func testSignInRoundTrip(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	si := signIn("si-1", "acc-1", t0, t0.Add(2*time.Minute))
	must(t, "create", s.CreateSignIn(ctx, si))
	got, err := s.GetSignIn(ctx, "si-1")
	must(t, "get", err)
	wantEqual(t, "sign-in read back", got, si)

	// An empty status is stored as pending; one method and no QR round-trip.
	bare := signIn("si-2", "acc-1", t0, t0.Add(time.Minute))
	bare.Status, bare.Methods, bare.QRSecretHash, bare.IP, bare.UserAgent = "", []flows.Method{flows.MethodPush}, nil, "", ""
	must(t, "create bare", s.CreateSignIn(ctx, bare))
	got, err = s.GetSignIn(ctx, "si-2")
	must(t, "get bare", err)
	want := bare
	want.Status = flows.StatusPending
	wantEqual(t, "bare sign-in read back", got, want)
}

func testSignInErrors(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "create", s.CreateSignIn(ctx, signIn("si-1", "acc-1", t0, t0.Add(time.Minute))))
	dup := signIn("si-1", "acc-1", t0, t0.Add(time.Hour))
	dup.Client = "impostor"
	wantErr(t, "second sign-in with the same id", s.CreateSignIn(ctx, dup), flows.ErrConflict)
	got, err := s.GetSignIn(ctx, "si-1")
	must(t, "get", err)
	if got.Client != "portal" {
		t.Errorf("a refused duplicate overwrote the sign-in: client %q", got.Client)
	}
	wantErr(t, "sign-in of an unknown account", s.CreateSignIn(ctx, signIn("si-2", "nobody", t0, t0.Add(time.Minute))), flows.ErrNotFound)
	decided := signIn("si-3", "acc-1", t0, t0.Add(time.Minute))
	decided.Status = flows.StatusApproved
	wantErr(t, "a new sign-in that is already approved", s.CreateSignIn(ctx, decided), flows.ErrInvalid)
	for _, id := range []string{"si-2", "si-3", "nothing"} {
		_, err := s.GetSignIn(ctx, id)
		wantErr(t, "GetSignIn "+id, err, flows.ErrNotFound)
	}
}

func testListPendingSignIns(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "other account", s.CreateAccount(ctx, account("acc-2", "bob")))
	for _, si := range []flows.SignIn{
		signIn("si-b", "acc-1", t0, t0.Add(2*time.Minute)),
		signIn("si-a", "acc-1", t0, t0.Add(2*time.Minute)),
		signIn("si-old", "acc-1", t0.Add(-time.Minute), t0.Add(time.Minute)),
		signIn("si-expired", "acc-1", t0.Add(-5*time.Minute), t0.Add(-time.Second)),
		signIn("si-decided", "acc-1", t0.Add(-2*time.Minute), t0.Add(5*time.Minute)),
		signIn("si-other", "acc-2", t0, t0.Add(2*time.Minute)),
	} {
		must(t, "create "+si.ID, s.CreateSignIn(ctx, si))
	}
	must(t, "decide", s.DecideSignIn(ctx, flows.SignIn{ID: "si-decided", Status: flows.StatusDenied, DecidedAt: t0}))

	cases := []struct {
		now  time.Time
		want []string
	}{
		{t0, []string{"si-old", "si-a", "si-b"}},
		{t0.Add(time.Minute), []string{"si-a", "si-b"}}, // si-old expires at that instant
		{t0.Add(2 * time.Minute), []string{}},
	}
	for _, c := range cases {
		got, err := s.ListPendingSignIns(ctx, "acc-1", c.now)
		must(t, "list", err)
		wantEqual(t, "pending at "+c.now.Sub(t0).String(), signInIDs(got), c.want)
	}
	got, err := s.ListPendingSignIns(ctx, "acc-1", t0)
	must(t, "list", err)
	if len(got) == 3 {
		wantEqual(t, "listed sign-in", got[1], signIn("si-a", "acc-1", t0, t0.Add(2*time.Minute)))
	}
	got, err = s.ListPendingSignIns(ctx, "acc-2", t0)
	must(t, "list other", err)
	wantEqual(t, "pending of acc-2", signInIDs(got), []string{"si-other"})
}

func testDecideSignIn(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "device", s.CreateDevice(ctx, device("dev-1", "acc-1", t0)))
	must(t, "device", s.CreateDevice(ctx, device("dev-2", "acc-1", t0)))
	si := signIn("si-1", "acc-1", t0, t0.Add(2*time.Minute))
	must(t, "create", s.CreateSignIn(ctx, si))
	must(t, "create fraud", s.CreateSignIn(ctx, signIn("si-2", "acc-1", t0, t0.Add(2*time.Minute))))

	pending := flows.SignIn{ID: "si-1", Status: flows.StatusPending}
	wantErr(t, "decide to pending", s.DecideSignIn(ctx, pending), flows.ErrInvalid)

	d := flows.SignIn{
		ID:        "si-1",
		Status:    flows.StatusApproved,
		DecidedAt: t0.Add(10 * time.Second),
		DecidedBy: flows.MethodPush,
		DeviceID:  "dev-1",
		Reason:    "number matched",
		// Fields a decision does not set are ignored.
		Client: "ignored",
		Number: "99",
	}
	must(t, "approve", s.DecideSignIn(ctx, d))
	got, err := s.GetSignIn(ctx, "si-1")
	must(t, "get", err)
	want := si
	want.Status, want.DecidedAt, want.DecidedBy, want.DeviceID, want.Reason = d.Status, d.DecidedAt, d.DecidedBy, d.DeviceID, d.Reason
	wantEqual(t, "approved sign-in", got, want)

	deny := flows.SignIn{ID: "si-1", Status: flows.StatusDenied, DecidedAt: t0.Add(time.Minute), Reason: "late"}
	wantErr(t, "second decision", s.DecideSignIn(ctx, deny), flows.ErrAlreadyDecided)
	got, err = s.GetSignIn(ctx, "si-1")
	must(t, "get", err)
	wantEqual(t, "sign-in after a refused second decision", got, want)

	fraud := flows.SignIn{ID: "si-2", Status: flows.StatusDenied, DecidedAt: t0.Add(time.Second), DecidedBy: flows.MethodQR,
		DeviceID: "dev-2", Reason: "not me", FraudReport: true}
	must(t, "deny with a fraud report", s.DecideSignIn(ctx, fraud))
	got, err = s.GetSignIn(ctx, "si-2")
	must(t, "get", err)
	if !got.FraudReport || got.Status != flows.StatusDenied || got.DecidedBy != flows.MethodQR {
		t.Errorf("denied sign-in = %+v, want denied by qr with a fraud report", got)
	}
	if !bytes.Equal(got.QRSecretHash, []byte("qr-hash-si-2")) {
		t.Errorf("deciding changed the QR secret hash to %q", got.QRSecretHash)
	}

	wantErr(t, "decide an unknown sign-in", s.DecideSignIn(ctx, flows.SignIn{ID: "nothing", Status: flows.StatusApproved}), flows.ErrNotFound)
}

// testDecideByDevice checks that a device's decision lands only while the
// device is active and of the sign-in's account and the account is active,
// and that a refused one says why.
func testDecideByDevice(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "other account", s.CreateAccount(ctx, account("acc-2", "bob")))
	must(t, "device", s.CreateDevice(ctx, device("dev-1", "acc-1", t0)))
	must(t, "gone device", s.CreateDevice(ctx, device("dev-gone", "acc-1", t0)))
	must(t, "bob's device", s.CreateDevice(ctx, device("dev-bob", "acc-2", t0)))
	must(t, "unregister", s.UnregisterDevice(ctx, "dev-gone", t0, "lost"))
	for _, id := range []string{"si-1", "si-2", "si-3"} {
		must(t, "sign-in "+id, s.CreateSignIn(ctx, signIn(id, "acc-1", t0, t0.Add(time.Minute))))
	}
	approve := func(id, dev string) flows.SignIn {
		return flows.SignIn{ID: id, Status: flows.StatusApproved, DecidedAt: t0, DecidedBy: flows.MethodPush, DeviceID: dev}
	}
	stillPending := func(id string) {
		t.Helper()
		got, err := s.GetSignIn(ctx, id)
		must(t, "get "+id, err)
		if got.Status != flows.StatusPending || got.DeviceID != "" {
			t.Errorf("refused decision changed %s: %s by %q", id, got.Status, got.DeviceID)
		}
	}

	wantErr(t, "an unregistered device approves", s.DecideSignIn(ctx, approve("si-1", "dev-gone")), flows.ErrDeviceUnregistered)
	deny := approve("si-1", "dev-gone")
	deny.Status = flows.StatusDenied
	wantErr(t, "an unregistered device denies", s.DecideSignIn(ctx, deny), flows.ErrDeviceUnregistered)
	wantErr(t, "another account's device approves", s.DecideSignIn(ctx, approve("si-1", "dev-bob")), flows.ErrWrongAccount)
	wantErr(t, "an unknown device approves", s.DecideSignIn(ctx, approve("si-1", "dev-none")), flows.ErrNotFound)
	stillPending("si-1")

	a, err := s.GetAccount(ctx, "acc-1")
	must(t, "get account", err)
	must(t, "suspend", s.SetAccountState(ctx, "acc-1", a.State, flows.AccountSuspended, flows.SourceAdmin, "", t0))
	wantErr(t, "approve on a suspended account", s.DecideSignIn(ctx, approve("si-1", "dev-1")), flows.ErrAccountSuspended)
	stillPending("si-1")
	// The server's own decisions carry no device and still land.
	must(t, "expire on a suspended account", s.DecideSignIn(ctx, flows.SignIn{ID: "si-3", Status: flows.StatusExpired, DecidedAt: t0}))
	must(t, "restore", s.SetAccountState(ctx, "acc-1", flows.AccountSuspended, flows.AccountActive, flows.SourceAdmin, "", t0))
	must(t, "approve once restored", s.DecideSignIn(ctx, approve("si-1", "dev-1")))
	wantErr(t, "approve twice", s.DecideSignIn(ctx, approve("si-1", "dev-1")), flows.ErrAlreadyDecided)
	wantErr(t, "unregistered device on a decided sign-in", s.DecideSignIn(ctx, approve("si-1", "dev-gone")), flows.ErrAlreadyDecided)

	must(t, "remove", s.SetAccountState(ctx, "acc-1", flows.AccountActive, flows.AccountRemoved, flows.SourceAdmin, "", t0))
	wantErr(t, "approve on a removed account", s.DecideSignIn(ctx, approve("si-2", "dev-1")), flows.ErrAccountRemoved)
	stillPending("si-2")
}

func testCancelPendingSignIns(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "other account", s.CreateAccount(ctx, account("acc-2", "bob")))
	for _, si := range []flows.SignIn{
		signIn("si-2", "acc-1", t0, t0.Add(time.Minute)),
		signIn("si-1", "acc-1", t0.Add(time.Second), t0.Add(time.Minute)),
		signIn("si-3", "acc-1", t0.Add(-time.Hour), t0.Add(-time.Minute)), // expired but still pending
		signIn("si-approved", "acc-1", t0, t0.Add(time.Minute)),
		signIn("si-other", "acc-2", t0, t0.Add(time.Minute)),
	} {
		must(t, "create "+si.ID, s.CreateSignIn(ctx, si))
	}
	must(t, "approve", s.DecideSignIn(ctx, flows.SignIn{ID: "si-approved", Status: flows.StatusApproved, DecidedAt: t0}))

	at := t0.Add(30 * time.Second)
	cancelled, err := s.CancelPendingSignIns(ctx, "acc-1", at, "account suspended")
	must(t, "cancel", err)
	wantEqual(t, "cancelled ids", nonNil(cancelled), []string{"si-1", "si-2", "si-3"})
	for _, id := range []string{"si-1", "si-2", "si-3"} {
		got, err := s.GetSignIn(ctx, id)
		must(t, "get "+id, err)
		if got.Status != flows.StatusCancelled || !got.DecidedAt.Equal(at) || got.Reason != "account suspended" {
			t.Errorf("%s = status %q at %v reason %q, want cancelled at %v for \"account suspended\"",
				id, got.Status, got.DecidedAt, got.Reason, at)
		}
	}
	for id, want := range map[string]flows.SignInStatus{"si-approved": flows.StatusApproved, "si-other": flows.StatusPending} {
		got, err := s.GetSignIn(ctx, id)
		must(t, "get "+id, err)
		if got.Status != want {
			t.Errorf("%s is %q after cancelling acc-1, want %q", id, got.Status, want)
		}
	}
	again, err := s.CancelPendingSignIns(ctx, "acc-1", at, "again")
	must(t, "cancel again", err)
	wantEqual(t, "second cancel", nonNil(again), []string{})
}

func testNonces(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	exp := t0.Add(5 * time.Minute)
	must(t, "first use", s.UseNonce(ctx, "sig:abc", exp))
	wantErr(t, "replay", s.UseNonce(ctx, "sig:abc", exp), flows.ErrReplay)
	wantErr(t, "replay with another expiry", s.UseNonce(ctx, "sig:abc", exp.Add(time.Hour)), flows.ErrReplay)
	must(t, "another nonce", s.UseNonce(ctx, "sig:abd", exp.Add(time.Hour)))

	must(t, "purge before expiry", s.PurgeNonces(ctx, t0))
	wantErr(t, "replay after a purge before expiry", s.UseNonce(ctx, "sig:abc", exp), flows.ErrReplay)
	must(t, "purge at expiry", s.PurgeNonces(ctx, exp))
	wantErr(t, "replay after a purge of what expired before its expiry", s.UseNonce(ctx, "sig:abc", exp), flows.ErrReplay)

	must(t, "purge after expiry", s.PurgeNonces(ctx, exp.Add(time.Nanosecond)))
	must(t, "use after purge", s.UseNonce(ctx, "sig:abc", exp))
	wantErr(t, "the later nonce survived the purge", s.UseNonce(ctx, "sig:abd", exp), flows.ErrReplay)
}

func testAuditEmpty(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	evs, err := s.ListAudit(ctx, flows.AuditFilter{})
	must(t, "list", err)
	if len(evs) != 0 {
		t.Errorf("new store has %d audit events", len(evs))
	}
	res, err := flows.VerifyAuditChain(ctx, s)
	must(t, "verify", err)
	if !res.OK || res.Events != 0 {
		t.Errorf("empty chain: %+v, want OK with 0 events", res)
	}
}

func testAudit(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	tokyo := time.FixedZone("JST", 9*3600)
	var appended []flows.AuditEvent
	for i := range 5 {
		acct := []string{"acc-a", "acc-b"}[i%2]
		ev := flows.AuditEvent{
			Seq:       99, // ignored: the store places the event
			Time:      t0.Add(time.Duration(i) * time.Second).In(tokyo),
			Actor:     "admin:root",
			Action:    flows.AuditSignInApproved,
			AccountID: acct,
			DeviceID:  "dev-" + acct,
			SignInID:  "si-" + string(rune('1'+i)),
			Detail:    "detail " + string(rune('a'+i)),
			PrevHash:  []byte("ignored"),
		}
		got, err := s.AppendAudit(ctx, ev)
		must(t, "append", err)
		if got.Seq != int64(i+1) {
			t.Errorf("event %d got seq %d", i+1, got.Seq)
		}
		if !got.Time.Equal(ev.Time) || got.Time.Location() != time.UTC {
			t.Errorf("event %d time %v, want %v in UTC", i+1, got.Time, ev.Time)
		}
		var prev []byte
		if i > 0 {
			prev = appended[i-1].Hash
		}
		if !bytes.Equal(got.PrevHash, prev) {
			t.Errorf("event %d prev hash %x, want %x", i+1, got.PrevHash, prev)
		}
		if len(got.Hash) != 32 {
			t.Errorf("event %d hash %x, want 32 bytes", i+1, got.Hash)
		}
		want := flows.SealAudit(ev, int64(i+1), prev)
		if !bytes.Equal(got.Hash, want.Hash) {
			t.Errorf("event %d hash %x, want SealAudit's %x", i+1, got.Hash, want.Hash)
		}
		appended = append(appended, got)
	}

	all, err := s.ListAudit(ctx, flows.AuditFilter{})
	must(t, "list", err)
	if len(all) != len(appended) {
		t.Fatalf("listed %d events, want %d", len(all), len(appended))
	}
	for i := range all {
		if len(all[i].PrevHash) == 0 {
			all[i].PrevHash = nil
		}
		if len(appended[i].PrevHash) == 0 {
			appended[i].PrevHash = nil
		}
		wantEqual(t, "listed event", all[i], appended[i])
	}
	cases := []struct {
		f    flows.AuditFilter
		want []int64
	}{
		{flows.AuditFilter{AfterSeq: 2}, []int64{3, 4, 5}},
		{flows.AuditFilter{AccountID: "acc-a"}, []int64{1, 3, 5}},
		{flows.AuditFilter{AccountID: "acc-b"}, []int64{2, 4}},
		{flows.AuditFilter{Limit: 2}, []int64{1, 2}},
		{flows.AuditFilter{AfterSeq: 1, AccountID: "acc-a", Limit: 1}, []int64{3}},
		{flows.AuditFilter{AfterSeq: 5}, []int64{}},
		{flows.AuditFilter{BeforeSeq: 3}, []int64{1, 2}},
		{flows.AuditFilter{Newest: true}, []int64{5, 4, 3, 2, 1}},
		{flows.AuditFilter{Newest: true, Limit: 2}, []int64{5, 4}},
		{flows.AuditFilter{Newest: true, BeforeSeq: 4, Limit: 2}, []int64{3, 2}},
		{flows.AuditFilter{Newest: true, AccountID: "acc-a", BeforeSeq: 5}, []int64{3, 1}},
		{flows.AuditFilter{Newest: true, AccountID: "acc-b", AfterSeq: 2}, []int64{4}},
		{flows.AuditFilter{AccountID: "nobody"}, []int64{}},
	}
	for _, c := range cases {
		got, err := s.ListAudit(ctx, c.f)
		must(t, "list", err)
		wantEqual(t, "seqs listed", seqs(got), c.want)
	}
	_, err = s.ListAudit(ctx, flows.AuditFilter{Limit: -1})
	wantErr(t, "negative limit", err, flows.ErrInvalid)

	res, err := flows.VerifyAuditChain(ctx, s)
	must(t, "verify", err)
	if !res.OK || res.Events != 5 {
		t.Errorf("chain: %+v, want OK with 5 events", res)
	}
}
