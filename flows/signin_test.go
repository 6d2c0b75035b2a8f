package flows_test

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

func TestPushApproveWithRightNumber(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	if len(ch.Number) != 2 || ch.Number[0] == '0' {
		t.Fatalf("number to match %q: want 2 digits without a leading zero", ch.Number)
	}
	pending, err := e.svc.PendingForDevice(e.ctx, p.device)
	if err != nil || len(pending) != 1 || pending[0].ID != ch.SignIn.ID {
		t.Fatalf("pending = %v, %v; want the new sign-in", pending, err)
	}
	if pending[0].Number != ch.Number {
		t.Fatalf("stored number differs from the challenge")
	}
	got, err := e.svc.Decide(e.ctx, e.decision(p, pending[0], flows.DecisionApprove, flows.MethodPush, ch.Number))
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	if got.Status != flows.StatusApproved || got.DecidedBy != flows.MethodPush || got.DeviceID != p.device.ID {
		t.Fatalf("after approve: %+v", got)
	}
	final, err := e.svc.Await(e.ctx, ch.SignIn.ID)
	if err != nil || final.Status != flows.StatusApproved {
		t.Fatalf("await = %v, %v", final.Status, err)
	}
	if left, _ := e.svc.PendingForDevice(e.ctx, p.device); len(left) != 0 {
		t.Fatalf("still pending after approval: %v", left)
	}
}

func TestDecisionIsSingleUse(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	d := e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)
	if _, err := e.svc.Decide(e.ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Decide(e.ctx, d); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("replayed decision: %v, want ErrAlreadyDecided", err)
	}
	deny := e.decision(p, ch.SignIn, flows.DecisionDeny, flows.MethodPush, "")
	if _, err := e.svc.Decide(e.ctx, deny); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("second decision: %v, want ErrAlreadyDecided", err)
	}
}

func TestConcurrentDecisionsExactlyOneWins(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	d := e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, decided := 0, 0
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.svc.Decide(e.ctx, d)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, flows.ErrAlreadyDecided):
				decided++
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || decided != 199 {
		t.Fatalf("wins=%d already-decided=%d, want 1 and 199", wins, decided)
	}
	approvals := 0
	for _, a := range e.auditActions() {
		if a == flows.AuditSignInApproved {
			approvals++
		}
	}
	if approvals != 1 {
		t.Fatalf("%d approval events in the audit log, want 1", approvals)
	}
}

func TestWrongNumberDenies(t *testing.T) {
	e := newEnv(t, flows.Config{NumberDigits: 6})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	if len(ch.Number) != 6 {
		t.Fatalf("number %q, want 6 digits", ch.Number)
	}
	wrong := "100000"
	if ch.Number == wrong {
		wrong = "100001"
	}
	got, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, wrong))
	if !errors.Is(err, flows.ErrWrongNumber) || got.Status != flows.StatusDenied || got.Reason != "wrong number" {
		t.Fatalf("wrong number: %+v, %v", got, err)
	}
	// The right number afterwards cannot revive it.
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("approve after wrong number: %v", err)
	}
}

func TestDenyWithFraudReport(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	got, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionReport, flows.MethodPush, ""))
	if err != nil || got.Status != flows.StatusDenied || !got.FraudReport {
		t.Fatalf("report: %+v, %v", got, err)
	}
	stored, err := e.svc.GetSignIn(e.ctx, ch.SignIn.ID)
	if err != nil || !stored.FraudReport {
		t.Fatalf("fraud report not stored: %+v, %v", stored, err)
	}
	if !slices.Contains(e.auditActions(), flows.AuditSignInFraud) {
		t.Fatalf("no fraud event in audit log: %v", e.auditActions())
	}
	ch2 := e.begin("alice")
	got, err = e.svc.Decide(e.ctx, e.decision(p, ch2.SignIn, flows.DecisionDeny, flows.MethodPush, ""))
	if err != nil || got.Status != flows.StatusDenied || got.FraudReport {
		t.Fatalf("plain deny: %+v, %v", got, err)
	}
}

func TestBadSignatureChangesNothing(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	d := e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)
	d.Signature[10] ^= 1
	before := len(e.auditActions())
	if _, err := e.svc.Decide(e.ctx, d); !errors.Is(err, flows.ErrBadSignature) {
		t.Fatalf("tampered signature: %v", err)
	}
	// A signature over another decision does not pass for this one.
	d = e.decision(p, ch.SignIn, flows.DecisionDeny, flows.MethodPush, "")
	d.Decision = flows.DecisionApprove
	d.Number = ch.Number
	if _, err := e.svc.Decide(e.ctx, d); !errors.Is(err, flows.ErrBadSignature) {
		t.Fatalf("signature for deny used to approve: %v", err)
	}
	if s, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); s.Status != flows.StatusPending {
		t.Fatalf("status %s after bad signatures", s.Status)
	}
	if after := len(e.auditActions()); after != before {
		t.Fatalf("audit log grew from %d to %d", before, after)
	}
}

func TestStaleDeviceTimeRefused(t *testing.T) {
	e := newEnv(t, flows.Config{SignInTTL: 10 * time.Minute, MaxClockSkew: time.Minute})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	d := e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)
	e.clock.Advance(2 * time.Minute)
	if _, err := e.svc.Decide(e.ctx, d); !errors.Is(err, flows.ErrExpired) {
		t.Fatalf("decision signed 2 minutes ago: %v", err)
	}
}

