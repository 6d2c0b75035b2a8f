// Package console is keystep's admin console: server-rendered pages under
// /console/ where an admin signs in with their admin token and sees and
// does what the admin API offers — accounts with their state and source,
// devices, invitations, override codes, suspend, restore and remove,
// directory sync status, the audit log and a chart of sign-ins.
//
// The pages hold no script at all, and their one style sheet carries the
// response's nonce, so the Content-Security-Policy is default-src 'none'
// with nothing inline allowed but that sheet. Every POST carries the
// session's CSRF token (compared in constant time) and must pass the
// cross-origin check of the Fetch metadata and Origin headers. Sessions
// live in the flows store, shared by every instance on it: the cookie holds
// a random 256-bit token and the store only its hash, so logging out on one
// instance ends the session on all of them.
package console

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/keystep/keystep/provider/internal/ratelimit"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider"
)

// Prefix is where the console is served.
const Prefix = "/console/"

// Defaults of Options.
const (
	DefaultIdleTimeout = 15 * time.Minute
	DefaultLifetime    = 8 * time.Hour
)

// Login rate limit: at most loginLimit attempts (right or wrong) per client
// address in loginWindow, counted in the store, so every instance that
// shares it shares the count.
const (
	loginLimit  = 10
	loginWindow = 5 * time.Minute
)

// maxBody bounds a POST's body.
const maxBody = 16 << 10

// Options configure a Console.
type Options struct {
	// Server is the provider the console is mounted on (required): its
	// admin tokens authenticate the console's logins, its directory
	// sources are shown, and it names the client address.
	Server *provider.Server
	// Flows is the domain service (required).
	Flows *flows.Service
	// Secure sets the cookies' Secure flag and their __Host- names. Only an
	// http:// public URL under --insecure-dev may leave it false.
	Secure bool
	// IdleTimeout ends a session unused this long; 0: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Lifetime ends a session this long after its login whatever its use;
	// 0: DefaultLifetime.
	Lifetime time.Duration
	Clock    flows.Clock  // nil: flows.SystemClock{}
	Logger   *slog.Logger // nil: slog.Default()
}

// Console serves the admin console. It is safe for concurrent use.
type Console struct {
	srv    *provider.Server
	flows  *flows.Service
	clock  flows.Clock
	log    *slog.Logger
	secure bool
	cop    *http.CrossOriginProtection
	sess   *sessionStore
	mux    *http.ServeMux
}

