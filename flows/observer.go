package flows

import (
	"context"
	"strings"
	"time"
)

// Observer is told what the flows do, for metrics and tracing (provider
// implements it with Prometheus and OpenTelemetry; flows imports neither).
// Its methods are called on the request's goroutine, after the store has
// committed what they report: they must be quick and must not block.
type Observer interface {
	// Start is called when Begin, Decide or SubmitCode starts, with the
	// operation's name ("flows.Begin", …). The call runs with the context
	// it returns (a tracer puts its span there), and end is called with
	// the call's error when it returns.
	Start(ctx context.Context, op string) (_ context.Context, end func(error))
	// SignInStarted: Begin created a sign-in with these methods open.
	SignInStarted(methods []Method)
	// SignInFinished: a sign-in left pending. method is the one that
	// decided it (push, qr, sms, email, override), empty for an expiry or
	// a cancellation; latency is the time from Begin to the decision
	// (0 when unknown: sign-ins cancelled in bulk).
	SignInFinished(method Method, outcome Outcome, latency time.Duration)
	// RateLimited: a store-held rate limit refused something; limit names
	// which (LimitOTPCooldown, …).
	RateLimited(limit string)
	// FraudReported: a user reported a sign-in they did not start.
	FraudReported()
}

// Outcome is how a sign-in ended, as an Observer is told.
type Outcome string

// Outcomes.
const (
	OutcomeApproved  Outcome = "approved"
	OutcomeDenied    Outcome = "denied" // on the device, or with the wrong number
	OutcomeFraud     Outcome = "fraud"  // denied with a fraud report
	OutcomeExpired   Outcome = "expired"
	OutcomeCancelled Outcome = "cancelled"
)

// Limits an Observer is told about (RateLimited): the store-held limits.
const (
	LimitOTPCooldown  = "otp-cooldown" // a code by SMS or email asked for again too soon
	LimitOTPHour      = "otp-hour"     // more codes this hour than OTPSendsPerHour
	LimitCodeIP       = "code-ip"      // code checks from one address
	LimitCodeAccount  = "code-account" // code checks for one account
	LimitPush         = "push"         // pushes past PushLimit: QR took push's place
	LimitPushFraud    = "push-fraud"   // pushes blocked after a fraud report
	limitKeySeparator = ':'
)

// WithObserver sets the observer (nil: none).
func WithObserver(o Observer) Option {
	return func(s *Service) {
		if o != nil {
			s.obs = o
		}
	}
}

// nopObserver observes nothing.
type nopObserver struct{}

func (nopObserver) Start(ctx context.Context, _ string) (context.Context, func(error)) {
	return ctx, func(error) {}
}
func (nopObserver) SignInStarted([]Method)                        {}
func (nopObserver) SignInFinished(Method, Outcome, time.Duration) {}
func (nopObserver) RateLimited(string)                            {}
func (nopObserver) FraudReported()                                {}

// limitName is the name of a rate-limit key: the part before its first ':'.
func limitName(key string) string {
	name, _, _ := strings.Cut(key, string(limitKeySeparator))
	return name
}

// outcomeOf is how a decided sign-in ended.
func outcomeOf(sgn SignIn) Outcome {
	if sgn.FraudReport {
		return OutcomeFraud
	}
	return Outcome(sgn.Status)
}

// suppressedLimit is the limit that left push out of a sign-in (see
// pushGate).
func suppressedLimit(why string) string {
	if why == PushSuppressedFraud {
		return LimitPushFraud
	}
	return LimitPush
}

// finished tells the observer that sgn, as now decided, left pending.
func (s *Service) finished(sgn SignIn) {
	s.obs.SignInFinished(sgn.DecidedBy, outcomeOf(sgn), sgn.DecidedAt.Sub(sgn.CreatedAt))
}

// cancelledMany tells the observer of n sign-ins cancelled in bulk.
func (s *Service) cancelledMany(n int) {
	for range n {
		s.obs.SignInFinished("", OutcomeCancelled, 0)
	}
}
