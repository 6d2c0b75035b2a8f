package flows

import (
	"slices"
	"time"
)

// CodeConfig is the policy of the one-time codes (override codes, SMS and
// email OTPs) and of the defences around codes and pushes. Config embeds
// it. A zero value takes the default given with each field.
type CodeConfig struct {
	// CodeKey is the HMAC-SHA256 key of every stored code hash (required,
	// at least 32 bytes). Instances that share a store must share it.
	CodeKey []byte
	// CodeMethods are the code methods a sign-in may open. Nil: override,
	// sms and email; a non-nil empty list: none.
	CodeMethods []Method

	// OverrideTTL is an override code's lifetime when the admin gives none
	// (default 1 hour; at most MaxOverrideTTL, 7 days).
	OverrideTTL time.Duration
	// OverrideFormat is OverrideDigits (default: 10 digits, shown
	// "123 456 7890") or OverrideBase32 (16 characters of an alphabet
	// without look-alike letters, shown "ABCD-EFGH-JKMN-PQRS").
	OverrideFormat string

	// OTPDigits is the length of an SMS or email code (6 to 8; default 6).
	OTPDigits int
	// OTPTTL is an OTP's lifetime (default 5 minutes; 1 to 10 minutes).
	OTPTTL time.Duration
	// OTPMaxAttempts is how many wrong tries kill an OTP (default 5; 1 to 10).
	OTPMaxAttempts int
	// OTPResendCooldown is how long an account waits between two codes on
	// one channel (default 30 s; 1 s to 10 minutes).
	OTPResendCooldown time.Duration
	// OTPSendsPerHour caps the codes sent to one account per hour (default
	// 10; 1 to 1000).
	OTPSendsPerHour int

	// MaxFailedCodes is how many consecutive wrong codes lock an account's
	// codes (default 10; at most 100, as NIST SP 800-63B allows). Issuing a
	// new code does not reset the count; a successful code does. At 100
	// consecutive failures the lock no longer expires: only an admin lifts it.
	MaxFailedCodes int
	// CodeLockout is how long the lock lasts (default 1 hour; 1 minute to
	// 30 days). Each further failure after it expires locks again.
	CodeLockout time.Duration
	// CodeChecksPerIPPerMinute caps the code checks from one client address
	// (IPv6: one /64) per minute (default 20; 1 to 10000).
	CodeChecksPerIPPerMinute int
	// CodeChecksPerAccountPerMinute caps the code checks against one
	// account per minute, from anywhere (default 30; 1 to 10000).
	CodeChecksPerAccountPerMinute int

	// PushLimit and PushWindow bound the pushes per account (default 5 per
	// 10 minutes; 1 to 1000 per 1 minute to 24 hours). Past the limit a
	// sign-in falls back to QR and codes, and the admins are told once per
	// window.
	PushLimit  int
	PushWindow time.Duration
	// FraudPushBlock is how long a report of "I did not start this" stops
	// pushes to the account (default 0: not at all; at most 30 days).
	FraudPushBlock time.Duration
}

// Override code formats.
const (
	OverrideDigits = "digits" // 10 digits
	OverrideBase32 = "base32" // 16 characters of CodeAlphabet
)

// Bounds of the code policy.
const (
	// MinCodeKeyLen is the shortest CodeKey New accepts.
	MinCodeKeyLen = 32
	// MaxOverrideTTL is the longest an override code may live.
	MaxOverrideTTL = 7 * 24 * time.Hour
	// MaxConsecutiveCodeFailures is NIST SP 800-63B's bound on consecutive
	// failures; at it an account's codes stay locked until an admin unlocks them.
	MaxConsecutiveCodeFailures = 100
)

// codeRetention is how long Purge keeps a code after it expired.
const codeRetention = 24 * time.Hour

func (c *CodeConfig) setDefaults() error {
	if len(c.CodeKey) < MinCodeKeyLen {
		return invalidf("the code key must be at least %d bytes, not %d", MinCodeKeyLen, len(c.CodeKey))
	}
	c.CodeKey = slices.Clone(c.CodeKey)
	if c.CodeMethods == nil {
		c.CodeMethods = []Method{MethodOverride, MethodSMS, MethodEmail}
	}
	c.CodeMethods = slices.Clone(c.CodeMethods)
	for i, m := range c.CodeMethods {
		if !m.IsCode() {
			return invalidf("code methods must be override, sms or email, not %q", m)
		}
		if slices.Contains(c.CodeMethods[:i], m) {
			return invalidf("code method %q given twice", m)
		}
	}
	if c.OverrideFormat == "" {
		c.OverrideFormat = OverrideDigits
	}
	if c.OverrideFormat != OverrideDigits && c.OverrideFormat != OverrideBase32 {
		return invalidf("override format must be %s or %s, not %q", OverrideDigits, OverrideBase32, c.OverrideFormat)
	}
	durations := []struct {
		what     string
		p        *time.Duration
		def      time.Duration
		min, max time.Duration
	}{
		{"override lifetime", &c.OverrideTTL, time.Hour, time.Minute, MaxOverrideTTL},
		{"OTP lifetime", &c.OTPTTL, 5 * time.Minute, time.Minute, 10 * time.Minute},
		{"OTP resend cooldown", &c.OTPResendCooldown, 30 * time.Second, time.Second, 10 * time.Minute},
		{"code lockout", &c.CodeLockout, time.Hour, time.Minute, 30 * 24 * time.Hour},
		{"push window", &c.PushWindow, 10 * time.Minute, time.Minute, 24 * time.Hour},
	}
	for _, d := range durations {
		if *d.p == 0 {
			*d.p = d.def
		}
		if *d.p < d.min || *d.p > d.max {
			return invalidf("%s must be %s to %s, not %s", d.what, d.min, d.max, *d.p)
		}
	}
	counts := []struct {
		what     string
		p        *int
		def      int
		min, max int
	}{
		{"OTP digits", &c.OTPDigits, 6, 6, 8},
		{"OTP attempts", &c.OTPMaxAttempts, 5, 1, 10},
		{"OTP sends per hour", &c.OTPSendsPerHour, 10, 1, 1000},
		{"consecutive failed codes", &c.MaxFailedCodes, 10, 1, MaxConsecutiveCodeFailures},
		{"code checks per address per minute", &c.CodeChecksPerIPPerMinute, 20, 1, 10000},
		{"code checks per account per minute", &c.CodeChecksPerAccountPerMinute, 30, 1, 10000},
		{"push limit", &c.PushLimit, 5, 1, 1000},
	}
	for _, n := range counts {
		if *n.p == 0 {
			*n.p = n.def
		}
		if *n.p < n.min || *n.p > n.max {
			return invalidf("%s must be %d to %d, not %d", n.what, n.min, n.max, *n.p)
		}
	}
	if c.FraudPushBlock < 0 || c.FraudPushBlock > 30*24*time.Hour {
		return invalidf("fraud push block must be 0 (off) to 30 days, not %s", c.FraudPushBlock)
	}
	return nil
}

// codeMethodOpen reports whether the policy lets a sign-in open m.
func (c *CodeConfig) codeMethodOpen(m Method) bool {
	return slices.Contains(c.CodeMethods, m)
}

// CanDeliver reports whether the server can deliver codes by channel
// (MethodSMS, MethodEmail): the method is open and a sender is set. An
// override code needs no delivery and is open when the method is.
func (s *Service) CanDeliver(channel Method) bool {
	if !s.cfg.codeMethodOpen(channel) {
		return false
	}
	switch channel {
	case MethodSMS:
		return s.sms != nil
	case MethodEmail:
		return s.email != nil
	}
	return channel == MethodOverride
}
