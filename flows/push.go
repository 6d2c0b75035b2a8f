package flows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Push delivery: once Begin has committed a sign-in that is open to push,
// each active device of the account with a push route gets a wake-up
// (Push) through the configured PushSender. The request itself reaches the
// app over the device API's request stream within milliseconds; the push
// only wakes an app that is not running, so Begin never waits for it.

// ErrPushRouteGone is what a PushSender's error wraps when the push service
// says a device's route is dead (the app was removed, the token expired):
// the route is cleared so that no push goes to it again.
// flows/notify/push.ErrRouteGone is this same value.
var ErrPushRouteGone = errors.New("push route is gone")

// Audit actions of push delivery.
const (
	AuditPushFailed             = "push.failed"               // a push could not be delivered
	AuditPushRouteCleared       = "push.route_cleared"        // the push service said the route is gone
	AuditDevicePushRouteUpdated = "device.push_route_updated" // a device set or cleared its push route
)

// PushTimeout bounds the delivery of one push, and the recording of its
// failure, after Begin has returned.
const PushTimeout = 10 * time.Second

// MaxPushRoute is the longest push route a device may register.
const MaxPushRoute = 1024

// Push route kinds: the part of a route before its first colon.
const (
	PushRouteAPNs = "apns" // "apns:<device token, 64 to 200 hex digits>"
	PushRouteFCM  = "fcm"  // "fcm:<registration token>"
)

// pushTitle is the lock-screen title of every sign-in push.
const pushTitle = "Sign-in request"

// CheckPushRoute accepts an empty route (no push) or one a push sender can
// use: "apns:" and an APNs device token of 64 to 200 hex digits (an even
// number of them), or "fcm:" and an FCM registration token of letters,
// digits, '-', '_', ':' and '.'; at most MaxPushRoute bytes in all.
func CheckPushRoute(route string) error {
	if route == "" {
		return nil
	}
	if len(route) > MaxPushRoute {
		return invalidf("push route must be at most %d bytes", MaxPushRoute)
	}
	kind, addr, ok := strings.Cut(route, ":")
	if !ok {
		kind = "" // no kind at all
	}
	switch kind {
	case PushRouteAPNs:
		if len(addr) < 64 || len(addr) > 200 || len(addr)%2 != 0 || !allBytes(addr, isHex) {
			return invalidf("push route: an APNs device token is an even number of hex digits, 64 to 200 of them")
		}
	case PushRouteFCM:
		if addr == "" || !allBytes(addr, isFCMTokenByte) {
			return invalidf("push route: an FCM registration token is letters, digits, '-', '_', ':' and '.'")
		}
	default:
		return invalidf("push route must be empty, %s:<device token> or %s:<registration token>", PushRouteAPNs, PushRouteFCM)
	}
	return nil
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func isFCMTokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ':' || c == '.'
}

// routeKind is the kind of a route, the part before its first colon.
func routeKind(route string) string {
	kind, _, _ := strings.Cut(route, ":")
	return kind
}

// routeChange says in the audit log what a device did to its route,
// without the token.
func routeChange(route string) string {
	if route == "" {
		return "push route cleared"
	}
	return routeKind(route) + " push route set"
}

// WithPushSender sets the sender of the wake-up pushes (normally a
// flows/notify/push.Router); nil sends none, and the app relies on its
// request stream alone.
func WithPushSender(p PushSender) Option { return func(s *Service) { s.push = p } }

// pushes counts the pushes in flight in the background. It is a counter
// under a mutex rather than a sync.WaitGroup so that waiting can overlap
// with new sign-ins starting pushes: a WaitGroup may not be added to from
// zero while it is waited on, and holding a lock across its Wait would
// stall every Begin behind the slowest push.
type pushes struct {
	mu     sync.Mutex
	n      int
	idle   chan struct{} // closed when n drops back to zero; nil while n is zero
	closed bool
}

// start runs fn in the background unless Close has been called, and
// reports whether it did.
func (p *pushes) start(fn func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.n == 0 {
		p.idle = make(chan struct{})
	}
	p.n++
	go func() {
		defer p.done()
		fn()
	}()
	return true
}

func (p *pushes) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n--; p.n == 0 {
		close(p.idle)
		p.idle = nil
	}
}

// wait blocks until no push is in flight; with stop, no push starts
// afterwards.
func (p *pushes) wait(stop bool) {
	p.mu.Lock()
	p.closed = p.closed || stop
	idle := p.idle
	p.mu.Unlock()
	if idle != nil {
		<-idle
	}
}

// WaitIdle blocks until no push is in flight: each one started so far is
// delivered or has failed and its failure is recorded (PushTimeout bounds
// the send, and again the recording).
func (s *Service) WaitIdle() { s.pushes.wait(false) }

// Close stops sending pushes and waits for those in flight, as WaitIdle
// does. The Service keeps working otherwise; the store is not closed.
func (s *Service) Close() { s.pushes.wait(true) }

