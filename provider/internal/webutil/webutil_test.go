package webutil_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keystep/keystep/provider/internal/webutil"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"localhost": true, "127.0.0.1": true, "127.0.0.2": true, "::1": true,
		"example.com": false, "10.0.0.1": false, "localhost.example.com": false, "": false} {
		if got := webutil.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}

func TestRemoteIP(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	for addr, want := range map[string]string{"192.0.2.1:1234": "192.0.2.1", "[2001:db8::1]:443": "2001:db8::1", "garbage": "garbage"} {
		r.RemoteAddr = addr
		if got := webutil.RemoteIP(r); got != want {
			t.Errorf("RemoteIP(%q) = %q", addr, got)
		}
	}
}

func TestRecorderCopyTo(t *testing.T) {
	rec := webutil.NewRecorder()
	rec.Header().Set("Location", "/x")
	rec.WriteHeader(http.StatusSeeOther)
	_, _ = rec.Write([]byte("body"))
	w := httptest.NewRecorder()
	rec.CopyTo(w)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/x" || w.Body.String() != "body" {
		t.Errorf("copied %d %v %q", w.Code, w.Header(), w.Body.String())
	}
}
