package flows

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// AccountLimits is what the defences hold about one account.
type AccountLimits struct {
	FailedCodes      int       `json:"failed_codes"`                // consecutive wrong codes since the last success
	LockedUntil      time.Time `json:"locked_until,omitzero"`       // codes refused until then
	PushBlockedUntil time.Time `json:"push_blocked_until,omitzero"` // no pushes until then (a fraud report)
}

// CodesLocked reports whether the account's codes are refused at now, and
// until when (zero: until an admin unlocks them).
func (l AccountLimits) CodesLocked(now time.Time) (bool, time.Time) {
	err := lockOf(l, now)
	if err == nil {
		return false, time.Time{}
	}
	until, _ := LockedUntil(err)
	return true, until
}

// Why pushes were left out of a sign-in (Challenge.PushSuppressed).
const (
	PushSuppressedRate  = "rate"  // the account had PushLimit pushes in PushWindow
	PushSuppressedFraud = "fraud" // the user reported a sign-in they did not start
)

// hit counts one hit on a store-held rate limit and returns a
// *RateLimitError when it is over.
func (s *Service) hit(ctx context.Context, key string, now time.Time, window time.Duration, limit int, what string) error {
	ok, wait, err := s.store.HitRateLimit(ctx, key, now, window, limit)
	if err != nil {
		return fmt.Errorf("rate limit on %s: %w", what, err)
	}
	if !ok {
		s.obs.RateLimited(limitName(key))
		return &RateLimitError{What: what, RetryAfter: wait}
	}
	return nil
}

// ipKey is the rate-limit key of a client address: an IPv6 address is cut
// to its /64, which one host usually owns whole.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		if ip == "" {
			return "unknown"
		}
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// pushGate decides whether a sign-in that asks for push may push: not while
// a fraud report blocks the account's pushes, nor past PushLimit pushes in
// PushWindow. When push is left out, QR takes its place. It returns the
// methods to open, why push was left out ("" if it was not), and whether
// the admins are to be told (once per window).
func (s *Service) pushGate(ctx context.Context, tx Tx, a Account, methods []Method, now time.Time) ([]Method, string, bool, error) {
	lim, err := tx.GetAccountLimits(ctx, a.ID)
	if err != nil {
		return nil, "", false, err
	}
	why, tell := "", false
	if lim.PushBlockedUntil.After(now) {
		why = PushSuppressedFraud
	} else {
		ok, _, err := tx.HitRateLimit(ctx, "push:"+a.ID, now, s.cfg.PushWindow, s.cfg.PushLimit)
		if err != nil {
			return nil, "", false, err
		}
		if !ok {
			why = PushSuppressedRate
			tell, _, err = tx.HitRateLimit(ctx, "push-alert:"+a.ID, now, s.cfg.PushWindow, 1)
			if err != nil {
				return nil, "", false, err
			}
		}
	}
	if why == "" {
		return methods, "", false, nil
	}
	out := slices.DeleteFunc(slices.Clone(methods), func(m Method) bool { return m == MethodPush })
	if !slices.Contains(out, MethodQR) {
		out = append([]Method{MethodQR}, out...)
	}
	return out, why, tell, nil
}
