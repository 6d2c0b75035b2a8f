package flows

import (
	"errors"
	"fmt"
	"time"
)

// Errors of the one-time codes and the defences around them. Like the
// others, callers test them with errors.Is.
var (
	// ErrWrongCode: the code matches no code that may still be used for
	// this sign-in (wrong, used, expired or revoked: the answer is the same).
	ErrWrongCode = errors.New("the code is wrong or no longer valid")
	// ErrLocked: the account's codes are locked after too many failures.
	// A *LockedError says until when.
	ErrLocked = errors.New("codes are locked for this account")
	// ErrRateLimited: too many attempts or sends; a *RateLimitError says
	// when to retry (see RetryAfter).
	ErrRateLimited = errors.New("too many attempts")
	// ErrDeliveryFailed: the sender could not deliver a code; the error
	// wraps the sender's own.
	ErrDeliveryFailed = errors.New("the code could not be delivered")
	// ErrChannelUnavailable: SMS or email cannot be used here (no sender
	// configured, or no phone number or address on file).
	ErrChannelUnavailable = errors.New("channel unavailable")
)

// RateLimitError is an ErrRateLimited that says what was limited and when
// to retry.
type RateLimitError struct {
	What       string        // e.g. "code checks from this address"
	RetryAfter time.Duration // how long until the next attempt is allowed
}

// Error says what was limited and when to retry.
func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s: too many %s; retry in %s", ErrRateLimited, e.What, roundUp(e.RetryAfter))
}

// Is makes errors.Is(err, ErrRateLimited) hold.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// RetryAfter returns how long the caller should wait before trying again
// when err is (or wraps) a *RateLimitError, and 0 otherwise.
func RetryAfter(err error) time.Duration {
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl.RetryAfter
	}
	return 0
}

// LockedError is an ErrLocked that says when the lock ends.
type LockedError struct {
	Until time.Time // zero: until an administrator unlocks the account
}

// Error says that the codes are locked and until when.
func (e *LockedError) Error() string {
	if e.Until.IsZero() {
		return ErrLocked.Error() + " until an administrator unlocks them"
	}
	return ErrLocked.Error() + " until " + e.Until.UTC().Format(time.RFC3339) + " (or until an administrator unlocks them)"
}

// Is makes errors.Is(err, ErrLocked) hold.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// LockedUntil returns when the lock in err ends (zero: only an
// administrator can lift it) and whether err is a lock at all.
func LockedUntil(err error) (time.Time, bool) {
	var le *LockedError
	if errors.As(err, &le) {
		return le.Until, true
	}
	return time.Time{}, false
}

// roundUp rounds d up to a whole second (at least one).
func roundUp(d time.Duration) time.Duration {
	if d < time.Second {
		return time.Second
	}
	return (d + time.Second - 1).Truncate(time.Second)
}
