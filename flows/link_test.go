package flows_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
)

func TestLinksRoundTrip(t *testing.T) {
	el := flows.EnrollLink{Server: "https://idp.example.com/keystep", Token: flows.NewSecret(32)}
	if got, err := flows.ParseEnrollLink(el.String()); err != nil || got != el {
		t.Fatalf("enroll link: %+v, %v", got, err)
	}
	qr := flows.SignInQR{Server: "http://127.0.0.1:8080", SignInID: flows.NewID(), Secret: flows.NewSecret(16)}
	if got, err := flows.ParseSignInQR(qr.String()); err != nil || got != qr {
		t.Fatalf("sign-in QR: %+v, %v", got, err)
	}
}

func TestLinksRejected(t *testing.T) {
	tok := flows.NewSecret(32)
	for _, s := range []string{
		"",
		"https://enroll?v=1&server=https%3A%2F%2Fa&token=" + tok,
		"keystep://signin?v=1&server=https%3A%2F%2Fa&token=" + tok,
		"keystep://enroll?v=2&server=https%3A%2F%2Fa&token=" + tok,
		"keystep://enroll?server=https%3A%2F%2Fa&token=" + tok,
		"keystep://enroll?v=1&server=javascript%3Aalert(1)&token=" + tok,
		"keystep://enroll?v=1&server=https%3A%2F%2Fu%40a&token=" + tok,
		"keystep://enroll?v=1&server=https%3A%2F%2Fa&token=" + tok + "&token=" + tok,
		"keystep://enroll?v=1&server=https%3A%2F%2Fa&token=" + tok + "&extra=1",
		"keystep://enroll?v=1&server=https%3A%2F%2Fa&token=short",
		"keystep://enroll?v=1&server=https%3A%2F%2Fa&token=" + tok + "#frag",
		"keystep://enroll/x?v=1&server=https%3A%2F%2Fa&token=" + tok,
		"keystep://enroll?v=1&server=https%3A%2F%2Fa&token=" + strings.Repeat("A", 3000),
	} {
		if _, err := flows.ParseEnrollLink(s); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("accepted %q: %v", s, err)
		}
	}
	if _, err := flows.ParseSignInQR("keystep://signin?v=1&server=https%3A%2F%2Fa&id=bad%20id&secret=" + tok); !errors.Is(err, flows.ErrInvalid) {
		t.Errorf("QR with a malformed id accepted: %v", err)
	}
}

// FuzzParseEnrollLink checks that any input either parses into a link that
// formats back to an equivalent link, or fails with ErrInvalid.
func FuzzParseEnrollLink(f *testing.F) {
	f.Add(flows.EnrollLink{Server: "https://idp.example.com", Token: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}.String())
	f.Add("keystep://enroll?v=1&server=http%3A%2F%2F127.0.0.1%3A8080&token=abc")
	f.Add("keystep://enroll?v=1&server=%zz&token=x")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := flows.ParseEnrollLink(s)
		if err != nil {
			if !errors.Is(err, flows.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		again, err := flows.ParseEnrollLink(l.String())
		if err != nil || again != l {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
		if flows.CheckServerURL(l.Server) != nil {
			t.Fatalf("parsed a bad server URL %q", l.Server)
		}
	})
}

// FuzzParseSignInQR is FuzzParseEnrollLink for sign-in QR payloads.
func FuzzParseSignInQR(f *testing.F) {
	f.Add(flows.SignInQR{Server: "https://idp.example.com", SignInID: "abcdefghijklmnopqrstuvwxyz", Secret: "AAAAAAAAAAAAAAAAAAAAAA"}.String())
	f.Add("keystep://signin?v=1&server=https%3A%2F%2Fa&id=..&secret=AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		q, err := flows.ParseSignInQR(s)
		if err != nil {
			if !errors.Is(err, flows.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		again, err := flows.ParseSignInQR(q.String())
		if err != nil || again != q {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
