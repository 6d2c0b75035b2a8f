package provider

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// openStream opens p's request stream; it is closed with the test or with
// the returned cancel.
func (e *env) openStream(p phone) (<-chan sse, context.CancelFunc) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	e.t.Cleanup(cancel)
	req := e.signed(p, "GET", api.PathRequestStream, nil, e.clock.Now(), flows.NewSecret(16)).WithContext(ctx)
	resp := e.send(req)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		e.t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return readEvents(resp), cancel
}

// nextEvent is the next event that is not a comment (heartbeat).
func nextEvent(t *testing.T, events <-chan sse) sse {
	t.Helper()
	for {
		if ev := next(t, events); ev.Event != "comment" {
			return ev
		}
	}
}

func wantEvent[T any](t *testing.T, ev sse, name string) T {
	t.Helper()
	if ev.Event != name {
		t.Fatalf("event %q (%s), want %q", ev.Event, ev.Data, name)
	}
	var v T
	if err := json.Unmarshal([]byte(ev.Data), &v); err != nil {
		t.Fatalf("%s event %s: %v", name, ev.Data, err)
	}
	return v
}

func TestRequestStream(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	early := e.testSignIn("alice")

	events, _ := e.openStream(p)
	// What was pending when the stream opened comes first.
	if got := wantEvent[api.SignInRequest](t, nextEvent(t, events), api.EventRequest); got.ID != early.ID || got.Nonce == "" {
		t.Fatalf("first event %+v", got)
	}

	// A request begun after connecting arrives as soon as it is begun:
	// the stream is woken by the account's event, nothing polls.
	ch := e.testSignIn("alice")
	got := wantEvent[api.SignInRequest](t, nextEvent(t, events), api.EventRequest)
	if got.ID != ch.ID || got.Client != TestSignInClient {
		t.Fatalf("live event %+v", got)
	}

	// The decision resolves it.
	decode[api.DecisionResponse](t, e.decide(p, ch, flows.DecisionApprove, ch.Number), http.StatusOK)
	if res := wantEvent[api.ResolvedEvent](t, nextEvent(t, events), api.EventResolved); res != (api.ResolvedEvent{ID: ch.ID, Status: "approved"}) {
		t.Fatalf("resolved %+v", res)
	}
	decode[api.DecisionResponse](t, e.decide(p, early, flows.DecisionDeny, ""), http.StatusOK)
	if res := wantEvent[api.ResolvedEvent](t, nextEvent(t, events), api.EventResolved); res != (api.ResolvedEvent{ID: early.ID, Status: "denied"}) {
		t.Fatalf("resolved %+v", res)
	}

	// A request that times out is reported expired when its time is up.
	late := e.testSignIn("alice")
	wantEvent[api.SignInRequest](t, nextEvent(t, events), api.EventRequest)
	e.clock.Advance(e.svc.Config().SignInTTL)
	if res := wantEvent[api.ResolvedEvent](t, nextEvent(t, events), api.EventResolved); res != (api.ResolvedEvent{ID: late.ID, Status: "expired"}) {
		t.Fatalf("resolved %+v", res)
	}
}

func TestRequestStreamHeartbeat(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	events, _ := e.openStream(p)
	e.clock.BlockUntilWaiters(1) // the heartbeat timer
	e.clock.Advance(HeartbeatInterval)
	if ev := next(t, events); ev.Event != "comment" {
		t.Fatalf("event %+v, want a heartbeat comment", ev)
	}
}

func TestRequestStreamEnds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		action func(e *env, p phone)
	}{
		{"unregistered", func(e *env, p phone) {
			decode[api.UnregisterAllResult](e.t, e.admin("POST", userPath(api.PathDevicesUnregAll, "alice"), api.Unregister{Reason: "lost"}), http.StatusOK)
		}},
		{"suspended", func(e *env, p phone) {
			decode[api.User](e.t, e.admin("POST", userPath(api.PathUserSuspend, "alice"), nil), http.StatusOK)
		}},
		{"removed", func(e *env, p phone) {
			decode[api.User](e.t, e.admin("POST", userPath(api.PathUserRemove, "alice"), nil), http.StatusOK)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.addUser("alice")
			p := e.enroll("alice")
			ch := e.testSignIn("alice")
			events, _ := e.openStream(p)
			wantEvent[api.SignInRequest](t, nextEvent(t, events), api.EventRequest)
			tc.action(e, p)
			// The stream says the pending request was cancelled, then ends.
			if res := wantEvent[api.ResolvedEvent](t, nextEvent(t, events), api.EventResolved); res.ID != ch.ID || res.Status != "cancelled" {
				t.Fatalf("resolved %+v", res)
			}
			waitEnd(t, events)
		})
	}
}

