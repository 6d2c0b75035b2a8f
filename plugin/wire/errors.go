// Package wire carries plugin/step's values and errors across the plugin
// boundary: conversions between the Go types and the v1 contract's
// messages, and flows' errors as gRPC statuses with a typed ErrorInfo
// detail that turns back into the same Go error on the host's side.
package wire

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/keystep/keystep/flows"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
)

// errorCodes are flows' errors by their code in ErrorInfo, with the gRPC
// code they travel under. The first match wins, so more specific errors
// come first.
var errorCodes = []struct {
	code string
	err  error
	grpc codes.Code
}{
	// First: the live check's failure wraps its cause, which may be any
	// of the others. Unavailable: the host may try again in a moment.
	{"directory_unavailable", flows.ErrDirectoryUnavailable, codes.Unavailable},
	{"suspended", flows.ErrAccountSuspended, codes.FailedPrecondition},
	{"removed", flows.ErrAccountRemoved, codes.FailedPrecondition},
	{"no_device", flows.ErrNoDevice, codes.FailedPrecondition},
	{"device_unregistered", flows.ErrDeviceUnregistered, codes.FailedPrecondition},
	{"wrong_account", flows.ErrWrongAccount, codes.PermissionDenied},
	{"rate_limited", flows.ErrRateLimited, codes.ResourceExhausted},
	{"locked", flows.ErrLocked, codes.ResourceExhausted},
	{"wrong_code", flows.ErrWrongCode, codes.PermissionDenied},
	{"delivery_failed", flows.ErrDeliveryFailed, codes.Unavailable},
	{"channel_unavailable", flows.ErrChannelUnavailable, codes.FailedPrecondition},
	{"request_binding", flows.ErrRequestBinding, codes.FailedPrecondition},
	{"expired", flows.ErrExpired, codes.FailedPrecondition},
	{"already_decided", flows.ErrAlreadyDecided, codes.FailedPrecondition},
	{"already_used", flows.ErrAlreadyUsed, codes.FailedPrecondition},
	{"method_not_allowed", flows.ErrMethodNotAllowed, codes.FailedPrecondition},
	{"wrong_number", flows.ErrWrongNumber, codes.PermissionDenied},
	{"bad_signature", flows.ErrBadSignature, codes.PermissionDenied},
	{"replay", flows.ErrReplay, codes.AlreadyExists},
	{"not_found", flows.ErrNotFound, codes.NotFound},
	{"conflict", flows.ErrConflict, codes.AlreadyExists},
	{"invalid", flows.ErrInvalid, codes.InvalidArgument},
}

// ToStatus turns an error of the plugin's side into a gRPC status error
// with an ErrorInfo detail naming flows' error, so that FromStatus can
// give the host the same error. Context errors keep their gRPC codes;
// anything else is Internal.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	for _, c := range errorCodes {
		if !errors.Is(err, c.err) {
			continue
		}
		info := &pb.ErrorInfo{Code: c.code}
		var rl *flows.RateLimitError
		if errors.As(err, &rl) {
			info.RetryAfterMs, info.What = rl.RetryAfter.Milliseconds(), rl.What
		}
		var le *flows.LockedError
		if errors.As(err, &le) && !le.Until.IsZero() {
			info.LockedUntil = timestamppb.New(le.Until)
		}
		st, derr := status.New(c.grpc, err.Error()).WithDetails(info)
		if derr != nil {
			return status.Error(c.grpc, err.Error())
		}
		return st.Err()
	}
	return status.Error(codes.Internal, err.Error())
}

// RemoteError is an error of the plugin's side, on the host's: its
// message is the plugin's, and errors.Is matches flows' error it was.
type RemoteError struct {
	Message string
	Err     error // flows' error (nil: none known)
	Code    codes.Code
}

func (e *RemoteError) Error() string { return "keystep plugin: " + e.Message }

// Unwrap returns flows' error.
func (e *RemoteError) Unwrap() error { return e.Err }

// FromStatus turns a gRPC status error from the plugin back into flows'
// error: a *RemoteError wrapping it (a *flows.RateLimitError or
// *flows.LockedError where those carry more), or the context error. An
// ErrorInfo code this SDK does not know (a newer plugin's) gives a
// *RemoteError with the plugin's message and no flows error (Err nil). A
// status without ErrorInfo (such as Unavailable when the plugin died) is
// returned as it is.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Canceled:
		return &RemoteError{Message: st.Message(), Err: context.Canceled, Code: st.Code()}
	case codes.DeadlineExceeded:
		return &RemoteError{Message: st.Message(), Err: context.DeadlineExceeded, Code: st.Code()}
	}
	for _, d := range st.Details() {
		info, ok := d.(*pb.ErrorInfo)
		if !ok {
			continue
		}
		for _, c := range errorCodes {
			if c.code != info.Code {
				continue
			}
			inner := c.err
			switch c.code {
			case "rate_limited":
				inner = &flows.RateLimitError{What: info.What, RetryAfter: time.Duration(info.RetryAfterMs) * time.Millisecond}
			case "locked":
				le := &flows.LockedError{}
				if info.LockedUntil != nil {
					le.Until = info.LockedUntil.AsTime()
				}
				inner = le
			}
			return &RemoteError{Message: st.Message(), Err: inner, Code: st.Code()}
		}
		// A code this SDK does not know (a newer plugin's): the plugin's
		// message, with no flows error to match.
		return &RemoteError{Message: st.Message(), Code: st.Code()}
	}
	return err
}
