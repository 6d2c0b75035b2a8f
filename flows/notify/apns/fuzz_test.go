package apns_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keystep/keystep/flows/notify/apns"
	"github.com/keystep/keystep/flows/notify/push"
)

// FuzzParseRoute: any route string either gives a token of 64 to 200 hex
// digits that is the route's tail, or ErrBadRoute; never a panic.
func FuzzParseRoute(f *testing.F) {
	f.Add("apns:" + strings.Repeat("ab", 32))
	f.Add("apns:" + strings.Repeat("AB", 100))
	f.Add("fcm:" + strings.Repeat("ab", 32))
	f.Add("apns:")
	f.Add("")
	f.Fuzz(func(t *testing.T, route string) {
		tok, err := apns.ParseRoute(route)
		if err != nil {
			if !errors.Is(err, push.ErrBadRoute) {
				t.Fatalf("err %v is not ErrBadRoute", err)
			}
			if tok != "" {
				t.Fatalf("token %q with an error", tok)
			}
			return
		}
		if "apns:"+tok != route || len(tok) < 64 || len(tok) > 200 || len(tok)%2 != 0 {
			t.Fatalf("route %q gave token %q", route, tok)
		}
		if strings.Trim(tok, "0123456789abcdefABCDEF") != "" {
			t.Fatalf("token %q is not hex", tok)
		}
	})
}

// FuzzParseError: any status and body give an Error that maps to exactly
// one push sentinel and prints a single line; unknown bodies keep only the
// status.
func FuzzParseError(f *testing.F) {
	f.Add(400, []byte(`{"reason":"BadDeviceToken"}`))
	f.Add(410, []byte(`{"reason":"Unregistered","timestamp":1893553445000}`))
	f.Add(403, []byte(`{"reason":"ExpiredProviderToken"}`))
	f.Add(429, []byte(`{"reason":"TooManyRequests"}`))
	f.Add(503, []byte(`<html>`))
	f.Add(410, []byte(`{"timestamp":-1}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := apns.ParseError(status, body)
		if e == nil || e.Status != status {
			t.Fatalf("ParseError(%d, %q) = %#v", status, body, e)
		}
		msg := e.Error()
		if strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
			t.Fatalf("message %q", msg)
		}
		if strings.Trim(e.Reason, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" || len(e.Reason) > 64 {
			t.Fatalf("reason %q", e.Reason)
		}
		n := 0
		for _, s := range []error{push.ErrRouteGone, push.ErrAuth, push.ErrThrottled, push.ErrUnavailable, push.ErrRejected} {
			if errors.Is(e, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%v matches %d sentinels", e, n)
		}
		if !strings.HasPrefix(strings.TrimSpace(string(body)), "{") && e.Reason != "" {
			t.Fatalf("reason %q from a body that is not an object", e.Reason)
		}
	})
}
