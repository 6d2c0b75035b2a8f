package steppage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	qrcode "github.com/skip2/go-qrcode"

	"github.com/keystep/keystep/flows"
)

// Timing of the event stream.
const (
	// awaitRound is how long one Await runs before the stream sends a
	// heartbeat comment and awaits again.
	awaitRound = 25 * time.Second
	// pollEvery is how often the stream re-reads the sign-in on the
	// injected clock: flows.Events wakes only this instance, and another
	// instance may decide the sign-in.
	pollEvery = 2 * time.Second
	// eventsWriteTimeout is how long one round of writes may block (real,
	// network time).
	eventsWriteTimeout = 2 * awaitRound
	// qrSize is the QR image's width and height in pixels.
	qrSize = 264
)

// qrPNG is GET /step/{id}/qr.png: the QR code of this browser's sign-in.
func (h *Handler) qrPNG(w http.ResponseWriter, r *http.Request) {
	st := h.bound(w, r, h.loadSession(r))
	if st == nil {
		return
	}
	e, ok := st.sess.step(st.id)
	if !ok || e.QR == "" || e.SignIn != st.ar.SignInID {
		setHeaders(w, st.csp)
		http.NotFound(w, r)
		return
	}
	png, err := qrcode.Encode(e.QR, qrcode.Medium, qrSize)
	if err != nil {
		h.fail(w, r, st.t, st.csp, "make the QR code", err)
		return
	}
	setHeaders(w, st.csp)
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(png)
}

// finalEvent is the data of the stream's "final" event.
type finalEvent struct {
	Status flows.SignInStatus `json:"status"`
}

// events is GET /step/{id}/events: Server-Sent Events that say when the
// request's sign-in is final. It awaits the decision in rounds of
// awaitRound, with a heartbeat comment between them, and re-reads the
// sign-in every pollEvery on the injected clock; once it is final it sends
// "final" and ends. A request with no sign-in gets 204 (EventSource then
// stops trying).
func (h *Handler) events(w http.ResponseWriter, r *http.Request) {
	st := h.bound(w, r, h.loadSession(r))
	if st == nil {
		return
	}
	setHeaders(w, st.csp)
	if st.ar.SignInID == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if !h.streams.open(st.id) {
		// EventSource retries later; the page's refresh and Continue still work.
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	defer h.streams.close(st.id)
	ctx := r.Context()
	id := st.ar.SignInID
	sgn, err := h.flows.GetSignIn(ctx, id)
	if err != nil {
		h.fail(w, r, st.t, st.csp, "event stream", err)
		return
	}
	rc := http.NewResponseController(w)
	arm := func() {
		if err := rc.SetWriteDeadline(time.Now().Add(eventsWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			h.log.DebugContext(r.Context(), "step events: cannot set the write deadline", "err", err)
		}
	}
	arm()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := fmt.Fprint(w, "retry: 5000\n: waiting\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	for !sgn.Status.Final() {
		final, err := h.awaitRound(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				h.log.ErrorContext(r.Context(), "step events", "request", st.id, "signin", id, "err", err)
			}
			return
		}
		arm()
		if final != nil {
			sgn = *final
			break
		}
		if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
			return
		}
	}
	b, _ := json.Marshal(finalEvent{Status: sgn.Status}) // cannot fail
	if _, err := fmt.Fprintf(w, "event: final\ndata: %s\n\n", b); err == nil {
		_ = rc.Flush()
	}
}

// awaitRound waits up to awaitRound for the sign-in to be final: woken
// by flows.Await, or by re-reading it every pollEvery. It returns the
// final sign-in, nil after a quiet round, and an error only when the
// client went away or the store failed.
func (h *Handler) awaitRound(ctx context.Context, id string) (*flows.SignIn, error) {
	actx, cancel := context.WithTimeout(ctx, awaitRound)
	defer cancel()
	type result struct {
		sgn flows.SignIn
		err error
	}
	done := make(chan result, 1)
	go func() {
		sgn, err := h.flows.Await(actx, id)
		done <- result{sgn, err}
	}()
	poll := h.clock.After(pollEvery)
	for {
		select {
		case res := <-done:
			switch {
			case ctx.Err() != nil:
				return nil, ctx.Err()
			case res.err == nil && res.sgn.Status.Final():
				return &res.sgn, nil
			case res.err == nil, errors.Is(res.err, context.DeadlineExceeded):
				return nil, nil // a quiet round
			}
			return nil, res.err
		case <-poll:
			sgn, err := h.flows.GetSignIn(actx, id)
			if err == nil && sgn.Status.Final() {
				return &sgn, nil // the deferred cancel ends Await
			}
			poll = h.clock.After(pollEvery)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Bounds on open event streams: a browser needs one per step page, and a
// stream holds a goroutine and re-reads the store every pollEvery.
const (
	maxStreamsPerRequest = 4
	maxStreams           = 10_000
)

// streamCount counts open event streams, per request and in all.
type streamCount struct {
	mu    sync.Mutex
	total int
	per   map[string]int
}

// open takes a stream slot for request id; false when none is free.
func (c *streamCount) open(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.per == nil {
		c.per = map[string]int{}
	}
	if c.total >= maxStreams || c.per[id] >= maxStreamsPerRequest {
		return false
	}
	c.total++
	c.per[id]++
	return true
}

// close gives the slot back.
func (c *streamCount) close(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.total--
	if c.per[id]--; c.per[id] <= 0 {
		delete(c.per, id)
	}
}

// count is how many streams request id has open.
func (c *streamCount) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.per[id]
}
