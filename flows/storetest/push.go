package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// pushFunctional are the functional tests of push routes.
var pushFunctional = []struct {
	name string
	fn   func(t *testing.T, s flows.Tx)
}{
	{"UpdateDevicePushRoute", testUpdateDevicePushRoute},
}

func testUpdateDevicePushRoute(t *testing.T, s flows.Tx) {
	ctx := t.Context()
	must(t, "account", s.CreateAccount(ctx, account("acc-1", "alice")))
	must(t, "device", s.CreateDevice(ctx, device("dev-1", "acc-1", t0)))
	must(t, "other device", s.CreateDevice(ctx, device("dev-2", "acc-1", t0)))

	want := device("dev-1", "acc-1", t0)
	want.PushRoute = "apns:0a1b2c3d4e5f"
	must(t, "set route", s.UpdateDevicePushRoute(ctx, "dev-1", want.PushRoute))
	got, err := s.GetDevice(ctx, "dev-1")
	must(t, "get", err)
	wantEqual(t, "device with a new route", got, want)
	// Setting the same route again is not an error.
	must(t, "set the same route", s.UpdateDevicePushRoute(ctx, "dev-1", want.PushRoute))

	other, err := s.GetDevice(ctx, "dev-2")
	must(t, "get other", err)
	wantEqual(t, "the other device", other, device("dev-2", "acc-1", t0))

	want.PushRoute = ""
	must(t, "clear route", s.UpdateDevicePushRoute(ctx, "dev-1", ""))
	got, err = s.GetDevice(ctx, "dev-1")
	must(t, "get cleared", err)
	wantEqual(t, "device with its route cleared", got, want)

	wantErr(t, "route of an unknown device", s.UpdateDevicePushRoute(ctx, "nothing", "fcm:x"), flows.ErrNotFound)
	_, err = s.GetDevice(ctx, "nothing")
	wantErr(t, "the unknown device after the refused update", err, flows.ErrNotFound)

	must(t, "unregister", s.UnregisterDevice(ctx, "dev-2", t0.Add(time.Hour), "lost"))
	wantErr(t, "route of an unregistered device", s.UpdateDevicePushRoute(ctx, "dev-2", "fcm:new"), flows.ErrNotFound)
	other, err = s.GetDevice(ctx, "dev-2")
	must(t, "get unregistered", err)
	if other.PushRoute != device("dev-2", "acc-1", t0).PushRoute {
		t.Errorf("a refused update changed the unregistered device's route to %q", other.PushRoute)
	}
}

func (e eachInTx) UpdateDevicePushRoute(ctx context.Context, id, route string) error {
	return inTx0(ctx, e.s, func(tx flows.Tx) error { return tx.UpdateDevicePushRoute(ctx, id, route) })
}
