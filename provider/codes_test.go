package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// outbox records the codes flows sends, by email and SMS; err makes every
// send fail.
type outbox struct {
	mu     sync.Mutex
	emails []flows.Email
	texts  []flows.SMS
	err    error
}

func (o *outbox) SendEmail(_ context.Context, m flows.Email) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	o.emails = append(o.emails, m)
	return nil
}

func (o *outbox) SendSMS(_ context.Context, m flows.SMS) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	o.texts = append(o.texts, m)
	return nil
}

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// lastCode is the code in the last email or SMS.
func (o *outbox) lastCode(t testing.TB) string {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	var text string
	switch {
	case len(o.texts) > 0 && len(o.emails) == 0:
		text = o.texts[len(o.texts)-1].Text
	case len(o.emails) > 0:
		text = o.emails[len(o.emails)-1].Text
	}
	c := sixDigits.FindString(text)
	if c == "" {
		t.Fatalf("no code sent (%q)", text)
	}
	return c
}

// newCodesEnv is newEnv with email and SMS senders (one outbox) and a policy.
func newCodesEnv(t testing.TB, cfg flows.Config) (*env, *outbox) {
	t.Helper()
	o := &outbox{}
	e := newBareEnvWith(t, cfg, flows.WithEmailSender(o), flows.WithSMSSender(o))
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	return e, o
}

func overridePath(user string) string { return userPath(api.PathUserOverride, user) }
func unlockPath(user string) string   { return userPath(api.PathUserUnlock, user) }
func sendCodePath(id string) string   { return strings.Replace(api.PathSendCode, "{id}", id, 1) }
func codePath(id string) string       { return strings.Replace(api.PathSubmitCode, "{id}", id, 1) }

var grouped = regexp.MustCompile(`^\d{3} \d{3} \d{4}$`)

func TestAdminOverride(t *testing.T) {
	e, _ := newCodesEnv(t, flows.Config{})
	e.addUser("alice") // no phone at hand: no device at all
	resp := e.admin("POST", overridePath("alice"), api.OverrideRequest{TTL: "2h", Reason: "phone at home"})
	oc := decode[api.OverrideCode](t, resp, http.StatusCreated)
	if !grouped.MatchString(oc.Code) || oc.User != "alice" || oc.ID == "" || !oc.ExpiresAt.Equal(e.clock.Now().Add(2*time.Hour)) {
		t.Fatalf("override %+v", oc)
	}
	// The code is in that answer only.
	digits := strings.ReplaceAll(oc.Code, " ", "")
	for _, path := range []string{userPath(api.PathUser, "alice"), api.PathAudit} {
		b, _ := io.ReadAll(e.admin("GET", path, nil).Body)
		if strings.Contains(string(b), digits) || strings.Contains(string(b), oc.Code) {
			t.Fatalf("GET %s shows the code: %s", path, b)
		}
	}
	ch := e.testSignIn("alice", "override")
	if ch.Number != "" || ch.QRPayload != "" || len(ch.Methods) != 1 || ch.Methods[0] != "override" {
		t.Fatalf("override test sign-in %+v", ch)
	}
	s := decode[api.SignIn](t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: oc.Code}), http.StatusOK)
	if s.Status != "approved" || s.DecidedBy != "override" {
		t.Fatalf("after the code: %+v", s)
	}
	if got := e.signIn(ch.ID); got.Status != "approved" {
		t.Fatalf("stored sign-in %+v", got)
	}
	ch = e.testSignIn("alice", "override")
	p := wantProblem(t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: oc.Code}), http.StatusBadRequest, api.ProblemWrongCode)
	if p.Detail != flows.ErrWrongCode.Error() {
		t.Fatalf("wrong-code detail %q says more than it should", p.Detail)
	}
	// Default lifetime with an empty body; "7d" is the longest.
	oc = decode[api.OverrideCode](t, e.admin("POST", overridePath("alice"), nil), http.StatusCreated)
	if !oc.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("default lifetime: %+v", oc)
	}
	oc = decode[api.OverrideCode](t, e.admin("POST", overridePath("alice"), api.OverrideRequest{TTL: "7d"}), http.StatusCreated)
	if !oc.ExpiresAt.Equal(e.clock.Now().Add(7 * 24 * time.Hour)) {
		t.Fatalf("7d: %+v", oc)
	}
}

