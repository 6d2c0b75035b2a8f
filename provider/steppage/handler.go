// Package steppage is keystep's hosted step page: the page an OpenID
// Provider (later a SAML IdP) sends the user to with /step/{id}. It owns the
// browser side of the step: a session cookie, binding the federation
// request to that browser, starting the sign-in, showing its number and QR
// code, the code fallbacks, and handing the approved sign-in back to the
// protocol (Requests.Complete) or the refusal (Requests.Refuse).
//
// Every page works without JavaScript (a refresh and a Continue button);
// with it, /static/step.js listens on /step/{id}/events and submits the
// same Continue form when the sign-in is final. No page holds inline script
// or style, so a strict Content-Security-Policy holds.
package steppage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/internal/seal"
)

// Options configure a Handler.
type Options struct {
	Flows    *flows.Service // required
	Requests Requests       // required: the protocol side
	// SealKey is the server's master secret (at least 32 bytes); the
	// cookie keys are stored sealed under a key derived from it, so every
	// instance that shares the store must share it.
	SealKey []byte
	// Secure sets the Secure flag and the __Host- cookie name. Only an
	// http:// public URL (--insecure-dev) may leave it false.
	Secure bool
	// ClientIP returns the client's address (behind trusted proxies);
	// nil: the host of RemoteAddr.
	ClientIP func(*http.Request) string
	Clock    flows.Clock  // nil: flows.SystemClock{}
	Logger   *slog.Logger // nil: slog.Default()
}

// Handler serves the step page. It is safe for concurrent use.
type Handler struct {
	flows      *flows.Service
	reqs       Requests
	seal       seal.Key
	secure     bool
	cookieName string
	clientIP   func(*http.Request) string
	clock      flows.Clock
	log        *slog.Logger
	cop        *http.CrossOriginProtection
	keys       cookieKeys
	streams    streamCount // open event streams
}

// New returns the step page handler. It loads the cookie keys from the
// store, making one when there is none or the newest is 30 days old.
func New(ctx context.Context, o Options) (*Handler, error) {
	if o.Flows == nil {
		return nil, errors.New("steppage: Options.Flows is required")
	}
	if o.Requests == nil {
		return nil, errors.New("steppage: Options.Requests is required")
	}
	k, err := seal.Derive(o.SealKey, "cookie-keys")
	if err != nil {
		return nil, fmt.Errorf("steppage: %w", err)
	}
	h := &Handler{
		flows: o.Flows, reqs: o.Requests, seal: k, secure: o.Secure,
		cookieName: CookieNameInsecure, clientIP: o.ClientIP, clock: o.Clock, log: o.Logger,
		cop: http.NewCrossOriginProtection(),
	}
	if h.secure {
		h.cookieName = CookieNameSecure
	}
	if h.clock == nil {
		h.clock = flows.SystemClock{}
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.clientIP == nil {
		h.clientIP = remoteHost
	}
	if err := h.loadKeys(ctx); err != nil {
		return nil, fmt.Errorf("steppage: %w", err)
	}
	return h, nil
}

// Register mounts the step page's routes on mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /step/{id}", h.getStep)
	mux.HandleFunc("GET /step/{id}/qr.png", h.qrPNG)
	mux.HandleFunc("GET /step/{id}/events", h.events)
	mux.HandleFunc("POST /step/{id}/finish", h.post(h.finish))
	mux.HandleFunc("POST /step/{id}/send", h.post(h.send))
	mux.HandleFunc("POST /step/{id}/code", h.post(h.code))
	mux.HandleFunc("POST /step/{id}/retry", h.post(h.retry))
	mux.HandleFunc("POST /step/{id}/abort", h.post(h.abort))
	// Browsers ask for a favicon on every page; answer with nothing rather
	// than a 404 in the console.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, name := range staticFiles {
		mux.HandleFunc("GET /static/"+name, serveStatic)
	}
}

// maxBody bounds a POST's body.
const maxBody = 16 << 10

