package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// The conformance tests of codes, account limits and rate limits.

var codeFunctional = []struct {
	name string
	fn   func(t *testing.T, s flows.Tx)
}{
	{"CodeRoundTrip", testCodeRoundTrip},
	{"CodeErrors", testCodeErrors},
	{"ListActiveCodes", testListActiveCodes},
	{"RedeemCode", testRedeemCode},
	{"RecordCodeAttempt", testRecordCodeAttempt},
	{"RevokeCodes", testRevokeCodes},
	{"PurgeCodes", testPurgeCodes},
	{"CodesGoWithTheirAccount", testCodesGoWithTheirAccount},
	{"AccountLimits", testAccountLimits},
	{"RecordCodeFailure", testRecordCodeFailure},
	{"BlockPush", testBlockPush},
	{"HitRateLimit", testHitRateLimit},
	{"PurgeRateLimits", testPurgeRateLimits},
}

var codeConcurrent = []struct {
	name string
	fn   func(t *testing.T, s flows.Store)
}{
	{"RedeemCode", testConcurrentRedeemCode},
	{"HitRateLimit", testConcurrentHitRateLimit},
	{"RecordCodeFailure", testConcurrentCodeFailure},
}

// override is an override code of accountID, issued at t0.
func override(id, accountID string, expires time.Time) flows.Code {
	return flows.Code{
		ID: id, AccountID: accountID, Kind: flows.MethodOverride, Hash: []byte("hmac-of-" + id),
		CreatedBy: "admin:root", CreatedAt: t0, ExpiresAt: expires,
	}
}

// otp is an OTP of kind for signInID, issued at t0, dead after 5 attempts.
func otp(id, accountID, signInID string, kind flows.Method, expires time.Time) flows.Code {
	return flows.Code{
		ID: id, AccountID: accountID, SignInID: signInID, Kind: kind, Hash: []byte("hmac-of-" + id),
		CreatedBy: "system", CreatedAt: t0, ExpiresAt: expires, MaxAttempts: 5,
	}
}

func codeIDs(cs []flows.Code) []string {
	return ids(cs, func(c flows.Code) string { return c.ID })
}

func testCodeRoundTrip(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	for _, c := range []flows.Code{
		override("ov-1", "acc-1", t0.Add(time.Hour)),
		otp("sms-1", "acc-1", "si-1", flows.MethodSMS, t0.Add(5*time.Minute)),
		otp("mail-1", "acc-1", "si-1", flows.MethodEmail, t0.Add(5*time.Minute)),
	} {
		must(t, "create "+c.ID, s.CreateCode(ctx, c))
		got, err := s.GetCode(ctx, c.ID)
		must(t, "get "+c.ID, err)
		wantEqual(t, "code "+c.ID, got, c)
	}
}

func testCodeErrors(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "create", s.CreateCode(ctx, override("ov-1", "acc-1", t0.Add(time.Hour))))
	wantErr(t, "same id", s.CreateCode(ctx, override("ov-1", "acc-1", t0.Add(2*time.Hour))), flows.ErrConflict)
	_, err := s.GetCode(ctx, "nope")
	wantErr(t, "get unknown", err, flows.ErrNotFound)
	bad := []flows.Code{
		{},
		override("", "acc-1", t0.Add(time.Hour)),
		override("x1", "", t0.Add(time.Hour)),
		override("x2", "acc-1", time.Time{}),
		func() flows.Code { c := override("x3", "acc-1", t0.Add(time.Hour)); c.Hash = nil; return c }(),
		func() flows.Code { c := override("x4", "acc-1", t0.Add(time.Hour)); c.Kind = "push"; return c }(),
		func() flows.Code { c := override("x5", "acc-1", t0.Add(time.Hour)); c.SignInID = "si-1"; return c }(),
		otp("x6", "acc-1", "", flows.MethodSMS, t0.Add(time.Hour)),
		func() flows.Code {
			c := otp("x7", "acc-1", "si-1", flows.MethodSMS, t0.Add(time.Hour))
			c.MaxAttempts = -1
			return c
		}(),
	}
	for i, c := range bad {
		wantErr(t, fmt.Sprintf("invalid code %d", i), s.CreateCode(ctx, c), flows.ErrInvalid)
	}
	wantErr(t, "redeem without a time", s.RedeemCode(ctx, "ov-1", time.Time{}), flows.ErrInvalid)
	_, err = s.RevokeCodes(ctx, "acc-1", "", "", time.Time{})
	wantErr(t, "revoke without a time", err, flows.ErrInvalid)
	// The failed calls changed nothing.
	got, err := s.GetCode(ctx, "ov-1")
	must(t, "get", err)
	wantEqual(t, "code after refused calls", got, override("ov-1", "acc-1", t0.Add(time.Hour)))
}