func TestOtherAccountsDeviceRefused(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	e.addUser("mallory")
	e.enroll("alice")
	m := e.enroll("mallory")
	ch := e.begin("alice")
	if _, err := e.svc.Decide(e.ctx, e.decision(m, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrWrongAccount) {
		t.Fatalf("another account's device: %v", err)
	}
	if pend, _ := e.svc.PendingForDevice(e.ctx, m.device); len(pend) != 0 {
		t.Fatalf("mallory's device sees alice's request")
	}
}

func TestQRApprove(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice", flows.MethodQR)
	if ch.Number != "" {
		t.Fatalf("QR-only sign-in has a number to match")
	}
	if pend, _ := e.svc.PendingForDevice(e.ctx, p.device); len(pend) != 0 {
		t.Fatalf("QR-only sign-in was pushed: %v", pend)
	}
	qr, err := flows.ParseSignInQR(ch.QRPayload)
	if err != nil {
		t.Fatalf("parse QR %q: %v", ch.QRPayload, err)
	}
	if qr.Server != origin || qr.SignInID != ch.SignIn.ID {
		t.Fatalf("QR payload %+v", qr)
	}
	bad := qr
	bad.Secret = flows.NewSecret(16)
	if _, err := e.svc.ClaimQR(e.ctx, p.device.ID, bad); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("claim with a wrong secret: %v", err)
	}
	sgn, err := e.svc.ClaimQR(e.ctx, p.device.ID, qr)
	if err != nil || sgn.Nonce != ch.SignIn.Nonce {
		t.Fatalf("claim: %v", err)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(p, sgn, flows.DecisionApprove, flows.MethodQR, bad.Secret)); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("approve with a wrong QR secret: %v", err)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(p, sgn, flows.DecisionApprove, flows.MethodPush, "42")); !errors.Is(err, flows.ErrMethodNotAllowed) {
		t.Fatalf("push on a QR-only sign-in: %v", err)
	}
	got, err := e.svc.Decide(e.ctx, e.decision(p, sgn, flows.DecisionApprove, flows.MethodQR, qr.Secret))
	if err != nil || got.Status != flows.StatusApproved || got.DecidedBy != flows.MethodQR {
		t.Fatalf("QR approve: %+v, %v", got, err)
	}
}

func TestAwaitWakesOnDecision(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	done := make(chan flows.SignIn)
	go func() {
		s, err := e.svc.Await(e.ctx, ch.SignIn.ID)
		if err != nil {
			t.Errorf("await: %v", err)
		}
		done <- s
	}()
	e.clock.BlockUntilWaiters(1) // the waiter is now blocked on its expiry timer
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); err != nil {
		t.Fatal(err)
	}
	if s := <-done; s.Status != flows.StatusApproved {
		t.Fatalf("await woke with %s", s.Status)
	}
}

func TestAwaitExpires(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	if got := ch.SignIn.ExpiresAt.Sub(ch.SignIn.CreatedAt); got != 120*time.Second {
		t.Fatalf("default lifetime %s, want 120s", got)
	}
	done := make(chan flows.SignIn)
	go func() {
		s, _ := e.svc.Await(e.ctx, ch.SignIn.ID)
		done <- s
	}()
	e.clock.BlockUntilWaiters(1)
	e.clock.Advance(120 * time.Second)
	if s := <-done; s.Status != flows.StatusExpired {
		t.Fatalf("await after expiry: %s", s.Status)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrExpired) {
		t.Fatalf("approve after expiry: %v", err)
	}
}

func TestCancel(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.begin("alice")
	s, err := e.svc.Cancel(e.ctx, "client:Payroll", ch.SignIn.ID, "user went away")
	if err != nil || s.Status != flows.StatusCancelled {
		t.Fatalf("cancel: %+v, %v", s, err)
	}
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionApprove, flows.MethodPush, ch.Number)); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("approve after cancel: %v", err)
	}
	if _, err := e.svc.Cancel(e.ctx, "x", ch.SignIn.ID, ""); !errors.Is(err, flows.ErrAlreadyDecided) {
		t.Fatalf("second cancel: %v", err)
	}
}

func TestConfigLimits(t *testing.T) {
	e := newEnv(t, flows.Config{})
	key := flows.CodeConfig{CodeKey: testCodeKey}
	if _, err := flows.New(e.store, flows.Config{Origin: origin, CodeConfig: key}); err != nil {
		t.Fatalf("the base config is refused: %v", err)
	}
	for _, c := range []flows.Config{
		{Origin: origin, SignInTTL: 11 * time.Minute, CodeConfig: key},
		{Origin: origin, NumberDigits: 7, CodeConfig: key},
		{Origin: origin, NumberDigits: 1, CodeConfig: key},
		{Origin: "ftp://x", CodeConfig: key},
		{Origin: "https://x/?q=1", CodeConfig: key},
	} {
		if _, err := flows.New(e.store, c); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("config %+v accepted: %v", c, err)
		}
	}
}

func TestBeginRefusals(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: "alice", Client: "App"}); !errors.Is(err, flows.ErrNoDevice) {
		t.Fatalf("no device: %v", err)
	}
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: "nobody", Client: "App"}); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
	e.enroll("alice")
	for _, r := range []flows.BeginRequest{
		{Username: "alice"},
		{Username: "alice", Client: "App", Methods: []flows.Method{"fax"}},
		{Username: "alice", Client: "App", Methods: []flows.Method{"push", "push"}},
		{Username: "alice", AccountID: "x", Client: "App"},
		{Username: "alice", Client: "App\n"},
		{Username: "alice", Client: strings.Repeat("a", 201)},
	} {
		if _, err := e.svc.Begin(e.ctx, r); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("begin %+v: %v, want ErrInvalid", r, err)
		}
	}
}