// step is a request as a bound browser sees it.
type step struct {
	id   string
	req  Request
	ar   flows.AuthRequest
	sess *session
	t    *texts
	csp  string // the Content-Security-Policy of its pages
	// wantCode shows the code form instead of the step page (the "I have
	// an override code" link).
	wantCode bool
}

// path is the step page's own path (the only place it redirects to).
func (st *step) path() string { return "/step/" + st.id }

// validID reports whether id has the shape of a flows id: 1 to 128
// letters, digits, '-', '_' or '.', and not only dots.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 128 || strings.Trim(id, ".") == "" {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// remoteHost is the host part of RemoteAddr.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// getStep is GET /step/{id}: bind the request to this browser, begin its
// sign-in once, and show where it stands.
func (h *Handler) getStep(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	t := pickTexts(nil, r)
	if !validID(id) {
		h.render(w, r, http.StatusNotFound, cspFor(""), goneTitlePage(t))
		return
	}
	if r.Method == http.MethodHead { // no side effects for a HEAD
		setHeaders(w, cspFor(""))
		w.WriteHeader(http.StatusOK)
		return
	}
	req, err := h.reqs.Lookup(ctx, id)
	if err != nil {
		h.lookupFailed(w, r, t, id, err)
		return
	}
	t = pickTexts(req.Locales, r)
	csp := cspFor(req.AnswerOrigin)
	sess := h.loadSession(r)
	ar, err := h.flows.Store().GetAuthRequest(ctx, id)
	if err != nil {
		h.lookupFailed(w, r, t, id, err)
		return
	}
	// An unbound request is bound to this browser when its first sign-in
	// begins, in the same transaction (flows.RequestBinding); one bound to
	// another browser is refused here.
	if len(ar.SessionHash) == 0 && ar.SignInID != "" {
		switch err := h.flows.Store().BindAuthRequest(ctx, id, sess.hash()); {
		case errors.Is(err, flows.ErrConflict):
			h.render(w, r, http.StatusForbidden, csp, otherBrowserPage(t))
			return
		case err != nil:
			h.lookupFailed(w, r, t, id, err)
			return
		}
		ar.SessionHash = sess.hash()
	}
	if len(ar.SessionHash) != 0 && !sess.boundTo(ar) {
		h.render(w, r, http.StatusForbidden, csp, otherBrowserPage(t))
		return
	}
	st := &step{id: id, req: req, ar: ar, sess: sess, t: t, csp: csp, wantCode: r.URL.Query().Get("enter") == "code"}
	status, p, err := h.current(ctx, r, st)
	if err != nil {
		h.fail(w, r, t, csp, "show the step", err)
		return
	}
	if p.Step && !st.wantCode {
		p.Refresh = st.path()
	}
	if err := h.saveSession(w, r, sess); err != nil {
		h.fail(w, r, t, csp, "save the session", err)
		return
	}
	h.render(w, r, status, csp, p)
}

// current returns the page of the request's current sign-in, beginning
// one if it has none (or this browser lost the one it had).
func (h *Handler) current(ctx context.Context, r *http.Request, st *step) (int, *page, error) {
	if st.ar.SignInID == "" {
		return h.beginPage(ctx, r, st)
	}
	sgn, err := h.flows.GetSignIn(ctx, st.ar.SignInID)
	if err != nil {
		return 0, nil, err
	}
	if sgn.Status.Final() {
		return h.outcome(ctx, st, sgn)
	}
	e, ok := st.sess.step(st.id)
	if !ok || e.SignIn != sgn.ID {
		// This browser no longer has the sign-in's number and QR secret
		// (its cookie dropped them): start again.
		h.cancel(ctx, st, sgn.ID, "restarted by the step page")
		return h.beginPage(ctx, r, st)
	}
	return http.StatusOK, h.stepPage(ctx, st, sgn, e, ""), nil
}

