package flows_test

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keystep/keystep/flows"
)

// longSignIns lets a sign-in outlive an OTP, to see the OTP's own expiry.
var longSignIns = flows.Config{SignInTTL: 10 * time.Minute}

func TestEmailCode(t *testing.T) {
	e := newCodeEnv(t, longSignIns)
	e.addPerson("alice", "")
	ch := e.beginCode("alice", flows.MethodEmail)
	now := e.clock.Now()
	sent, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail)
	if err != nil {
		t.Fatal(err)
	}
	want := flows.SentCode{Channel: flows.MethodEmail, To: "a•••@example.com", ExpiresAt: now.Add(5 * time.Minute), ResendAfter: now.Add(30 * time.Second)}
	if sent != want {
		t.Fatalf("sent %+v, want %+v", sent, want)
	}
	msgs := e.mail.all()
	if len(msgs) != 1 {
		t.Fatalf("%d emails", len(msgs))
	}
	m := msgs[0]
	code := e.lastEmailCode()
	if len(code) != 6 || m.To != "alice@example.com" || !strings.Contains(m.Subject, "Payroll") {
		t.Fatalf("email %+v (code %q)", m, code)
	}
	for _, body := range []string{m.Text, m.HTML} {
		for _, s := range []string{code, "Payroll", "09:05 UTC", "5 minutes", "tell your IT administrator"} {
			if !strings.Contains(body, s) {
				t.Errorf("email body lacks %q:\n%s", s, body)
			}
		}
	}
	if !strings.HasPrefix(m.HTML, "<!DOCTYPE html>") {
		t.Errorf("HTML body %q", m.HTML)
	}
	if !e.hasAction(flows.AuditCodeSent) {
		t.Fatal("no code.sent event")
	}
	e.mustApprove(ch.SignIn.ID, code, flows.MethodEmail)
}

func TestEmailEscapesTheAppName(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addPerson("alice", "")
	ch, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: "alice", Client: `<script>alert("x")</script> & Co`, Methods: []flows.Method{flows.MethodEmail}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatal(err)
	}
	m := e.mail.all()[0]
	if strings.Contains(m.HTML, "<script>") || !strings.Contains(m.HTML, "&lt;script&gt;") || !strings.Contains(m.HTML, "&amp; Co") {
		t.Fatalf("HTML body does not escape the app name:\n%s", m.HTML)
	}
	if !strings.Contains(m.Text, `<script>alert("x")</script> & Co`) {
		t.Fatalf("text body changed the app name:\n%s", m.Text)
	}
}

func TestSMSCode(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{OTPDigits: 8}})
	e.addPerson("alice", "+15551234567")
	ch := e.beginCode("alice", flows.MethodSMS, flows.MethodEmail)
	sent, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodSMS)
	if err != nil {
		t.Fatal(err)
	}
	// The SMS code ends with the sign-in, which ends before 5 minutes.
	if sent.To != "+1•••••4567" || sent.Channel != flows.MethodSMS || !sent.ExpiresAt.Equal(ch.SignIn.ExpiresAt) {
		t.Fatalf("sent %+v", sent)
	}
	msgs := e.sms.all()
	if len(msgs) != 1 || msgs[0].To != "+15551234567" {
		t.Fatalf("SMS %+v", msgs)
	}
	code := digits.FindString(msgs[0].Text)
	if len(code) != 8 || utf8.RuneCountInString(msgs[0].Text) > 160 || !strings.Contains(msgs[0].Text, "Payroll") {
		t.Fatalf("SMS text %q (%d characters), code %q", msgs[0].Text, utf8.RuneCountInString(msgs[0].Text), code)
	}
	e.mustApprove(ch.SignIn.ID, code, flows.MethodSMS)
}

func TestOTPIsBoundToItsSignIn(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addPerson("alice", "")
	first := e.beginCode("alice", flows.MethodEmail)
	second := e.beginCode("alice", flows.MethodEmail)
	if _, err := e.svc.SendCode(e.ctx, first.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatal(err)
	}
	code := e.lastEmailCode()
	e.mustRefuse(second.SignIn.ID, code, flows.ErrWrongCode)
	e.mustApprove(first.SignIn.ID, code, flows.MethodEmail)
}

