package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// sameCodes compares the code, push, fraud and alert sections.
func sameCodes(a, b Config) bool {
	return reflect.DeepEqual(a.Codes, b.Codes) && a.Push == b.Push && a.Fraud == b.Fraud && reflect.DeepEqual(a.Alerts, b.Alerts)
}

// runIn runs a command with stdin as its standard input.
func (c cli) runIn(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runWithInput(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

var overrideLine = regexp.MustCompile(`(?m)^    (\d{3} \d{3} \d{4})$`)

// TestCommandLineCodes: the admin issues an override code, test-signin
// reads it from standard input and succeeds once; wrong codes lock the
// account's codes; unlock lifts the lock.
func TestCommandLineCodes(t *testing.T) {
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER", "KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN", "KEYSTEP_CODES_KEY_FILE"} {
		t.Setenv(k, "")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, url := startServe(t, dataDir)
	defer srv.stop(t)
	c := cli{t: t, server: url, tokenFile: filepath.Join(dataDir, "admin-token")}
	if fi, err := os.Stat(filepath.Join(dataDir, "code-key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("code key file: %v, %v", fi, err)
	}
	c.must(c.admin("user", "add", "alice", "--email", "alice@example.com")...)

	out := c.must(c.admin("override", "alice", "--ttl", "2h", "--reason", "phone at home")...)
	m := overrideLine.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "shown only now") {
		t.Fatalf("override printed:\n%s", out)
	}
	code := m[1]
	if log := srv.err.String(); strings.Contains(log, code) || strings.Contains(log, strings.ReplaceAll(code, " ", "")) {
		t.Fatalf("the server log shows the code:\n%s", log)
	}
	if n, sout, serr := c.runIn(code+"\n", c.admin("test-signin", "alice", "--method", "override")...); n != 0 || !strings.Contains(sout, "approved (by override code)") {
		t.Fatalf("test-signin with the code: exit %d\n%s%s", n, sout, serr)
	}
	// Used once: refused, with the reason.
	n, _, serr := c.runIn(code+"\n", c.admin("test-signin", "alice", "--method", "override")...)
	if n != 1 || !strings.Contains(serr, "wrong or no longer valid") {
		t.Fatalf("the same code again: exit %d, %q", n, serr)
	}
	// JSON lines; nothing on stdin is an error before anything is sent.
	n, sout, serr := c.runIn("", c.admin("--json", "test-signin", "alice", "--method", "override")...)
	if n != 1 || !strings.Contains(serr, "no code on standard input") || !strings.Contains(sout, `"event":"challenge"`) {
		t.Fatalf("no code: exit %d, %q %q", n, sout, serr)
	}
	// Nine more wrong codes lock the account's codes.
	var last string
	for range 9 {
		_, _, last = c.runIn("000 000 0000\n", c.admin("test-signin", "alice", "--method", "override")...)
	}
	if !strings.Contains(last, "locked") || !strings.Contains(last, "keystep admin user unlock") {
		t.Fatalf("tenth wrong code: %q", last)
	}
	if out := c.must(c.admin("user", "show", "alice")...); !strings.Contains(out, "locked after 10 wrong codes") {
		t.Fatalf("user show while locked:\n%s", out)
	}
	code = overrideLine.FindStringSubmatch(c.must(c.admin("override", "alice")...))[1]
	if n, _, serr := c.runIn(code+"\n", c.admin("test-signin", "alice", "--method", "override")...); n != 1 || !strings.Contains(serr, "locked") {
		t.Fatalf("right code while locked: exit %d, %q", n, serr)
	}
	if out := c.must(c.admin("user", "unlock", "alice")...); strings.Contains(out, "locked") {
		t.Fatalf("user unlock printed:\n%s", out)
	}
	n, sout, serr = c.runIn(code+"\n", c.admin("--json", "test-signin", "alice", "--method", "override")...)
	lines := strings.Split(strings.TrimSpace(sout), "\n")
	if n != 0 || len(lines) != 2 {
		t.Fatalf("after unlock: exit %d\n%s%s", n, sout, serr)
	}
	if o := decode[struct{ Event, Status string }](t, lines[1]); o.Event != "outcome" || o.Status != "approved" {
		t.Fatalf("outcome %+v", o)
	}
	// Email codes need a sender, which this server has not.
	if n, _, serr := c.runIn("123456\n", c.admin("test-signin", "alice", "--method", "email")...); n != 1 || !strings.Contains(serr, "no email sender") {
		t.Fatalf("email without a sender: exit %d, %q", n, serr)
	}
}

func TestConfigCodes(t *testing.T) {
	path := writeConfig(t, `
codes:
  key_file: /etc/keystep/code-key
  methods: [override, email]
  override_ttl: 4h
  override_format: base32
  otp_digits: 8
  otp_ttl: 3m
  otp_max_attempts: 3
  otp_resend_cooldown: 1m
  otp_sends_per_hour: 4
  max_failed: 20
  lockout: 2h
  checks_per_ip_per_minute: 15
  checks_per_account_per_minute: 12
push:
  limit: 3
  window: 15m
fraud:
  push_block: 1d
alerts:
  webhook_url: https://siem.example.com/keystep
  webhook_secret_file: /etc/keystep/webhook-secret
  email_to: [it@example.com, soc@example.com]
`)
	c, err := loadConfig(path, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := flows.CodeConfig{
		CodeMethods: []flows.Method{flows.MethodOverride, flows.MethodEmail}, OverrideTTL: 4 * time.Hour, OverrideFormat: "base32",
		OTPDigits: 8, OTPTTL: 3 * time.Minute, OTPMaxAttempts: 3, OTPResendCooldown: time.Minute, OTPSendsPerHour: 4,
		MaxFailedCodes: 20, CodeLockout: 2 * time.Hour, CodeChecksPerIPPerMinute: 15, CodeChecksPerAccountPerMinute: 12,
		PushLimit: 3, PushWindow: 15 * time.Minute, FraudPushBlock: 24 * time.Hour,
	}
	if got := c.flowsConfig("https://x").CodeConfig; !reflect.DeepEqual(got, want) {
		t.Fatalf("flows code config\n got %+v\nwant %+v", got, want)
	}
	if c.Codes.KeyFile != "/etc/keystep/code-key" || c.Alerts.WebhookURL != "https://siem.example.com/keystep" ||
		strings.Join(c.Alerts.EmailTo, ",") != "it@example.com,soc@example.com" {
		t.Fatalf("config %+v", c)
	}
	// The round trip keeps every value.
	out, err := c.marshalYAML()
	if err != nil {
		t.Fatal(err)
	}
	again := defaultConfig()
	if err := again.parseYAML(out, "again.yaml"); err != nil || !same(c, again) {
		t.Fatalf("round trip: %v\n%s", err, out)
	}
	// The environment overrides the file; lists are comma-separated.
	c, err = loadConfig(path, envOf(map[string]string{
		"KEYSTEP_CODES_KEY_FILE": "/run/secrets/code-key", "KEYSTEP_CODES_METHODS": "sms, override",
		"KEYSTEP_ALERTS_EMAIL_TO": "sec@example.com", "KEYSTEP_ALERTS_WEBHOOK_URL": "https://hooks.example.com/k",
	}), nil)
	if err != nil || c.Codes.KeyFile != "/run/secrets/code-key" || strings.Join(c.Codes.Methods, ",") != "sms,override" ||
		strings.Join(c.Alerts.EmailTo, ",") != "sec@example.com" || c.Alerts.WebhookURL != "https://hooks.example.com/k" {
		t.Fatalf("env overrides: %+v, %v", c, err)
	}
	// No code methods at all.
	c, err = loadConfig(writeConfig(t, "codes:\n  methods: []\n"), envOf(nil), nil)
	if err != nil || c.Codes.Methods == nil || len(c.flowsConfig("https://x").CodeMethods) != 0 {
		t.Fatalf("methods: []: %+v, %v", c.Codes, err)
	}
}

func TestConfigCodesBadValues(t *testing.T) {
	for yaml, want := range map[string]string{
		"codes:\n  otp_digits: 9\n":                                    "codes.otp_digits (",
		"codes:\n  methods: [override, push]\n":                        `codes.methods (`,
		"codes:\n  methods: override\n":                                "codes.methods: must be a list",
		"codes:\n  methods: [[sms]]\n":                                 "list item: must be a single value",
		"codes:\n  override_ttl: 8d\n":                                 "override lifetime must be 1m0s to 168h0m0s",
		"codes:\n  override_format: hex\n":                             "codes.override_format (",
		"codes:\n  max_failed: 101\n":                                  "codes.max_failed (",
		"codes:\n  lockout: 0s\n  otp_ttl: 20m\n":                      "codes.otp_ttl (",
		"push:\n  window: 25h\n":                                       "push.window (",
		"push:\n  limit: -1\n":                                         "push.limit (",
		"fraud:\n  push_block: -1h\n":                                  "fraud.push_block (",
		"alerts:\n  webhook_url: https://x.example\n":                  "alerts.webhook_secret_file (default): is required",
		"alerts:\n  webhook_secret_file: /s\n":                         "alerts.webhook_url (default): is required",
		"alerts:\n  webhook_url: ftp://x\n  webhook_secret_file: /s\n": "alerts.webhook_url (",
		"alerts:\n  email_to: [it@example.com, Bob <b@x.org>]\n":       `"Bob <b@x.org>" is not an email address`,
		"codes:\n  unknown: 1\n":                                       "unknown key codes.unknown",
	} {
		_, err := loadConfig(writeConfig(t, yaml), envOf(nil), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", yaml, err, want)
		}
	}
}

func TestCodeKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "code-key")
	if _, _, err := loadOrCreateCodeKey(path, false); err == nil {
		t.Fatal("a missing key file given in the config was made up")
	}
	key, created, err := loadOrCreateCodeKey(path, true)
	if err != nil || !created || len(key) != 32 {
		t.Fatalf("first start: %d bytes, %v, %v", len(key), created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode().Perm(), err)
	}
	again, created, err := loadOrCreateCodeKey(path, true)
	if err != nil || created || !bytes.Equal(again, key) {
		t.Fatalf("second start: %v, %v", created, err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateCodeKey(path, true); err == nil || !strings.Contains(err.Error(), "open to other users") {
		t.Fatalf("group-readable key: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte(base64.RawURLEncoding.EncodeToString(make([]byte, 16))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadOrCreateCodeKey(short, true); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("short key: %v", err)
	}
}

// TestServeAlertsConfig: a webhook needs its secret file; email alerts
// need an email sender.
func TestServeAlertsConfig(t *testing.T) {
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER", "KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(secret, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := cli{t: t}
	for yaml, want := range map[string]string{
		"alerts:\n  email_to: [it@example.com]\n":                                                              "alerts.email_to needs an email sender",
		"alerts:\n  webhook_url: https://hooks.example.com/k\n  webhook_secret_file: " + secret + "\n":         "holds less than 16 bytes",
		"alerts:\n  webhook_url: https://hooks.example.com/k\n  webhook_secret_file: " + secret + "-missing\n": "no such file",
		"codes:\n  key_file: " + filepath.Join(dir, "no-such-key") + "\n":                                      "code key",
	} {
		n, _, errs := c.run("serve", "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"), "--config", writeConfig(t, yaml))
		if n != 1 || !strings.Contains(errs, want) {
			t.Errorf("%q: exit %d, %q; want %q", yaml, n, errs, want)
		}
	}
}

// pipeMail is an email sender that types the code it sends into a pipe:
// the user reading their mail and typing the code into the terminal.
type pipeMail struct {
	w    *io.PipeWriter
	sent chan flows.Email
}

func (p pipeMail) SendEmail(_ context.Context, m flows.Email) error {
	p.sent <- m
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(m.Text)
	go func() { _, _ = io.WriteString(p.w, code+"\n") }() // test-signin reads it once SendCode has answered
	return nil
}

// TestCommandLineEmailCode runs test-signin --method email against a server
// given an email sender: the code goes out by email and comes back in on
// standard input.
func TestCommandLineEmailCode(t *testing.T) {
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER", "KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN"} {
		t.Setenv(k, "")
	}
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg, err := loadConfig("", envOf(nil), []flagOverride{{"listen", "listen", "127.0.0.1:0"}, {"data_dir", "data", dataDir}})
	if err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	mail := pipeMail{w: w, sent: make(chan flows.Email, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLineWriter()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logs, Senders{Email: mail}, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	url := logs.next(t, listening)[1]
	c := cli{t: t, server: url, tokenFile: filepath.Join(dataDir, "admin-token")}
	c.must(c.admin("user", "add", "alice", "--email", "alice@example.com")...)

	var out, errb bytes.Buffer
	n := runWithInput(context.Background(), c.admin("--json", "test-signin", "alice", "--method", "email"), r, &out, &errb)
	if n != 0 {
		t.Fatalf("test-signin by email: exit %d\n%s%s", n, out.String(), errb.String())
	}
	m := <-mail.sent
	if m.To != "alice@example.com" || !strings.Contains(m.Subject, "keystep admin test-signin") {
		t.Fatalf("email %+v", m)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("output:\n%s", out.String())
	}
	sent := decode[struct{ Event, Channel, To string }](t, lines[1])
	outcome := decode[struct{ Event, Status string }](t, lines[2])
	if sent.Event != "code_sent" || sent.Channel != "email" || sent.To != "a•••@example.com" || outcome.Status != "approved" {
		t.Fatalf("lines %+v %+v", sent, outcome)
	}
	if strings.Contains(errb.String(), "Code sent to") {
		t.Fatalf("prompted although stdin is no terminal: %q", errb.String())
	}
}
