package flows

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Code methods: a sign-in decided by a one-time code instead of a device.
const (
	MethodSMS      Method = "sms"      // a one-time code sent by SMS
	MethodEmail    Method = "email"    // a one-time code sent by email
	MethodOverride Method = "override" // an administrative override code
)

// IsCode reports whether m is decided by a one-time code.
func (m Method) IsCode() bool {
	return m == MethodSMS || m == MethodEmail || m == MethodOverride
}

// Audit actions of codes and their defences.
const (
	AuditOverrideIssued = "override.issued"
	AuditCodeSent       = "code.sent"
	AuditCodeSendFailed = "code.send_failed"
	AuditCodeFailed     = "code.failed"
	AuditCodesLocked    = "codes.locked"
	AuditCodesUnlocked  = "codes.unlocked"
	AuditPushSuppressed = "push.suppressed"
	AuditPushBlocked    = "push.blocked"
	AuditAlertFailed    = "alert.failed"
)

// Code is a one-time code as stored: its keyed hash, never the code.
type Code struct {
	ID          string
	AccountID   string
	SignInID    string // the sign-in an OTP is bound to; "" for an override code
	Kind        Method // MethodOverride, MethodSMS or MethodEmail
	Hash        []byte // see codeHash
	CreatedBy   string // the admin who issued an override code; "system" for an OTP
	CreatedAt   time.Time
	ExpiresAt   time.Time
	UsedAt      time.Time
	RevokedAt   time.Time
	Attempts    int // wrong attempts counted against this code
	MaxAttempts int // attempts that kill it; 0: none of its own (the account's lockout applies)
}

