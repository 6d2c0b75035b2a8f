package main

import "time"

// CodesConfig is the policy of one-time codes (flows.CodeConfig); zero
// values take flows' defaults.
type CodesConfig struct {
	KeyFile                   string        // the code key; empty: <data_dir>/code-key, made on first start
	Methods                   []string      // code methods a sign-in may open; nil: all
	OverrideTTL               time.Duration // override codes' default lifetime
	OverrideFormat            string        // digits or base32
	OTPDigits                 int
	OTPTTL                    time.Duration
	OTPMaxAttempts            int
	OTPResendCooldown         time.Duration
	OTPSendsPerHour           int
	MaxFailed                 int           // consecutive wrong codes that lock an account's codes
	Lockout                   time.Duration // how long they stay locked
	ChecksPerIPPerMinute      int
	ChecksPerAccountPerMinute int
}

// PushConfig bounds the pushes per account.
type PushConfig struct {
	Limit  int
	Window time.Duration
}

// FraudConfig says what a fraud report does beyond alerting.
type FraudConfig struct {
	PushBlock time.Duration // stop pushes to the account this long; 0: not at all
}

// AlertsConfig says where admin alerts go.
type AlertsConfig struct {
	WebhookURL        string   // a signed JSON POST per alert
	WebhookSecretFile string   // the webhook's HMAC secret (required with webhook_url)
	EmailTo           []string // admins to email (needs an email sender)
}
