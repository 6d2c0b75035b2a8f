package oidcop

import (
	"bytes"
	"net/http"
	"time"

	"github.com/keystep/keystep/provider/internal/ratelimit"
)

// Rate limits of what a stranger can call.
const (
	// DefaultAuthorizePerIPPerMinute bounds new auth requests from one
	// client address, per instance.
	DefaultAuthorizePerIPPerMinute = 600
	// clientAuthBurst failed client authentications from one address are
	// allowed, then one more every clientAuthEvery.
	clientAuthBurst = 20
	clientAuthEvery = 30 * time.Second
)

// limitAuthorize answers 429 when a client address has made too many
// auth requests this minute. The count is kept in memory, per instance:
// a store write per request would cost more than the request itself.
func (p *Provider) limitAuthorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := ratelimit.Key(p.clientIP(r))
		if wait := p.authorizeHits.Hit(ip, p.clock.Now()); wait > 0 {
			p.log.WarnContext(r.Context(), "too many auth requests from one address", "ip", ip)
			tooMany(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// limitClientAuth refuses an address that failed client authentication at
// the token, introspection or revocation endpoint too often; only
// failures count, so a busy host IdP is never slowed down.
func (p *Provider) limitClientAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := ratelimit.Key(p.clientIP(r))
		if wait := p.authFails.Blocked(ip, p.clock.Now()); wait > 0 {
			tooMany(w, wait)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		_, _, basic := r.BasicAuth()
		sw := &statusWriter{ResponseWriter: w, basicAuth: basic}
		next.ServeHTTP(sw, r)
		if sw.clientAuthFailed() {
			p.authFails.Fail(ip, p.clock.Now())
		}
	})
}

// tooMany answers 429 as ratelimit.TooMany does, but with an OAuth error
// body, which a client of the token endpoint can read.
func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", ratelimit.RetryAfter(wait))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte(`{"error":"slow_down","error_description":"too many requests from this address; retry later"}` + "\n"))
}

// maxFormBody bounds the form of a token, introspection or revocation request.
const maxFormBody = 64 << 10

// statusWriter remembers the status and the start of a response, and adds the
// WWW-Authenticate challenge RFC 6749 §5.2 asks for when a client that
// used HTTP Basic authentication is refused.
type statusWriter struct {
	http.ResponseWriter
	status    int
	basicAuth bool
	head      []byte // the first bytes of the body
}

// clientAuthFailed reports whether the answer refused the client's
// credentials: 401, or the 400 unauthorized_client the library's
// introspection endpoint answers.
func (s *statusWriter) clientAuthFailed() bool {
	if s.status == http.StatusUnauthorized {
		return true
	}
	return s.status == http.StatusBadRequest &&
		(bytes.Contains(s.head, []byte(`"unauthorized_client"`)) || bytes.Contains(s.head, []byte(`"invalid_client"`)))
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
		if code == http.StatusUnauthorized && s.basicAuth {
			s.Header().Set("WWW-Authenticate", `Basic realm="keystep", charset="UTF-8"`)
		}
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if n := 256 - len(s.head); n > 0 {
		s.head = append(s.head, b[:min(n, len(b))]...)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the writer beneath.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