func TestAdminOverrideRefused(t *testing.T) {
	e, _ := newCodesEnv(t, flows.Config{})
	e.addUser("alice")
	e.addUser("bob")
	e.admin("POST", userPath(api.PathUserSuspend, "bob"), nil)
	before := e.auditLen()
	for _, c := range []struct {
		user   string
		body   any
		status int
		typ    string
	}{
		{"alice", api.OverrideRequest{TTL: "8d"}, http.StatusBadRequest, api.ProblemInvalid},
		{"alice", api.OverrideRequest{TTL: "soon"}, http.StatusBadRequest, api.ProblemInvalid},
		{"alice", api.OverrideRequest{TTL: "-1h"}, http.StatusBadRequest, api.ProblemInvalid},
		{"alice", api.OverrideRequest{TTL: "0d"}, http.StatusBadRequest, api.ProblemInvalid},
		{"alice", api.OverrideRequest{TTL: "30s"}, http.StatusBadRequest, api.ProblemInvalid},
		{"alice", api.OverrideRequest{Reason: "two\nlines"}, http.StatusBadRequest, api.ProblemInvalid},
		{"alice", []byte(`{"ttl":"1h","code":"123"}`), http.StatusBadRequest, api.ProblemInvalid},
		{"alice", []byte(`{"ttl":3600}`), http.StatusBadRequest, api.ProblemInvalid},
		{"alice", []byte(`{"ttl":"` + strings.Repeat("1", MaxBodyBytes) + `"}`), http.StatusRequestEntityTooLarge, api.ProblemTooLarge},
		{"nobody", nil, http.StatusNotFound, api.ProblemNotFound},
		{"bob", nil, http.StatusForbidden, api.ProblemAccountSuspended},
	} {
		wantProblem(t, e.admin("POST", overridePath(c.user), c.body), c.status, c.typ)
	}
	if after := e.auditLen(); after != before {
		t.Fatalf("refused overrides wrote %d audit events", after-before)
	}
}

// TestAdminLockAndUnlock: ten wrong codes lock the account's codes; the
// user's page shows it; unlock lifts it.
func TestAdminLockAndUnlock(t *testing.T) {
	e, _ := newCodesEnv(t, flows.Config{})
	e.addUser("alice")
	oc := decode[api.OverrideCode](t, e.admin("POST", overridePath("alice"), nil), http.StatusCreated)
	ch := e.testSignIn("alice", "override")
	wrong := "000 000 0000"
	if strings.ReplaceAll(oc.Code, " ", "") == "0000000000" {
		wrong = "111 111 1111"
	}
	for range 9 {
		wantProblem(t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: wrong}), http.StatusBadRequest, api.ProblemWrongCode)
	}
	p := wantProblem(t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: wrong}), http.StatusLocked, api.ProblemLocked)
	if !strings.Contains(p.Detail, "until 2026-11-27T10:00:00Z") {
		t.Fatalf("locked detail %q", p.Detail)
	}
	u := decode[api.User](t, e.admin("GET", userPath(api.PathUser, "alice"), nil), http.StatusOK)
	if !u.CodesLocked || u.FailedCodes != 10 || !u.CodesLockedUntil.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("user while locked %+v", u)
	}
	wantProblem(t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: oc.Code}), http.StatusLocked, api.ProblemLocked)
	u = decode[api.User](t, e.admin("POST", unlockPath("alice"), nil), http.StatusOK)
	if u.CodesLocked || u.FailedCodes != 0 || !u.CodesLockedUntil.IsZero() {
		t.Fatalf("user after unlock %+v", u)
	}
	s := decode[api.SignIn](t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: oc.Code}), http.StatusOK)
	if s.Status != "approved" {
		t.Fatalf("after unlock: %+v", s)
	}
	wantProblem(t, e.admin("POST", unlockPath("nobody"), nil), http.StatusNotFound, api.ProblemNotFound)
	wantProblem(t, e.admin("POST", unlockPath("alice"), []byte(`{"all":true}`)), http.StatusBadRequest, api.ProblemInvalid)
}

func TestAdminSendCode(t *testing.T) {
	e, out := newCodesEnv(t, flows.Config{})
	e.admin("POST", api.PathUsers, api.NewUser{Username: "alice", Email: "alice@example.com", Phone: "+15551234567"})
	e.addUser("bob") // no phone
	ch := e.testSignIn("alice", "email", "sms")
	sent := decode[api.SentCode](t, e.admin("POST", sendCodePath(ch.ID), api.SendCodeRequest{Channel: "sms"}), http.StatusOK)
	now := e.clock.Now()
	if sent != (api.SentCode{Channel: "sms", To: "+1•••••4567", ExpiresAt: ch.ExpiresAt, ResendAfter: now.Add(30 * time.Second)}) {
		t.Fatalf("sent %+v", sent)
	}
	code := out.lastCode(t)
	// Too soon for another SMS: 429 with Retry-After.
	resp := e.admin("POST", sendCodePath(ch.ID), api.SendCodeRequest{Channel: "sms"})
	wantProblem(t, resp, http.StatusTooManyRequests, api.ProblemRateLimited)
	if ra := resp.Header.Get("Retry-After"); ra != "30" {
		t.Fatalf("Retry-After %q", ra)
	}
	s := decode[api.SignIn](t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: code}), http.StatusOK)
	if s.Status != "approved" || s.DecidedBy != "sms" {
		t.Fatalf("after the SMS code: %+v", s)
	}

	bob := e.testSignIn("bob", "sms")
	wantProblem(t, e.admin("POST", sendCodePath(bob.ID), api.SendCodeRequest{Channel: "sms"}), http.StatusConflict, api.ProblemChannelUnavailable)
	wantProblem(t, e.admin("POST", sendCodePath(bob.ID), api.SendCodeRequest{Channel: "email"}), http.StatusConflict, api.ProblemMethodNotAllowed)
	wantProblem(t, e.admin("POST", sendCodePath(bob.ID), api.SendCodeRequest{Channel: "fax"}), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", sendCodePath(bob.ID), nil), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", sendCodePath(flows.NewID()), api.SendCodeRequest{Channel: "sms"}), http.StatusNotFound, api.ProblemNotFound)
	wantProblem(t, e.admin("POST", sendCodePath(ch.ID), api.SendCodeRequest{Channel: "email"}), http.StatusConflict, api.ProblemAlreadyDecided)

	// A sender that fails: 502, and the cause stays in the log.
	out.err = errors.New("smtp: 451 4.3.0 mailbox busy")
	mail := e.testSignIn("bob", "email")
	p := wantProblem(t, e.admin("POST", sendCodePath(mail.ID), api.SendCodeRequest{Channel: "email"}), http.StatusBadGateway, api.ProblemDeliveryFailed)
	if strings.Contains(p.Detail, "mailbox busy") {
		t.Fatalf("the detail leaks the sender's error: %q", p.Detail)
	}
	if !strings.Contains(e.logText(), "mailbox busy") {
		t.Fatalf("the log lacks the cause:\n%s", e.logText())
	}
}

