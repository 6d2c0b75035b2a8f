package fcm

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/flows/notify/push"
)

// Error is a refusal from FCM's messages:send. It wraps the push sentinel
// that says what to do about it (see Unwrap).
type Error struct {
	// Status is the HTTP status FCM answered.
	Status int
	// Code is the google.rpc.Status status, e.g. "NOT_FOUND" or
	// "INVALID_ARGUMENT"; empty if the answer had none.
	Code string
	// FCMCode is the errorCode of the FcmError detail, e.g.
	// "UNREGISTERED"; empty if the answer had none.
	FCMCode string
	// TokenInvalid is set when an INVALID_ARGUMENT is about the
	// registration token (a field violation on message.token, or FCM's
	// "not a valid FCM registration token").
	TokenInvalid bool
	// RetryAfter is the wait FCM asked for with Retry-After (seconds),
	// zero if none.
	RetryAfter time.Duration
}

// Error says the status and codes; it never holds the registration token
// or the access token, and leaves out FCM's message, which may quote the
// request.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "FCM answered %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.FCMCode != "" && e.FCMCode != e.Code {
		b.WriteString("/" + e.FCMCode)
	}
	switch e.Unwrap() {
	case push.ErrRouteGone:
		b.WriteString(": the registration token is no longer valid")
	case push.ErrThrottled:
		b.WriteString(": too many requests, try again later")
	case push.ErrUnavailable:
		b.WriteString(": FCM is unavailable, try again later")
	case push.ErrAuth:
		b.WriteString(": the credentials were refused (service account, project, or the app's APNs key in Firebase)")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	return b.String()
}

// Unwrap gives the push sentinel for the refusal:
//   - ErrRouteGone for UNREGISTERED, and for an INVALID_ARGUMENT about
//     the registration token (TokenInvalid). A NOT_FOUND without the
//     UNREGISTERED detail is not taken as a dead token: a wrong project
//     id answers that way for every token.
//   - push.ErrThrottled for 429 (QUOTA_EXCEEDED).
//   - push.ErrUnavailable for 5xx (UNAVAILABLE, INTERNAL).
//   - push.ErrAuth for 401 and 403 (UNAUTHENTICATED, PERMISSION_DENIED,
//     THIRD_PARTY_AUTH_ERROR, SENDER_ID_MISMATCH).
//   - push.ErrRejected otherwise.
func (e *Error) Unwrap() error {
	switch {
	case e.FCMCode == "UNREGISTERED", e.TokenInvalid:
		return push.ErrRouteGone
	case e.Status == http.StatusTooManyRequests:
		return push.ErrThrottled
	case e.Status >= 500:
		return push.ErrUnavailable
	case e.Status == http.StatusUnauthorized, e.Status == http.StatusForbidden:
		return push.ErrAuth
	}
	return push.ErrRejected
}

// accessTokenRefused reports whether FCM refused the access token itself,
// which a fresh one may cure. THIRD_PARTY_AUTH_ERROR is also a 401, but is
// about the app's APNs or web-push credentials in Firebase.
func (e *Error) accessTokenRefused() bool {
	return e.Status == http.StatusUnauthorized && e.FCMCode != "THIRD_PARTY_AUTH_ERROR"
}

// Type URLs of the google.rpc.Status details FCM sends.
const (
	fcmErrorType   = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestType = "type.googleapis.com/google.rpc.BadRequest"
)

// ParseError reads an FCM error answer, a google.rpc.Status:
// {"error":{"code":…,"message":…,"status":…,"details":[{"@type":…,
// "errorCode":…},{"@type":…,"fieldViolations":[{"field":…}]}]}}. It never
// fails: a body it cannot read gives an Error with only the status. Codes
// that are not plain upper-case words are dropped, so that what a server
// sends cannot forge log lines.
func ParseError(status int, body []byte) *Error {
	e := &Error{Status: status}
	var b struct {
		Error struct {
			Message string            `json:"message"`
			Status  string            `json:"status"`
			Details []json.RawMessage `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &b) != nil {
		return e
	}
	if statusCode(b.Error.Status) {
		e.Code = b.Error.Status
	}
	aboutToken := false
	for _, raw := range b.Error.Details {
		var d struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		}
		if json.Unmarshal(raw, &d) != nil {
			continue
		}
		switch d.Type {
		case fcmErrorType:
			if statusCode(d.ErrorCode) && e.FCMCode == "" {
				e.FCMCode = d.ErrorCode
			}
		case badRequestType:
			for _, v := range d.FieldViolations {
				if v.Field == "message.token" {
					aboutToken = true
				}
			}
		}
	}
	msg := strings.ToLower(b.Error.Message)
	if strings.Contains(msg, "registration token") || strings.Contains(msg, "message.token") {
		aboutToken = true
	}
	e.TokenInvalid = aboutToken && (e.Code == "INVALID_ARGUMENT" || e.FCMCode == "INVALID_ARGUMENT")
	return e
}

// statusCode reports whether s has the shape of a google.rpc code: 1 to 64
// upper-case letters, digits and '_'.
func statusCode(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// retryAfter reads a Retry-After of whole seconds (up to a day); an
// HTTP date or anything else gives zero.
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n <= 0 || n > 86400 {
		return 0
	}
	return time.Duration(n) * time.Second
}
