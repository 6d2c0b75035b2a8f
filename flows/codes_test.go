package flows_test

import (
	"bytes"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

var groupedDigits = regexp.MustCompile(`^\d{3} \d{3} \d{4}$`)

// TestOverrideWorksOnce is the guide's promise: the user without a phone
// gets a code from IT, signs in with it once, and it is dead after use.
func TestOverrideWorksOnce(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addUser("alice") // no device at all: the phone is lost
	oc, code := e.override("alice", 0)
	if !groupedDigits.MatchString(code) {
		t.Fatalf("override code %q, want 10 digits grouped 3-3-4", code)
	}
	if oc.AccountID != alice.ID || oc.CreatedBy != "admin:root" || !oc.ExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("issued %+v, want alice's, by admin:root, for the default hour", oc)
	}
	// Only the keyed hash is stored.
	stored, err := e.store.GetCode(e.ctx, oc.ID)
	if err != nil {
		t.Fatal(err)
	}
	norm := strings.ReplaceAll(code, " ", "")
	if want := expectedHash(testCodeKey, flows.MethodOverride, alice.ID, norm); !bytes.Equal(stored.Hash, want) {
		t.Fatalf("stored hash %x, want HMAC-SHA256 under the code key %x", stored.Hash, want)
	}
	evs, _ := e.svc.Audit(e.ctx, flows.AuditFilter{})
	for _, ev := range evs {
		if strings.Contains(ev.Detail, norm) || strings.Contains(ev.Detail, code) {
			t.Fatalf("the audit log holds the code: %+v", ev)
		}
	}
	if last := evs[len(evs)-1]; last.Action != flows.AuditOverrideIssued || last.Actor != "admin:root" || !strings.Contains(last.Detail, "phone at home") {
		t.Fatalf("last event %+v, want override.issued by admin:root with the reason", last)
	}

	// Push and QR are dropped for want of a device; the override is open.
	ch := e.beginCode("alice", flows.MethodPush, flows.MethodQR, flows.MethodOverride)
	if ch.Number != "" || ch.QRPayload != "" || len(ch.SignIn.Methods) != 1 || ch.SignIn.Methods[0] != flows.MethodOverride {
		t.Fatalf("challenge without a device %+v", ch)
	}
	e.mustApprove(ch.SignIn.ID, code, flows.MethodOverride)
	if s, err := e.svc.Await(e.ctx, ch.SignIn.ID); err != nil || s.Status != flows.StatusApproved || s.DecidedBy != flows.MethodOverride {
		t.Fatalf("await: %+v, %v", s, err)
	}
	evs, _ = e.svc.Audit(e.ctx, flows.AuditFilter{})
	last := evs[len(evs)-1]
	if last.Action != flows.AuditSignInApproved || last.SignInID != ch.SignIn.ID || !strings.Contains(last.Detail, "issued by admin:root") {
		t.Fatalf("approval event %+v does not name the admin who issued the code", last)
	}

	// Used once: dead for the next sign-in.
	ch2 := e.beginCode("alice", flows.MethodOverride)
	e.mustRefuse(ch2.SignIn.ID, code, flows.ErrWrongCode)
	// And for the same sign-in: it is decided.
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrAlreadyDecided)
	if v, err := e.svc.VerifyAudit(e.ctx); err != nil || !v.OK {
		t.Fatalf("audit chain: %+v, %v", v, err)
	}
}

func TestOverrideAcceptsTypedVariants(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	for _, typed := range []func(string) string{
		func(c string) string { return c },
		func(c string) string { return strings.ReplaceAll(c, " ", "") },
		func(c string) string { return strings.ReplaceAll(c, " ", "-") },
	} {
		_, code := e.override("alice", 0)
		ch := e.beginCode("alice", flows.MethodOverride)
		e.mustApprove(ch.SignIn.ID, typed(code), flows.MethodOverride)
	}
}

