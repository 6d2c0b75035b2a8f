package flows

import (
	"errors"
	"fmt"
)

// Errors returned by flows and by every Store. Callers test them with
// errors.Is; the HTTP and gRPC front doors map each to its own status.
var (
	ErrNotFound           = errors.New("not found")
	ErrConflict           = errors.New("already exists")
	ErrInvalid            = errors.New("invalid input")
	ErrAccountSuspended   = errors.New("account is suspended")
	ErrAccountRemoved     = errors.New("account has been removed")
	ErrNoDevice           = errors.New("account has no registered device")
	ErrDeviceUnregistered = errors.New("device is unregistered")
	ErrWrongAccount       = errors.New("device does not belong to this account")
	ErrExpired            = errors.New("expired")
	ErrAlreadyDecided     = errors.New("already decided")
	ErrAlreadyUsed        = errors.New("already used")
	ErrBadSignature       = errors.New("signature does not verify")
	ErrReplay             = errors.New("replayed request")
	ErrMethodNotAllowed   = errors.New("method not open for this sign-in")
	ErrWrongNumber        = errors.New("number does not match")
	ErrRequestBinding     = errors.New("cannot tie the sign-in to its federation request")
)

// invalidf returns an ErrInvalid that says what is wrong.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
