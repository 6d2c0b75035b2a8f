package sms

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestParseTwilioError(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		want   TwilioError
		text   string
	}{
		{400, `{"code": 21211, "message": "The 'To' number 5551234 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}`,
			TwilioError{400, 21211, "The 'To' number 5551234 is not a valid phone number.", "https://www.twilio.com/docs/errors/21211"},
			"twilio answered 400 Bad Request: error 21211: The 'To' number 5551234 is not a valid phone number. (see https://www.twilio.com/docs/errors/21211)"},
		{401, `{"code":20003,"message":"Authenticate","more_info":"https://www.twilio.com/docs/errors/20003","status":401}`,
			TwilioError{401, 20003, "Authenticate", "https://www.twilio.com/docs/errors/20003"},
			"twilio answered 401 Unauthorized: error 20003: Authenticate (see https://www.twilio.com/docs/errors/20003)"},
		{503, `<html>Service Unavailable</html>`, TwilioError{503, 0, "<html>Service Unavailable</html>", ""},
			"twilio answered 503 Service Unavailable: <html>Service Unavailable</html>"},
		{500, ``, TwilioError{500, 0, "", ""}, "twilio answered 500 Internal Server Error"},
		{400, `{"code":"21211","message":"x\r\nInjected: header","more_info":"javascript:alert(1)"}`, TwilioError{400, 0, "x Injected: header", ""},
			"twilio answered 400 Bad Request: x Injected: header"},
		{400, `{"status":400}`, TwilioError{400, 0, `{"status":400}`, ""}, `twilio answered 400 Bad Request: {"status":400}`},
	} {
		got := parseTwilioError(tc.status, []byte(tc.body))
		if *got != tc.want || got.Error() != tc.text {
			t.Errorf("parseTwilioError(%d, %q) = %+v %q, want %+v %q", tc.status, tc.body, *got, got.Error(), tc.want, tc.text)
		}
	}
}

// FuzzParseTwilioError checks that any answer becomes an error of one clean
// line of bounded length, and that Twilio's fields come through when the
// body is Twilio's JSON.
func FuzzParseTwilioError(f *testing.F) {
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		e := parseTwilioError(status, body)
		if e == nil || e.Status != status {
			t.Fatalf("parseTwilioError(%d, %q) = %+v", status, body, e)
		}
		msg := e.Error()
		if !utf8.ValidString(msg) || len(msg) > 1200 {
			t.Fatalf("error of %d bytes, valid UTF-8 %v: %q", len(msg), utf8.ValidString(msg), msg)
		}
		for _, r := range msg {
			if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("error holds control character %U: %q", r, msg)
			}
		}
		if e.Code < 0 {
			t.Fatalf("negative code %d", e.Code)
		}
		var j struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &j) == nil && j.Code > 0 && j.Message != "" && len(j.Message) < 400 &&
			clean(j.Message, 500) == j.Message && strings.TrimSpace(j.Message) == j.Message {
			if e.Code != j.Code || e.Message != j.Message {
				t.Fatalf("Twilio error %d %q read as %d %q", j.Code, j.Message, e.Code, e.Message)
			}
		}
	})
}