func TestRequestStreamClientGoesAway(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	events, cancel := e.openStream(p)
	cancel()
	for range events { // drained when the connection closes
	}
	// The server's subscription is gone: a later request begins fine.
	e.testSignIn("alice")
}

// The caller's http.Server may have a WriteTimeout far shorter than a
// stream: the stream moves its own deadline. With a 1 ns timeout every
// write would fail if it did not.
func TestRequestStreamOutlivesWriteTimeout(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")

	ts := httptest.NewUnstartedServer(e.srv.Handler())
	ts.Config.WriteTimeout = time.Nanosecond
	ts.Start()
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(e.ctx)
	t.Cleanup(cancel)
	req := e.signed(p, "GET", api.PathRequestStream, nil, e.clock.Now(), flows.NewSecret(16)).WithContext(ctx)
	req.URL.Host = strings.TrimPrefix(ts.URL, "http://")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("stream under a 1 ns WriteTimeout: %v", err)
	}
	defer resp.Body.Close()
	events := readEvents(resp)
	ch := e.testSignIn("alice")
	if got := wantEvent[api.SignInRequest](t, nextEvent(t, events), api.EventRequest); got.ID != ch.ID {
		t.Fatalf("event %+v", got)
	}

	// The admin long-poll moves its deadline too.
	poll, _ := http.NewRequest("GET", ts.URL+api.AdminPrefix+"/signins/"+ch.ID+"?wait=1ms", nil)
	poll.Header.Set("Authorization", "Bearer "+testToken)
	presp, err := http.DefaultClient.Do(poll)
	if err != nil {
		t.Fatalf("long-poll under a 1 ns WriteTimeout: %v", err)
	}
	defer presp.Body.Close()
	decode[api.SignIn](t, presp, http.StatusOK)
}

// A device unregistered while its account keeps another one: the pending
// request it could see is cancelled (a request started on a stolen phone
// must not stay open on the other one), its stream says so and ends, and
// the other device sees the next sign-in.
func TestRequestStreamEndsForOneDevice(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p, other := e.enroll("alice"), e.enroll("alice")
	first := e.testSignIn("alice")
	events, _ := e.openStream(p)
	wantEvent[api.SignInRequest](t, nextEvent(t, events), api.EventRequest)
	path := strings.Replace(userPath(api.PathDeviceUnreg, "alice"), "{device}", p.id, 1)
	decode[api.Device](t, e.admin("POST", path, api.Unregister{Reason: "lost"}), http.StatusOK)
	if got := wantEvent[api.ResolvedEvent](t, nextEvent(t, events), api.EventResolved); got.ID != first.ID || got.Status != "cancelled" {
		t.Fatalf("resolved event %+v, want %s cancelled", got, first.ID)
	}
	waitEnd(t, events)
	if got := e.pendingFor(other); len(got) != 0 {
		t.Fatalf("the cancelled request is still pending for the other device: %v", got)
	}
	next := e.testSignIn("alice")
	if got := e.pendingFor(other); len(got) != 1 || got[0].ID != next.ID {
		t.Fatalf("the other device sees %v, want the new sign-in %s", got, next.ID)
	}
}

// waitEnd waits for the stream to end with no more events than heartbeats;
// the timeout only turns a hang into a failure.
func waitEnd(t *testing.T, events <-chan sse) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return
			}
			if ev.Event != "comment" {
				t.Fatalf("event %+v before the end", ev)
			}
		case <-timeout:
			t.Fatal("the stream did not end")
		}
	}
}