// beginPage begins a sign-in for the request and returns its page.
func (h *Handler) beginPage(ctx context.Context, r *http.Request, st *step) (int, *page, error) {
	sgn, e, err := h.begin(ctx, r, st)
	if err != nil {
		return h.beginFailed(st, err)
	}
	return http.StatusOK, h.stepPage(ctx, st, sgn, e, ""), nil
}

// errNoMethod: the request allows no method this server offers.
var errNoMethod = errors.New("no method the client allows is open on this server")

// errRequestDone: the request finished (or vanished) while a sign-in began.
var errRequestDone = errors.New("the request is done or gone")

// errOtherBrowser: another browser bound the request first.
var errOtherBrowser = errors.New("the request is bound to another browser")

// begin starts a sign-in for the request, attaches it to the request and
// records it in the session.
func (h *Handler) begin(ctx context.Context, r *http.Request, st *step) (flows.SignIn, stepEntry, error) {
	methods, err := h.methods(st.req.Methods)
	if err != nil {
		return flows.SignIn{}, stepEntry{}, err
	}
	ch, err := h.flows.Begin(ctx, flows.BeginRequest{
		AccountID: st.req.AccountID,
		Client:    cleanText(st.req.ClientName, 200),
		IP:        cleanText(h.clientIP(r), 64),
		UserAgent: cleanText(r.UserAgent(), 512),
		Methods:   methods,
		Actor:     h.actor(st),
		// Bound to this browser and attached to the request in Begin's
		// own transaction: no sign-in (and no push) for another browser.
		For: &flows.RequestBinding{RequestID: st.id, SessionHash: st.sess.hash()},
	})
	switch {
	case errors.Is(err, flows.ErrRequestBinding) && errors.Is(err, flows.ErrConflict):
		return flows.SignIn{}, stepEntry{}, fmt.Errorf("%w: %w", errOtherBrowser, err)
	case errors.Is(err, flows.ErrRequestBinding):
		return flows.SignIn{}, stepEntry{}, fmt.Errorf("%w: %w", errRequestDone, err)
	case err != nil:
		// No sign-in (a suspended account, no device…): the browser still
		// gets the request, to take the way forward the page offers.
		if berr := h.flows.Store().BindAuthRequest(ctx, st.id, st.sess.hash()); errors.Is(berr, flows.ErrConflict) {
			return flows.SignIn{}, stepEntry{}, fmt.Errorf("%w: %w", errOtherBrowser, berr)
		} else if berr == nil {
			st.ar.SessionHash = st.sess.hash()
		}
		return flows.SignIn{}, stepEntry{}, err
	}
	st.ar.SignInID = ch.SignIn.ID
	st.ar.SessionHash = st.sess.hash()
	e := stepEntry{Request: st.id, SignIn: ch.SignIn.ID, Number: ch.Number, QR: ch.QRPayload}
	st.sess.setStep(e)
	return ch.SignIn, e, nil
}