// OverrideCode describes an issued override code; the code itself is
// returned once, beside it, and never stored.
type OverrideCode struct {
	ID        string    `json:"id"`
	AccountID string    `json:"account_id"`
	Username  string    `json:"username"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
	Reason    string    `json:"reason,omitempty"`
}

// SentCode says where an OTP went, masked, and what the user may do next.
type SentCode struct {
	Channel     Method    `json:"channel"`
	To          string    `json:"to"` // masked: "+1•••••4567", "a•••@example.com"
	ExpiresAt   time.Time `json:"expires_at"`
	ResendAfter time.Time `json:"resend_after"`
}

// SubmitCodeRequest is a code typed on a sign-in screen.
type SubmitCodeRequest struct {
	SignInID string
	Code     string // as typed: spaces and dashes are ignored, letters may be lower-case
	IP       string // the client's address, for the per-address limit
}

// CodeAlphabet is the alphabet of base32 override codes: Crockford's, with
// no I, L, O or U. Typed codes map I and L to 1 and O to 0.
const CodeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Lengths of generated codes.
const (
	overrideDigitsLen = 10
	overrideBase32Len = 16
	maxCodeLen        = 32 // the longest normalised code accepted
	maxTypedCodeLen   = 128
)

// NormalizeCode turns a code as typed into the form its hash covers:
// spaces and dashes removed, letters upper-cased, I and L read as 1 and O
// as 0. A code with any other character, empty or too long is ErrInvalid.
func NormalizeCode(typed string) (string, error) {
	if len(typed) > maxTypedCodeLen {
		return "", invalidf("a code has at most %d characters", maxCodeLen)
	}
	var b strings.Builder
	for _, r := range typed {
		switch {
		case r == ' ' || r == '-':
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		switch r {
		case 'I', 'L':
			r = '1'
		case 'O':
			r = '0'
		}
		if !strings.ContainsRune(CodeAlphabet, r) {
			return "", invalidf("a code holds only digits and letters")
		}
		b.WriteRune(r)
	}
	switch n := b.Len(); {
	case n == 0:
		return "", invalidf("the code is empty")
	case n > maxCodeLen:
		return "", invalidf("a code has at most %d characters", maxCodeLen)
	}
	return b.String(), nil
}

// codeHash is HMAC-SHA256 under the code key of "keystep-code-v1", the
// code's kind, its account and the normalised code, each length-prefixed:
// a code is worthless for another account or another kind.
func (s *Service) codeHash(kind Method, accountID, normalized string) []byte {
	m := hmac.New(sha256.New, s.cfg.CodeKey)
	var n [8]byte
	for _, f := range []string{"keystep-code-v1", string(kind), accountID, normalized} {
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		m.Write(n[:])
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

// randomCode returns n characters drawn uniformly from alphabet.
func randomCode(alphabet string, n int) string {
	limit := 256 - 256%len(alphabet) // reject bytes that would bias the draw
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic("keystep: crypto/rand failed: " + err.Error())
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// newOverrideCode returns a fresh override code: normalised, and grouped
// for reading aloud.
func (s *Service) newOverrideCode() (normalized, shown string) {
	if s.cfg.OverrideFormat == OverrideBase32 {
		c := randomCode(CodeAlphabet, overrideBase32Len)
		return c, c[:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:]
	}
	c := randomCode("0123456789", overrideDigitsLen)
	return c, c[:3] + " " + c[3:6] + " " + c[6:]
}

// IssueOverride issues an administrative override code for the account ref:
// it works once, for ttl (0: the configured default; at most 7 days), and
// revokes the account's older override codes. The account must be active
// when the code is stored (checked in the same transaction), and of
// concurrent issues for one account only the last stays open. The code is returned here,
// grouped for reading aloud, and never again: only its keyed hash is kept.
func (s *Service) IssueOverride(ctx context.Context, actor, ref string, ttl time.Duration, reason string) (OverrideCode, string, error) {
	if !s.cfg.codeMethodOpen(MethodOverride) {
		return OverrideCode{}, "", fmt.Errorf("issue override code: %w: override codes are turned off on this server", ErrMethodNotAllowed)
	}
	if err := checkText("actor", actor, true, 256); err != nil {
		return OverrideCode{}, "", err
	}
	if err := checkText("reason", reason, false, 1024); err != nil {
		return OverrideCode{}, "", err
	}
	if ttl == 0 {
		ttl = s.cfg.OverrideTTL
	}
	if ttl < time.Minute || ttl > MaxOverrideTTL {
		return OverrideCode{}, "", invalidf("an override code lives 1 minute to 7 days, not %s", ttl)
	}
	a, err := s.FindAccount(ctx, ref)
	if err != nil {
		return OverrideCode{}, "", err
	}
	if err := usable(a); err != nil {
		return OverrideCode{}, "", fmt.Errorf("issue override code for %q: %w", ref, err)
	}
	now := s.now()
	code, shown := s.newOverrideCode()
	c := Code{
		ID: NewID(), AccountID: a.ID, Kind: MethodOverride, Hash: s.codeHash(MethodOverride, a.ID, code),
		CreatedBy: actor, CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	err = s.write(ctx, func(tx Tx) error {
		// The account must still be active when the code lands, and two
		// issuers of one account take turns: each revokes the other's code.
		if err := tx.LockActiveAccount(ctx, a.ID); err != nil {
			return err
		}
		if _, err := tx.RevokeCodes(ctx, a.ID, MethodOverride, "", now); err != nil {
			return err
		}
		if err := tx.CreateCode(ctx, c); err != nil {
			return err
		}
		ev := auditAt(now, actor, AuditOverrideIssued)
		ev.AccountID = a.ID
		ev.Detail = "code " + c.ID + ", valid until " + c.ExpiresAt.Format(time.RFC3339)
		if reason != "" {
			ev.Detail += ": " + reason
		}
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, accountTopic(a.ID))
	if err != nil {
		return OverrideCode{}, "", fmt.Errorf("issue override code for %q: %w", ref, err)
	}
	oc := OverrideCode{ID: c.ID, AccountID: a.ID, Username: a.Username, CreatedBy: actor, CreatedAt: now, ExpiresAt: c.ExpiresAt, Reason: reason}
	return oc, shown, nil
}

// pendingForCode loads a sign-in that a code may still decide, with its
// account, which must be active.
func (s *Service) pendingForCode(ctx context.Context, signInID string) (SignIn, Account, error) {
	sgn, err := s.GetSignIn(ctx, signInID)
	if err != nil {
		return SignIn{}, Account{}, err
	}
	switch sgn.Status {
	case StatusPending:
	case StatusExpired:
		return sgn, Account{}, fmt.Errorf("sign-in %s: %w", sgn.ID, ErrExpired)
	default:
		return sgn, Account{}, fmt.Errorf("sign-in %s is %s: %w", sgn.ID, sgn.Status, ErrAlreadyDecided)
	}
	a, err := s.store.GetAccount(ctx, sgn.AccountID)
	if err != nil {
		return sgn, Account{}, fmt.Errorf("sign-in %s: %w", sgn.ID, err)
	}
	if err := usable(a); err != nil {
		return sgn, Account{}, fmt.Errorf("sign-in %s: %w", sgn.ID, err)
	}
	return sgn, a, nil
}

// lockOf returns the ErrLocked that refuses codes for an account, or nil.
func lockOf(l AccountLimits, now time.Time) error {
	switch {
	case l.FailedCodes >= MaxConsecutiveCodeFailures:
		return &LockedError{}
	case l.LockedUntil.After(now):
		return &LockedError{Until: l.LockedUntil}
	}
	return nil
}

// SendCode sends a one-time code for a pending sign-in by SMS or email. The
// channel must be open on the sign-in, have a sender, and the account a
// phone number or address. A new code replaces the sign-in's older one. Too
// soon after the last code, or past the hourly cap, it answers a
// *RateLimitError. A failed send is ErrDeliveryFailed (wrapping the
// sender's error), written to the audit log and the log, and told to the
// admins; the code that was not delivered is revoked.
func (s *Service) SendCode(ctx context.Context, signInID string, channel Method) (SentCode, error) {
	if channel != MethodSMS && channel != MethodEmail {
		return SentCode{}, invalidf("a code is sent by sms or email, not %q", channel)
	}
	if !validID(signInID) {
		return SentCode{}, invalidf("malformed sign-in id")
	}
	sgn, a, err := s.pendingForCode(ctx, signInID)
	if err != nil {
		return SentCode{}, err
	}
	if !sgn.HasMethod(channel) {
		return SentCode{}, fmt.Errorf("sign-in %s, %s: %w", sgn.ID, channel, ErrMethodNotAllowed)
	}
	to, send, err := s.channel(a, channel)
	if err != nil {
		return SentCode{}, fmt.Errorf("sign-in %s: %w", sgn.ID, err)
	}
	lim, err := s.store.GetAccountLimits(ctx, a.ID)
	if err != nil {
		return SentCode{}, fmt.Errorf("send code: %w", err)
	}
	now := s.now()
	if err := lockOf(lim, now); err != nil {
		return SentCode{}, fmt.Errorf("send code: %w", err)
	}
	if err := s.hit(ctx, "otp-cooldown:"+string(channel)+":"+a.ID, now, s.cfg.OTPResendCooldown, 1, "codes by "+string(channel)); err != nil {
		return SentCode{}, err
	}
	if err := s.hit(ctx, "otp-hour:"+a.ID, now, time.Hour, s.cfg.OTPSendsPerHour, "codes this hour"); err != nil {
		return SentCode{}, err
	}
	code := randomCode("0123456789", s.cfg.OTPDigits)
	c := Code{
		ID: NewID(), AccountID: a.ID, SignInID: sgn.ID, Kind: channel, Hash: s.codeHash(channel, a.ID, code),
		CreatedBy: "system", CreatedAt: now, ExpiresAt: now.Add(s.cfg.OTPTTL), MaxAttempts: s.cfg.OTPMaxAttempts,
	}
	if c.ExpiresAt.After(sgn.ExpiresAt) {
		c.ExpiresAt = sgn.ExpiresAt // a code outliving its sign-in is useless
	}
	sent := SentCode{Channel: channel, To: to.masked, ExpiresAt: c.ExpiresAt, ResendAfter: now.Add(s.cfg.OTPResendCooldown)}
	err = s.write(ctx, func(tx Tx) error {
		if _, err := tx.RevokeCodes(ctx, a.ID, "", sgn.ID, now); err != nil { // one live OTP per sign-in
			return err
		}
		if err := tx.CreateCode(ctx, c); err != nil {
			return err
		}
		ev := auditAt(now, "system", AuditCodeSent)
		ev.AccountID, ev.SignInID, ev.Detail = a.ID, sgn.ID, string(channel)+" to "+to.masked
		_, err := tx.AppendAudit(ctx, ev)
		return err
	})
	if err != nil {
		return SentCode{}, fmt.Errorf("send code: %w", err)
	}
	if serr := send(ctx, to.address, code, sgn, c.ExpiresAt); serr != nil {
		return SentCode{}, s.sendFailed(ctx, a, sgn, c, to.masked, serr)
	}
	return sent, nil
}

// destination is where a code goes: the address and how it is shown.
type destination struct{ address, masked string }

// sendFunc delivers code to address for sgn.
type sendFunc func(ctx context.Context, address, code string, sgn SignIn, expires time.Time) error

// channel returns the account's address on channel and the function that
// sends there, or ErrChannelUnavailable.
func (s *Service) channel(a Account, channel Method) (destination, sendFunc, error) {
	switch channel {
	case MethodSMS:
		if s.sms == nil {
			return destination{}, nil, fmt.Errorf("%w: no SMS sender is configured", ErrChannelUnavailable)
		}
		if a.Phone == "" {
			return destination{}, nil, fmt.Errorf("%w: the account has no phone number", ErrChannelUnavailable)
		}
		return destination{a.Phone, MaskPhone(a.Phone)}, func(ctx context.Context, to, code string, sgn SignIn, exp time.Time) error {
			return s.sms.SendSMS(ctx, SMS{To: to, Text: codeSMS(code, sgn.Client, exp.Sub(s.now()))})
		}, nil
	default:
		if s.email == nil {
			return destination{}, nil, fmt.Errorf("%w: no email sender is configured", ErrChannelUnavailable)
		}
		if a.Email == "" {
			return destination{}, nil, fmt.Errorf("%w: the account has no email address", ErrChannelUnavailable)
		}
		return destination{a.Email, MaskEmail(a.Email)}, func(ctx context.Context, to, code string, sgn SignIn, exp time.Time) error {
			m, err := codeEmail(to, code, sgn.Client, exp, exp.Sub(s.now()))
			if err != nil {
				return err
			}
			return s.email.SendEmail(ctx, m)
		}, nil
	}
}

// sendFailed records a failed send: the undelivered code is revoked, the
// failure goes to the audit log, the log and the admins, and the caller gets
// ErrDeliveryFailed wrapping cause.
func (s *Service) sendFailed(ctx context.Context, a Account, sgn SignIn, c Code, masked string, cause error) error {
	now := s.now()
	s.log.ErrorContext(ctx, "sending a sign-in code failed", "channel", c.Kind, "to", masked, "account", a.Username, "signin", sgn.ID, "err", cause)
	wctx := context.WithoutCancel(ctx)
	err := s.write(wctx, func(tx Tx) error {
		if _, err := tx.RevokeCodes(wctx, a.ID, "", sgn.ID, now); err != nil {
			return err
		}
		ev := auditAt(now, "system", AuditCodeSendFailed)
		ev.AccountID, ev.SignInID = a.ID, sgn.ID
		ev.Detail = clipText(string(c.Kind)+" to "+masked+": "+cause.Error(), 1024)
		_, err := tx.AppendAudit(wctx, ev)
		return err
	})
	if err != nil {
		s.log.Error("recording a failed send", "signin", sgn.ID, "err", err)
	}
	s.alert(ctx, AdminAlert{Kind: AlertDeliveryFailed, Account: a.Username, AccountID: a.ID, SignIn: sgn.ID,
		Detail: string(c.Kind) + " code to " + masked + " could not be sent: " + clipText(cause.Error(), 512), Time: now})
	return fmt.Errorf("send %s code for sign-in %s: %w: %w", c.Kind, sgn.ID, ErrDeliveryFailed, cause)
}

// SubmitCode checks a code typed for a pending sign-in: an OTP sent for this
// sign-in, or an override code of its account, each only if its method is
// open on the sign-in. Checks are limited per client address and per
// account, and refused while the account's codes are locked. A match
// redeems the code, approves the sign-in (DecidedBy: the code's method) and
// resets the account's failures, in one transaction. A mismatch counts
// against the sign-in's OTP and the account, locks the account at
// MaxFailedCodes consecutive failures, and answers ErrWrongCode.
func (s *Service) SubmitCode(ctx context.Context, r SubmitCodeRequest) (SignIn, error) {
	ctx, end := s.obs.Start(ctx, "flows.SubmitCode")
	sgn, err := s.submitCode(ctx, r)
	end(err)
	return sgn, err
}

func (s *Service) submitCode(ctx context.Context, r SubmitCodeRequest) (SignIn, error) {
	if !validID(r.SignInID) {
		return SignIn{}, invalidf("malformed sign-in id")
	}
	code, err := NormalizeCode(r.Code)
	if err != nil {
		return SignIn{}, err
	}
	if err := checkText("IP", r.IP, false, 64); err != nil {
		return SignIn{}, err
	}
	if err := s.hit(ctx, "code-ip:"+ipKey(r.IP), s.now(), time.Minute, s.cfg.CodeChecksPerIPPerMinute, "code checks from this address"); err != nil {
		return SignIn{}, err
	}
	sgn, a, err := s.pendingForCode(ctx, r.SignInID)
	if err != nil {
		return sgn, err
	}
	var open []Method
	for _, m := range sgn.Methods {
		if m.IsCode() {
			open = append(open, m)
		}
	}
	if len(open) == 0 {
		return sgn, fmt.Errorf("sign-in %s takes no code: %w", sgn.ID, ErrMethodNotAllowed)
	}
	now := s.now()
	if err := s.hit(ctx, "code-account:"+a.ID, now, time.Minute, s.cfg.CodeChecksPerAccountPerMinute, "code checks for this account"); err != nil {
		return sgn, err
	}
	lim, err := s.store.GetAccountLimits(ctx, a.ID)
	if err != nil {
		return sgn, fmt.Errorf("check code: %w", err)
	}
	if err := lockOf(lim, now); err != nil {
		return sgn, fmt.Errorf("sign-in %s: %w", sgn.ID, err)
	}
	codes, err := s.store.ListActiveCodes(ctx, a.ID, sgn.ID, now)
	if err != nil {
		return sgn, fmt.Errorf("check code: %w", err)
	}
	if c, ok := s.matchCode(codes, open, sgn, code); ok {
		return s.redeem(ctx, sgn, a, c, now)
	}
	return sgn, s.codeFailed(ctx, sgn, a, codes, r.IP, now)
}

// matchCode returns the code among cs that the presented code matches. It
// recomputes the keyed hash once per kind and compares it with every
// candidate in constant time, without stopping at a match.
func (s *Service) matchCode(cs []Code, open []Method, sgn SignIn, code string) (Code, bool) {
	hashes := map[Method][]byte{}
	var found Code
	ok := false
	for _, c := range cs {
		bound := c.SignInID == sgn.ID && c.Kind != MethodOverride || c.SignInID == "" && c.Kind == MethodOverride
		if !bound || !slices.Contains(open, c.Kind) || c.AccountID != sgn.AccountID {
			continue
		}
		h, seen := hashes[c.Kind]
		if !seen {
			h = s.codeHash(c.Kind, sgn.AccountID, code)
			hashes[c.Kind] = h
		}
		if subtle.ConstantTimeCompare(h, c.Hash) == 1 && !ok {
			found, ok = c, true
		}
	}
	return found, ok
}

// redeem spends c on sgn: one transaction checks the account is active and
// its codes unlocked (codeGate), redeems the code (exactly one of concurrent
// callers wins), approves the sign-in, resets the account's failures and
// writes the audit event.
func (s *Service) redeem(ctx context.Context, sgn SignIn, a Account, c Code, now time.Time) (SignIn, error) {
	out := sgn
	out.Status, out.DecidedAt, out.DecidedBy = StatusApproved, now, c.Kind
	detail := string(c.Kind) + " code"
	if c.Kind == MethodOverride {
		detail = "override code " + c.ID + " issued by " + c.CreatedBy + " at " + c.CreatedAt.Format(time.RFC3339)
	}
	err := s.write(ctx, func(tx Tx) error {
		if err := s.codeGate(ctx, tx, a.ID, now); err != nil {
			return err
		}
		if err := tx.RedeemCode(ctx, c.ID, now); err != nil {
			return err
		}
		if err := tx.DecideSignIn(ctx, out); err != nil {
			return err
		}
		if err := tx.ResetCodeFailures(ctx, a.ID); err != nil {
			return err
		}
		ev := auditAt(now, "code:"+c.ID, AuditSignInApproved)
		ev.AccountID, ev.SignInID, ev.Detail = a.ID, sgn.ID, detail
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, signInTopic(sgn.ID), accountTopic(a.ID))
	if err != nil {
		return sgn, fmt.Errorf("sign-in %s: %w", sgn.ID, err)
	}
	s.finished(out)
	return out, nil
}

// codeFailed counts a wrong code, in one transaction: unless the account's
// codes got locked meanwhile (codeGate: then nothing is counted and the
// answer is the lock), an attempt against each live OTP of the sign-in, a
// consecutive failure of the account (which may lock its codes), and the
// audit events. It returns the error to answer.
func (s *Service) codeFailed(ctx context.Context, sgn SignIn, a Account, codes []Code, ip string, now time.Time) error {
	var (
		failures int
		until    time.Time
		dead     []string
	)
	actor := "ip:" + ip
	if ip == "" {
		actor = "client"
	}
	err := s.write(ctx, func(tx Tx) error {
		if err := s.codeGate(ctx, tx, a.ID, now); err != nil {
			return err
		}
		cur, err := tx.GetSignIn(ctx, sgn.ID)
		if err != nil {
			return err
		}
		if cur.Status != StatusPending { // decided meanwhile: this was no guess
			return fmt.Errorf("sign-in %s is %s: %w", sgn.ID, cur.Status, ErrAlreadyDecided)
		}
		for _, c := range codes {
			if c.SignInID != sgn.ID {
				continue
			}
			n, err := tx.RecordCodeAttempt(ctx, c.ID)
			if err != nil {
				return err
			}
			if c.MaxAttempts > 0 && n >= c.MaxAttempts {
				dead = append(dead, string(c.Kind))
			}
		}
		failures, until, err = tx.RecordCodeFailure(ctx, a.ID, now, s.cfg.MaxFailedCodes, s.cfg.CodeLockout)
		if err != nil {
			return err
		}
		ev := auditAt(now, actor, AuditCodeFailed)
		ev.AccountID, ev.SignInID = a.ID, sgn.ID
		ev.Detail = fmt.Sprintf("wrong code, %d consecutive failure(s) of %d allowed", failures, s.cfg.MaxFailedCodes)
		if len(dead) > 0 {
			ev.Detail += "; the " + strings.Join(dead, " and ") + " code is now dead"
		}
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
		if failures >= s.cfg.MaxFailedCodes {
			ev := auditAt(now, "system", AuditCodesLocked)
			ev.AccountID, ev.SignInID = a.ID, sgn.ID
			ev.Detail = fmt.Sprintf("after %d consecutive failures, until %s", failures, until.Format(time.RFC3339))
			if failures >= MaxConsecutiveCodeFailures {
				ev.Detail = fmt.Sprintf("after %d consecutive failures, until an admin unlocks them", failures)
			}
			_, err = tx.AppendAudit(ctx, ev)
		}
		return err
	}, accountTopic(a.ID))
	if errors.Is(err, ErrAlreadyDecided) {
		return err
	}
	if errors.Is(err, ErrLocked) {
		return fmt.Errorf("sign-in %s: %w", sgn.ID, err)
	}
	if err != nil {
		return fmt.Errorf("check code: %w", err)
	}
	if failures < s.cfg.MaxFailedCodes {
		return fmt.Errorf("sign-in %s: %w", sgn.ID, ErrWrongCode)
	}
	lock := &LockedError{Until: until}
	if failures >= MaxConsecutiveCodeFailures {
		lock.Until = time.Time{}
	}
	s.log.WarnContext(ctx, "an account's codes are locked after too many wrong codes", "account", a.Username, "failures", failures, "until", until)
	s.alert(ctx, AdminAlert{Kind: AlertCodesLocked, Account: a.Username, AccountID: a.ID, SignIn: sgn.ID,
		Detail: fmt.Sprintf("%d consecutive wrong codes; %s", failures, strings.TrimPrefix(lock.Error(), ErrLocked.Error()+" ")), Time: now})
	return fmt.Errorf("sign-in %s: %w; %w", sgn.ID, ErrWrongCode, lock)
}

// codeGate is the start of every transaction that judges a code: it holds
// the account (LockActiveAccount: it must still be active, and on
// PostgreSQL the code transactions of one account run one at a time), then
// reads the account's limits as they now stand and refuses while its codes
// are locked. SubmitCode's earlier check is only a shortcut; this one is
// what concurrent guesses cannot race past.
func (s *Service) codeGate(ctx context.Context, tx Tx, accountID string, now time.Time) error {
	if err := tx.LockActiveAccount(ctx, accountID); err != nil {
		return err
	}
	lim, err := tx.GetAccountLimits(ctx, accountID)
	if err != nil {
		return err
	}
	return lockOf(lim, now)
}

// UnlockCodes lifts an account's code lock and clears its failures.
func (s *Service) UnlockCodes(ctx context.Context, actor, ref string) (Account, error) {
	if err := checkText("actor", actor, true, 256); err != nil {
		return Account{}, err
	}
	a, err := s.FindAccount(ctx, ref)
	if err != nil {
		return Account{}, err
	}
	now := s.now()
	err = s.write(ctx, func(tx Tx) error {
		if err := tx.UnlockCodes(ctx, a.ID); err != nil {
			return err
		}
		ev := auditAt(now, actor, AuditCodesUnlocked)
		ev.AccountID = a.ID
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, accountTopic(a.ID))
	if err != nil {
		return Account{}, fmt.Errorf("unlock codes of %q: %w", ref, err)
	}
	return a, nil
}

// CodeLimits returns an account's code failures, code lock and push block.
func (s *Service) CodeLimits(ctx context.Context, accountID string) (AccountLimits, error) {
	l, err := s.store.GetAccountLimits(ctx, accountID)
	if err != nil {
		return AccountLimits{}, fmt.Errorf("limits of account %s: %w", accountID, err)
	}
	return l, nil
}

// clipText cuts s to at most n bytes on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