// testCodeUnknownAccount is apart: on PostgreSQL a foreign-key violation
// ends the transaction it happens in.
func testCodeUnknownAccount(t *testing.T, s flows.Store) {
	ctx := t.Context()
	wantErr(t, "code of an unknown account", s.CreateCode(ctx, override("ov-1", "nobody", t0.Add(time.Hour))), flows.ErrNotFound)
	_, _, err := s.RecordCodeFailure(ctx, "nobody", t0, 3, time.Hour)
	wantErr(t, "failure of an unknown account", err, flows.ErrNotFound)
	wantErr(t, "push block of an unknown account", s.BlockPush(ctx, "nobody", t0.Add(time.Hour)), flows.ErrNotFound)
}

func testListActiveCodes(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account 1", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "account 2", s.CreateAccount(ctx, account("acc-2", "bob")))
	later := func(c flows.Code, d time.Duration) flows.Code { c.CreatedAt = c.CreatedAt.Add(d); return c }
	for _, c := range []flows.Code{
		override("ov-live", "acc-1", t0.Add(time.Hour)),
		later(otp("sms-live", "acc-1", "si-1", flows.MethodSMS, t0.Add(5*time.Minute)), time.Second),
		later(otp("mail-other-signin", "acc-1", "si-2", flows.MethodEmail, t0.Add(5*time.Minute)), 2*time.Second),
		later(override("ov-other-account", "acc-2", t0.Add(time.Hour)), 3*time.Second),
		later(override("ov-used", "acc-1", t0.Add(time.Hour)), 4*time.Second),
		later(override("ov-revoked", "acc-1", t0.Add(time.Hour)), 5*time.Second),
		later(otp("sms-expiring", "acc-1", "si-1", flows.MethodSMS, t0.Add(time.Minute)), 6*time.Second),
		later(otp("sms-exhausted", "acc-1", "si-1", flows.MethodSMS, t0.Add(5*time.Minute)), 7*time.Second),
	} {
		must(t, "create "+c.ID, s.CreateCode(ctx, c))
	}
	must(t, "use", s.RedeemCode(ctx, "ov-used", t0))
	_, err := s.RevokeCodes(ctx, "acc-1", flows.MethodOverride, "", t0)
	must(t, "revoke overrides", err)
	must(t, "recreate the live override", s.CreateCode(ctx, override("ov-live-2", "acc-1", t0.Add(time.Hour))))
	for range 5 {
		_, err := s.RecordCodeAttempt(ctx, "sms-exhausted")
		must(t, "attempt", err)
	}
	cases := []struct {
		signIn string
		now    time.Time
		want   []string
	}{
		{"si-1", t0, []string{"ov-live-2", "sms-live", "sms-expiring"}},
		{"si-1", t0.Add(time.Minute), []string{"ov-live-2", "sms-live"}}, // sms-expiring expires at that instant
		{"si-2", t0, []string{"ov-live-2", "mail-other-signin"}},
		{"", t0, []string{"ov-live-2"}},
		{"si-1", t0.Add(time.Hour), []string{}},
	}
	for _, c := range cases {
		got, err := s.ListActiveCodes(ctx, "acc-1", c.signIn, c.now)
		must(t, "list", err)
		wantEqual(t, fmt.Sprintf("active codes of si %q at +%s", c.signIn, c.now.Sub(t0)), codeIDs(got), c.want)
	}
	got, err := s.ListActiveCodes(ctx, "acc-2", "si-1", t0)
	must(t, "list acc-2", err)
	wantEqual(t, "acc-2's codes", codeIDs(got), []string{"ov-other-account"})
}