// methods keeps the client's methods that this server can open (a code
// by SMS or email only with a sender to deliver it). A client
// that names methods of which none is open gets errNoMethod, never the
// flows default.
func (h *Handler) methods(asked []flows.Method) ([]flows.Method, error) {
	if len(asked) == 0 {
		return nil, nil // flows' default: push and QR
	}
	var out []flows.Method
	for _, m := range asked {
		ok := m == flows.MethodPush || m == flows.MethodQR || h.flows.CanDeliver(m)
		dup := false
		for _, o := range out {
			dup = dup || o == m
		}
		if ok && !dup {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, errNoMethod
	}
	return out, nil
}

// actor is who the audit log says began or cancelled the sign-in.
func (h *Handler) actor(st *step) string {
	return cleanText("step:"+st.req.ClientName, 200)
}

// cancel cancels a sign-in if it is still pending; a failure is logged.
func (h *Handler) cancel(ctx context.Context, st *step, signInID, why string) {
	_, err := h.flows.Cancel(context.WithoutCancel(ctx), h.actor(st), signInID, why)
	if err != nil && !errors.Is(err, flows.ErrAlreadyDecided) && !errors.Is(err, flows.ErrNotFound) {
		h.log.ErrorContext(ctx, "step page: cancel sign-in", "request", st.id, "signin", signInID, "err", err)
	}
}

// beginFailed maps an error of Begin to its page.
func (h *Handler) beginFailed(st *step, err error) (int, *page, error) {
	t := st.t
	switch {
	case errors.Is(err, errOtherBrowser):
		return http.StatusForbidden, otherBrowserPage(t), nil
	case errors.Is(err, errRequestDone):
		return http.StatusNotFound, goneTitlePage(t), nil
	case errors.Is(err, flows.ErrDirectoryUnavailable):
		// First: its cause may be any other error. The cause is for the
		// log, not the page.
		h.log.Warn("step page: the live check could not reach the directory", "request", st.id, "err", err)
		return http.StatusOK, h.refusal(st, RefusedUnavailable), nil
	case errors.Is(err, flows.ErrAccountSuspended):
		return http.StatusOK, h.refusal(st, RefusedSuspended), nil
	case errors.Is(err, flows.ErrAccountRemoved), errors.Is(err, flows.ErrNotFound):
		return http.StatusOK, h.refusal(st, RefusedRemoved), nil
	case errors.Is(err, flows.ErrNoDevice), errors.Is(err, errNoMethod):
		return http.StatusOK, h.refusal(st, RefusedNoDevice), nil
	case errors.Is(err, flows.ErrLocked), errors.Is(err, flows.ErrRateLimited):
		return http.StatusOK, h.lockedPage(st, err, false), nil
	}
	return 0, nil, fmt.Errorf("begin sign-in: %w", err)
}

// lookupFailed answers a request that Lookup (or the store) cannot find.
func (h *Handler) lookupFailed(w http.ResponseWriter, r *http.Request, t *texts, id string, err error) {
	if errors.Is(err, flows.ErrNotFound) || errors.Is(err, flows.ErrExpired) {
		h.render(w, r, http.StatusNotFound, cspFor(""), goneTitlePage(t))
		return
	}
	h.fail(w, r, t, cspFor(""), "look up request "+id, err)
}

// fail logs an unexpected error and answers the error page.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, t *texts, csp, what string, err error) {
	if r.Context().Err() == nil {
		h.log.ErrorContext(r.Context(), "step page: "+what, "path", r.URL.Path, "err", err)
	}
	h.render(w, r, http.StatusInternalServerError, csp, errorPage(t))
}

// bound loads a request for a route under /step/{id}: the id must be
// well formed, the request bound to this browser's session and still
// pending. Otherwise it answers the page that says so and returns nil.
func (h *Handler) bound(w http.ResponseWriter, r *http.Request, sess *session) *step {
	ctx := r.Context()
	id := r.PathValue("id")
	t := pickTexts(nil, r)
	if !validID(id) {
		h.render(w, r, http.StatusNotFound, cspFor(""), goneTitlePage(t))
		return nil
	}
	ar, err := h.flows.Store().GetAuthRequest(ctx, id)
	if err != nil {
		h.lookupFailed(w, r, t, id, err)
		return nil
	}
	if !sess.boundTo(ar) {
		h.render(w, r, http.StatusForbidden, cspFor(""), otherBrowserPage(t))
		return nil
	}
	req, err := h.reqs.Lookup(ctx, id)
	if err != nil {
		h.lookupFailed(w, r, t, id, err)
		return nil
	}
	t = pickTexts(req.Locales, r)
	return &step{id: id, req: req, ar: ar, sess: sess, t: t, csp: cspFor(req.AnswerOrigin)}
}