// sendPushes starts one push per active device with a push route, each in
// the background. It never blocks on delivery.
func (s *Service) sendPushes(ctx context.Context, a Account, devices []Device, sgn SignIn) {
	if s.push == nil {
		return
	}
	base := context.WithoutCancel(ctx) // the push outlives the caller's request
	for _, d := range devices {
		if d.State != DeviceActive || d.PushRoute == "" {
			continue
		}
		p := Push{Route: d.PushRoute, SignInID: sgn.ID, Title: pushTitle, Body: sgn.Client + " wants you to sign in"}
		if !s.pushes.start(func() { s.deliver(base, a, d, p) }) {
			s.log.Warn("push not sent: the service is closing", "account", a.Username, "device", d.ID, "signin", sgn.ID)
		}
	}
}

// deliver sends one push within PushTimeout. A failure is logged and
// audited; when the push service says the route is gone, the device's
// route is cleared.
func (s *Service) deliver(base context.Context, a Account, d Device, p Push) {
	ctx, cancel := context.WithTimeout(base, PushTimeout)
	err := s.push.SendPush(ctx, p)
	cancel()
	if err == nil {
		return
	}
	gone := errors.Is(err, ErrPushRouteGone)
	s.log.Error("push could not be delivered", "account", a.Username, "device", d.ID, "signin", p.SignInID,
		"route_gone", gone, "err", err)
	// A fresh bound: the send may have used up the first one.
	ctx, cancel = context.WithTimeout(base, PushTimeout)
	defer cancel()
	if rerr := s.recordPushFailure(ctx, d, p.SignInID, err, gone); rerr != nil {
		s.log.Error("recording a failed push", "device", d.ID, "signin", p.SignInID, "err", rerr)
	}
}

// recordPushFailure writes push.failed and then, if the route is gone and
// the device still has the route that failed, clears it
// (push.route_cleared). Two transactions: the failure is recorded even if
// the clearing fails, and the clearing touches the device before the audit
// chain, in the order every other device write takes, so that no two
// transactions wait on each other. On PostgreSQL a route the device
// replaces between the check and the clearing, a moment apart, is lost,
// and comes back the next time the app sends it.
func (s *Service) recordPushFailure(ctx context.Context, d Device, signInID string, cause error, gone bool) error {
	now := s.now()
	err := s.write(ctx, func(tx Tx) error {
		ev := auditAt(now, "system", AuditPushFailed)
		ev.AccountID, ev.DeviceID, ev.SignInID = d.AccountID, d.ID, signInID
		ev.Detail = clipText(cause.Error(), 1024)
		_, err := tx.AppendAudit(ctx, ev)
		return err
	})
	if err != nil || !gone {
		return err
	}
	return s.write(ctx, func(tx Tx) error {
		cur, err := tx.GetDevice(ctx, d.ID)
		if err != nil {
			return err
		}
		if cur.State != DeviceActive || cur.PushRoute != d.PushRoute {
			return nil // unregistered, or a new route came meanwhile
		}
		if err := tx.UpdateDevicePushRoute(ctx, d.ID, ""); err != nil {
			if isNotFound(err) {
				return nil // unregistered since the check
			}
			return err
		}
		ev := auditAt(now, "system", AuditPushRouteCleared)
		ev.AccountID, ev.DeviceID, ev.SignInID = d.AccountID, d.ID, signInID
		ev.Detail = "the push service says the device's " + routeKind(d.PushRoute) + " route is gone"
		_, err = tx.AppendAudit(ctx, ev)
		return err
	}, accountTopic(d.AccountID))
}

// SetPushRoute records the push route a device gives itself (the app got
// a new token); an empty route stops pushes to it. The device must be
// active. A malformed route is ErrInvalid and changes nothing.
func (s *Service) SetPushRoute(ctx context.Context, d Device, route string) (Device, error) {
	if err := CheckPushRoute(route); err != nil {
		return Device{}, err
	}
	if !validID(d.ID) {
		return Device{}, invalidf("malformed device id")
	}
	now := s.now()
	err := s.write(ctx, func(tx Tx) error {
		if err := tx.UpdateDevicePushRoute(ctx, d.ID, route); err != nil {
			if _, gerr := tx.GetDevice(ctx, d.ID); isNotFound(err) && gerr == nil {
				return fmt.Errorf("device %s: %w", d.ID, ErrDeviceUnregistered)
			}
			return err
		}
		ev := auditAt(now, "device:"+d.ID, AuditDevicePushRouteUpdated)
		ev.AccountID, ev.DeviceID, ev.Detail = d.AccountID, d.ID, routeChange(route)
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, accountTopic(d.AccountID))
	if err != nil {
		return Device{}, fmt.Errorf("set push route of device %s: %w", d.ID, err)
	}
	d.PushRoute = route
	return d, nil
}