func testRedeemCode(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	for _, c := range []flows.Code{
		override("ov-1", "acc-1", t0.Add(time.Hour)),
		override("ov-2", "acc-1", t0.Add(time.Hour)),
		override("ov-3", "acc-1", t0.Add(time.Minute)),
		otp("sms-1", "acc-1", "si-1", flows.MethodSMS, t0.Add(5*time.Minute)),
	} {
		must(t, "create "+c.ID, s.CreateCode(ctx, c))
	}
	at := t0.Add(10 * time.Second)
	must(t, "redeem", s.RedeemCode(ctx, "ov-1", at))
	got, err := s.GetCode(ctx, "ov-1")
	must(t, "get", err)
	if !got.UsedAt.Equal(at) {
		t.Errorf("used at %v, want %v", got.UsedAt, at)
	}
	wantErr(t, "second redemption", s.RedeemCode(ctx, "ov-1", at), flows.ErrAlreadyUsed)
	_, err = s.RevokeCodes(ctx, "acc-1", "", "", at)
	must(t, "revoke", err)
	wantErr(t, "redeem revoked", s.RedeemCode(ctx, "ov-2", at), flows.ErrExpired)
	must(t, "create", s.CreateCode(ctx, override("ov-4", "acc-1", t0.Add(time.Minute))))
	wantErr(t, "redeem at its expiry", s.RedeemCode(ctx, "ov-4", t0.Add(time.Minute)), flows.ErrExpired)
	must(t, "create", s.CreateCode(ctx, otp("sms-2", "acc-1", "si-2", flows.MethodSMS, t0.Add(5*time.Minute))))
	for range 5 {
		_, err := s.RecordCodeAttempt(ctx, "sms-2")
		must(t, "attempt", err)
	}
	wantErr(t, "redeem out of attempts", s.RedeemCode(ctx, "sms-2", at), flows.ErrExpired)
	wantErr(t, "redeem unknown", s.RedeemCode(ctx, "nope", at), flows.ErrNotFound)
	got, err = s.GetCode(ctx, "ov-1")
	must(t, "get", err)
	if !got.RevokedAt.IsZero() {
		t.Errorf("a used code was revoked: %+v", got)
	}
}

func testRecordCodeAttempt(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "create", s.CreateCode(ctx, otp("sms-1", "acc-1", "si-1", flows.MethodSMS, t0.Add(5*time.Minute))))
	for want := 1; want <= 5; want++ {
		n, err := s.RecordCodeAttempt(ctx, "sms-1")
		must(t, "attempt", err)
		if n != want {
			t.Errorf("attempt %d counted as %d", want, n)
		}
		live, err := s.ListActiveCodes(ctx, "acc-1", "si-1", t0)
		must(t, "list", err)
		if wantLive := want < 5; (len(live) == 1) != wantLive {
			t.Errorf("after %d attempts the code is listed: %v, want %v", want, len(live) == 1, wantLive)
		}
	}
	_, err := s.RecordCodeAttempt(ctx, "nope")
	wantErr(t, "attempt on unknown code", err, flows.ErrNotFound)
}