// post wraps a POST route: body limit, cross-origin check, CSRF token and
// binding, in that order, before anything is read or changed.
func (h *Handler) post(fn func(http.ResponseWriter, *http.Request, *step)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := pickTexts(nil, r)
		if !validID(r.PathValue("id")) {
			h.render(w, r, http.StatusNotFound, cspFor(""), goneTitlePage(t))
			return
		}
		if err := h.cop.Check(r); err != nil {
			h.render(w, r, http.StatusForbidden, cspFor(""), forbiddenPage(t))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := r.ParseForm(); err != nil {
			status := http.StatusBadRequest
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				status = http.StatusRequestEntityTooLarge
			}
			h.render(w, r, status, cspFor(""), badRequestPage(t))
			return
		}
		sess := h.loadSession(r)
		if !sess.csrfOK(r.PostForm.Get("csrf")) {
			h.render(w, r, http.StatusForbidden, cspFor(""), forbiddenPage(t))
			return
		}
		st := h.bound(w, r, sess)
		if st == nil {
			return
		}
		fn(w, r, st)
	}
}

// redirectToStep answers 303 to the step page: the only redirect the page
// makes.
func (h *Handler) redirectToStep(w http.ResponseWriter, r *http.Request, st *step) {
	setHeaders(w, st.csp)
	http.Redirect(w, r, st.path(), http.StatusSeeOther)
}

// finish is POST /step/{id}/finish, the Continue button: an approved
// sign-in goes to the protocol, a pending one shows the step page again,
// any other its outcome.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, st *step) {
	ctx := r.Context()
	if st.ar.SignInID == "" {
		h.redirectToStep(w, r, st)
		return
	}
	sgn, err := h.flows.GetSignIn(ctx, st.ar.SignInID)
	if err != nil {
		h.fail(w, r, st.t, st.csp, "finish", err)
		return
	}
	switch sgn.Status {
	case flows.StatusApproved:
		h.complete(w, r, st, sgn)
	case flows.StatusPending:
		e, ok := st.sess.step(st.id)
		if !ok || e.SignIn != sgn.ID {
			h.redirectToStep(w, r, st)
			return
		}
		p := h.stepPage(ctx, st, sgn, e, st.t.SignInStillOpen)
		p.Refresh = st.path()
		h.render(w, r, http.StatusOK, st.csp, p)
	default:
		h.showOutcome(w, r, st, sgn)
	}
}

// complete hands an approved sign-in to the protocol, which answers.
func (h *Handler) complete(w http.ResponseWriter, r *http.Request, st *step, sgn flows.SignIn) {
	setHeaders(w, st.csp)
	h.reqs.Complete(w, r, st.id, sgn)
}

// showOutcome renders the page of a final sign-in.
func (h *Handler) showOutcome(w http.ResponseWriter, r *http.Request, st *step, sgn flows.SignIn) {
	status, p, err := h.outcome(r.Context(), st, sgn)
	if err != nil {
		h.fail(w, r, st.t, st.csp, "show the outcome", err)
		return
	}
	h.render(w, r, status, st.csp, p)
}

// showCurrent renders the current sign-in: the step page with a message
// while it is pending, else its outcome.
func (h *Handler) showCurrent(w http.ResponseWriter, r *http.Request, st *step, msg string) {
	sgn, err := h.flows.GetSignIn(r.Context(), st.ar.SignInID)
	if err != nil {
		h.fail(w, r, st.t, st.csp, "show the sign-in", err)
		return
	}
	if sgn.Status.Final() {
		h.showOutcome(w, r, st, sgn)
		return
	}
	e, _ := st.sess.step(st.id)
	if e.SignIn != sgn.ID {
		e = stepEntry{} // no number or QR to show; the codes still work
	}
	p := h.stepPage(r.Context(), st, sgn, e, msg)
	p.Refresh = st.path()
	h.render(w, r, http.StatusOK, st.csp, p)
}

