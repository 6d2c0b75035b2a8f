package push_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/notify/push"
)

// recorder is a PushSender that keeps what it was given.
type recorder struct {
	got []flows.Push
	err error
}

func (r *recorder) SendPush(_ context.Context, p flows.Push) error {
	r.got = append(r.got, p)
	return r.err
}

func TestRouterDispatchesByKind(t *testing.T) {
	a, f := &recorder{}, &recorder{}
	r := push.Router{APNs: a, FCM: f}
	ctx := context.Background()
	pa := flows.Push{Route: "apns:0a0b", SignInID: "s1", Title: "T"}
	pf := flows.Push{Route: "fcm:tok:en", SignInID: "s2", Title: "T"}
	if err := r.SendPush(ctx, pa); err != nil {
		t.Fatal(err)
	}
	if err := r.SendPush(ctx, pf); err != nil {
		t.Fatal(err)
	}
	if len(a.got) != 1 || a.got[0] != pa {
		t.Errorf("APNs got %v", a.got)
	}
	if len(f.got) != 1 || f.got[0] != pf {
		t.Errorf("FCM got %v", f.got)
	}
}

func TestRouterPassesErrorsThrough(t *testing.T) {
	r := push.Router{FCM: &recorder{err: push.ErrRouteGone}}
	if err := r.SendPush(context.Background(), flows.Push{Route: "fcm:x"}); !errors.Is(err, push.ErrRouteGone) {
		t.Errorf("err = %v, want ErrRouteGone", err)
	}
}

func TestRouterRefuses(t *testing.T) {
	only := push.Router{APNs: &recorder{}}
	cases := []struct {
		r     push.Router
		route string
		want  error
		says  string
	}{
		{only, "fcm:token", push.ErrNoSender, "fcm is not configured"},
		{push.Router{}, "apns:0a", push.ErrNoSender, "apns is not configured"},
		{only, "webpush:https://x", push.ErrNoSender, `unknown route kind "webpush"`},
		{only, "APNS:0a", push.ErrNoSender, "unknown route kind"},
		{only, "apns", push.ErrBadRoute, "want <kind>:<address>"},
		{only, "apns:", push.ErrBadRoute, "malformed"},
		{only, ":0a", push.ErrBadRoute, "malformed"},
		{only, "", push.ErrBadRoute, "malformed"},
		{only, "a\nb:c", push.ErrNoSender, `"a?b"`},
		{only, strings.Repeat("k", 100) + ":x", push.ErrNoSender, "kkkk…"},
	}
	for _, tc := range cases {
		err := tc.r.SendPush(context.Background(), flows.Push{Route: tc.route})
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%q: err = %v, want %v saying %q", tc.route, err, tc.want, tc.says)
		}
	}
}

func FuzzSplitRoute(f *testing.F) {
	f.Add("apns:0a0b")
	f.Add("fcm:abc:def")
	f.Add(":x")
	f.Add("x:")
	f.Add("")
	f.Fuzz(func(t *testing.T, route string) {
		kind, addr, err := push.SplitRoute(route)
		if err != nil {
			if !errors.Is(err, push.ErrBadRoute) || kind != "" || addr != "" {
				t.Fatalf("%q: %q %q %v", route, kind, addr, err)
			}
		} else if kind == "" || addr == "" || strings.Contains(kind, ":") || kind+":"+addr != route {
			t.Fatalf("%q split into %q and %q", route, kind, addr)
		}
		// The router never panics and never reaches a sender it lacks.
		err = push.Router{}.SendPush(context.Background(), flows.Push{Route: route})
		if !errors.Is(err, push.ErrNoSender) && !errors.Is(err, push.ErrBadRoute) {
			t.Fatalf("%q: err = %v", route, err)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("message %q", msg)
		}
	})
}