func testRevokeCodes(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account 1", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "account 2", s.CreateAccount(ctx, account("acc-2", "bob")))
	for _, c := range []flows.Code{
		override("ov-1", "acc-1", t0.Add(time.Hour)),
		otp("sms-1", "acc-1", "si-1", flows.MethodSMS, t0.Add(5*time.Minute)),
		otp("mail-1", "acc-1", "si-1", flows.MethodEmail, t0.Add(5*time.Minute)),
		otp("sms-2", "acc-1", "si-2", flows.MethodSMS, t0.Add(5*time.Minute)),
		override("ov-bob", "acc-2", t0.Add(time.Hour)),
		override("ov-used", "acc-1", t0.Add(time.Hour)),
	} {
		must(t, "create "+c.ID, s.CreateCode(ctx, c))
	}
	must(t, "use", s.RedeemCode(ctx, "ov-used", t0))
	at := t0.Add(time.Second)
	steps := []struct {
		kind   flows.Method
		signIn string
		want   int
		left   []string // acc-1's codes still open, whatever the sign-in
	}{
		{flows.MethodOverride, "", 1, []string{"sms-1", "mail-1", "sms-2"}},
		{"", "si-1", 2, []string{"sms-2"}},
		{flows.MethodEmail, "", 0, []string{"sms-2"}},
		{"", "", 1, []string{}},
		{"", "", 0, []string{}},
	}
	for i, st := range steps {
		n, err := s.RevokeCodes(ctx, "acc-1", st.kind, st.signIn, at)
		must(t, "revoke", err)
		if n != st.want {
			t.Errorf("step %d: revoked %d, want %d", i, n, st.want)
		}
		var left []string
		for _, id := range []string{"ov-1", "sms-1", "mail-1", "sms-2", "ov-used"} {
			c, err := s.GetCode(ctx, id)
			must(t, "get "+id, err)
			if c.RevokedAt.IsZero() && c.UsedAt.IsZero() {
				left = append(left, id)
			}
		}
		wantEqual(t, fmt.Sprintf("step %d: open codes", i), nonNil(left), st.left)
	}
	got, err := s.GetCode(ctx, "sms-1")
	must(t, "get", err)
	if !got.RevokedAt.Equal(at) {
		t.Errorf("revoked at %v, want %v", got.RevokedAt, at)
	}
	live, err := s.ListActiveCodes(ctx, "acc-2", "", t0)
	must(t, "list bob", err)
	wantEqual(t, "bob's codes", codeIDs(live), []string{"ov-bob"})
}

func testPurgeCodes(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "create", s.CreateCode(ctx, override("ov-early", "acc-1", t0.Add(time.Minute))))
	must(t, "create", s.CreateCode(ctx, override("ov-late", "acc-1", t0.Add(time.Hour))))
	must(t, "purge at the first expiry", s.PurgeCodes(ctx, t0.Add(time.Minute)))
	_, err := s.GetCode(ctx, "ov-early")
	must(t, "a code expiring at the purge time is kept", err)
	must(t, "purge", s.PurgeCodes(ctx, t0.Add(time.Minute+time.Nanosecond)))
	_, err = s.GetCode(ctx, "ov-early")
	wantErr(t, "purged", err, flows.ErrNotFound)
	_, err = s.GetCode(ctx, "ov-late")
	must(t, "the later code survived", err)
}

func testCodesGoWithTheirAccount(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	a := account("acc-1", "alice")
	must(t, "account", s.CreateAccount(ctx, a))
	must(t, "code", s.CreateCode(ctx, override("ov-1", "acc-1", t0.Add(time.Hour))))
	_, _, err := s.RecordCodeFailure(ctx, "acc-1", t0, 3, time.Hour)
	must(t, "failure", err)
	a.State, a.StateChangedAt = flows.AccountRemoved, t0
	must(t, "remove", s.UpdateAccount(ctx, a))
	_, err = s.PurgeRemovedAccounts(ctx, t0.Add(time.Second))
	must(t, "purge", err)
	_, err = s.GetCode(ctx, "ov-1")
	wantErr(t, "code of a purged account", err, flows.ErrNotFound)
	l, err := s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "limits of a purged account", l, flows.AccountLimits{})
}

func testAccountLimits(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	l, err := s.GetAccountLimits(ctx, "acc-1")
	must(t, "fresh limits", err)
	wantEqual(t, "fresh limits", l, flows.AccountLimits{})
	l, err = s.GetAccountLimits(ctx, "nobody")
	must(t, "limits of nobody", err)
	wantEqual(t, "limits of nobody", l, flows.AccountLimits{})
	must(t, "reset with no row", s.ResetCodeFailures(ctx, "acc-1"))
	must(t, "unlock with no row", s.UnlockCodes(ctx, "acc-1"))
	l, err = s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "limits after reset and unlock of nothing", l, flows.AccountLimits{})
}

