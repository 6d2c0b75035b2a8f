package oidcop

import (
	"bytes"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/keystep/keystep/flows"
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
		ip := limitKey(p.clientIP(r))
		if wait := p.authorizeHits.hit(ip, p.clock.Now()); wait > 0 {
			p.log.Warn("too many auth requests from one address", "ip", ip)
			tooMany(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// windowLimiter counts hits per key in fixed one-minute windows, in memory.
type windowLimiter struct {
	limit int
	mu    sync.Mutex
	m     map[string]*window
}

type window struct {
	hits int
	end  time.Time
}

// sweep drops ended windows; if that frees too little, it drops them all
// (a flood of addresses must not make every later hit scan the map).
func (l *windowLimiter) sweep(now time.Time) {
	for k, o := range l.m {
		if !now.Before(o.end) {
			delete(l.m, k)
		}
	}
	if len(l.m) > maxTracked/2 {
		clear(l.m)
	}
}

// hit counts one hit; it returns how long to wait when over the limit.
func (l *windowLimiter) hit(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*window{}
	}
	w := l.m[key]
	if w == nil || !now.Before(w.end) {
		if w == nil && len(l.m) >= maxTracked {
			l.sweep(now)
		}
		w = &window{end: now.Add(time.Minute)}
		l.m[key] = w
	}
	w.hits++
	if w.hits > l.limit {
		return w.end.Sub(now)
	}
	return 0
}

// limitClientAuth refuses an address that failed client authentication at
// the token, introspection or revocation endpoint too often; only
// failures count, so a busy host IdP is never slowed down.
func (p *Provider) limitClientAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := limitKey(p.clientIP(r))
		if wait := p.authFails.blocked(ip); wait > 0 {
			tooMany(w, wait)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
		_, _, basic := r.BasicAuth()
		sw := &statusWriter{ResponseWriter: w, basicAuth: basic}
		next.ServeHTTP(sw, r)
		if sw.clientAuthFailed() {
			p.authFails.fail(ip)
		}
	})
}

func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait.Seconds()+0.999))))
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

// failLimiter is a token bucket of failures per address, in memory.
type failLimiter struct {
	clock flows.Clock
	mu    sync.Mutex
	m     map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxTracked bounds the addresses tracked; past it, full buckets are dropped.
const maxTracked = 100_000

func (l *failLimiter) refill(b *bucket, now time.Time) {
	b.tokens = min(clientAuthBurst, b.tokens+now.Sub(b.at).Seconds()/clientAuthEvery.Seconds())
	b.at = now
}

// blocked returns how long the address must wait (0: not blocked).
func (l *failLimiter) blocked(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[ip]
	if b == nil {
		return 0
	}
	l.refill(b, l.clock.Now())
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(clientAuthEvery))
}

// fail spends one token of the address.
func (l *failLimiter) fail(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	if l.m == nil {
		l.m = map[string]*bucket{}
	}
	b := l.m[ip]
	if b == nil {
		if len(l.m) >= maxTracked {
			for k, o := range l.m {
				if l.refill(o, now); o.tokens >= clientAuthBurst {
					delete(l.m, k)
				}
			}
			if len(l.m) > maxTracked/2 {
				clear(l.m) // a flood of addresses: start over rather than scan again
			}
		}
		b = &bucket{tokens: clientAuthBurst, at: now}
		l.m[ip] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// limitKey is the rate-limit key of a client address: an IPv6 address is
// cut to its /64, which one host usually owns whole.
func limitKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	if a = a.Unmap(); a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// remoteIP is the host of RemoteAddr.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
