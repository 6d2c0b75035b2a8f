package provider

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// Rate limits on failed attempts, per client address: a burst, then one
// more failure per period. Only failures spend tokens, and only a request
// that fails is refused once its address has none left: a valid admin
// token or device signature always gets through, so a stranger behind the
// same address (a reverse proxy, CGNAT) cannot lock real users out.
const (
	enrollBurst     = 10 // failed enrollments (bad signature, unknown or used invitation)
	enrollEvery     = 30 * time.Second
	deviceAuthBurst = 20 // failed device authentications
	deviceAuthEvery = 3 * time.Second
	adminAuthBurst  = 10 // failed admin authentications
	adminAuthEvery  = 10 * time.Second

	// maxBuckets bounds each limiter's memory; past it, full buckets
	// (idle clients) are forgotten.
	maxBuckets = 10000
)

// limiter is an in-memory token bucket per key, driven by a flows.Clock.
type limiter struct {
	clock flows.Clock
	burst float64
	every time.Duration
	hit   func() // told of each refusal (the metrics); nil: no one

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(c flows.Clock, burst int, every time.Duration) *limiter {
	return &limiter{clock: c, burst: float64(burst), every: every, buckets: map[string]*bucket{}}
}

// refill brings b's tokens up to now; the caller holds l.mu.
func (l *limiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.tokens = math.Min(l.burst, b.tokens+float64(el)/float64(l.every))
		b.at = now
	}
}

// take spends one of key's tokens; if it has none it spends nothing and
// returns how long to wait.
func (l *limiter) take(key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	b := l.buckets[key]
	if b == nil {
		l.sweep(now)
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		if l.hit != nil {
			l.hit()
		}
		return time.Duration((1 - b.tokens) * float64(l.every))
	}
	b.tokens--
	return 0
}

// sweep forgets full buckets once there are too many; the caller holds l.mu.
func (l *limiter) sweep(now time.Time) {
	if len(l.buckets) < maxBuckets {
		return
	}
	for k, b := range l.buckets {
		if l.refill(b, now); b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// peerAddr is the address of the TCP peer (RemoteAddr without its port).
func peerAddr(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// trusted reports whether ip is one of the configured reverse proxies.
func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.trustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// clientAddr is the client's address. It is the TCP peer's, unless the
// peer is a trusted proxy: then it is the right-most X-Forwarded-For entry
// that is not itself a trusted proxy (the entries to its left are the
// client's to write, and so are ignored). A malformed entry ends the walk at
// the last address a trusted proxy vouched for.
func (s *Server) clientAddr(r *http.Request) (netip.Addr, bool) {
	ip, ok := peerAddr(r)
	if !ok || !s.trusted(ip) {
		return ip, ok
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip, true
		}
		ip = hop.Unmap().WithZone("")
		if !s.trusted(ip) {
			return ip, true
		}
	}
	return ip, true
}

// clientKey is the rate-limit key of a request: the client's address (see
// clientAddr), with IPv6 addresses cut to their /64 since one host usually
// owns a whole /64.
func (s *Server) clientKey(r *http.Request) string {
	ip, ok := s.clientAddr(r)
	if !ok {
		return r.RemoteAddr
	}
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// clientIP is the client's address as shown to users (no port).
func (s *Server) clientIP(r *http.Request) string {
	ip, ok := s.clientAddr(r)
	if !ok {
		return ""
	}
	return ip.String()
}

// writeRateLimited answers 429 with Retry-After in whole seconds.
func writeRateLimited(w http.ResponseWriter, wait time.Duration) {
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeProblem(w, problem(api.ProblemRateLimited, http.StatusTooManyRequests,
		"too many attempts from this address; retry after "+strconv.Itoa(secs)+" s"))
}