func testRecordCodeFailure(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "account 2", s.CreateAccount(ctx, account("acc-2", "bob")))
	for i := 1; i <= 2; i++ {
		n, until, err := s.RecordCodeFailure(ctx, "acc-1", t0.Add(time.Duration(i)*time.Second), 3, time.Hour)
		must(t, "failure", err)
		if n != i || !until.IsZero() {
			t.Errorf("failure %d: count %d, locked until %v; want %d, not locked", i, n, until, i)
		}
	}
	at := t0.Add(3 * time.Second)
	n, until, err := s.RecordCodeFailure(ctx, "acc-1", at, 3, time.Hour)
	must(t, "third failure", err)
	if n != 3 || !until.Equal(at.Add(time.Hour)) {
		t.Errorf("third failure: count %d, locked until %v; want 3 until %v", n, until, at.Add(time.Hour))
	}
	l, err := s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "locked limits", l, flows.AccountLimits{FailedCodes: 3, LockedUntil: at.Add(time.Hour)})
	// Past the limit each failure moves the lock's end.
	later := at.Add(2 * time.Hour)
	n, until, err = s.RecordCodeFailure(ctx, "acc-1", later, 3, time.Hour)
	must(t, "failure after the lock", err)
	if n != 4 || !until.Equal(later.Add(time.Hour)) {
		t.Errorf("failure after the lock: count %d until %v; want 4 until %v", n, until, later.Add(time.Hour))
	}
	// A success resets the count; the lock's end (now past) may stay.
	must(t, "reset", s.ResetCodeFailures(ctx, "acc-1"))
	l, err = s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	if l.FailedCodes != 0 {
		t.Errorf("after reset: %+v", l)
	}
	must(t, "unlock", s.UnlockCodes(ctx, "acc-1"))
	l, err = s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "unlocked", l, flows.AccountLimits{})
	// A limit of one locks at the first failure; other accounts are apart.
	n, until, err = s.RecordCodeFailure(ctx, "acc-2", at, 1, time.Minute)
	must(t, "bob's failure", err)
	if n != 1 || !until.Equal(at.Add(time.Minute)) {
		t.Errorf("limit 1: count %d until %v", n, until)
	}
	l, err = s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "alice untouched by bob's failure", l, flows.AccountLimits{})
	_, _, err = s.RecordCodeFailure(ctx, "acc-1", at, 0, time.Hour)
	wantErr(t, "limit 0", err, flows.ErrInvalid)
	_, _, err = s.RecordCodeFailure(ctx, "acc-1", at, 3, 0)
	wantErr(t, "no lock duration", err, flows.ErrInvalid)
}

func testBlockPush(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	_, _, err := s.RecordCodeFailure(ctx, "acc-1", t0, 5, time.Hour)
	must(t, "failure", err)
	must(t, "block", s.BlockPush(ctx, "acc-1", t0.Add(time.Hour)))
	must(t, "shorter block", s.BlockPush(ctx, "acc-1", t0.Add(time.Minute)))
	l, err := s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "blocked", l, flows.AccountLimits{FailedCodes: 1, PushBlockedUntil: t0.Add(time.Hour)})
	must(t, "longer block", s.BlockPush(ctx, "acc-1", t0.Add(2*time.Hour)))
	must(t, "unlock codes", s.UnlockCodes(ctx, "acc-1"))
	l, err = s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "longer block, codes unlocked", l, flows.AccountLimits{PushBlockedUntil: t0.Add(2 * time.Hour)})
	wantErr(t, "block without an end", s.BlockPush(ctx, "acc-1", time.Time{}), flows.ErrInvalid)
}

