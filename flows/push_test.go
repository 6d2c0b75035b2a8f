package flows_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/notify/apns"
	"github.com/keystep/keystep/flows/notify/fcm"
)

// pushbox is a flows.PushSender that keeps what it is given. fail, when
// set, picks the error for a push; block, when set, holds every send until
// the channel is closed, after telling started.
type pushbox struct {
	mu      sync.Mutex
	got     []flows.Push
	fail    func(flows.Push) error
	block   chan struct{}
	started chan flows.Push
}

func (b *pushbox) SendPush(ctx context.Context, p flows.Push) error {
	b.mu.Lock()
	b.got = append(b.got, p)
	fail, block, started := b.fail, b.block, b.started
	b.mu.Unlock()
	if started != nil {
		started <- p
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail(p)
	}
	return nil
}

func (b *pushbox) all() []flows.Push {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// routes lists the routes pushed to, sorted.
func (b *pushbox) routes() []string {
	var out []string
	for _, p := range b.all() {
		out = append(out, p.Route)
	}
	slices.Sort(out)
	return out
}

// pushEnv is an env whose service pushes through a pushbox and logs to a
// buffer.
type pushEnv struct {
	*env
	box  *pushbox
	logs *syncBuffer
}

func newPushEnv(t *testing.T, cfg flows.Config, box *pushbox) *pushEnv {
	t.Helper()
	logs := &syncBuffer{}
	e := newEnv(t, cfg, flows.WithPushSender(box), flows.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	t.Cleanup(e.svc.Close) // before the store closes: cleanups run last in, first out
	return &pushEnv{env: e, box: box, logs: logs}
}

// Routes the tests enroll with.
var (
	apnsRoute  = "apns:" + strings.Repeat("0a1b2c3d", 8)
	apnsRoute2 = "apns:" + strings.Repeat("ffee", 16)
	fcmRoute   = "fcm:cXyZ_-12:APA91b.token"
)

// enrollWith enrolls a phone for user that registers route.
func (e *env) enrollWith(user, route string) phone {
	e.t.Helper()
	_, link, err := e.svc.Invite(e.ctx, "admin", user)
	if err != nil {
		e.t.Fatalf("invite %s: %v", user, err)
	}
	req, key := e.enrollRequest(link)
	req.PushRoute = route
	d, _, err := e.svc.Enroll(e.ctx, req)
	if err != nil {
		e.t.Fatalf("enroll %s with route %q: %v", user, route, err)
	}
	return phone{key: key, device: d}
}

// device reads a device back from the store.
func (e *env) device(id string) flows.Device {
	e.t.Helper()
	d, err := e.store.GetDevice(e.ctx, id)
	if err != nil {
		e.t.Fatalf("get device %s: %v", id, err)
	}
	return d
}

// auditOf returns the audit events with action.
func (e *env) auditOf(action string) []flows.AuditEvent {
	e.t.Helper()
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []flows.AuditEvent
	for _, ev := range evs {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// TestBeginPushesEachActiveDeviceWithARoute: one wake-up per active device
// of the account that has a route, none to an unregistered device, one
// without a route, or another account's; the push names the sign-in and
// the app and holds neither the number nor the nonce nor the QR secret.
func TestBeginPushesEachActiveDeviceWithARoute(t *testing.T) {
	e := newPushEnv(t, flows.Config{NumberDigits: 6}, &pushbox{})
	e.addUser("alice")
	e.addUser("bob")
	e.enrollWith("alice", apnsRoute)
	e.enrollWith("alice", fcmRoute)
	e.enrollWith("alice", "")
	gone := e.enrollWith("alice", apnsRoute2)
	e.enrollWith("bob", "fcm:bobs-phone")
	if _, err := e.svc.UnregisterDevice(e.ctx, "admin", "alice", gone.device.ID, "lost"); err != nil {
		t.Fatal(err)
	}

	ch := e.begin("alice")
	e.svc.WaitIdle()
	if got, want := e.box.routes(), []string{apnsRoute, fcmRoute}; !slices.Equal(got, want) {
		t.Fatalf("pushed to %q, want %q", got, want)
	}
	for _, p := range e.box.all() {
		want := flows.Push{Route: p.Route, SignInID: ch.SignIn.ID, Title: "Sign-in request", Body: "Payroll wants you to sign in"}
		if p != want {
			t.Errorf("push %+v, want %+v", p, want)
		}
		for _, s := range []string{ch.Number, ch.SignIn.Nonce, mustQR(t, ch.QRPayload).Secret} {
			if strings.Contains(fmt.Sprintf("%+v", p), s) {
				t.Errorf("push %+v holds a secret of the sign-in (%q)", p, s)
			}
		}
	}
	if n := len(e.auditOf(flows.AuditPushFailed)); n != 0 {
		t.Errorf("%d push.failed events after good pushes", n)
	}
}

// TestNoPushWithoutPushMethod: a QR-only sign-in, or one whose push was
// suppressed by the push limit, wakes no phone.
func TestNoPushWithoutPushMethod(t *testing.T) {
	e := newPushEnv(t, flows.Config{CodeConfig: flows.CodeConfig{PushLimit: 1, PushWindow: 10 * time.Minute}}, &pushbox{})
	e.addUser("alice")
	e.enrollWith("alice", apnsRoute)

	e.begin("alice", flows.MethodQR)
	e.svc.WaitIdle()
	if got := e.box.all(); len(got) != 0 {
		t.Fatalf("a QR-only sign-in pushed %+v", got)
	}
	first := e.begin("alice", flows.MethodPush)
	e.svc.WaitIdle()
	if got := e.box.all(); len(got) != 1 || got[0].SignInID != first.SignIn.ID {
		t.Fatalf("push within the limit: %+v", got)
	}
	over := e.begin("alice", flows.MethodPush)
	e.svc.WaitIdle()
	if over.PushSuppressed != flows.PushSuppressedRate {
		t.Fatalf("second push was not suppressed: %+v", over)
	}
	if got := e.box.all(); len(got) != 1 {
		t.Fatalf("a suppressed push was sent: %+v", got)
	}
}

// TestBeginDoesNotWaitForThePush: Begin returns while the push is still in
// flight; WaitIdle waits for it.
func TestBeginDoesNotWaitForThePush(t *testing.T) {
	box := &pushbox{block: make(chan struct{}), started: make(chan flows.Push, 1)}
	e := newPushEnv(t, flows.Config{}, box)
	e.addUser("alice")
	p := e.enrollWith("alice", fcmRoute)

	ch := e.begin("alice") // returns although the sender is blocked
	if p := <-box.started; p.SignInID != ch.SignIn.ID {
		t.Fatalf("push for %s, want %s", p.SignInID, ch.SignIn.ID)
	}
	idle := make(chan struct{})
	go func() {
		e.svc.WaitIdle()
		close(idle)
	}()
	select {
	case <-idle:
		t.Fatal("WaitIdle returned while a push was in flight")
	default:
	}
	// The sign-in is usable at once, push or no push.
	if pending, err := e.svc.PendingForDevice(e.ctx, p.device); err != nil || len(pending) != 1 {
		t.Fatalf("pending while the push is in flight: %v, %v", pending, err)
	}
	close(box.block)
	<-idle
}

// TestPushFailureIsAudited: a failed send is written to the audit log and
// the log, naming the device and the sign-in; the route stays.
func TestPushFailureIsAudited(t *testing.T) {
	box := &pushbox{fail: func(flows.Push) error { return errors.New("apns: send: APNs answered 503: APNs is unavailable") }}
	e := newPushEnv(t, flows.Config{}, box)
	a := e.addUser("alice")
	p := e.enrollWith("alice", apnsRoute)

	ch := e.begin("alice")
	e.svc.WaitIdle()
	evs := e.auditOf(flows.AuditPushFailed)
	if len(evs) != 1 {
		t.Fatalf("%d push.failed events, want 1; audit %v", len(evs), e.auditActions())
	}
	ev := evs[0]
	if ev.Actor != "system" || ev.AccountID != a.ID || ev.DeviceID != p.device.ID || ev.SignInID != ch.SignIn.ID ||
		!strings.Contains(ev.Detail, "APNs answered 503") || strings.Contains(ev.Detail, apnsRoute[5:]) {
		t.Fatalf("push.failed event %+v", ev)
	}
	if log := e.logs.String(); !strings.Contains(log, "push could not be delivered") || !strings.Contains(log, p.device.ID) {
		t.Fatalf("log %q does not report the failure", log)
	}
	if d := e.device(p.device.ID); d.PushRoute != apnsRoute {
		t.Fatalf("a failure that is not ErrPushRouteGone changed the route to %q", d.PushRoute)
	}
	if n := len(e.auditOf(flows.AuditPushRouteCleared)); n != 0 {
		t.Fatalf("%d push.route_cleared events", n)
	}
	if res, err := e.svc.VerifyAudit(e.ctx); err != nil || !res.OK {
		t.Fatalf("audit chain after a push failure: %+v, %v", res, err)
	}
}

// TestPushRouteGoneClearsRoute: when the push service says a route is
// gone, that device's route is cleared (and audited), the others keep
// theirs, and the next sign-in pushes only to them.
func TestPushRouteGoneClearsRoute(t *testing.T) {
	box := &pushbox{fail: func(p flows.Push) error {
		if p.Route == apnsRoute {
			return fmt.Errorf("apns: send: APNs answered 410 Unregistered: %w", flows.ErrPushRouteGone)
		}
		return nil
	}}
	e := newPushEnv(t, flows.Config{}, box)
	e.addUser("alice")
	dead := e.enrollWith("alice", apnsRoute)
	live := e.enrollWith("alice", fcmRoute)

	ch := e.begin("alice")
	e.svc.WaitIdle()
	if d := e.device(dead.device.ID); d.PushRoute != "" || d.State != flows.DeviceActive {
		t.Fatalf("dead route: device %+v, want active with no route", d)
	}
	if d := e.device(live.device.ID); d.PushRoute != fcmRoute {
		t.Fatalf("the other device's route is %q", d.PushRoute)
	}
	failed, cleared := e.auditOf(flows.AuditPushFailed), e.auditOf(flows.AuditPushRouteCleared)
	if len(failed) != 1 || len(cleared) != 1 || cleared[0].DeviceID != dead.device.ID || cleared[0].SignInID != ch.SignIn.ID {
		t.Fatalf("push.failed %+v, push.route_cleared %+v", failed, cleared)
	}

	e.begin("alice")
	e.svc.WaitIdle()
	if got, want := e.box.routes(), []string{apnsRoute, fcmRoute, fcmRoute}; !slices.Equal(got, want) {
		t.Fatalf("pushed to %q over two sign-ins, want %q", got, want)
	}
}

// TestPushRouteGoneKeepsANewerRoute: a route the device replaced while the
// push to the old one was in flight is not cleared.
func TestPushRouteGoneKeepsANewerRoute(t *testing.T) {
	box := &pushbox{block: make(chan struct{}), started: make(chan flows.Push, 1),
		fail: func(flows.Push) error { return fmt.Errorf("gone: %w", flows.ErrPushRouteGone) }}
	e := newPushEnv(t, flows.Config{}, box)
	e.addUser("alice")
	p := e.enrollWith("alice", apnsRoute)

	e.begin("alice")
	<-box.started
	if _, err := e.svc.SetPushRoute(e.ctx, p.device, apnsRoute2); err != nil {
		t.Fatal(err)
	}
	close(box.block)
	e.svc.WaitIdle()
	if d := e.device(p.device.ID); d.PushRoute != apnsRoute2 {
		t.Fatalf("route %q, want the new one kept", d.PushRoute)
	}
	if len(e.auditOf(flows.AuditPushFailed)) != 1 || len(e.auditOf(flows.AuditPushRouteCleared)) != 0 {
		t.Fatalf("audit %v", e.auditActions())
	}
}

// TestClosedServiceSendsNoPush: after Close, sign-ins still start but no
// push goes out.
func TestClosedServiceSendsNoPush(t *testing.T) {
	e := newPushEnv(t, flows.Config{}, &pushbox{})
	e.addUser("alice")
	e.enrollWith("alice", apnsRoute)
	e.svc.Close()
	ch := e.begin("alice")
	e.svc.WaitIdle()
	if ch.Number == "" {
		t.Fatalf("sign-in after Close: %+v", ch)
	}
	if got := e.box.all(); len(got) != 0 {
		t.Fatalf("a closed service pushed %+v", got)
	}
	if !strings.Contains(e.logs.String(), "push not sent") {
		t.Fatalf("log %q does not say the push was not sent", e.logs.String())
	}
}

func TestSetPushRoute(t *testing.T) {
	e := newPushEnv(t, flows.Config{}, &pushbox{})
	e.addUser("alice")
	p := e.enrollWith("alice", "")

	for _, route := range []string{apnsRoute, fcmRoute, ""} {
		d, err := e.svc.SetPushRoute(e.ctx, p.device, route)
		if err != nil || d.PushRoute != route {
			t.Fatalf("set %q: %+v, %v", route, d, err)
		}
		if got := e.device(p.device.ID).PushRoute; got != route {
			t.Fatalf("stored route %q, want %q", got, route)
		}
	}
	evs := e.auditOf(flows.AuditDevicePushRouteUpdated)
	var details []string
	for _, ev := range evs {
		details = append(details, ev.Detail)
		if ev.Actor != "device:"+p.device.ID || ev.DeviceID != p.device.ID {
			t.Errorf("event %+v", ev)
		}
	}
	if want := []string{"apns push route set", "fcm push route set", "push route cleared"}; !slices.Equal(details, want) {
		t.Fatalf("audit details %q, want %q (never the token)", details, want)
	}

	// Bad input is refused and changes nothing.
	if _, err := e.svc.SetPushRoute(e.ctx, p.device, fcmRoute); err != nil {
		t.Fatal(err)
	}
	before := len(e.auditActions())
	for _, bad := range []string{"apns:xyz", "webpush:https://x", "fcm:", "fcm:a b", apnsRoute + "0"} {
		if _, err := e.svc.SetPushRoute(e.ctx, p.device, bad); !errors.Is(err, flows.ErrInvalid) {
			t.Errorf("set %q: %v, want ErrInvalid", bad, err)
		}
	}
	if got := e.device(p.device.ID).PushRoute; got != fcmRoute {
		t.Fatalf("refused routes changed the route to %q", got)
	}
	if after := len(e.auditActions()); after != before {
		t.Fatalf("refused routes wrote %d audit events", after-before)
	}

	if _, err := e.svc.UnregisterDevice(e.ctx, "admin", "alice", p.device.ID, "lost"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetPushRoute(e.ctx, p.device, apnsRoute); !errors.Is(err, flows.ErrDeviceUnregistered) {
		t.Fatalf("unregistered device: %v, want ErrDeviceUnregistered", err)
	}
}

// TestEnrollChecksPushRoute: a malformed route at enrollment is refused
// and leaves the invitation unused.
func TestEnrollChecksPushRoute(t *testing.T) {
	e := newEnv(t, flows.Config{})
	e.addUser("alice")
	_, link, err := e.svc.Invite(e.ctx, "admin", "alice")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := e.enrollRequest(link)
	req.PushRoute = "apns:not-hex"
	if _, _, err := e.svc.Enroll(e.ctx, req); !errors.Is(err, flows.ErrInvalid) || !strings.Contains(err.Error(), "APNs device token") {
		t.Fatalf("enroll with a bad route: %v, want ErrInvalid naming the APNs token", err)
	}
	req.PushRoute = fcmRoute
	d, _, err := e.svc.Enroll(e.ctx, req)
	if err != nil || d.PushRoute != fcmRoute {
		t.Fatalf("enroll with the invitation the refusal left unused: %+v, %v", d, err)
	}
}

func TestCheckPushRoute(t *testing.T) {
	good := []string{
		"",
		"apns:" + strings.Repeat("ab", 32),
		"apns:" + strings.Repeat("AB", 100),
		"fcm:x",
		"fcm:" + strings.Repeat("t", flows.MaxPushRoute-4),
		fcmRoute,
	}
	for _, r := range good {
		if err := flows.CheckPushRoute(r); err != nil {
			t.Errorf("%.40q: %v", r, err)
		}
	}
	bad := map[string]string{
		"apns:" + strings.Repeat("ab", 31) + "a":           "hex digits",
		"apns:" + strings.Repeat("ab", 31):                 "64 to 200",
		"apns:" + strings.Repeat("ab", 101):                "64 to 200",
		"apns:" + strings.Repeat("zz", 32):                 "hex digits",
		"fcm:":                                             "FCM registration token",
		"fcm:tok en":                                       "FCM registration token",
		"fcm:tok\nen":                                      "FCM registration token",
		"fcm:" + strings.Repeat("t", flows.MaxPushRoute-3): "at most 1024 bytes",
		"apns":                             "must be empty",
		"APNS:" + strings.Repeat("ab", 32): "must be empty",
		"webpush:https://push.example/x":   "must be empty",
		" fcm:x":                           "must be empty",
	}
	for r, says := range bad {
		err := flows.CheckPushRoute(r)
		if !errors.Is(err, flows.ErrInvalid) || !strings.Contains(err.Error(), says) {
			t.Errorf("%.40q: %v, want ErrInvalid saying %q", r, err, says)
		}
	}
}

// FuzzCheckPushRoute: a route CheckPushRoute accepts is one the sender of
// its kind accepts too, so a registered route never fails as malformed.
func FuzzCheckPushRoute(f *testing.F) {
	f.Add("apns:" + strings.Repeat("0a", 32))
	f.Add("fcm:abc:DEF_-.1")
	f.Add("")
	f.Add("apns:zz")
	f.Fuzz(func(t *testing.T, route string) {
		err := flows.CheckPushRoute(route)
		if err != nil {
			if !errors.Is(err, flows.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		if len(route) > flows.MaxPushRoute {
			t.Fatalf("accepted %d bytes", len(route))
		}
		var serr error
		switch {
		case route == "":
		case strings.HasPrefix(route, "apns:"):
			_, serr = apns.ParseRoute(route)
		case strings.HasPrefix(route, "fcm:"):
			_, serr = fcm.ParseRoute(route)
		default:
			t.Fatalf("accepted %q of no known kind", route)
		}
		if serr != nil {
			t.Fatalf("accepted %q, which its sender refuses: %v", route, serr)
		}
	})
}
