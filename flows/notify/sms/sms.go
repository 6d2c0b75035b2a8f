// Package sms sends keystep's text messages (one-time codes, admin alerts).
// It has two flows.SMSSender implementations: Twilio, through its REST API,
// and Webhook, a signed JSON POST to a gateway of your own.
//
// # Both senders
//
// Numbers must be in E.164 form (flows.CheckPhone) and text must be
// non-empty UTF-8 of at most MaxText characters; bad input is refused before
// any request, with an error that wraps flows.ErrInvalid.
//
// Each attempt is bounded by the configured Timeout (DefaultTimeout when
// zero); the caller's context bounds the whole send, retries included. An
// attempt is retried, up to Retries times, only when it failed on the network
// (no answer, or the attempt timed out) or was answered 429 or 5xx; any other
// answer is final. Retries wait with exponential backoff and jitter
// (BaseBackoff doubling up to MaxBackoff, each wait drawn between half and
// all of it), or as long as a Retry-After header says, up to MaxRetryAfter.
// A retry after a network error may deliver a message twice; the webhook's
// "id" lets a gateway drop the duplicate.
//
// Neither sender logs anything, and no error holds the auth token or the
// webhook secret.
//
// # The webhook
//
// NewWebhook POSTs, with Content-Type: application/json, a body like
//
//	{"to":"+15551234567","text":"Your keystep code is 428913","id":"6f1c…","timestamp":1767225600}
//
// where id is 32 hex digits, random per message and the same on each retry,
// and timestamp is the Unix time in seconds when the attempt was made. The
// header
//
//	Keystep-Signature: t=1767225600,v1=5d41402abc4b2a76b9719d911017c592…
//
// carries the same timestamp and, as v1, the lowercase hex HMAC-SHA256,
// keyed with the shared secret, of the bytes "<t>.<body>": the decimal
// timestamp, a full stop, and the raw request body exactly as received. A
// gateway verifies a request by recomputing that HMAC, comparing it in
// constant time, checking that t is within a few minutes of its own clock and
// equal to the body's timestamp, and remembering ids it has already sent. Any
// 2xx answer means the gateway took the message.
package sms

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keystep/keystep/flows"
)

// MaxText is the longest text, in characters, either sender takes (Twilio's
// own limit).
const MaxText = 1600

// invalidf returns an error that wraps flows.ErrInvalid.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", flows.ErrInvalid, fmt.Sprintf(format, args...))
}

// checkSMS refuses a message neither sender would send.
func checkSMS(m flows.SMS) error {
	if m.To == "" {
		return invalidf("recipient number is required")
	}
	if err := flows.CheckPhone(m.To); err != nil {
		// Not the number itself: sender errors reach the audit log and the
		// admins' mail.
		return invalidf("the recipient number is not in E.164 form, like +15551234567")
	}
	if strings.TrimSpace(m.Text) == "" {
		return invalidf("text is required")
	}
	if !utf8.ValidString(m.Text) {
		return invalidf("text must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(m.Text); n > MaxText {
		return invalidf("text is %d characters, more than %d", n, MaxText)
	}
	return nil
}

// checkURL parses an endpoint: https, or http to a loopback host only; no
// user info, query or fragment.
func checkURL(field, raw string) (*url.URL, error) {
	if raw == "" {
		return nil, invalidf("%s is required", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, invalidf("%s: %v", field, err)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, invalidf("%s %q must be an absolute URL", field, raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, invalidf("%s %q must use https (http is only allowed to a loopback host)", field, raw)
		}
	default:
		return nil, invalidf("%s %q must use https", field, raw)
	}
	if u.User != nil {
		return nil, invalidf("%s must not hold user info; credentials have their own settings", field)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, invalidf("%s %q must not have a query or fragment", field, raw)
	}
	return u, nil
}

// isLoopback reports whether h is "localhost" or a loopback IP address,
// without resolving names.
func isLoopback(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkTimeout applies the default timeout and refuses a negative one.
func checkTimeout(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, invalidf("timeout %v must not be negative", d)
	case d == 0:
		return DefaultTimeout, nil
	}
	return d, nil
}

// checkRetries applies the default number of retries: 0 means
// DefaultRetries, a negative number means none.
func checkRetries(n int) (int, error) {
	switch {
	case n < 0:
		return 0, nil
	case n == 0:
		return DefaultRetries, nil
	case n > MaxRetries:
		return 0, invalidf("retries %d must be at most %d", n, MaxRetries)
	}
	return n, nil
}

// clean makes text from a server safe to show in one line of an error: valid
// UTF-8, no control characters, at most max bytes.
func clean(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// recipientRedacted stands in for the recipient's number in errors.
const recipientRedacted = "[recipient]"

// redactNumber replaces the recipient number to in s, with or without its
// leading '+', by recipientRedacted: a sender's error (and what a server
// echoes of the request) must not carry a phone number into the audit log
// or the admins' mail.
func redactNumber(s, to string) string {
	if to == "" {
		return s
	}
	s = strings.ReplaceAll(s, to, recipientRedacted)
	if digits := strings.TrimPrefix(to, "+"); len(digits) >= 4 && digits != to {
		s = strings.ReplaceAll(s, digits, recipientRedacted)
	}
	return s
}

// sendError is a failed send as SendSMS returns it: the cause, with the
// recipient's number redacted from its text. errors.Is and errors.As see
// the cause.
type sendError struct {
	prefix string // "sms: twilio: send"
	to     string
	err    error
}

// Error says what failed, without the recipient's number.
func (e *sendError) Error() string {
	return e.prefix + ": " + redactNumber(e.err.Error(), e.to)
}

// Unwrap returns the cause.
func (e *sendError) Unwrap() error { return e.err }

// waitTimer is the real waiter: it waits d, or until ctx is done.
func waitTimer(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