// send is POST /step/{id}/send: send a code by SMS or email.
func (h *Handler) send(w http.ResponseWriter, r *http.Request, st *step) {
	ctx := r.Context()
	channel := flows.Method(r.PostForm.Get("channel"))
	if channel != flows.MethodSMS && channel != flows.MethodEmail {
		h.render(w, r, http.StatusBadRequest, st.csp, badRequestPage(st.t))
		return
	}
	if st.ar.SignInID == "" {
		h.redirectToStep(w, r, st)
		return
	}
	sent, err := h.flows.SendCode(ctx, st.ar.SignInID, channel)
	if err == nil {
		msg := fill(st.t.CodeSent, "to", sent.To)
		if channel == flows.MethodSMS {
			msg = fill(st.t.CodeSentSMS, "to", sent.To)
		}
		h.render(w, r, http.StatusOK, st.csp, h.codePage(st, msg, "", channel))
		return
	}
	t := st.t
	switch {
	case errors.Is(err, flows.ErrLocked):
		h.render(w, r, http.StatusOK, st.csp, h.lockedPage(st, err, h.phoneOpen(ctx, st)))
	case errors.Is(err, flows.ErrRateLimited):
		h.showCurrent(w, r, st, fill(t.RateLimited, "wait", t.wait(flows.RetryAfter(err))))
	case errors.Is(err, flows.ErrChannelUnavailable):
		msg := t.NoEmailOnFile
		if channel == flows.MethodSMS {
			msg = t.NoPhoneOnFile
		}
		h.showCurrent(w, r, st, msg)
	case errors.Is(err, flows.ErrDeliveryFailed):
		h.showCurrent(w, r, st, t.DeliveryFailed)
	case errors.Is(err, flows.ErrMethodNotAllowed):
		h.showCurrent(w, r, st, t.MethodClosed)
	case errors.Is(err, flows.ErrExpired), errors.Is(err, flows.ErrAlreadyDecided),
		errors.Is(err, flows.ErrAccountSuspended), errors.Is(err, flows.ErrAccountRemoved):
		h.showCurrent(w, r, st, "")
	default:
		h.fail(w, r, t, st.csp, "send a code", err)
	}
}

// code is POST /step/{id}/code: check a code (SMS, email or override).
func (h *Handler) code(w http.ResponseWriter, r *http.Request, st *step) {
	ctx := r.Context()
	t := st.t
	channel := flows.Method(r.PostForm.Get("channel"))
	if channel != flows.MethodSMS && channel != flows.MethodEmail {
		channel = ""
	}
	if st.ar.SignInID == "" {
		h.redirectToStep(w, r, st)
		return
	}
	if _, err := flows.NormalizeCode(r.PostForm.Get("code")); err != nil {
		h.render(w, r, http.StatusOK, st.csp, h.codePage(st, "", t.CodeMalformed, channel))
		return
	}
	sgn, err := h.flows.SubmitCode(ctx, flows.SubmitCodeRequest{
		SignInID: st.ar.SignInID, Code: r.PostForm.Get("code"), IP: cleanText(h.clientIP(r), 64),
	})
	switch {
	case err == nil:
		h.complete(w, r, st, sgn)
	case errors.Is(err, flows.ErrLocked):
		h.render(w, r, http.StatusOK, st.csp, h.lockedPage(st, err, h.phoneOpen(ctx, st)))
	case errors.Is(err, flows.ErrWrongCode):
		h.render(w, r, http.StatusOK, st.csp, h.codePage(st, "", t.CodeWrong, channel))
	case errors.Is(err, flows.ErrInvalid):
		h.render(w, r, http.StatusOK, st.csp, h.codePage(st, "", t.CodeMalformed, channel))
	case errors.Is(err, flows.ErrRateLimited):
		h.render(w, r, http.StatusOK, st.csp, h.codePage(st, "", fill(t.RateLimited, "wait", t.wait(flows.RetryAfter(err))), channel))
	case errors.Is(err, flows.ErrMethodNotAllowed):
		h.showCurrent(w, r, st, t.MethodClosed)
	case errors.Is(err, flows.ErrExpired), errors.Is(err, flows.ErrAlreadyDecided),
		errors.Is(err, flows.ErrAccountSuspended), errors.Is(err, flows.ErrAccountRemoved):
		h.showCurrent(w, r, st, "")
	default:
		h.fail(w, r, t, st.csp, "check a code", err)
	}
}

