// Package alert delivers keystep's admin alerts (flows.AdminAlerter): by
// email through a flows.EmailSender, as a signed JSON webhook, or both
// (Multi).
package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/flows"
)

// titles says what each kind of alert means, for a person.
var titles = map[string]string{
	flows.AlertFraudReport:    "a user reported a sign-in they did not start",
	flows.AlertCodesLocked:    "an account's sign-in codes are locked after too many wrong codes",
	flows.AlertPushLimit:      "too many sign-in requests were pushed to an account",
	flows.AlertDeliveryFailed: "a sign-in code could not be sent",
}

// title is a kind's meaning, or the kind itself when it is new.
func title(kind string) string {
	if t, ok := titles[kind]; ok {
		return t
	}
	return kind
}

// Email sends each alert as one email to each address in To.
type Email struct {
	Sender flows.EmailSender
	To     []string
}

var _ flows.AdminAlerter = Email{}

var emailHTML = template.Must(template.New("alert").Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>keystep alert</title></head>
<body style="font-family: sans-serif">
<p><strong>keystep: {{.Title}}.</strong></p>
<table>
<tr><td>Account</td><td>{{.A.Account}} ({{.A.AccountID}})</td></tr>
{{if .A.SignIn}}<tr><td>Sign-in</td><td>{{.A.SignIn}}</td></tr>{{end}}
<tr><td>Time</td><td>{{.Time}}</td></tr>
<tr><td>Detail</td><td>{{.A.Detail}}</td></tr>
</table>
<p>The audit log (keystep admin audit) holds the events around it.</p>
</body></html>
`))

// Alert emails a to every address; it tries them all and returns their
// failures joined.
func (e Email) Alert(ctx context.Context, a flows.AdminAlert) error {
	if e.Sender == nil || len(e.To) == 0 {
		return errors.New("email alert: no sender or no address")
	}
	when := a.Time.UTC().Format(time.RFC3339)
	var h bytes.Buffer
	if err := emailHTML.Execute(&h, struct {
		Title, Time string
		A           flows.AdminAlert
	}{title(a.Kind), when, a}); err != nil {
		return fmt.Errorf("email alert: render: %w", err)
	}
	var text strings.Builder
	fmt.Fprintf(&text, "keystep: %s.\n\nAccount: %s (%s)\n", title(a.Kind), a.Account, a.AccountID)
	if a.SignIn != "" {
		fmt.Fprintf(&text, "Sign-in: %s\n", a.SignIn)
	}
	fmt.Fprintf(&text, "Time:    %s\nDetail:  %s\n\nThe audit log (keystep admin audit) holds the events around it.\n", when, a.Detail)
	var errs []error
	for _, to := range e.To {
		m := flows.Email{To: to, Subject: "[keystep] " + a.Account + ": " + title(a.Kind), Text: text.String(), HTML: h.String()}
		if err := e.Sender.SendEmail(ctx, m); err != nil {
			errs = append(errs, fmt.Errorf("email alert to %s: %w", to, err))
		}
	}
	return errors.Join(errs...)
}

// Webhook POSTs each alert as JSON (flows.AdminAlert's fields) to URL. The
// request carries the header
//
//	Keystep-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 under Secret of "<t>.<body>">
//
// which Verify checks. A status other than 2xx is a failure.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client     // nil: a client with a 10 s timeout
	Now    func() time.Time // nil: time.Now
}

var _ flows.AdminAlerter = Webhook{}

// HeaderSignature is the webhook's signature header.
const HeaderSignature = "Keystep-Signature"

// MinSecretLen is the shortest webhook secret worth having.
const MinSecretLen = 16

var defaultClient = &http.Client{Timeout: 10 * time.Second}

// CheckURL accepts an absolute http(s) URL with a host.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return fmt.Errorf("webhook URL %q must be http(s)://host/path", s)
	}
	return nil
}

// Sign returns the signature header's value for body at time t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header over body: its HMAC and that its time
// is within tolerance of now. A receiver of the webhook calls it.
func Verify(secret, body []byte, header string, now time.Time, tolerance time.Duration) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return errors.New("webhook signature: malformed header")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook signature: made %s from now", d.Round(time.Second))
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return errors.New("webhook signature: malformed header")
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts + "."))
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return errors.New("webhook signature: does not verify")
	}
	return nil
}

// Alert POSTs a to the webhook.
func (w Webhook) Alert(ctx context.Context, a flows.AdminAlert) error {
	if err := CheckURL(w.URL); err != nil {
		return fmt.Errorf("webhook alert: %w", err)
	}
	if len(w.Secret) < MinSecretLen {
		return fmt.Errorf("webhook alert: the secret must be at least %d bytes", MinSecretLen)
	}
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("webhook alert: %w", err)
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook alert: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keystep-alert/1")
	req.Header.Set(HeaderSignature, Sign(w.Secret, body, now()))
	c := w.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("webhook alert: %w", err)
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook alert: %s answered %s: %s", w.URL, resp.Status, strings.TrimSpace(string(excerpt)))
	}
	return nil
}

// Multi delivers each alert to every alerter in it; it tries them all and
// returns their failures joined.
type Multi []flows.AdminAlerter

var _ flows.AdminAlerter = Multi{}

// Alert delivers a to every alerter.
func (m Multi) Alert(ctx context.Context, a flows.AdminAlert) error {
	var errs []error
	for _, x := range m {
		if err := x.Alert(ctx, a); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