func TestOTPExpiresAfterFiveMinutes(t *testing.T) {
	e := newCodeEnv(t, longSignIns)
	e.addPerson("alice", "")
	for _, c := range []struct {
		after time.Duration
		ok    bool
	}{{5*time.Minute - time.Second, true}, {5 * time.Minute, false}} {
		ch := e.beginCode("alice", flows.MethodEmail)
		if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
			t.Fatal(err)
		}
		code := e.lastEmailCode()
		e.clock.Advance(c.after)
		if c.ok {
			e.mustApprove(ch.SignIn.ID, code, flows.MethodEmail)
		} else {
			e.mustRefuse(ch.SignIn.ID, code, flows.ErrWrongCode)
		}
	}
}

func TestOTPDeadAfterFiveWrongAttempts(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addPerson("alice", "")
	ch := e.beginCode("alice", flows.MethodEmail)
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatal(err)
	}
	code := e.lastEmailCode()
	for range 5 {
		e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	}
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrWrongCode)
	if !strings.Contains(strings.Join(e.auditDetails(flows.AuditCodeFailed), "\n"), "email code is now dead") {
		t.Fatalf("the audit log does not say the code died: %v", e.auditDetails(flows.AuditCodeFailed))
	}
	// A new code works: the sign-in goes on.
	e.clock.Advance(30 * time.Second)
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatal(err)
	}
	e.mustApprove(ch.SignIn.ID, e.lastEmailCode(), flows.MethodEmail)
}

func TestResendReplacesTheCode(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addPerson("alice", "+15551234567")
	ch := e.beginCode("alice", flows.MethodEmail, flows.MethodSMS)
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatal(err)
	}
	old := e.lastEmailCode()
	// Another channel has its own cooldown; its code replaces the email's.
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodSMS); err != nil {
		t.Fatal(err)
	}
	smsCode := digits.FindString(e.sms.all()[0].Text)
	e.mustRefuse(ch.SignIn.ID, old, flows.ErrWrongCode)
	e.clock.Advance(30 * time.Second)
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatal(err)
	}
	e.mustRefuse(ch.SignIn.ID, smsCode, flows.ErrWrongCode)
	e.mustApprove(ch.SignIn.ID, e.lastEmailCode(), flows.MethodEmail)
}

func TestResendCooldown(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addPerson("alice", "")
	ch := e.beginCode("alice", flows.MethodEmail)
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10 * time.Second)
	_, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail)
	if !errors.Is(err, flows.ErrRateLimited) || flows.RetryAfter(err) != 20*time.Second {
		t.Fatalf("resend after 10 s: %v (retry after %v)", err, flows.RetryAfter(err))
	}
	// The cooldown is the account's, whatever the sign-in.
	other := e.beginCode("alice", flows.MethodEmail)
	if _, err := e.svc.SendCode(e.ctx, other.SignIn.ID, flows.MethodEmail); !errors.Is(err, flows.ErrRateLimited) {
		t.Fatalf("another sign-in within the cooldown: %v", err)
	}
	if n := len(e.mail.all()); n != 1 {
		t.Fatalf("%d emails sent", n)
	}
	e.clock.Advance(20 * time.Second)
	if _, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
}

func TestHourlySendCap(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{OTPSendsPerHour: 3, OTPResendCooldown: time.Second}})
	e.addPerson("alice", "")
	start := e.clock.Now()
	send := func() error {
		ch := e.beginCode("alice", flows.MethodEmail)
		_, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail)
		e.clock.Advance(time.Minute)
		return err
	}
	for i := range 3 {
		if err := send(); err != nil {
			t.Fatalf("send %d: %v", i+1, err)
		}
	}
	err := send()
	if !errors.Is(err, flows.ErrRateLimited) || flows.RetryAfter(err) != time.Hour-3*time.Minute {
		t.Fatalf("fourth send: %v (retry after %v)", err, flows.RetryAfter(err))
	}
	e.clock.Advance(start.Add(time.Hour).Sub(e.clock.Now()))
	if err := send(); err != nil {
		t.Fatalf("after the hour: %v", err)
	}
	if n := len(e.mail.all()); n != 4 {
		t.Fatalf("%d emails, want 4", n)
	}
}

