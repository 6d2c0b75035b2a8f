package flows_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// TestPushFatigue: past PushLimit pushes in PushWindow a sign-in gets QR
// instead of push, the audit log says so, and the admins are told once.
func TestPushFatigue(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{PushLimit: 2, PushWindow: 10 * time.Minute}})
	e.addUser("alice")
	p := e.enroll("alice")
	for range 2 {
		if ch := e.beginCode("alice", flows.MethodPush); ch.Number == "" || ch.PushSuppressed != "" {
			t.Fatalf("push within the limit: %+v", ch)
		}
	}
	ch := e.beginCode("alice", flows.MethodPush, flows.MethodOverride)
	if ch.PushSuppressed != flows.PushSuppressedRate || ch.Number != "" || ch.QRPayload == "" ||
		!slices.Equal(ch.SignIn.Methods, []flows.Method{flows.MethodQR, flows.MethodOverride}) {
		t.Fatalf("third push: %+v", ch)
	}
	pending, err := e.svc.PendingForDevice(e.ctx, p.device)
	if err != nil || len(pending) != 2 {
		t.Fatalf("the phone sees %d pushes (%v), want 2", len(pending), err)
	}
	if e.countAction(flows.AuditPushSuppressed) != 1 {
		t.Fatalf("audit: %v", e.auditActions())
	}
	if k := e.alerts.kinds(); !slices.Equal(k, []string{flows.AlertPushLimit}) || e.alerts.last().Account != "alice" {
		t.Fatalf("alerts %v", k)
	}
	// Still over: suppressed again, but the admins are not told twice.
	ch = e.beginCode("alice", flows.MethodPush, flows.MethodQR)
	if ch.PushSuppressed != flows.PushSuppressedRate || !slices.Equal(ch.SignIn.Methods, []flows.Method{flows.MethodQR}) {
		t.Fatalf("fourth push: %+v", ch)
	}
	if n := len(e.alerts.kinds()); n != 1 {
		t.Fatalf("%d alerts in one window", n)
	}
	// The QR still works.
	if _, err := e.svc.ClaimQR(e.ctx, p.device.ID, mustQR(t, ch.QRPayload)); err != nil {
		t.Fatalf("claim the fallback QR: %v", err)
	}
	e.clock.Advance(10 * time.Minute)
	if ch := e.beginCode("alice", flows.MethodPush); ch.Number == "" || ch.PushSuppressed != "" {
		t.Fatalf("push in the next window: %+v", ch)
	}
}

func mustQR(t *testing.T, payload string) flows.SignInQR {
	t.Helper()
	qr, err := flows.ParseSignInQR(payload)
	if err != nil {
		t.Fatal(err)
	}
	return qr
}

// TestFraudReportAlertsAdmins: "I did not start this" tells the admins at
// once, and with FraudPushBlock stops pushes to the account for a while.
func TestFraudReportAlertsAdmins(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{FraudPushBlock: time.Hour}})
	alice := e.addUser("alice")
	p := e.enroll("alice")
	ch := e.beginCode("alice", flows.MethodPush)
	s, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionReport, flows.MethodPush, ""))
	if err != nil || s.Status != flows.StatusDenied || !s.FraudReport {
		t.Fatalf("report: %+v, %v", s, err)
	}
	al := e.alerts.last()
	if al.Kind != flows.AlertFraudReport || al.Account != "alice" || al.AccountID != alice.ID || al.SignIn != ch.SignIn.ID ||
		!al.Time.Equal(e.clock.Now()) || !strings.Contains(al.Detail, "192.0.2.7") || !strings.Contains(al.Detail, "Payroll") {
		t.Fatalf("alert %+v", al)
	}
	if l := e.limits(alice.ID); !l.PushBlockedUntil.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("limits after the report: %+v", l)
	}
	if !e.hasAction(flows.AuditPushBlocked) {
		t.Fatal("no push.blocked event")
	}
	next := e.beginCode("alice", flows.MethodPush)
	if next.PushSuppressed != flows.PushSuppressedFraud || next.Number != "" || next.QRPayload == "" {
		t.Fatalf("push while blocked: %+v", next)
	}
	e.clock.Advance(time.Hour)
	if next := e.beginCode("alice", flows.MethodPush); next.PushSuppressed != "" || next.Number == "" {
		t.Fatalf("push after the block: %+v", next)
	}
}

func TestFraudReportWithoutPushBlock(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addUser("alice")
	p := e.enroll("alice")
	ch := e.beginCode("alice", flows.MethodPush)
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionReport, flows.MethodPush, "")); err != nil {
		t.Fatal(err)
	}
	if k := e.alerts.kinds(); !slices.Equal(k, []string{flows.AlertFraudReport}) {
		t.Fatalf("alerts %v", k)
	}
	if l := e.limits(alice.ID); !l.PushBlockedUntil.IsZero() || e.hasAction(flows.AuditPushBlocked) {
		t.Fatalf("pushes blocked with FraudPushBlock off: %+v", l)
	}
	if next := e.beginCode("alice", flows.MethodPush); next.Number == "" {
		t.Fatalf("push after a report: %+v", next)
	}
	// A plain deny tells nobody.
	ch = e.beginCode("alice", flows.MethodPush)
	if _, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionDeny, flows.MethodPush, "")); err != nil {
		t.Fatal(err)
	}
	if n := len(e.alerts.kinds()); n != 1 {
		t.Fatalf("%d alerts after a plain deny", n)
	}
}

// TestFailedAlertKeepsTheDenial: an alerter that fails is logged and
// audited; the report stands.
func TestFailedAlertKeepsTheDenial(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	e.alerts.err = errors.New("webhook: 503 Service Unavailable")
	ch := e.beginCode("alice", flows.MethodPush)
	s, err := e.svc.Decide(e.ctx, e.decision(p, ch.SignIn, flows.DecisionReport, flows.MethodPush, ""))
	if err != nil || s.Status != flows.StatusDenied {
		t.Fatalf("report with a failing alerter: %+v, %v", s, err)
	}
	if got, _ := e.svc.GetSignIn(e.ctx, ch.SignIn.ID); got.Status != flows.StatusDenied || !got.FraudReport {
		t.Fatalf("stored sign-in %+v", got)
	}
	if d := e.auditDetails(flows.AuditAlertFailed); len(d) != 1 || !strings.Contains(d[0], "fraud_report: webhook: 503") {
		t.Fatalf("alert.failed events %v", d)
	}
	if !strings.Contains(e.logs.String(), "503 Service Unavailable") {
		t.Fatalf("log:\n%s", e.logs.String())
	}
	if v, err := e.svc.VerifyAudit(e.ctx); err != nil || !v.OK {
		t.Fatalf("audit chain: %+v, %v", v, err)
	}
}