func TestAdminCodeChecksPerAddress(t *testing.T) {
	e, _ := newCodesEnv(t, flows.Config{CodeConfig: flows.CodeConfig{CodeChecksPerIPPerMinute: 2}})
	e.addUser("alice")
	ch := e.testSignIn("alice", "override")
	for range 2 {
		wantProblem(t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: "1234567890"}), http.StatusBadRequest, api.ProblemWrongCode)
	}
	resp := e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: "1234567890"})
	wantProblem(t, resp, http.StatusTooManyRequests, api.ProblemRateLimited)
	if ra := resp.Header.Get("Retry-After"); ra != "60" {
		t.Fatalf("Retry-After %q", ra)
	}
	wantProblem(t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: "12?4"}), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", codePath(ch.ID), []byte(`{"code":1234567890}`)), http.StatusBadRequest, api.ProblemInvalid)
}

// TestAdminCodeChecksPerEndUserAddress checks that the per-address limit
// counts the end user's address that the caller gives, each its own bucket,
// and the caller's own address only when it gives none.
func TestAdminCodeChecksPerEndUserAddress(t *testing.T) {
	e, _ := newCodesEnv(t, flows.Config{CodeConfig: flows.CodeConfig{CodeChecksPerIPPerMinute: 2}})
	e.addUser("alice")
	ch := e.testSignIn("alice", "override")
	wrong := func(ip string) *http.Response {
		return e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: "1234567890", IP: ip})
	}
	for range 2 {
		wantProblem(t, wrong("203.0.113.1"), http.StatusBadRequest, api.ProblemWrongCode)
	}
	wantProblem(t, wrong("203.0.113.1"), http.StatusTooManyRequests, api.ProblemRateLimited)
	// The same address written as an IPv4-mapped IPv6 one is the same bucket.
	wantProblem(t, wrong("::ffff:203.0.113.1"), http.StatusTooManyRequests, api.ProblemRateLimited)
	// Another user's address has a bucket of its own, and so has the caller's.
	wantProblem(t, wrong("198.51.100.2"), http.StatusBadRequest, api.ProblemWrongCode)
	wantProblem(t, wrong("2001:db8::7"), http.StatusBadRequest, api.ProblemWrongCode)
	wantProblem(t, wrong(""), http.StatusBadRequest, api.ProblemWrongCode)
	wantProblem(t, wrong(""), http.StatusBadRequest, api.ProblemWrongCode)
	wantProblem(t, wrong(""), http.StatusTooManyRequests, api.ProblemRateLimited)
	// A malformed address is refused before any code is checked.
	before := e.auditLen()
	for _, ip := range []string{"203.0.113", "localhost", "203.0.113.1:80", "fe80::1%eth0x/64", " 203.0.113.3"} {
		wantProblem(t, wrong(ip), http.StatusBadRequest, api.ProblemInvalid)
	}
	if after := e.auditLen(); after != before {
		t.Fatalf("malformed addresses changed the audit log: %d -> %d events", before, after)
	}
}

func TestAdminTestSignInShowsPushSuppressed(t *testing.T) {
	e, _ := newCodesEnv(t, flows.Config{CodeConfig: flows.CodeConfig{PushLimit: 1}})
	e.addUser("alice")
	e.enroll("alice")
	if ch := e.testSignIn("alice", "push"); ch.Number == "" || ch.PushSuppressed != "" {
		t.Fatalf("first push %+v", ch)
	}
	ch := e.testSignIn("alice", "push", "email")
	if ch.PushSuppressed != "rate" || ch.Number != "" || ch.QRPayload == "" || strings.Join(ch.Methods, ",") != "qr,email" {
		t.Fatalf("second push %+v", ch)
	}
}
