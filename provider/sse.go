package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// HeartbeatInterval is how often an idle request stream sends a comment,
// so proxies and the device notice a dead connection.
const HeartbeatInterval = 15 * time.Second

// requestStream sends the device its pending requests as Server-Sent
// Events: every pending request when it connects ("request"), each new one
// as it is begun ("request") and each that stops being pending
// ("resolved", with its status). It is woken by the account's events, never
// by polling, and ends when the device or its account can no longer sign,
// or the client goes away.
//
// The stream sets its own rolling write deadline through
// http.ResponseController (streamWriteTimeout past each round of writes),
// so an http.Server WriteTimeout does not cut it, while a peer that stops
// reading is still cut off.
func (s *Server) requestStream(w http.ResponseWriter, r *http.Request, _ []byte, d flows.Device, a flows.Account) {
	if a.State != flows.AccountActive {
		s.fail(w, r, fmt.Errorf("request stream of %s: %w", a.ID, flows.ErrAccountSuspended))
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		return
	}
	ctx := r.Context()
	// Subscribe before the first listing, so a request begun in between
	// still wakes us.
	wake, stop := s.flows.WatchAccount(a.ID)
	defer stop()
	pending, err := s.flows.PendingForDevice(ctx, d)
	if err != nil {
		s.fail(w, r, err)
		return
	}

	rc := http.NewResponseController(w)
	st := &stream{w: w, rc: rc, known: map[string]flows.SignIn{}}
	if err := st.armDeadline(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.WarnContext(ctx, "request stream: cannot set the write deadline", "request_id", requestID(ctx), "err", err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no") // tell nginx-like proxies not to buffer
	w.WriteHeader(http.StatusOK)

	for _, sgn := range pending {
		st.known[sgn.ID] = sgn
		st.send(api.EventRequest, signInRequest(sgn))
	}
	if err := st.flush(); err != nil {
		return
	}
	heartbeat := s.clock.After(HeartbeatInterval)
	expiry := st.expiryTimer(s.clock)
	for {
		select {
		case <-ctx.Done():
			return
		case <-heartbeat:
			heartbeat = s.clock.After(HeartbeatInterval)
			_ = st.armDeadline()
			st.comment("heartbeat")
		case <-wake:
			_ = st.armDeadline()
			err = s.refreshStream(ctx, st, d)
			expiry = st.expiryTimer(s.clock)
		case <-expiry:
			// a request's time is up: the refresh reports it resolved
			_ = st.armDeadline()
			err = s.refreshStream(ctx, st, d)
			expiry = st.expiryTimer(s.clock)
		}
		if err != nil {
			if !errors.Is(err, errStreamOver) && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "request stream", "request_id", requestID(ctx), "device", d.ID, "err", err)
			}
			return
		}
		if err := st.flush(); err != nil {
			return
		}
	}
}

// streamWriteTimeout is how long one round of writes on the stream may
// block; it is real (network) time, not the injected clock.
const streamWriteTimeout = 2 * HeartbeatInterval

// armDeadline gives the coming round of writes streamWriteTimeout. A
// deadline that passes while the stream is idle harms nothing: the next
// round moves it before it writes.
func (st *stream) armDeadline() error {
	return st.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
}

// errStreamOver ends a stream whose device or account can no longer sign.
var errStreamOver = errors.New("device can no longer sign")

// refreshStream re-reads the device, its account and its pending requests
// and sends what changed. Once the device or its account can no longer sign,
// the requests it knew of that were closed with it are reported resolved
// and the stream is over.
func (s *Server) refreshStream(ctx context.Context, st *stream, d flows.Device) error {
	store := s.flows.Store()
	cur, err := store.GetDevice(ctx, d.ID)
	if err != nil {
		return fmt.Errorf("reload device: %w", err)
	}
	a, err := store.GetAccount(ctx, d.AccountID)
	if err != nil {
		return fmt.Errorf("reload account: %w", err)
	}
	over := cur.State != flows.DeviceActive || a.State != flows.AccountActive
	var pending []flows.SignIn
	if !over {
		if pending, err = s.flows.PendingForDevice(ctx, cur); err != nil {
			return err
		}
	}
	now := make(map[string]flows.SignIn, len(pending))
	for _, sgn := range pending {
		now[sgn.ID] = sgn
		if _, ok := st.known[sgn.ID]; !ok {
			st.send(api.EventRequest, signInRequest(sgn))
		}
	}
	for id := range st.known {
		if _, ok := now[id]; ok {
			continue
		}
		sgn, err := s.flows.GetSignIn(ctx, id)
		if err != nil {
			return fmt.Errorf("resolved sign-in %s: %w", id, err)
		}
		if sgn.Status == flows.StatusPending {
			continue // still open for the account's other devices
		}
		st.send(api.EventResolved, api.ResolvedEvent{ID: id, Status: string(sgn.Status)})
	}
	st.known = now
	if over && st.err == nil {
		_ = st.flush() // the last news (the requests cancelled with it), then the end
		return errStreamOver
	}
	return st.err
}

// stream writes Server-Sent Events and remembers the first write error.
type stream struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	known map[string]flows.SignIn // pending requests the device was told of
	err   error
}

func (st *stream) send(event string, v any) {
	if st.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err != nil {
		st.err = fmt.Errorf("marshal %s event: %w", event, err)
		return
	}
	_, st.err = fmt.Fprintf(st.w, "event: %s\ndata: %s\n\n", event, b)
}

func (st *stream) comment(text string) {
	if st.err == nil {
		_, st.err = fmt.Fprintf(st.w, ": %s\n\n", text)
	}
}

func (st *stream) flush() error {
	if st.err == nil {
		st.err = st.rc.Flush()
	}
	return st.err
}

// minExpiryWait keeps the expiry timer from spinning when the server's
// clock and the flows clock disagree by a little.
const minExpiryWait = time.Second

// expiryTimer fires when the first known request expires; nil (never) when
// none is pending.
func (st *stream) expiryTimer(c flows.Clock) <-chan time.Time {
	if len(st.known) == 0 {
		return nil
	}
	now := c.Now()
	var first time.Time
	for _, sgn := range st.known {
		if first.IsZero() || sgn.ExpiresAt.Before(first) {
			first = sgn.ExpiresAt
		}
	}
	return c.After(max(first.Sub(now), minExpiryWait))
}
