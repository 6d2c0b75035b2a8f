package apns

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keystep/keystep/flows/notify/push"
)

// Error is a refusal from APNs. It wraps the push sentinel that says what
// to do about it (see Unwrap).
type Error struct {
	// Status is the HTTP status APNs answered.
	Status int
	// Reason is APNs' reason, e.g. "BadDeviceToken" or "Unregistered";
	// empty if the answer had none APNs documents the shape of.
	Reason string
	// Timestamp is, for a 410, when APNs last knew the token was no
	// longer valid; zero otherwise.
	Timestamp time.Time
	// APNsID is the notification's apns-id, if APNs gave one.
	APNsID string
}

// Error says the status and reason; it never holds the device token or
// the provider token.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "APNs answered %d", e.Status)
	if e.Reason != "" {
		b.WriteString(" " + e.Reason)
	}
	switch e.Unwrap() {
	case push.ErrRouteGone:
		b.WriteString(": the device token is no longer valid")
	case push.ErrThrottled:
		b.WriteString(": too many requests, try again later")
	case push.ErrUnavailable:
		b.WriteString(": APNs is unavailable, try again later")
	case push.ErrAuth:
		b.WriteString(": the provider token (key id, team id, key or topic) was refused")
	}
	if e.APNsID != "" {
		b.WriteString(" (apns-id " + e.APNsID + ")")
	}
	return b.String()
}

// Unwrap gives the push sentinel for the refusal: ErrRouteGone for 410 and
// for 400 BadDeviceToken, push.ErrAuth for a 403 about the provider token
// or the topic, push.ErrThrottled for 429, push.ErrUnavailable for 5xx,
// and push.ErrRejected otherwise.
//
// BadDeviceToken also comes back when a development build's token is sent
// to the production endpoint (or the other way round): if every device
// suddenly goes, check Config.Endpoint.
func (e *Error) Unwrap() error {
	switch {
	case e.Status == http.StatusGone, e.Reason == "BadDeviceToken", e.Reason == "ExpiredToken":
		return push.ErrRouteGone
	case e.Status == http.StatusTooManyRequests:
		return push.ErrThrottled
	case e.Status >= 500:
		return push.ErrUnavailable
	case e.Status == http.StatusForbidden:
		return push.ErrAuth
	}
	return push.ErrRejected
}

// providerToken reports whether APNs refused the JWT itself, which a fresh
// one may cure.
func (e *Error) providerToken() bool {
	return e.Reason == "ExpiredProviderToken" || e.Reason == "InvalidProviderToken"
}

// ParseError reads an APNs error answer, {"reason":"…"} with
// "timestamp" (milliseconds since the epoch) on a 410. It never fails: a
// body it cannot read gives an Error with only the status. A reason that
// is not a plain word is dropped, so that what a server sends cannot
// forge log lines.
func ParseError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var b struct {
		Reason    string          `json:"reason"`
		Timestamp json.RawMessage `json:"timestamp"`
	}
	if json.Unmarshal(body, &b) != nil {
		return e
	}
	if word(b.Reason) {
		e.Reason = b.Reason
	}
	var ms int64
	if status == http.StatusGone && json.Unmarshal(b.Timestamp, &ms) == nil && ms > 0 && ms < 1<<53 {
		e.Timestamp = time.UnixMilli(ms).UTC()
	}
	return e
}

// word reports whether s is 1 to 64 ASCII letters, like APNs' reasons.
func word(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