func TestSendCodeRefusals(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice") // an email address, no phone
	p := e.enroll("alice")
	push := e.beginCode("alice", flows.MethodPush)
	sms := e.beginCode("alice", flows.MethodSMS)
	decided := e.beginCode("alice", flows.MethodPush, flows.MethodEmail)
	if _, err := e.svc.Decide(e.ctx, e.decision(p, decided.SignIn, flows.DecisionDeny, flows.MethodPush, "")); err != nil {
		t.Fatal(err)
	}
	noSender, err := flows.New(e.store, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{CodeKey: testCodeKey}}, flows.WithClock(e.clock))
	if err != nil {
		t.Fatal(err)
	}
	mail := e.beginCode("alice", flows.MethodEmail)
	before := len(e.auditActions())
	for _, c := range []struct {
		svc     *flows.Service
		id      string
		channel flows.Method
		want    error
	}{
		{e.svc, mail.SignIn.ID, flows.MethodOverride, flows.ErrInvalid},
		{e.svc, mail.SignIn.ID, "fax", flows.ErrInvalid},
		{e.svc, "bad id!", flows.MethodEmail, flows.ErrInvalid},
		{e.svc, flows.NewID(), flows.MethodEmail, flows.ErrNotFound},
		{e.svc, push.SignIn.ID, flows.MethodEmail, flows.ErrMethodNotAllowed},
		{e.svc, sms.SignIn.ID, flows.MethodSMS, flows.ErrChannelUnavailable}, // no phone number
		{e.svc, decided.SignIn.ID, flows.MethodEmail, flows.ErrAlreadyDecided},
		{noSender, mail.SignIn.ID, flows.MethodEmail, flows.ErrChannelUnavailable}, // no sender
	} {
		if _, err := c.svc.SendCode(e.ctx, c.id, c.channel); !errors.Is(err, c.want) {
			t.Errorf("send %s for %s: %v, want %v", c.channel, c.id, err, c.want)
		}
	}
	if after := len(e.auditActions()); after != before || len(e.mail.all()) != 0 || len(e.sms.all()) != 0 {
		t.Fatalf("refused sends changed something: %d events, %d emails, %d SMS", after-before, len(e.mail.all()), len(e.sms.all()))
	}
	e.clock.Advance(e.svc.Config().SignInTTL)
	if _, err := e.svc.SendCode(e.ctx, mail.SignIn.ID, flows.MethodEmail); !errors.Is(err, flows.ErrExpired) {
		t.Fatalf("send for an expired sign-in: %v", err)
	}
}

// TestSendFailureIsReported: a sender's failure reaches the caller, the
// audit log, the log and the admins; the undelivered code is dead.
func TestSendFailureIsReported(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addPerson("alice", "")
	cause := errors.New("smtp: 451 4.3.0 mailbox busy, try later")
	e.mail.err = cause
	ch := e.beginCode("alice", flows.MethodEmail)
	_, err := e.svc.SendCode(e.ctx, ch.SignIn.ID, flows.MethodEmail)
	if !errors.Is(err, flows.ErrDeliveryFailed) || !errors.Is(err, cause) {
		t.Fatalf("send failure: %v, want ErrDeliveryFailed wrapping the cause", err)
	}
	if d := e.auditDetails(flows.AuditCodeSendFailed); len(d) != 1 || !strings.Contains(d[0], "mailbox busy") {
		t.Fatalf("code.send_failed events: %v", d)
	}
	if !strings.Contains(e.logs.String(), "mailbox busy") {
		t.Fatalf("the log does not hold the failure:\n%s", e.logs.String())
	}
	if al := e.alerts.last(); al.Kind != flows.AlertDeliveryFailed || al.Account != "alice" {
		t.Fatalf("alert %+v", al)
	}
	if live, err := e.store.ListActiveCodes(e.ctx, alice.ID, ch.SignIn.ID, e.clock.Now()); err != nil || len(live) != 0 {
		t.Fatalf("the undelivered code is live: %v, %v", live, err)
	}
}

// auditDetails lists the details of the audit events with action.
func (e *env) auditDetails(action string) []string {
	e.t.Helper()
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Action == action {
			out = append(out, ev.Detail)
		}
	}
	return out
}

func TestMasks(t *testing.T) {
	for in, want := range map[string]string{"+15551234567": "+1•••••4567", "+447911123456": "+4•••••3456", "+123": "•••••"} {
		if got := flows.MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"alice@example.com": "a•••@example.com", "élodie@example.fr": "é•••@example.fr", "nope": "•••"} {
		if got := flows.MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}