func TestOverrideBase32(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{OverrideFormat: flows.OverrideBase32}})
	e.addUser("alice")
	_, code := e.override("alice", 0)
	if !regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$`).MatchString(code) {
		t.Fatalf("base32 override %q, want 16 characters without I, L, O, U, grouped by 4", code)
	}
	ch := e.beginCode("alice", flows.MethodOverride)
	e.mustApprove(ch.SignIn.ID, strings.ToLower(strings.ReplaceAll(code, "-", " ")), flows.MethodOverride)
}

func TestOverrideDeadAfterItsLifetime(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	_, code := e.override("alice", 10*time.Minute)
	e.clock.Advance(10 * time.Minute)
	ch := e.beginCode("alice", flows.MethodOverride)
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrWrongCode)
}

func TestOverrideDeadAfterANewOne(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	_, first := e.override("alice", 0)
	_, second := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	e.mustRefuse(ch.SignIn.ID, first, flows.ErrWrongCode)
	e.mustApprove(ch.SignIn.ID, second, flows.MethodOverride)
}

func TestOverrideIsTheAccountsOnly(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	e.addUser("bob")
	_, code := e.override("alice", 0)
	ch := e.beginCode("bob", flows.MethodOverride)
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrWrongCode)
	// Nor is it an OTP: a sign-in open to email only does not take it.
	ch = e.beginCode("alice", flows.MethodEmail)
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrWrongCode)
	ch = e.beginCode("alice", flows.MethodOverride)
	e.mustApprove(ch.SignIn.ID, code, flows.MethodOverride)
}

// TestOverrideDeadAfterSuspendAndRemove: a code does not outlive the
// account's eligibility, and a suspended or removed account cannot use one.
func TestOverrideDeadAfterSuspendAndRemove(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	if _, err := e.svc.SuspendAccount(e.ctx, "admin", "alice", flows.SourceDirectory, "disabled in AD"); err != nil {
		t.Fatal(err)
	}
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrAlreadyDecided) // the pending sign-in was cancelled
	if _, _, err := e.svc.IssueOverride(e.ctx, "admin:root", "alice", 0, ""); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("issue while suspended: %v", err)
	}
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: "alice", Client: "App", Methods: []flows.Method{flows.MethodOverride}}); !errors.Is(err, flows.ErrAccountSuspended) {
		t.Fatalf("begin while suspended: %v", err)
	}
	if _, err := e.svc.RestoreAccount(e.ctx, "admin", "alice", flows.SourceDirectory, ""); err != nil {
		t.Fatal(err)
	}
	ch = e.beginCode("alice", flows.MethodOverride)
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrWrongCode) // revoked by the suspension

	_, code = e.override("alice", 0)
	if _, err := e.svc.RemoveAccount(e.ctx, "admin", "alice", flows.SourceDirectory, "left"); err != nil {
		t.Fatal(err)
	}
	if live, err := e.store.ListActiveCodes(e.ctx, alice.ID, "", e.clock.Now()); err != nil || len(live) != 0 {
		t.Fatalf("codes of a removed account still live: %v, %v", live, err)
	}
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrAlreadyDecided)
}

// TestSuspendedAccountCannotUseACode checks SubmitCode's own refusal, for
// a state set behind flows' back (a directory sync racing the sign-in).
func TestSuspendedAccountCannotUseACode(t *testing.T) {
	for _, state := range []flows.AccountState{flows.AccountSuspended, flows.AccountRemoved} {
		t.Run(string(state), func(t *testing.T) {
			e := newCodeEnv(t, flows.Config{})
			a := e.addUser("alice")
			_, code := e.override("alice", 0)
			ch := e.beginCode("alice", flows.MethodOverride)
			a.State = state
			if err := e.store.UpdateAccount(e.ctx, a); err != nil {
				t.Fatal(err)
			}
			want := map[flows.AccountState]error{flows.AccountSuspended: flows.ErrAccountSuspended, flows.AccountRemoved: flows.ErrAccountRemoved}[state]
			e.mustRefuse(ch.SignIn.ID, code, want)
			if live, _ := e.store.ListActiveCodes(e.ctx, a.ID, "", e.clock.Now()); len(live) != 1 {
				t.Fatalf("the refused code changed: %d live codes", len(live))
			}
		})
	}
}

func TestIssueOverrideRefusals(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	before := len(e.auditActions())
	for _, c := range []struct {
		actor, ref, reason string
		ttl                time.Duration
		want               error
	}{
		{"admin", "alice", "", 7*24*time.Hour + time.Second, flows.ErrInvalid},
		{"admin", "alice", "", 59 * time.Second, flows.ErrInvalid},
		{"admin", "alice", "", -time.Hour, flows.ErrInvalid},
		{"admin", "alice", "line\nbreak", 0, flows.ErrInvalid},
		{"", "alice", "", 0, flows.ErrInvalid},
		{"admin", "nobody", "", 0, flows.ErrNotFound},
	} {
		if _, code, err := e.svc.IssueOverride(e.ctx, c.actor, c.ref, c.ttl, c.reason); !errors.Is(err, c.want) || code != "" {
			t.Errorf("issue %+v: %q, %v; want %v", c, code, err, c.want)
		}
	}
	if after := len(e.auditActions()); after != before {
		t.Fatalf("refused issues wrote %d audit events", after-before)
	}
	oc, _, err := e.svc.IssueOverride(e.ctx, "admin", "alice", 7*24*time.Hour, "")
	if err != nil || !oc.ExpiresAt.Equal(e.clock.Now().Add(7*24*time.Hour)) {
		t.Fatalf("a 7-day code: %+v, %v", oc, err)
	}

	off := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{CodeMethods: []flows.Method{flows.MethodEmail}}})
	off.addUser("alice")
	if _, _, err := off.svc.IssueOverride(off.ctx, "admin", "alice", 0, ""); !errors.Is(err, flows.ErrMethodNotAllowed) {
		t.Fatalf("override turned off: %v", err)
	}
	if _, err := off.svc.Begin(off.ctx, flows.BeginRequest{Username: "alice", Client: "App", Methods: []flows.Method{flows.MethodOverride}}); !errors.Is(err, flows.ErrMethodNotAllowed) {
		t.Fatalf("begin with override turned off: %v", err)
	}
}

func TestBeginWithoutDevice(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	for _, ms := range [][]flows.Method{nil, {flows.MethodPush}, {flows.MethodQR, flows.MethodPush}} {
		if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: "alice", Client: "App", Methods: ms}); !errors.Is(err, flows.ErrNoDevice) {
			t.Errorf("begin %v without a device: %v, want ErrNoDevice", ms, err)
		}
	}
	ch := e.beginCode("alice", flows.MethodPush, flows.MethodEmail)
	if ch.Number != "" || len(ch.SignIn.Methods) != 1 || ch.SignIn.Methods[0] != flows.MethodEmail {
		t.Fatalf("push+email without a device: %+v", ch)
	}
	got, err := e.svc.GetSignIn(e.ctx, ch.SignIn.ID)
	if err != nil || len(got.Methods) != 1 || got.Methods[0] != flows.MethodEmail {
		t.Fatalf("stored sign-in %+v, %v", got, err)
	}
}

func TestSubmitCodeRefusals(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	p := e.enroll("alice")
	_, code := e.override("alice", 0)
	push := e.beginCode("alice", flows.MethodPush)
	ov := e.beginCode("alice", flows.MethodOverride)
	before := len(e.auditActions())
	for _, c := range []struct {
		id, code, ip string
		want         error
	}{
		{ov.SignIn.ID, "", "", flows.ErrInvalid},
		{ov.SignIn.ID, "12 34 ?", "", flows.ErrInvalid},
		{ov.SignIn.ID, strings.Repeat("1", 33), "", flows.ErrInvalid},
		{ov.SignIn.ID, strings.Repeat("1", 200), "", flows.ErrInvalid},
		{ov.SignIn.ID, code, "192.0.2.7\n", flows.ErrInvalid},
		{"bad id!", code, "", flows.ErrInvalid},
		{flows.NewID(), code, "", flows.ErrNotFound},
		{push.SignIn.ID, code, "", flows.ErrMethodNotAllowed},
	} {
		if _, err := e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: c.id, Code: c.code, IP: c.ip}); !errors.Is(err, c.want) {
			t.Errorf("submit %+v: %v, want %v", c, err, c.want)
		}
	}
	if after := len(e.auditActions()); after != before {
		t.Fatalf("refused submissions wrote %d audit events", after-before)
	}
	if l := e.limits(p.device.AccountID); l.FailedCodes != 0 {
		t.Fatalf("refused submissions counted as failures: %+v", l)
	}
	// A code cannot decide a sign-in that has expired.
	e.clock.Advance(e.svc.Config().SignInTTL)
	e.mustRefuse(ov.SignIn.ID, code, flows.ErrExpired)
}

// TestLockout: MaxFailedCodes consecutive wrong codes lock the account's
// codes, the admins are told, and the right code is refused until unlock.
func TestLockout(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	for i := 1; i < 10; i++ {
		e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
		if l := e.limits(alice.ID); l.FailedCodes != i || !l.LockedUntil.IsZero() {
			t.Fatalf("after %d failures: %+v", i, l)
		}
	}
	err := e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrLocked)
	until, ok := flows.LockedUntil(err)
	if !errors.Is(err, flows.ErrWrongCode) || !ok || !until.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("tenth failure: %v (until %v)", err, until)
	}
	if !e.hasAction(flows.AuditCodesLocked) || e.countAction(flows.AuditCodeFailed) != 10 {
		t.Fatalf("audit: %v", e.auditActions())
	}
	if al := e.alerts.last(); al.Kind != flows.AlertCodesLocked || al.Account != "alice" || al.SignIn != ch.SignIn.ID {
		t.Fatalf("alert %+v, want codes_locked for alice", al)
	}
	// Locked: the right code is refused without being checked.
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrLocked)
	if l := e.limits(alice.ID); l.FailedCodes != 10 {
		t.Fatalf("a check while locked counted: %+v", l)
	}
	if locked, end := e.limits(alice.ID).CodesLocked(e.clock.Now()); !locked || !end.Equal(until) {
		t.Fatalf("CodesLocked = %v, %v", locked, end)
	}
	if _, err := e.svc.UnlockCodes(e.ctx, "admin:root", "alice"); err != nil {
		t.Fatal(err)
	}
	if l := e.limits(alice.ID); l != (flows.AccountLimits{}) {
		t.Fatalf("after unlock: %+v", l)
	}
	e.mustApprove(ch.SignIn.ID, code, flows.MethodOverride)
	if !e.hasAction(flows.AuditCodesUnlocked) {
		t.Fatal("no codes.unlocked event")
	}
	if _, err := e.svc.UnlockCodes(e.ctx, "admin", "nobody"); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("unlock nobody: %v", err)
	}
}

func TestLockExpires(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{MaxFailedCodes: 3, CodeLockout: 10 * time.Minute}})
	alice := e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	for range 3 {
		e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	}
	e.clock.Advance(10*time.Minute - time.Second)
	ch = e.beginCode("alice", flows.MethodOverride)
	e.mustRefuse(ch.SignIn.ID, code, flows.ErrLocked)
	e.clock.Advance(time.Second)
	// The lock is over, the count is not: one more failure locks again.
	e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrLocked)
	if l := e.limits(alice.ID); l.FailedCodes != 4 || !l.LockedUntil.Equal(e.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("failure after the lock: %+v", l)
	}
	e.clock.Advance(10 * time.Minute)
	ch = e.beginCode("alice", flows.MethodOverride)
	e.mustApprove(ch.SignIn.ID, code, flows.MethodOverride)
	if l := e.limits(alice.ID); l.FailedCodes != 0 {
		t.Fatalf("a success did not reset the failures: %+v", l)
	}
}

// TestNewCodeDoesNotResetFailures and TestSuccessResetsFailures are NIST SP
// 800-63B's rule: only a success resets the consecutive failures.
func TestNewCodeDoesNotResetFailures(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	for range 6 {
		e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	}
	_, code = e.override("alice", 0)
	ch = e.beginCode("alice", flows.MethodOverride)
	if l := e.limits(alice.ID); l.FailedCodes != 6 {
		t.Fatalf("a new code reset the failures: %+v", l)
	}
	for range 3 {
		e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	}
	e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrLocked)
}

func TestSuccessResetsFailures(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	alice := e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	for range 9 {
		e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	}
	e.mustApprove(ch.SignIn.ID, code, flows.MethodOverride)
	if l := e.limits(alice.ID); l.FailedCodes != 0 {
		t.Fatalf("after a success: %+v", l)
	}
	_, code = e.override("alice", 0)
	ch = e.beginCode("alice", flows.MethodOverride)
	for range 9 {
		e.mustRefuse(ch.SignIn.ID, wrongCode(code), flows.ErrWrongCode)
	}
	e.mustApprove(ch.SignIn.ID, code, flows.MethodOverride)
}

// TestLockIsForGoodAtHundredFailures: NIST SP 800-63B allows at most 100
// consecutive failures; past them only an admin can unlock.
func TestLockIsForGoodAtHundredFailures(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{CodeLockout: time.Minute,
		CodeChecksPerIPPerMinute: 10000, CodeChecksPerAccountPerMinute: 10000}})
	alice := e.addUser("alice")
	_, code := e.override("alice", 7*24*time.Hour)
	for e.limits(alice.ID).FailedCodes < flows.MaxConsecutiveCodeFailures {
		ch := e.beginCode("alice", flows.MethodOverride)
		_, err := e.submit(ch.SignIn.ID, wrongCode(code))
		if !errors.Is(err, flows.ErrWrongCode) && !errors.Is(err, flows.ErrLocked) {
			t.Fatalf("failure %d: %v", e.limits(alice.ID).FailedCodes, err)
		}
		e.clock.Advance(time.Minute) // outlive each lock
	}
	e.clock.Advance(24 * time.Hour)
	ch := e.beginCode("alice", flows.MethodOverride)
	err := e.mustRefuse(ch.SignIn.ID, code, flows.ErrLocked)
	if until, ok := flows.LockedUntil(err); !ok || !until.IsZero() {
		t.Fatalf("after 100 failures the lock ends at %v, want only by an admin", until)
	}
	if _, err := e.svc.UnlockCodes(e.ctx, "admin", "alice"); err != nil {
		t.Fatal(err)
	}
	e.mustApprove(ch.SignIn.ID, code, flows.MethodOverride)
}

func TestCodeChecksPerAddress(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{CodeChecksPerIPPerMinute: 3}})
	alice := e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	from := func(ip, c string) error {
		_, err := e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: ch.SignIn.ID, Code: c, IP: ip})
		return err
	}
	for range 3 {
		if err := from("2001:db8:1:2::7", wrongCode(code)); !errors.Is(err, flows.ErrWrongCode) {
			t.Fatalf("within the limit: %v", err)
		}
	}
	// The same /64 is the same client; its fourth check is not made.
	err := from("2001:db8:1:2::99", code)
	if !errors.Is(err, flows.ErrRateLimited) || flows.RetryAfter(err) != time.Minute {
		t.Fatalf("fourth check from the /64: %v (retry after %v)", err, flows.RetryAfter(err))
	}
	if l := e.limits(alice.ID); l.FailedCodes != 3 {
		t.Fatalf("a refused check counted: %+v", l)
	}
	if err := from("192.0.2.9", wrongCode(code)); !errors.Is(err, flows.ErrWrongCode) {
		t.Fatalf("another address: %v", err)
	}
	e.clock.Advance(time.Minute)
	if s, err := e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: ch.SignIn.ID, Code: code, IP: "2001:db8:1:2::7"}); err != nil || s.Status != flows.StatusApproved {
		t.Fatalf("after a minute: %+v, %v", s, err)
	}
}

func TestCodeChecksPerAccount(t *testing.T) {
	e := newCodeEnv(t, flows.Config{CodeConfig: flows.CodeConfig{CodeChecksPerAccountPerMinute: 2}})
	e.addUser("alice")
	_, code := e.override("alice", 0)
	ch := e.beginCode("alice", flows.MethodOverride)
	for i, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		if _, err := e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: ch.SignIn.ID, Code: wrongCode(code), IP: ip}); !errors.Is(err, flows.ErrWrongCode) {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	_, err := e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: ch.SignIn.ID, Code: code, IP: "192.0.2.3"})
	if !errors.Is(err, flows.ErrRateLimited) || flows.RetryAfter(err) <= 0 {
		t.Fatalf("third check on the account from a third address: %v", err)
	}
}

// TestConcurrentRedemptionExactlyOneWins: 200 submissions of the right
// override code at once approve the sign-in once; the others lose cleanly
// and none counts as a failure.
// TestCodesAreComparedInConstantTime reads codes.go: the hash of a typed
// code is compared with subtle.ConstantTimeCompare against every candidate,
// and nothing there compares bytes any other way.
func TestCodesAreComparedInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var inMatch, elsewhere int
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if !ok {
			return true
		}
		ast.Inspect(fn.Body, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			pkg, _ := sel.X.(*ast.Ident)
			if pkg == nil {
				return true
			}
			switch name := pkg.Name + "." + sel.Sel.Name; name {
			case "subtle.ConstantTimeCompare":
				if fn.Name.Name == "matchCode" {
					inMatch++
				}
			case "bytes.Equal", "bytes.Compare", "reflect.DeepEqual", "slices.Equal":
				elsewhere++
				t.Errorf("%s compares bytes with %s", fset.Position(sel.Pos()), name)
			}
			return true
		})
		return false
	})
	if inMatch != 1 || elsewhere != 0 {
		t.Fatalf("matchCode calls subtle.ConstantTimeCompare %d times; other comparisons: %d", inMatch, elsewhere)
	}
}

func TestNormalizeCode(t *testing.T) {
	for in, want := range map[string]string{
		"123 456 7890":        "1234567890",
		"123-456-7890":        "1234567890",
		"abcd-efgh-jkmn-pqrs": "ABCDEFGHJKMNPQRS",
		"o1l1-i0":             "011110",
	} {
		if got, err := flows.NormalizeCode(in); err != nil || got != want {
			t.Errorf("NormalizeCode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", " - ", "12_34", "123\n", "१२३", "ü1234", "U1234", strings.Repeat("9", 33)} {
		if got, err := flows.NormalizeCode(in); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("NormalizeCode(%q) = %q, %v; want ErrInvalid", in, got, err)
		}
	}
}

func TestCodeConfig(t *testing.T) {
	e := newEnv(t, flows.Config{})
	c := e.svc.Config()
	if c.CodeKey != nil {
		t.Fatal("Config() shows the code key")
	}
	want := flows.CodeConfig{
		CodeMethods: []flows.Method{flows.MethodOverride, flows.MethodSMS, flows.MethodEmail}, OverrideTTL: time.Hour,
		OverrideFormat: flows.OverrideDigits, OTPDigits: 6, OTPTTL: 5 * time.Minute, OTPMaxAttempts: 5,
		OTPResendCooldown: 30 * time.Second, OTPSendsPerHour: 10, MaxFailedCodes: 10, CodeLockout: time.Hour,
		CodeChecksPerIPPerMinute: 20, CodeChecksPerAccountPerMinute: 30, PushLimit: 5, PushWindow: 10 * time.Minute,
	}
	if !equalCodeConfig(c.CodeConfig, want) {
		t.Fatalf("defaults %+v\nwant     %+v", c.CodeConfig, want)
	}
	key := testCodeKey
	for _, cc := range []flows.CodeConfig{
		{},
		{CodeKey: key[:31]},
		{CodeKey: key, CodeMethods: []flows.Method{flows.MethodPush}},
		{CodeKey: key, CodeMethods: []flows.Method{flows.MethodSMS, flows.MethodSMS}},
		{CodeKey: key, OverrideFormat: "hex"},
		{CodeKey: key, OverrideTTL: 8 * 24 * time.Hour},
		{CodeKey: key, OTPDigits: 5},
		{CodeKey: key, OTPDigits: 9},
		{CodeKey: key, OTPTTL: 11 * time.Minute},
		{CodeKey: key, OTPMaxAttempts: 11},
		{CodeKey: key, OTPResendCooldown: -time.Second},
		{CodeKey: key, OTPSendsPerHour: -1},
		{CodeKey: key, MaxFailedCodes: 101},
		{CodeKey: key, CodeLockout: 31 * 24 * time.Hour},
		{CodeKey: key, CodeChecksPerIPPerMinute: -1},
		{CodeKey: key, PushLimit: 1001},
		{CodeKey: key, PushWindow: 25 * time.Hour},
		{CodeKey: key, FraudPushBlock: -time.Minute},
	} {
		if _, err := flows.New(e.store, flows.Config{Origin: origin, CodeConfig: cc}); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("config %+v accepted: %v", cc, err)
		}
	}
	none, err := flows.New(e.store, flows.Config{Origin: origin, CodeConfig: flows.CodeConfig{CodeKey: key, CodeMethods: []flows.Method{}}})
	if err != nil || len(none.Config().CodeMethods) != 0 {
		t.Fatalf("no code methods: %v, %v", none, err)
	}
}

func equalCodeConfig(a, b flows.CodeConfig) bool {
	if len(a.CodeMethods) != len(b.CodeMethods) {
		return false
	}
	for i := range a.CodeMethods {
		if a.CodeMethods[i] != b.CodeMethods[i] {
			return false
		}
	}
	a.CodeMethods, b.CodeMethods, a.CodeKey, b.CodeKey = nil, nil, nil, nil
	return a.OverrideTTL == b.OverrideTTL && a.OverrideFormat == b.OverrideFormat && a.OTPDigits == b.OTPDigits &&
		a.OTPTTL == b.OTPTTL && a.OTPMaxAttempts == b.OTPMaxAttempts && a.OTPResendCooldown == b.OTPResendCooldown &&
		a.OTPSendsPerHour == b.OTPSendsPerHour && a.MaxFailedCodes == b.MaxFailedCodes && a.CodeLockout == b.CodeLockout &&
		a.CodeChecksPerIPPerMinute == b.CodeChecksPerIPPerMinute && a.CodeChecksPerAccountPerMinute == b.CodeChecksPerAccountPerMinute &&
		a.PushLimit == b.PushLimit && a.PushWindow == b.PushWindow && a.FraudPushBlock == b.FraudPushBlock
}

func TestPurgeForgetsOldCodes(t *testing.T) {
	e := newCodeEnv(t, flows.Config{})
	e.addUser("alice")
	oc, _ := e.override("alice", time.Minute)
	e.clock.Advance(time.Minute + 23*time.Hour)
	if err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetCode(e.ctx, oc.ID); err != nil {
		t.Fatalf("a code expired less than a day ago was purged: %v", err)
	}
	e.clock.Advance(time.Hour + time.Second)
	if err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetCode(e.ctx, oc.ID); !errors.Is(err, flows.ErrNotFound) {
		t.Fatalf("a code expired over a day ago: %v", err)
	}
}
