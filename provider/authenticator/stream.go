package authenticator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"sync"
	"time"

	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
)

// Kinds of Event.
const (
	// EventConnected says a stream to an enrollment's server is open: a
	// request made from now on will be seen live.
	EventConnected = "connected"
	// EventRequest carries a pending request (api.EventRequest).
	EventRequest = api.EventRequest
	// EventResolved says a request left the pending state (api.EventResolved).
	EventResolved = api.EventResolved
	// EventDisconnected says a stream dropped; Err says why. Stream
	// reconnects unless the server refused the device.
	EventDisconnected = "disconnected"
)

// Event is something Stream saw on one enrollment's request stream.
type Event struct {
	Kind       string
	Enrollment Enrollment
	Request    *api.SignInRequest // EventRequest
	Resolved   *api.ResolvedEvent // EventResolved
	Err        error              // EventDisconnected
}

// maxRetryDelay caps the delay between reconnections.
const maxRetryDelay = 30 * time.Second

// Stream opens the request stream (api.PathRequestStream) of every
// enrollment and calls fn, one call at a time, for each event, until ctx
// ends. A stream that drops is reopened after a growing delay; one that the
// server refuses (an error answer such as device-unregistered) is not.
// Stream returns ctx's error when ctx ends, or, when every stream has been
// refused, the servers' errors.
func (a *Authenticator) Stream(ctx context.Context, fn func(Event)) error {
	es, err := a.Enrollments()
	if err != nil {
		return err
	}
	if len(es) == 0 {
		return errors.New("no account is enrolled on this device")
	}
	var mu sync.Mutex
	emit := func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		fn(ev)
	}
	errs := make([]error, len(es))
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Go(func() { errs[i] = a.streamOne(ctx, e, emit) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// streamOne keeps one enrollment's stream open until ctx ends or the server
// refuses the device.
func (a *Authenticator) streamOne(ctx context.Context, e Enrollment, emit func(Event)) error {
	delay := a.retryDelay
	for {
		connected, err := a.streamOnce(ctx, e, emit)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var pe *adminclient.Error
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: request stream: %w", e.Label(), err)
			emit(Event{Kind: EventDisconnected, Enrollment: e, Err: err})
			return err
		}
		emit(Event{Kind: EventDisconnected, Enrollment: e, Err: fmt.Errorf("%s: request stream: %w", e.Label(), err)})
		if connected {
			delay = a.retryDelay
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, maxRetryDelay)
	}
}

// streamOnce reads one connection of the request stream until it ends. It
// reports whether the connection was opened.
func (a *Authenticator) streamOnce(ctx context.Context, e Enrollment, emit func(Event)) (bool, error) {
	req, err := a.newRequest(ctx, &e, e.Server, http.MethodGet, api.PathRequestStream, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := a.stream.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, adminclient.ReadError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, fmt.Errorf("server answered %q, not an event stream", mt)
	}
	emit(Event{Kind: EventConnected, Enrollment: e})
	r := NewSSEReader(resp.Body)
	for {
		sse, err := r.Next()
		if err != nil {
			return true, err
		}
		ev, ok, err := decodeEvent(sse)
		if err != nil {
			return true, err
		}
		if ok {
			ev.Enrollment = e
			emit(ev)
		}
	}
}

// decodeEvent turns a request-stream SSE event into an Event. Events of
// other types are skipped (ok is false), so the server may add some.
func decodeEvent(sse SSEEvent) (ev Event, ok bool, err error) {
	switch sse.Type {
	case api.EventRequest:
		var r api.SignInRequest
		if err := json.Unmarshal([]byte(sse.Data), &r); err != nil {
			return Event{}, false, fmt.Errorf("bad %q event: %w", sse.Type, err)
		}
		if r.ID == "" || r.Nonce == "" {
			return Event{}, false, fmt.Errorf("bad %q event: no id or nonce", sse.Type)
		}
		return Event{Kind: EventRequest, Request: &r}, true, nil
	case api.EventResolved:
		var r api.ResolvedEvent
		if err := json.Unmarshal([]byte(sse.Data), &r); err != nil {
			return Event{}, false, fmt.Errorf("bad %q event: %w", sse.Type, err)
		}
		if r.ID == "" {
			return Event{}, false, fmt.Errorf("bad %q event: no id", sse.Type)
		}
		return Event{Kind: EventResolved, Resolved: &r}, true, nil
	}
	return Event{}, false, nil
}
