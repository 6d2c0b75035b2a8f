package oidcop

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The limiters themselves and their keys are tested in
// provider/internal/ratelimit.

// TestTooMany: the 429 of the OpenID Provider is an OAuth error a client
// of the token endpoint can read, with Retry-After in whole seconds.
func TestTooMany(t *testing.T) {
	rec := httptest.NewRecorder()
	tooMany(rec, 2100*time.Millisecond)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d", rec.Code)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "3" {
		t.Errorf("Retry-After %q, want 3", ra)
	}
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error != "slow_down" {
		t.Errorf("body %q: %v", rec.Body.String(), err)
	}
}

// TestClientAuthFailed: 401, and a 400 that names the client as the
// problem, count as failed client authentication; other answers do not.
func TestClientAuthFailed(t *testing.T) {
	for _, c := range []struct {
		status int
		body   string
		want   bool
	}{
		{http.StatusUnauthorized, `{"error":"invalid_client"}`, true},
		{http.StatusBadRequest, `{"error":"invalid_client"}`, true},
		{http.StatusBadRequest, `{"error":"unauthorized_client"}`, true},
		{http.StatusBadRequest, `{"error":"invalid_grant"}`, false},
		{http.StatusOK, `{"active":false}`, false},
	} {
		sw := &statusWriter{ResponseWriter: httptest.NewRecorder()}
		sw.WriteHeader(c.status)
		_, _ = sw.Write([]byte(c.body))
		if got := sw.clientAuthFailed(); got != c.want {
			t.Errorf("%d %s: clientAuthFailed %v, want %v", c.status, c.body, got, c.want)
		}
	}
}