// New builds a console from o.
func New(o Options) (*Console, error) {
	if o.Server == nil {
		return nil, errors.New("console: Options.Server is required")
	}
	if o.Flows == nil {
		return nil, errors.New("console: Options.Flows is required")
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.IdleTimeout > o.Lifetime {
		return nil, errors.New("console: IdleTimeout is longer than Lifetime")
	}
	if o.Clock == nil {
		o.Clock = flows.SystemClock{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c := &Console{
		srv: o.Server, flows: o.Flows, clock: o.Clock, log: o.Logger, secure: o.Secure,
		cop:  http.NewCrossOriginProtection(),
		sess: newSessionStore(o.Flows.Store(), o.Server.AdminFor, o.Clock, o.Secure, o.IdleTimeout, o.Lifetime),
		mux:  http.NewServeMux(),
	}
	c.route()
	return c, nil
}

// Mount builds a console and mounts it on the provider under /console/.
func Mount(o Options) (*Console, error) {
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	o.Server.Handle(Prefix, c)
	return c, nil
}

// route registers the pages.
func (c *Console) route() {
	c.mux.HandleFunc("GET /console/login", c.page(false, c.loginPage))
	c.mux.HandleFunc("POST /console/login", c.page(false, c.login))
	c.mux.HandleFunc("POST /console/logout", c.post(c.logout))
	c.mux.HandleFunc("GET /console/{$}", c.page(true, c.overview))
	c.mux.HandleFunc("GET /console/users", c.page(true, c.users))
	c.mux.HandleFunc("GET /console/users/{user}", c.page(true, c.user))
	c.mux.HandleFunc("POST /console/users/{user}/{action}", c.post(c.userAction))
	c.mux.HandleFunc("POST /console/users/{user}/devices/{device}/unregister", c.post(c.unregister))
	c.mux.HandleFunc("GET /console/directory", c.page(true, c.directoryPage))
	c.mux.HandleFunc("POST /console/directory/{source}/sync", c.post(c.directorySync))
	c.mux.HandleFunc("GET /console/audit", c.page(true, c.audit))
	c.mux.HandleFunc("/console/", c.page(true, c.notFound))
}

// ServeHTTP serves the console's pages (mount it on /console/).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mux.ServeHTTP(w, r)
}

// req is one request as a page handler sees it.
type req struct {
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context
	nonce string
	sess  *session // nil before login
}

// actor is who the audit log names for the admin of this request.
func (q *req) actor() string { return "admin:" + q.sess.admin }

// setHeaders sets the security headers of every answer.
func setHeaders(w http.ResponseWriter, nonce string) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp(nonce))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// csp is the Content-Security-Policy of every page: nothing but the
// page's own nonce'd style sheet and forms that post to the console.
func csp(nonce string) string {
	return "default-src 'none'; style-src 'nonce-" + nonce + "'; img-src 'none'; script-src 'none'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}

// newNonce is 16 random bytes, base64url (no character that needs
// escaping in an attribute).
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// page wraps a GET page (or the login POST): the security headers, and,
// with auth, a live session or a redirect to the login page.
func (c *Console) page(auth bool, fn func(*req)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := &req{w: w, r: r, ctx: r.Context(), nonce: newNonce()}
		setHeaders(w, q.nonce)
		if auth {
			if !c.loadSession(q) {
				return
			}
			if q.sess == nil {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
		}
		fn(q)
	}
}

// post wraps a POST of a signed-in admin: body limit, cross-origin check,
// a live session and its CSRF token, in that order, before anything is
// read or changed.
func (c *Console) post(fn func(*req)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := &req{w: w, r: r, ctx: r.Context(), nonce: newNonce()}
		setHeaders(w, q.nonce)
		if !c.postOK(q) {
			return
		}
		if !c.loadSession(q) {
			return
		}
		if q.sess == nil {
			c.message(q, http.StatusForbidden, "Signed out", "Your session has ended. Sign in again.")
			return
		}
		if !q.sess.csrfOK(r.PostForm.Get("csrf")) {
			c.log.Warn("console: refused a POST with a wrong CSRF token", "admin", q.sess.admin, "path", r.URL.Path)
			c.message(q, http.StatusForbidden, "Refused", "This form is stale or did not come from the console. Reload the page and try again.")
			return
		}
		fn(q)
	}
}

// loadSession sets q.sess to the request's live session (nil: none). On a
// store error it answers the error page itself and reports false.
func (c *Console) loadSession(q *req) bool {
	s, err := c.sess.load(q.r)
	if err != nil {
		c.fail(q, "read the session", err)
		return false
	}
	q.sess = s
	return true
}

// postOK checks a POST's size, origin and form; it answers the refusal
// itself and reports false.
func (c *Console) postOK(q *req) bool {
	if err := c.cop.Check(q.r); err != nil {
		c.log.Warn("console: refused a cross-origin POST", "path", q.r.URL.Path, "origin", q.r.Header.Get("Origin"),
			"sec_fetch_site", q.r.Header.Get("Sec-Fetch-Site"))
		c.message(q, http.StatusForbidden, "Refused", "This form did not come from the console.")
		return false
	}
	q.r.Body = http.MaxBytesReader(q.w, q.r.Body, maxBody)
	if err := q.r.ParseForm(); err != nil {
		status := http.StatusBadRequest
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			status = http.StatusRequestEntityTooLarge
		}
		c.message(q, status, "Bad request", "The form could not be read.")
		return false
	}
	return true
}

// clientKey is the login rate limit's key: the client's address, an IPv6
// one cut to its /64.
func (c *Console) clientKey(r *http.Request) string {
	return "console-login:" + ratelimit.Key(c.srv.ClientIP(r))
}
