package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := Key(in); got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWindow: Limit hits a window, then a wait until the window ends; a
// new window starts afresh; keys are counted apart.
func TestWindow(t *testing.T) {
	l := &Window{Limit: 3}
	for i := range 3 {
		if w := l.Hit("a", t0.Add(time.Duration(i)*time.Second)); w != 0 {
			t.Fatalf("hit %d refused: %s", i+1, w)
		}
	}
	if w := l.Hit("a", t0.Add(20*time.Second)); w != 40*time.Second {
		t.Fatalf("the 4th hit: wait %s, want 40s", w)
	}
	if w := l.Hit("b", t0.Add(20*time.Second)); w != 0 {
		t.Fatalf("another key was refused: %s", w)
	}
	if w := l.Hit("a", t0.Add(time.Minute)); w != 0 {
		t.Fatalf("a new window was refused: %s", w)
	}
}

// TestWindowBounded: a flood of keys never grows the map past its bound,
// and a busy key is still limited.
func TestWindowBounded(t *testing.T) {
	l := &Window{Limit: 2}
	for i := range maxTracked + 10 {
		l.Hit("10."+strconv.Itoa(i), t0)
	}
	if len(l.m) > maxTracked {
		t.Fatalf("%d keys tracked, bound %d", len(l.m), maxTracked)
	}
	l.Hit("a", t0)
	l.Hit("a", t0)
	if l.Hit("a", t0) == 0 {
		t.Error("the third hit in a window was allowed")
	}
	if l.Hit("a", t0.Add(time.Minute)) != 0 {
		t.Error("a new window was refused")
	}
}

// TestWindowSweepKeepsLive: once the bound is reached, only ended windows
// are dropped when that frees enough.
func TestWindowSweepKeepsLive(t *testing.T) {
	l := &Window{Limit: 1}
	l.Hit("live", t0.Add(30*time.Second))
	for i := range maxTracked - 1 {
		l.Hit("old"+strconv.Itoa(i), t0)
	}
	l.Hit("new", t0.Add(time.Minute)) // the old windows ended; "live" has not
	if len(l.m) != 2 {
		t.Fatalf("%d keys after the sweep, want 2", len(l.m))
	}
	if l.Hit("live", t0.Add(time.Minute)) == 0 {
		t.Error("a live window was forgotten")
	}
}

// TestFailures: Burst failures, then blocked until a token refills;
// Blocked itself spends nothing.
func TestFailures(t *testing.T) {
	l := &Failures{Burst: 3, Every: 30 * time.Second}
	if w := l.Blocked("a", t0); w != 0 {
		t.Fatalf("an unknown key is blocked: %s", w)
	}
	for i := range 3 {
		if w := l.Blocked("a", t0); w != 0 {
			t.Fatalf("blocked after %d failures: %s", i, w)
		}
		l.Fail("a", t0)
	}
	if w := l.Blocked("a", t0); w != 30*time.Second {
		t.Fatalf("after the burst: wait %s, want 30s", w)
	}
	if w := l.Blocked("a", t0.Add(20*time.Second)); w != 10*time.Second {
		t.Fatalf("20s later: wait %s, want 10s", w)
	}
	if w := l.Blocked("b", t0); w != 0 {
		t.Fatalf("another key is blocked: %s", w)
	}
	if w := l.Blocked("a", t0.Add(30*time.Second)); w != 0 {
		t.Fatalf("after a refill: wait %s", w)
	}
	l.Fail("a", t0.Add(30*time.Second))
	if w := l.Blocked("a", t0.Add(30*time.Second)); w == 0 {
		t.Fatal("the refilled token was not spent")
	}
	// A clock that goes back neither refills nor drains.
	if w := l.Blocked("a", t0); w != 30*time.Second {
		t.Fatalf("clock back: wait %s, want 30s", w)
	}
}

// TestFailuresBounded: a flood of failing keys never grows the map past
// its bound, and a failing key is still blocked.
func TestFailuresBounded(t *testing.T) {
	l := &Failures{Burst: 2, Every: time.Minute}
	for i := range maxTracked + 10 {
		l.Fail("10."+strconv.Itoa(i), t0)
	}
	if len(l.m) > maxTracked {
		t.Fatalf("%d keys tracked, bound %d", len(l.m), maxTracked)
	}
	l.Fail("a", t0)
	l.Fail("a", t0)
	if l.Blocked("a", t0) == 0 {
		t.Error("a key past its burst is not blocked")
	}
}

// TestConcurrent is for the race detector.
func TestConcurrent(t *testing.T) {
	w := &Window{Limit: 5}
	f := &Failures{Burst: 5, Every: time.Second}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			k := strconv.Itoa(i % 2)
			for range 100 {
				w.Hit(k, t0)
				f.Fail(k, t0)
				f.Blocked(k, t0)
			}
		})
	}
	wg.Wait()
}

func TestRetryAfter(t *testing.T) {
	for wait, want := range map[time.Duration]string{
		-time.Second:            "1",
		0:                       "1",
		time.Millisecond:        "1",
		time.Second:             "1",
		time.Second + 1:         "2",
		59*time.Second + 999999: "60",
		time.Minute:             "60",
	} {
		if got := RetryAfter(wait); got != want {
			t.Errorf("RetryAfter(%s) = %q, want %q", wait, got, want)
		}
	}
}

func TestTooMany(t *testing.T) {
	rec := httptest.NewRecorder()
	TooMany(rec, 1500*time.Millisecond)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d", rec.Code)
	}
	if ra := rec.Header().Get("Retry-After"); ra != "2" {
		t.Errorf("Retry-After %q, want 2", ra)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	if b := rec.Body.String(); b == "" || len(b) > 100 {
		t.Errorf("body %q", b)
	}
}