// phoneOpen reports whether the request's sign-in can still be approved on
// the phone (push or QR, pending).
func (h *Handler) phoneOpen(ctx context.Context, st *step) bool {
	if st.ar.SignInID == "" {
		return false
	}
	sgn, err := h.flows.GetSignIn(ctx, st.ar.SignInID)
	return err == nil && sgn.Status == flows.StatusPending &&
		(sgn.HasMethod(flows.MethodPush) || sgn.HasMethod(flows.MethodQR))
}

// retry is POST /step/{id}/retry: cancel the sign-in if it is pending,
// begin a new one and show it.
func (h *Handler) retry(w http.ResponseWriter, r *http.Request, st *step) {
	ctx := r.Context()
	if st.ar.SignInID != "" {
		sgn, err := h.flows.GetSignIn(ctx, st.ar.SignInID)
		if err != nil {
			h.fail(w, r, st.t, st.csp, "retry", err)
			return
		}
		if sgn.Status == flows.StatusApproved {
			h.redirectToStep(w, r, st) // nothing to retry: it shows Continue
			return
		}
		if sgn.Status == flows.StatusPending {
			h.cancel(ctx, st, sgn.ID, "the user started again")
		}
	}
	if _, _, err := h.begin(ctx, r, st); err != nil {
		status, p, err := h.beginFailed(st, err)
		if err != nil {
			h.fail(w, r, st.t, st.csp, "retry", err)
			return
		}
		h.render(w, r, status, st.csp, p)
		return
	}
	if err := h.saveSession(w, r, st.sess); err != nil {
		h.fail(w, r, st.t, st.csp, "save the session", err)
		return
	}
	h.redirectToStep(w, r, st)
}

// abort is POST /step/{id}/abort: the user leaves. A pending sign-in is
// cancelled, and the protocol answers the client with the refusal.
func (h *Handler) abort(w http.ResponseWriter, r *http.Request, st *step) {
	ctx := r.Context()
	reason, ok := parseReason(r.PostForm.Get("reason"))
	if !ok {
		h.render(w, r, http.StatusBadRequest, st.csp, badRequestPage(st.t))
		return
	}
	if st.ar.SignInID != "" {
		sgn, err := h.flows.GetSignIn(ctx, st.ar.SignInID)
		if err != nil {
			h.fail(w, r, st.t, st.csp, "abort", err)
			return
		}
		// Where the sign-in itself says why it ended, that is the reason.
		switch sgn.Status {
		case flows.StatusPending, flows.StatusApproved:
			if sgn.Status == flows.StatusPending {
				h.cancel(ctx, st, sgn.ID, "the user cancelled on the step page")
			}
			if reason == RefusedDenied || reason == RefusedExpired {
				reason = RefusedCancelled
			}
		case flows.StatusDenied:
			reason = RefusedDenied
		case flows.StatusExpired:
			reason = RefusedExpired
		case flows.StatusCancelled:
			if reason == RefusedDenied || reason == RefusedExpired {
				reason = RefusedCancelled
			}
		}
	}
	setHeaders(w, st.csp)
	h.reqs.Refuse(w, r, st.id, reason)
}

// parseReason reads the reason a "return to the app" button posts: one of
// the Refused… reasons; empty means cancelled.
func parseReason(s string) (string, bool) {
	switch s {
	case "":
		return RefusedCancelled, true
	case RefusedDenied, RefusedCancelled, RefusedExpired, RefusedSuspended,
		RefusedRemoved, RefusedNoDevice, RefusedLocked, RefusedUnavailable:
		return s, true
	}
	return "", false
}

// cleanText makes s fit a flows text field: valid UTF-8, no control
// characters, no surrounding spaces, at most max bytes.
func cleanText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > max {
		n := max
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = strings.TrimSpace(s[:n])
	}
	return s
}
