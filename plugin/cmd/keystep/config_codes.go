package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/alert"
)

// CodesConfig is the policy of one-time codes (flows.CodeConfig); zero
// values take flows' defaults.
type CodesConfig struct {
	KeyFile                   string        // the code key; empty: <data_dir>/code-key, made on first start
	Methods                   []string      // code methods a sign-in may open; nil: all, empty: none
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

// codesEnv are the environment overrides of these sections.
var codesEnv = []struct{ name, key string }{
	{"KEYSTEP_CODES_KEY_FILE", "codes.key_file"},
	{"KEYSTEP_CODES_METHODS", "codes.methods"},
	{"KEYSTEP_ALERTS_WEBHOOK_URL", "alerts.webhook_url"},
	{"KEYSTEP_ALERTS_WEBHOOK_SECRET_FILE", "alerts.webhook_secret_file"},
	{"KEYSTEP_ALERTS_EMAIL_TO", "alerts.email_to"},
}

// codesSchema is the file's shape for these sections.
func (c *Config) codesSchema() schema {
	return schema{
		"codes": schema{
			"key_file":                      stringValue(&c.Codes.KeyFile),
			"methods":                       listValue(&c.Codes.Methods),
			"override_ttl":                  durationValue(&c.Codes.OverrideTTL),
			"override_format":               stringValue(&c.Codes.OverrideFormat),
			"otp_digits":                    intValue(&c.Codes.OTPDigits),
			"otp_ttl":                       durationValue(&c.Codes.OTPTTL),
			"otp_max_attempts":              intValue(&c.Codes.OTPMaxAttempts),
			"otp_resend_cooldown":           durationValue(&c.Codes.OTPResendCooldown),
			"otp_sends_per_hour":            intValue(&c.Codes.OTPSendsPerHour),
			"max_failed":                    intValue(&c.Codes.MaxFailed),
			"lockout":                       durationValue(&c.Codes.Lockout),
			"checks_per_ip_per_minute":      intValue(&c.Codes.ChecksPerIPPerMinute),
			"checks_per_account_per_minute": intValue(&c.Codes.ChecksPerAccountPerMinute),
		},
		"push": schema{
			"limit":  intValue(&c.Push.Limit),
			"window": durationValue(&c.Push.Window),
		},
		"fraud": schema{
			"push_block": durationValue(&c.Fraud.PushBlock),
		},
		"alerts": schema{
			"webhook_url":         stringValue(&c.Alerts.WebhookURL),
			"webhook_secret_file": stringValue(&c.Alerts.WebhookSecretFile),
			"email_to":            listValue(&c.Alerts.EmailTo),
		},
	}
}

// listValue reads a YAML list of plain values.
func listValue(p *[]string) setter {
	return func(n *yaml.Node) error {
		if n.Kind != yaml.SequenceNode {
			return errors.New("must be a list, like [a, b]")
		}
		out := []string{}
		for _, item := range n.Content {
			v, err := scalar(resolve(item))
			if err != nil {
				return fmt.Errorf("list item: %w", err)
			}
			out = append(out, v)
		}
		*p = out
		return nil
	}
}

// setCodesString sets one of these sections' keys from the environment;
// lists are comma-separated there. It reports whether key is one of them.
func (c *Config) setCodesString(key, v string) bool {
	list := func() []string {
		out := []string{}
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	switch key {
	case "codes.key_file":
		c.Codes.KeyFile = v
	case "codes.methods":
		c.Codes.Methods = list()
	case "alerts.webhook_url":
		c.Alerts.WebhookURL = v
	case "alerts.webhook_secret_file":
		c.Alerts.WebhookSecretFile = v
	case "alerts.email_to":
		c.Alerts.EmailTo = list()
	default:
		return false
	}
	return true
}

// codeMethods turns the configured method names into flows methods.
func (c *Config) codeMethods() []flows.Method {
	if c.Codes.Methods == nil {
		return nil
	}
	ms := make([]flows.Method, len(c.Codes.Methods))
	for i, m := range c.Codes.Methods {
		ms[i] = flows.Method(m)
	}
	return ms
}

// flowsCodeConfig is the code policy for flows, without the key.
func (c *Config) flowsCodeConfig() flows.CodeConfig {
	return flows.CodeConfig{
		CodeMethods:                   c.codeMethods(),
		OverrideTTL:                   c.Codes.OverrideTTL,
		OverrideFormat:                c.Codes.OverrideFormat,
		OTPDigits:                     c.Codes.OTPDigits,
		OTPTTL:                        c.Codes.OTPTTL,
		OTPMaxAttempts:                c.Codes.OTPMaxAttempts,
		OTPResendCooldown:             c.Codes.OTPResendCooldown,
		OTPSendsPerHour:               c.Codes.OTPSendsPerHour,
		MaxFailedCodes:                c.Codes.MaxFailed,
		CodeLockout:                   c.Codes.Lockout,
		CodeChecksPerIPPerMinute:      c.Codes.ChecksPerIPPerMinute,
		CodeChecksPerAccountPerMinute: c.Codes.ChecksPerAccountPerMinute,
		PushLimit:                     c.Push.Limit,
		PushWindow:                    c.Push.Window,
		FraudPushBlock:                c.Fraud.PushBlock,
	}
}

// validateCodes checks these sections, naming the key of each bad value;
// the policy's bounds are flows' own.
func (c *Config) validateCodes() []error {
	var errs []error
	checks := []struct {
		key string
		set func(*flows.CodeConfig)
	}{
		{"codes.methods", func(f *flows.CodeConfig) { f.CodeMethods = c.codeMethods() }},
		{"codes.override_ttl", func(f *flows.CodeConfig) { f.OverrideTTL = c.Codes.OverrideTTL }},
		{"codes.override_format", func(f *flows.CodeConfig) { f.OverrideFormat = c.Codes.OverrideFormat }},
		{"codes.otp_digits", func(f *flows.CodeConfig) { f.OTPDigits = c.Codes.OTPDigits }},
		{"codes.otp_ttl", func(f *flows.CodeConfig) { f.OTPTTL = c.Codes.OTPTTL }},
		{"codes.otp_max_attempts", func(f *flows.CodeConfig) { f.OTPMaxAttempts = c.Codes.OTPMaxAttempts }},
		{"codes.otp_resend_cooldown", func(f *flows.CodeConfig) { f.OTPResendCooldown = c.Codes.OTPResendCooldown }},
		{"codes.otp_sends_per_hour", func(f *flows.CodeConfig) { f.OTPSendsPerHour = c.Codes.OTPSendsPerHour }},
		{"codes.max_failed", func(f *flows.CodeConfig) { f.MaxFailedCodes = c.Codes.MaxFailed }},
		{"codes.lockout", func(f *flows.CodeConfig) { f.CodeLockout = c.Codes.Lockout }},
		{"codes.checks_per_ip_per_minute", func(f *flows.CodeConfig) { f.CodeChecksPerIPPerMinute = c.Codes.ChecksPerIPPerMinute }},
		{"codes.checks_per_account_per_minute", func(f *flows.CodeConfig) {
			f.CodeChecksPerAccountPerMinute = c.Codes.ChecksPerAccountPerMinute
		}},
		{"push.limit", func(f *flows.CodeConfig) { f.PushLimit = c.Push.Limit }},
		{"push.window", func(f *flows.CodeConfig) { f.PushWindow = c.Push.Window }},
		{"fraud.push_block", func(f *flows.CodeConfig) { f.FraudPushBlock = c.Fraud.PushBlock }},
	}
	for _, ch := range checks {
		if err := checkFlowsConfig(func(f *flows.Config) { ch.set(&f.CodeConfig) }); err != nil {
			errs = append(errs, c.keyError(ch.key, "%s", err))
		}
	}
	switch a := c.Alerts; {
	case a.WebhookURL != "" && a.WebhookSecretFile == "":
		errs = append(errs, c.keyError("alerts.webhook_secret_file", "is required with alerts.webhook_url"))
	case a.WebhookURL == "" && a.WebhookSecretFile != "":
		errs = append(errs, c.keyError("alerts.webhook_url", "is required with alerts.webhook_secret_file"))
	case a.WebhookURL != "":
		if err := alert.CheckURL(a.WebhookURL); err != nil {
			errs = append(errs, c.keyError("alerts.webhook_url", "%s", err))
		}
	}
	for _, to := range c.Alerts.EmailTo {
		if err := flows.CheckEmail(to); err != nil || to == "" {
			errs = append(errs, c.keyError("alerts.email_to", "%q is not an email address", to))
		}
	}
	return errs
}

// Senders are the ways to reach people that keystep serve hands to flows:
// nil leaves a channel off (its codes answer "channel unavailable").
type Senders struct {
	Email flows.EmailSender
	SMS   flows.SMSSender
}

// codeOptions are the flows options of codes and alerts: the senders and
// the admin alerter the configuration asks for.
func (c *Config) codeOptions(s Senders) ([]flows.Option, error) {
	opts := []flows.Option{flows.WithEmailSender(s.Email), flows.WithSMSSender(s.SMS)}
	var alerters alert.Multi
	if c.Alerts.WebhookURL != "" {
		secret, err := readSecretFile(c.Alerts.WebhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("alerts.webhook_secret_file: %w", err)
		}
		alerters = append(alerters, alert.Webhook{URL: c.Alerts.WebhookURL, Secret: secret})
	}
	if len(c.Alerts.EmailTo) > 0 {
		if s.Email == nil {
			return nil, errors.New("config: alerts.email_to needs an email sender, and none is configured")
		}
		alerters = append(alerters, alert.Email{Sender: s.Email, To: slices.Clone(c.Alerts.EmailTo)})
	}
	if len(alerters) > 0 {
		opts = append(opts, flows.WithAdminAlerter(alerters))
	}
	return opts, nil
}

// readSecretFile reads a secret from a file that only its owner may read.
func readSecretFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is open to other users (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	secret := []byte(strings.TrimSpace(string(b)))
	if len(secret) < alert.MinSecretLen {
		return nil, fmt.Errorf("%s holds less than %d bytes", path, alert.MinSecretLen)
	}
	return secret, nil
}

// fileCodes is these sections' shape, for writing a configuration out.
type fileCodes struct {
	Codes struct {
		KeyFile                   string    `yaml:"key_file"`
		Methods                   *[]string `yaml:"methods,omitempty"`
		OverrideTTL               string    `yaml:"override_ttl"`
		OverrideFormat            string    `yaml:"override_format"`
		OTPDigits                 int       `yaml:"otp_digits"`
		OTPTTL                    string    `yaml:"otp_ttl"`
		OTPMaxAttempts            int       `yaml:"otp_max_attempts"`
		OTPResendCooldown         string    `yaml:"otp_resend_cooldown"`
		OTPSendsPerHour           int       `yaml:"otp_sends_per_hour"`
		MaxFailed                 int       `yaml:"max_failed"`
		Lockout                   string    `yaml:"lockout"`
		ChecksPerIPPerMinute      int       `yaml:"checks_per_ip_per_minute"`
		ChecksPerAccountPerMinute int       `yaml:"checks_per_account_per_minute"`
	} `yaml:"codes"`
	Push struct {
		Limit  int    `yaml:"limit"`
		Window string `yaml:"window"`
	} `yaml:"push"`
	Fraud struct {
		PushBlock string `yaml:"push_block"`
	} `yaml:"fraud"`
	Alerts struct {
		WebhookURL        string    `yaml:"webhook_url"`
		WebhookSecretFile string    `yaml:"webhook_secret_file"`
		EmailTo           *[]string `yaml:"email_to,omitempty"`
	} `yaml:"alerts"`
}

// marshalCodes fills these sections of a file being written.
func (c *Config) marshalCodes() fileCodes {
	var f fileCodes
	cs := &f.Codes
	cs.KeyFile, cs.OverrideFormat = c.Codes.KeyFile, c.Codes.OverrideFormat
	if c.Codes.Methods != nil {
		cs.Methods = &c.Codes.Methods
	}
	cs.OverrideTTL, cs.OTPTTL = formatDuration(c.Codes.OverrideTTL), formatDuration(c.Codes.OTPTTL)
	cs.OTPResendCooldown, cs.Lockout = formatDuration(c.Codes.OTPResendCooldown), formatDuration(c.Codes.Lockout)
	cs.OTPDigits, cs.OTPMaxAttempts, cs.OTPSendsPerHour = c.Codes.OTPDigits, c.Codes.OTPMaxAttempts, c.Codes.OTPSendsPerHour
	cs.MaxFailed, cs.ChecksPerIPPerMinute, cs.ChecksPerAccountPerMinute = c.Codes.MaxFailed, c.Codes.ChecksPerIPPerMinute, c.Codes.ChecksPerAccountPerMinute
	f.Push.Limit, f.Push.Window = c.Push.Limit, formatDuration(c.Push.Window)
	f.Fraud.PushBlock = formatDuration(c.Fraud.PushBlock)
	f.Alerts.WebhookURL, f.Alerts.WebhookSecretFile = c.Alerts.WebhookURL, c.Alerts.WebhookSecretFile
	if c.Alerts.EmailTo != nil {
		f.Alerts.EmailTo = &c.Alerts.EmailTo
	}
	return f
}

// cfgFlowsMethods lists the code methods the service opens, for the log.
func cfgFlowsMethods(svc *flows.Service) string {
	var ms []string
	for _, m := range svc.Config().CodeMethods {
		ms = append(ms, string(m))
	}
	return strings.Join(ms, ",")
}