func testHitRateLimit(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	hit := func(key string, at time.Time) (bool, time.Duration) {
		t.Helper()
		ok, wait, err := s.HitRateLimit(ctx, key, at, time.Minute, 3)
		must(t, "hit "+key, err)
		return ok, wait
	}
	for i := range 3 {
		if ok, wait := hit("ip:192.0.2.7", t0.Add(time.Duration(i)*time.Second)); !ok || wait != 0 {
			t.Fatalf("hit %d refused (%v)", i+1, wait)
		}
	}
	if ok, wait := hit("ip:192.0.2.7", t0.Add(20*time.Second)); ok || wait != 40*time.Second {
		t.Fatalf("fourth hit: allowed %v, wait %v; want refused for 40s", ok, wait)
	}
	if ok, _ := hit("ip:192.0.2.8", t0.Add(20*time.Second)); !ok {
		t.Fatal("another key was refused")
	}
	// At the window's end a new window opens.
	if ok, _ := hit("ip:192.0.2.7", t0.Add(time.Minute)); !ok {
		t.Fatal("first hit of the next window refused")
	}
	for range 2 {
		if ok, _ := hit("ip:192.0.2.7", t0.Add(time.Minute+time.Second)); !ok {
			t.Fatal("hit of the next window refused")
		}
	}
	if ok, wait := hit("ip:192.0.2.7", t0.Add(90*time.Second)); ok || wait != 30*time.Second {
		t.Fatalf("fourth hit of the next window: allowed %v wait %v", ok, wait)
	}
	for _, c := range []struct {
		key    string
		at     time.Time
		window time.Duration
		limit  int
	}{{"", t0, time.Minute, 1}, {"k", time.Time{}, time.Minute, 1}, {"k", t0, 0, 1}, {"k", t0, time.Minute, 0}} {
		_, _, err := s.HitRateLimit(ctx, c.key, c.at, c.window, c.limit)
		wantErr(t, fmt.Sprintf("hit %+v", c), err, flows.ErrInvalid)
	}
}

func testPurgeRateLimits(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	for range 2 {
		_, _, err := s.HitRateLimit(ctx, "k1", t0, time.Minute, 1)
		must(t, "hit", err)
	}
	_, _, err := s.HitRateLimit(ctx, "k2", t0.Add(30*time.Second), time.Minute, 1)
	must(t, "hit", err)
	must(t, "purge at the window's end", s.PurgeRateLimits(ctx, t0.Add(time.Minute)))
	if ok, _, _ := s.HitRateLimit(ctx, "k1", t0.Add(time.Second), time.Minute, 1); ok {
		t.Fatal("a window ending at the purge time was forgotten")
	}
	must(t, "purge", s.PurgeRateLimits(ctx, t0.Add(time.Minute+time.Nanosecond)))
	if ok, _, _ := s.HitRateLimit(ctx, "k1", t0.Add(time.Second), time.Minute, 1); !ok {
		t.Fatal("a purged window still counts")
	}
	if ok, _, _ := s.HitRateLimit(ctx, "k2", t0.Add(31*time.Second), time.Minute, 1); ok {
		t.Fatal("a window still open was purged")
	}
}

func testConcurrentRedeemCode(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "code", s.CreateCode(ctx, override("ov-1", "acc-1", t0.Add(time.Hour))))
	errs := Race(200, func(i int) error {
		return s.InTx(ctx, func(tx flows.Tx) error { return tx.RedeemCode(ctx, "ov-1", t0.Add(time.Duration(i))) })
	})
	winner := oneWinner(t, "200 concurrent RedeemCode", errs, flows.ErrAlreadyUsed)
	got, err := s.GetCode(ctx, "ov-1")
	must(t, "get", err)
	if winner >= 0 && !got.UsedAt.Equal(t0.Add(time.Duration(winner))) {
		t.Errorf("code used at %v, want the winner's time %v", got.UsedAt, t0.Add(time.Duration(winner)))
	}
}

func testConcurrentHitRateLimit(t *testing.T, s flows.Store) {
	ctx := t.Context()
	allowed := make([]bool, 200)
	errs := Race(200, func(i int) error {
		ok, _, err := s.HitRateLimit(ctx, "ip:203.0.113.9", t0, time.Minute, 50)
		allowed[i] = ok
		return err
	})
	n := 0
	for i, err := range errs {
		must(t, fmt.Sprintf("hit %d", i), err)
		if allowed[i] {
			n++
		}
	}
	if n != 50 {
		t.Errorf("200 concurrent hits with limit 50: %d allowed", n)
	}
}

