package authenticator_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
)

// pushes is a flows.PushSender that hands each push to the test.
type pushes chan flows.Push

func (p pushes) SendPush(_ context.Context, x flows.Push) error {
	p <- x
	return nil
}

// sentBy waits until srv has no push in flight and returns those sent.
func (p pushes) sentBy(srv server) []flows.Push {
	srv.svc.WaitIdle()
	var out []flows.Push
	for len(p) > 0 {
		out = append(out, <-p)
	}
	return out
}

// TestSetPushRoute: the route reaches every enrollment's server, whose
// next sign-in pushes to it; a malformed route reaches no server; an
// unregistered device is reported for its own account only.
func TestSetPushRoute(t *testing.T) {
	ctx := context.Background()
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	sent := make(pushes, 4)
	srv := startServerAt(t, clock, "", flows.WithPushSender(sent))
	dev, err := authenticator.Open(filepath.Join(t.TempDir(), "device.json"), authenticator.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.SetPushRoute(ctx, "fcm:token"); err == nil || !strings.Contains(err.Error(), "no account is enrolled") {
		t.Fatalf("push route with no enrollment: %v", err)
	}
	alice := enroll(t, ctx, srv, dev, "alice")
	bob := enroll(t, ctx, srv, dev, "bob")

	route := "apns:" + strings.Repeat("0a1b2c3d", 8)
	res, err := dev.SetPushRoute(ctx, route)
	if err != nil || len(res) != 2 || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("set route: %+v, %v", res, err)
	}
	ch, err := srv.admin.TestSignIn(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := sent.sentBy(srv); len(got) != 1 || got[0].Route != route || got[0].SignInID != ch.ID {
		t.Fatalf("pushes %+v, want one to %s for %s", got, route, ch.ID)
	}

	// A malformed route is refused here; the servers keep the good one.
	if _, err := dev.SetPushRoute(ctx, "apns:not-hex"); !errors.Is(err, flows.ErrInvalid) {
		t.Fatalf("malformed route: %v, want ErrInvalid", err)
	}
	if _, err := srv.admin.TestSignIn(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if got := sent.sentBy(srv); len(got) != 1 || got[0].Route != route {
		t.Fatalf("after a refused route, pushes %+v, want one to %s", got, route)
	}

	// Clearing the route stops pushes; an unregistered device is reported.
	if _, err := srv.admin.UnregisterDevice(ctx, "bob", bob.DeviceID, "lost"); err != nil {
		t.Fatal(err)
	}
	res, err = dev.SetPushRoute(ctx, "")
	if len(res) != 2 || res[0].Enrollment.DeviceID != alice.DeviceID || res[0].Err != nil ||
		!adminclient.HasType(res[1].Err, api.ProblemDeviceUnregistered) || !strings.Contains(err.Error(), "bob at ") {
		t.Fatalf("clear route: %+v, %v", res, err)
	}
	if _, err := srv.admin.TestSignIn(ctx, "alice", "push"); err != nil {
		t.Fatal(err)
	}
	if got := sent.sentBy(srv); len(got) != 0 {
		t.Fatalf("a cleared route got pushes %+v", got)
	}
}
