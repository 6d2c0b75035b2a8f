package fcm_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keystep/keystep/flows/notify/fcm"
	"github.com/keystep/keystep/flows/notify/push"
)

// FuzzParseRoute: any route either gives the token after "fcm:", made of
// the registration-token alphabet, or ErrBadRoute; never a panic.
func FuzzParseRoute(f *testing.F) {
	f.Add("fcm:" + regToken)
	f.Add("fcm:")
	f.Add("apns:" + regToken)
	f.Add("fcm:a b")
	f.Fuzz(func(t *testing.T, route string) {
		tok, err := fcm.ParseRoute(route)
		if err != nil {
			if !errors.Is(err, push.ErrBadRoute) || tok != "" {
				t.Fatalf("%q: %q, %v", route, tok, err)
			}
			return
		}
		if "fcm:"+tok != route || tok == "" || len(tok) > fcm.MaxRouteToken {
			t.Fatalf("route %q gave token %q", route, tok)
		}
		if strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_:.") != "" {
			t.Fatalf("token %q has other characters", tok)
		}
	})
}

// FuzzParseError: any status and body give an Error that maps to exactly
// one push sentinel and prints one line; a dead route needs FCM to say so.
func FuzzParseError(f *testing.F) {
	f.Add(404, []byte(`{"error":{"code":404,"message":"Requested entity was not found.","status":"NOT_FOUND","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}`))
	f.Add(400, []byte(`{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT"}}`))
	f.Add(429, []byte(`{"error":{"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"QUOTA_EXCEEDED"}]}}`))
	f.Add(503, []byte(`<html>`))
	f.Add(400, []byte(`{"error":{"details":[1,"x",null,{"@type":7}]}}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := fcm.ParseError(status, body)
		if e == nil || e.Status != status {
			t.Fatalf("ParseError(%d, %q) = %#v", status, body, e)
		}
		msg := e.Error()
		if strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
			t.Fatalf("message %q", msg)
		}
		for _, c := range []string{e.Code, e.FCMCode} {
			if len(c) > 64 || strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
				t.Fatalf("code %q", c)
			}
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
		if errors.Is(e, push.ErrRouteGone) && e.FCMCode != "UNREGISTERED" && e.Code != "INVALID_ARGUMENT" && e.FCMCode != "INVALID_ARGUMENT" {
			t.Fatalf("%v is a dead route without FCM saying so", e)
		}
	})
}

// FuzzParseTokenResponse: any answer from the token endpoint gives either
// a bearer token fit for a header and a positive lifetime, or a
// *TokenError; never a panic.
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, []byte(`{"access_token":"ya29.c.abc","expires_in":3599,"token_type":"Bearer"}`))
	f.Add(200, []byte(`{"access_token":"ya29.c.abc","expires_in":1e300,"token_type":"bearer"}`))
	f.Add(200, []byte(`{"access_token":"a\r\nb","expires_in":3599,"token_type":"Bearer"}`))
	f.Add(400, []byte(`{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`))
	f.Add(503, []byte(`<html>`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		tok, life, err := fcm.ParseTokenResponse(status, body)
		if err != nil {
			var te *fcm.TokenError
			if !errors.As(err, &te) || tok != "" || life != 0 {
				t.Fatalf("%q, %v, %v", tok, life, err)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !utf8.ValidString(msg) {
				t.Fatalf("message %q", msg)
			}
			return
		}
		if status != 200 || tok == "" || life < 1e9 || life > 24*60*60*1e9 {
			t.Fatalf("status %d gave %q for %v", status, tok, life)
		}
		if strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=") != "" {
			t.Fatalf("token %q", tok)
		}
	})
}