func testConcurrentCodeFailure(t *testing.T, s flows.Store) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	counts := make([]int, 100)
	errs := Race(100, func(i int) error {
		n, _, err := s.RecordCodeFailure(ctx, "acc-1", t0, 50, time.Hour)
		counts[i] = n
		return err
	})
	seen := map[int]bool{}
	for i, err := range errs {
		must(t, fmt.Sprintf("failure %d", i), err)
		seen[counts[i]] = true
	}
	if len(seen) != 100 || !seen[1] || !seen[100] {
		t.Errorf("100 concurrent failures counted as %d distinct values", len(seen))
	}
	l, err := s.GetAccountLimits(ctx, "acc-1")
	must(t, "limits", err)
	wantEqual(t, "limits", l, flows.AccountLimits{FailedCodes: 100, LockedUntil: t0.Add(time.Hour)})
}

// --- every call in its own transaction ---

func (e eachInTx) CreateCode(ctx context.Context, c flows.Code) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.CreateCode(ctx, c) })
}

func (e eachInTx) GetCode(ctx context.Context, id string) (flows.Code, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.Code, error) { return tx.GetCode(ctx, id) })
}

func (e eachInTx) ListActiveCodes(ctx context.Context, accountID, signInID string, now time.Time) ([]flows.Code, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) ([]flows.Code, error) { return tx.ListActiveCodes(ctx, accountID, signInID, now) })
}

func (e eachInTx) RedeemCode(ctx context.Context, id string, at time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.RedeemCode(ctx, id, at) })
}

func (e eachInTx) RecordCodeAttempt(ctx context.Context, id string) (int, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (int, error) { return tx.RecordCodeAttempt(ctx, id) })
}

func (e eachInTx) RevokeCodes(ctx context.Context, accountID string, kind flows.Method, signInID string, at time.Time) (int, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (int, error) { return tx.RevokeCodes(ctx, accountID, kind, signInID, at) })
}

func (e eachInTx) PurgeCodes(ctx context.Context, before time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PurgeCodes(ctx, before) })
}

func (e eachInTx) GetAccountLimits(ctx context.Context, accountID string) (flows.AccountLimits, error) {
	return inTx(ctx, e.s, func(tx flows.Tx) (flows.AccountLimits, error) { return tx.GetAccountLimits(ctx, accountID) })
}

func (e eachInTx) RecordCodeFailure(ctx context.Context, accountID string, now time.Time, max int, lockFor time.Duration) (int, time.Time, error) {
	var until time.Time
	n, err := inTx(ctx, e.s, func(tx flows.Tx) (int, error) {
		n, u, err := tx.RecordCodeFailure(ctx, accountID, now, max, lockFor)
		until = u
		return n, err
	})
	if err != nil {
		return 0, time.Time{}, err
	}
	return n, until, nil
}

func (e eachInTx) ResetCodeFailures(ctx context.Context, accountID string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.ResetCodeFailures(ctx, accountID) })
}

func (e eachInTx) UnlockCodes(ctx context.Context, accountID string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.UnlockCodes(ctx, accountID) })
}

func (e eachInTx) BlockPush(ctx context.Context, accountID string, until time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.BlockPush(ctx, accountID, until) })
}

func (e eachInTx) HitRateLimit(ctx context.Context, key string, now time.Time, window time.Duration, limit int) (bool, time.Duration, error) {
	var wait time.Duration
	ok, err := inTx(ctx, e.s, func(tx flows.Tx) (bool, error) {
		ok, w, err := tx.HitRateLimit(ctx, key, now, window, limit)
		wait = w
		return ok, err
	})
	if err != nil {
		return false, 0, err
	}
	return ok, wait, nil
}

func (e eachInTx) PurgeRateLimits(ctx context.Context, before time.Time) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.PurgeRateLimits(ctx, before) })
}
