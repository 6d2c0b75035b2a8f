package oidcop

import (
	"strconv"
	"testing"
	"time"
)

func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":          "203.0.113.7",
		"::ffff:203.0.113.7":   "203.0.113.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := limitKey(in); got != want {
			t.Errorf("limitKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestWindowLimiterBounded: a flood of addresses never grows the map past
// its bound, and a busy address is still limited.
func TestWindowLimiterBounded(t *testing.T) {
	l := &windowLimiter{limit: 2}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxTracked + 10 {
		l.hit("10."+strconv.Itoa(i), now)
	}
	if len(l.m) > maxTracked {
		t.Fatalf("%d addresses tracked, bound %d", len(l.m), maxTracked)
	}
	l.hit("a", now)
	l.hit("a", now)
	if l.hit("a", now) == 0 {
		t.Error("the third hit in a window was allowed")
	}
	if l.hit("a", now.Add(time.Minute)) != 0 {
		t.Error("a new window was refused")
	}
}
