package wire

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/keystep/keystep/flows"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
)

// Every flows error crosses as its gRPC code and comes back as a
// *RemoteError that errors.Is matches, with the plugin's message.
func TestRoundTripEveryCode(t *testing.T) {
	for _, c := range errorCodes {
		t.Run(c.code, func(t *testing.T) {
			orig := fmt.Errorf("doing it: %w", c.err)
			st := ToStatus(orig)
			if status.Code(st) != c.grpc {
				t.Fatalf("ToStatus code = %v, want %v", status.Code(st), c.grpc)
			}
			back := FromStatus(st)
			var re *RemoteError
			if !errors.As(back, &re) {
				t.Fatalf("FromStatus = %T %v", back, back)
			}
			if !errors.Is(back, c.err) || re.Message != orig.Error() || re.Code != c.grpc {
				t.Fatalf("FromStatus = %+v", re)
			}
			// The first match wins: no error earlier in the table matches.
			for _, other := range errorCodes {
				if other.code != c.code && errors.Is(back, other.err) {
					t.Fatalf("%s also matches %s", c.code, other.code)
				}
			}
		})
	}
}

func TestRoundTripRateLimit(t *testing.T) {
	back := FromStatus(ToStatus(&flows.RateLimitError{What: "code checks", RetryAfter: 1500 * time.Millisecond}))
	var rl *flows.RateLimitError
	if !errors.As(back, &rl) || rl.What != "code checks" || rl.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("FromStatus = %v (%+v)", back, rl)
	}
	if !errors.Is(back, flows.ErrRateLimited) || flows.RetryAfter(back) != 1500*time.Millisecond {
		t.Fatalf("FromStatus = %v", back)
	}
}

func TestRoundTripLocked(t *testing.T) {
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	back := FromStatus(ToStatus(fmt.Errorf("sign-in: %w", &flows.LockedError{Until: until})))
	if got, ok := flows.LockedUntil(back); !ok || !got.Equal(until) || !errors.Is(back, flows.ErrLocked) {
		t.Fatalf("FromStatus = %v (until %v, %v)", back, got, ok)
	}
	back = FromStatus(ToStatus(&flows.LockedError{}))
	if got, ok := flows.LockedUntil(back); !ok || !got.IsZero() {
		t.Fatalf("a lock without end: %v (until %v, %v)", back, got, ok)
	}
}

func TestRoundTripContext(t *testing.T) {
	for _, err := range []error{context.Canceled, context.DeadlineExceeded} {
		st := ToStatus(fmt.Errorf("waiting: %w", err))
		want := codes.Canceled
		if err == context.DeadlineExceeded {
			want = codes.DeadlineExceeded
		}
		if status.Code(st) != want {
			t.Fatalf("ToStatus(%v) code = %v", err, status.Code(st))
		}
		if back := FromStatus(st); !errors.Is(back, err) {
			t.Fatalf("FromStatus(ToStatus(%v)) = %v", err, back)
		}
	}
}

// An ErrorInfo code the SDK does not know keeps the plugin's message.
func TestFromStatusUnknownCode(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "passkey required").WithDetails(&pb.ErrorInfo{Code: "passkey_required"})
	if err != nil {
		t.Fatal(err)
	}
	back := FromStatus(st.Err())
	var re *RemoteError
	if !errors.As(back, &re) || re.Message != "passkey required" || re.Code != codes.FailedPrecondition || re.Err != nil {
		t.Fatalf("FromStatus = %T %v", back, back)
	}
	for _, c := range errorCodes {
		if errors.Is(back, c.err) {
			t.Fatalf("an unknown code matches %s", c.code)
		}
	}
}

// A status without details (the transport's) and other errors come back
// as they are; anything else the plugin fails with is Internal.
func TestFromStatusWithoutDetails(t *testing.T) {
	st := status.Error(codes.Unavailable, "connection refused")
	if back := FromStatus(st); back != st {
		t.Fatalf("FromStatus = %v", back)
	}
	plain := errors.New("not a status")
	if back := FromStatus(plain); back != plain {
		t.Fatalf("FromStatus(plain) = %v", back)
	}
	if FromStatus(nil) != nil || ToStatus(nil) != nil {
		t.Fatal("nil not kept")
	}
	if c := status.Code(ToStatus(errors.New("disk full"))); c != codes.Internal {
		t.Fatalf("an unknown error travels as %v", c)
	}
}

// A live check that could not reach the directory travels as Unavailable
// with its own code, even when its cause is another flows error.
func TestRoundTripDirectoryUnavailable(t *testing.T) {
	orig := fmt.Errorf("begin: %w: %w", flows.ErrDirectoryUnavailable, flows.ErrConflict)
	st := ToStatus(orig)
	if status.Code(st) != codes.Unavailable {
		t.Fatalf("ToStatus code = %v", status.Code(st))
	}
	back := FromStatus(st)
	if !errors.Is(back, flows.ErrDirectoryUnavailable) || errors.Is(back, flows.ErrConflict) {
		t.Fatalf("FromStatus = %v", back)
	}
}
