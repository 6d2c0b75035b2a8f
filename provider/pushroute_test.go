package provider

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

var (
	testAPNsRoute = "apns:" + strings.Repeat("0a1b2c3d", 8)
	testFCMRoute  = "fcm:cXyZ_-12:APA91b.token"
)

// storedRoute reads a device's push route from the store.
func (e *env) storedRoute(id string) string {
	e.t.Helper()
	d, err := e.store.GetDevice(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return d.PushRoute
}

func TestPushRoute(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")

	for _, route := range []string{testAPNsRoute, testFCMRoute, ""} {
		got := decode[api.PushRoute](t, e.device(p, "PUT", api.PathPushRoute, api.PushRoute{PushRoute: route}), http.StatusOK)
		if got.PushRoute != route || e.storedRoute(p.id) != route {
			t.Fatalf("set %q: answered %q, stored %q", route, got.PushRoute, e.storedRoute(p.id))
		}
	}
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Action == flows.AuditDevicePushRouteUpdated && ev.DeviceID == p.id {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d device.push_route_updated events, want 3", n)
	}
}

func TestPushRouteRefused(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	decode[api.PushRoute](t, e.device(p, "PUT", api.PathPushRoute, api.PushRoute{PushRoute: testFCMRoute}), http.StatusOK)
	before := e.auditLen()

	bad := []struct {
		name, body, says string
	}{
		{"bad APNs token", `{"push_route":"apns:not-hex"}`, "APNs device token"},
		{"unknown kind", `{"push_route":"webpush:https://push.example/x"}`, "must be empty"},
		{"too long", `{"push_route":"fcm:` + strings.Repeat("t", flows.MaxPushRoute) + `"}`, "at most 1024 bytes"},
		{"unknown field", `{"push_route":"` + testAPNsRoute + `","token":"x"}`, `unknown field "token"`},
		{"missing route", `{}`, "push_route is required"},
		{"null route", `{"push_route":null}`, "push_route is required"},
		{"not a string", `{"push_route":7}`, `field "push_route" must be a string`},
		{"empty body", ``, "needs a JSON body"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			var body any = []byte(tc.body)
			if tc.body == "" {
				body = nil
			}
			pr := wantProblem(t, e.device(p, "PUT", api.PathPushRoute, body), http.StatusBadRequest, api.ProblemInvalid)
			if !strings.Contains(pr.Detail, tc.says) {
				t.Errorf("detail %q, want it to say %q", pr.Detail, tc.says)
			}
		})
	}
	if got := e.storedRoute(p.id); got != testFCMRoute {
		t.Fatalf("refused requests changed the route to %q", got)
	}
	if after := e.auditLen(); after != before {
		t.Fatalf("refused requests wrote %d audit events", after-before)
	}
}

func TestPushRouteNeedsDevice(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	body := jsonBody(t, api.PushRoute{PushRoute: testAPNsRoute})

	// Unsigned.
	req, err := http.NewRequest("PUT", e.ts.URL+api.PathPushRoute, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	wantProblem(t, e.send(req), http.StatusUnauthorized, api.ProblemUnauthorized)

	// Signed by a key that is not the device's.
	stranger, _ := newKey(t)
	wantProblem(t, e.device(phone{key: stranger, id: p.id}, "PUT", api.PathPushRoute, body), http.StatusUnauthorized, api.ProblemBadSignature)

	// Signed as POST, sent as PUT: the method is part of what is signed.
	now, nonce := e.clock.Now(), flows.NewSecret(16)
	msg, err := flows.RequestPayload(testOrigin, "POST", api.PathPushRoute, now, nonce, body)
	req, err2 := http.NewRequest("PUT", e.ts.URL+api.PathPushRoute, bytes.NewReader(body))
	if err2 != nil {
		t.Fatal(err2)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderDevice, p.id)
	req.Header.Set(api.HeaderTime, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(api.HeaderNonce, nonce)
	req.Header.Set(api.HeaderSignature, sign(t, p.key, msg, err))
	wantProblem(t, e.send(req), http.StatusUnauthorized, api.ProblemBadSignature)

	if got := e.storedRoute(p.id); got != "" {
		t.Fatalf("unauthenticated calls set the route to %q", got)
	}

	// An unregistered device is told so, and its route stays.
	if _, err := e.svc.UnregisterDevice(e.ctx, "admin", "alice", p.id, "lost"); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, e.device(p, "PUT", api.PathPushRoute, body), http.StatusForbidden, api.ProblemDeviceUnregistered)
	if got := e.storedRoute(p.id); got != "" {
		t.Fatalf("an unregistered device set its route to %q", got)
	}
}

// TestEnrollPushRoute: enrollment records a good route and refuses a
// malformed one, leaving the invitation usable.
func TestEnrollPushRoute(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	req, _ := e.enrollRequest(e.invite("alice"))
	req.PushRoute = "apns:xyz"
	p := wantProblem(t, e.post(api.PathEnroll, req), http.StatusBadRequest, api.ProblemInvalid)
	if !strings.Contains(p.Detail, "APNs device token") {
		t.Fatalf("detail %q", p.Detail)
	}
	req.PushRoute = testAPNsRoute
	res := decode[api.EnrollResponse](t, e.post(api.PathEnroll, req), http.StatusCreated)
	if got := e.storedRoute(res.DeviceID); got != testAPNsRoute {
		t.Fatalf("enrolled with route %q, want %q", got, testAPNsRoute)
	}
}

// FuzzPushRoute puts arbitrary bodies to the push-route endpoint: never a
// 5xx, and the route changes only to one CheckPushRoute accepts, exactly
// as answered.
func FuzzPushRoute(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := e.routeOf(t)
		rec := e.serve(t, e.signedRequest(t, "PUT", api.PathPushRoute, body))
		after := e.routeOf(t)
		if rec.Code >= 400 {
			if after != before {
				t.Fatalf("a refused body (%d) changed the route from %q to %q", rec.Code, before, after)
			}
			return
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("answered %d: %s", rec.Code, rec.Body)
		}
		if err := flows.CheckPushRoute(after); err != nil {
			t.Fatalf("stored route %q is malformed: %v", after, err)
		}
		var got api.PushRoute
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.PushRoute != after {
			t.Fatalf("answer %s (%v), but the stored route is %q", rec.Body, err, after)
		}
	})
}

// routeOf reads the fuzz phone's push route.
func (e *fuzzEnv) routeOf(t *testing.T) string {
	t.Helper()
	d, err := e.store.GetDevice(t.Context(), e.phone.id)
	if err != nil {
		t.Fatal(err)
	}
	return d.PushRoute
}

// signedRequest is a method request of body signed by e's phone.
func (e *fuzzEnv) signedRequest(t *testing.T, method, path string, body []byte) *http.Request {
	t.Helper()
	now, nonce := e.clock.Now(), flows.NewSecret(16)
	msg, err := flows.RequestPayload(testOrigin, method, path, now, nonce, body)
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(api.HeaderDevice, e.phone.id)
	req.Header.Set(api.HeaderTime, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(api.HeaderNonce, nonce)
	req.Header.Set(api.HeaderSignature, sign(t, e.phone.key, msg, err))
	return req
}
