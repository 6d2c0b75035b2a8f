// Package push routes keystep's wake-up pushes to the service that serves
// each device's route, and names the errors the push senders share.
//
// A device's push route is "<kind>:<address>", for example
// "apns:<hex device token>" (Apple Push Notification service, package
// flows/notify/apns) or "fcm:<registration token>" (Firebase Cloud
// Messaging, package flows/notify/fcm). A Router picks the sender by kind;
// each sender checks the address itself.
//
// Every error a sender returns wraps at most one of the sentinels below, so
// a caller can decide with errors.Is what to do: mark the route dead
// (ErrRouteGone), try again later (ErrThrottled, ErrUnavailable), or tell an
// administrator (ErrAuth, ErrRejected, ErrNoSender).
package push

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/keystep/keystep/flows"
)

// Errors shared by the push senders. Match them with errors.Is.
var (
	// ErrRouteGone means the push service says the route's device token
	// is dead (the app was removed, or the token is not one it issued):
	// keystep may mark the route dead and stop sending to it. It is
	// flows.ErrPushRouteGone, so flows can tell it without importing this
	// package.
	ErrRouteGone = flows.ErrPushRouteGone
	// ErrBadRoute means the route is malformed; nothing was sent.
	ErrBadRoute = errors.New("malformed push route")
	// ErrBadPush means the push itself is unusable (a bad sign-in id,
	// text that is not UTF-8, a payload over the service's limit);
	// nothing was sent.
	ErrBadPush = errors.New("invalid push")
	// ErrNoSender means no sender is configured for the route's kind.
	ErrNoSender = errors.New("no push sender for this route")
	// ErrAuth means the push service refused keystep's credentials even
	// after fresh ones were made: the key, key id, team, project or
	// service account is wrong or revoked.
	ErrAuth = errors.New("push service refused the credentials")
	// ErrThrottled means the push service asked keystep to slow down
	// (HTTP 429); the push was not sent.
	ErrThrottled = errors.New("push service is throttling requests")
	// ErrUnavailable means the push service failed or was unreachable
	// (HTTP 5xx); the push was not sent and may be tried again later.
	ErrUnavailable = errors.New("push service unavailable")
	// ErrRejected means the push service refused the request for another
	// reason; the error says which.
	ErrRejected = errors.New("push service rejected the push")
)

// Route kinds, the part of a route before the first colon.
const (
	KindAPNs = "apns"
	KindFCM  = "fcm"
)

// SplitRoute splits a route "<kind>:<address>" at its first colon. It
// checks only that both parts are non-empty; the sender of that kind checks
// the address.
func SplitRoute(route string) (kind, address string, err error) {
	kind, address, ok := strings.Cut(route, ":")
	if !ok || kind == "" || address == "" {
		return "", "", fmt.Errorf("%w: want <kind>:<address>", ErrBadRoute)
	}
	return kind, address, nil
}

// Router is a flows.PushSender that hands each push to the sender for its
// route's kind. A nil field means that kind is not configured: pushes to
// it fail with ErrNoSender. The zero Router sends nothing. A Router is safe
// for concurrent use when its senders are.
type Router struct {
	// APNs sends "apns:" routes, normally an *apns.Sender.
	APNs flows.PushSender
	// FCM sends "fcm:" routes, normally an *fcm.Sender.
	FCM flows.PushSender
}

var _ flows.PushSender = Router{}

// SendPush sends p through the sender for p.Route's kind. The route goes to
// the sender whole, prefix and all.
func (r Router) SendPush(ctx context.Context, p flows.Push) error {
	s, err := r.sender(p.Route)
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	return s.SendPush(ctx, p)
}

// sender picks the sender for route.
func (r Router) sender(route string) (flows.PushSender, error) {
	kind, _, err := SplitRoute(route)
	if err != nil {
		return nil, err
	}
	var s flows.PushSender
	switch kind {
	case KindAPNs:
		s = r.APNs
	case KindFCM:
		s = r.FCM
	default:
		return nil, fmt.Errorf("%w: unknown route kind %q", ErrNoSender, printable(kind))
	}
	if s == nil {
		return nil, fmt.Errorf("%w: %s is not configured", ErrNoSender, kind)
	}
	return s, nil
}

// printable cuts s to a short, printable prefix fit for an error message:
// a route kind comes from a device's registration and may be anything.
func printable(s string) string {
	const max = 16
	var b strings.Builder
	for i, c := range s {
		if i >= max {
			b.WriteString("…")
			break
		}
		if c < 0x20 || c == 0x7f || c == '\uFFFD' {
			c = '?'
		}
		b.WriteRune(c)
	}
	return b.String()
}
