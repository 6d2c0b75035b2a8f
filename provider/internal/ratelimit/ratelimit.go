// Package ratelimit holds the in-memory, per-instance rate limiters of the
// sign-in endpoints (the OpenID Provider, the SAML IdP): a fixed-window
// counter of hits and a token bucket of failures, both keyed by client
// address and bounded in memory, and the 429 answer that goes with them.
//
// Neither limiter reads a clock: the caller passes the time, so that tests
// drive them with a fake clock.
package ratelimit

import (
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// maxTracked bounds the keys each limiter remembers. Past it, finished
// windows (or full buckets) are dropped; if that frees too little, all are.
const maxTracked = 100_000

// Window counts hits per key in fixed one-minute windows, in memory. The
// zero value with Limit set is ready to use; a Window must not be copied
// after first use.
type Window struct {
	// Limit is the number of hits a key may make in one window.
	Limit int

	mu sync.Mutex
	m  map[string]*window
}

type window struct {
	hits int
	end  time.Time
}

// Hit counts one hit of key at now. It returns 0 while the key is within
// Limit, and otherwise how long until its window ends.
func (l *Window) Hit(key string, now time.Time) time.Duration {
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
	if w.hits > l.Limit {
		return w.end.Sub(now)
	}
	return 0
}

// sweep drops ended windows; if that frees too little, it drops them all
// (a flood of addresses must not make every later hit scan the map). The
// caller holds l.mu.
func (l *Window) sweep(now time.Time) {
	for k, o := range l.m {
		if !now.Before(o.end) {
			delete(l.m, k)
		}
	}
	if len(l.m) > maxTracked/2 {
		clear(l.m)
	}
}

// Failures is a token bucket of failures per key, in memory: a key may
// fail Burst times, then once more every Every. Only failures spend
// tokens, and Blocked spends none, so a key that never fails is never
// slowed down. The zero value with Burst and Every set is ready to use; a
// Failures must not be copied after first use.
type Failures struct {
	// Burst is the number of failures a fresh key may make at once.
	Burst int
	// Every is how long a key waits for one more failure.
	Every time.Duration

	mu sync.Mutex
	m  map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// refill brings b's tokens up to now; the caller holds l.mu. A clock that
// went back refills nothing.
func (l *Failures) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = min(float64(l.Burst), b.tokens+float64(el)/float64(l.Every))
		b.at = now
	}
}

// Blocked returns how long key must wait before it may fail again (0: it
// is not blocked).
func (l *Failures) Blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[key]
	if b == nil {
		return 0
	}
	l.refill(b, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(l.Every))
}

// Fail spends one of key's tokens.
func (l *Failures) Fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil {
		l.m = map[string]*bucket{}
	}
	b := l.m[key]
	if b == nil {
		if len(l.m) >= maxTracked {
			l.sweep(now)
		}
		b = &bucket{tokens: float64(l.Burst), at: now}
		l.m[key] = b
	}
	l.refill(b, now)
	b.tokens = max(0, b.tokens-1)
}

// sweep drops full buckets; if that frees too little, it drops them all.
// The caller holds l.mu.
func (l *Failures) sweep(now time.Time) {
	for k, o := range l.m {
		if l.refill(o, now); o.tokens >= float64(l.Burst) {
			delete(l.m, k)
		}
	}
	if len(l.m) > maxTracked/2 {
		clear(l.m)
	}
}

// Key is the rate-limit key of a client address: an IPv4 address (or an
// IPv4-mapped IPv6 one) as is, an IPv6 address cut to its /64, which one
// host usually owns whole. A string that is not an address is its own key.
func Key(ip string) string {
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

// RetryAfter is the Retry-After value for a wait: whole seconds, rounded
// up, at least 1.
func RetryAfter(wait time.Duration) string {
	secs := wait / time.Second
	if wait%time.Second > 0 {
		secs++
	}
	return strconv.FormatInt(int64(max(1, secs)), 10)
}

// TooMany answers 429 Too Many Requests with Retry-After (see RetryAfter)
// and a short plain-text body.
func TooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", RetryAfter(wait))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte("too many requests from this address; retry later\n"))
}
