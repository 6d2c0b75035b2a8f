// Package provider is keystep's HTTP front door: the device API that the
// phone app calls, the admin API, and the health check. Handlers translate
// the wire format of provider/api to calls on flows.Service and map flows'
// errors to RFC 9457 problem documents.
//
// Successful calls answer 200, except those that create something, which
// answer 201 Created: enrollment (POST /device/v1/enroll), a new user, an
// invitation and a test sign-in (the last three with a Location header).
// Every response carries an X-Request-Id header; an internal error's problem
// document quotes it, and the log holds the error under the same id.
//
// Long-lived responses (the device request stream, long-polls of the admin
// API) extend their own write deadlines through http.ResponseController, so
// the caller's http.Server may keep a short WriteTimeout for everything else.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// Options configures a Server.
type Options struct {
	// Flows is the domain service the handlers call (required).
	Flows *flows.Service
	// AdminTokens are the bearer tokens of the admin API, by admin name
	// (each at least MinAdminTokenLen bytes, no two alike). The audit log
	// names the admin whose token made a call as "admin:<name>". Every
	// token is compared in constant time on every call.
	AdminTokens map[string]string
	// AdminToken is a shorthand for AdminTokens {"admin": AdminToken}; it
	// may be given with AdminTokens if no admin there is named "admin".
	// At least one token is required.
	AdminToken string
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// is believed: only when the TCP peer is in one of these prefixes is
	// the client's address taken from that header (its right-most entry
	// that is not itself a trusted proxy). Otherwise the header is ignored.
	TrustedProxies []netip.Prefix
	// Logger receives internal errors and panics, each with the request id
	// that the client was given; nil: slog.Default().
	Logger *slog.Logger
	// Clock drives rate limits, SSE heartbeats and the audit long-poll;
	// nil: flows.SystemClock{}.
	Clock flows.Clock
	// Directory are the directory sources (LDAP / Active Directory) whose
	// sync the admin API shows and starts, and /healthz reports; their
	// names must differ. The caller runs them (Source.Run).
	Directory []*directory.Source
	// OptionalDirectories names the sources of Directory that /readyz does
	// not wait for: without them, keystep is not ready until each source
	// has finished a sync.
	OptionalDirectories []string
	// ReadyTimeout bounds each check of /readyz (default 2 s).
	ReadyTimeout time.Duration
	// Telemetry is the metrics (and tracer) that /metrics serves; give the
	// same one to flows (flows.WithObserver) and to the store
	// (storetiming.Wrap). nil: New makes one, which sees only HTTP.
	Telemetry *Telemetry
}

// MinAdminTokenLen is the shortest admin token New accepts.
const MinAdminTokenLen = 16

// Server serves the device API, the admin API and /healthz.
type Server struct {
	flows  *flows.Service
	origin string
	admins []adminKey // sorted by name
	log    *slog.Logger
	clock  flows.Clock

	trustedProxies []netip.Prefix

	enrollLimit *limiter // failed enrollments, per client address
	deviceLimit *limiter // failed device authentications, per client address
	adminLimit  *limiter // failed admin authentications, per client address

	directory []*directory.Source // in the configuration's order
	optional  map[string]bool     // directory sources /readyz does not wait for

	tel          *Telemetry
	readyTimeout time.Duration

	mux     *http.ServeMux
	handler http.Handler
}

// New builds a Server from o.
func New(o Options) (*Server, error) {
	if o.Flows == nil {
		return nil, errors.New("provider: Options.Flows is required")
	}
	admins, err := adminKeys(o.AdminTokens, o.AdminToken)
	if err != nil {
		return nil, err
	}
	proxies := make([]netip.Prefix, 0, len(o.TrustedProxies))
	for _, p := range o.TrustedProxies {
		if !p.IsValid() {
			return nil, fmt.Errorf("provider: trusted proxy %v is not a valid prefix", p)
		}
		proxies = append(proxies, p.Masked())
	}
	seen := map[string]bool{}
	for _, src := range o.Directory {
		if src == nil {
			return nil, errors.New("provider: a directory source is nil")
		}
		if seen[src.Name()] {
			return nil, fmt.Errorf("provider: two directory sources are named %q", src.Name())
		}
		seen[src.Name()] = true
	}
	optional := map[string]bool{}
	for _, name := range o.OptionalDirectories {
		if !seen[name] {
			return nil, fmt.Errorf("provider: optional directory source %q is not a directory source", name)
		}
		optional[name] = true
	}
	if o.ReadyTimeout < 0 {
		return nil, errors.New("provider: Options.ReadyTimeout must not be negative")
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = defaultReadyTimeout
	}
	if o.Telemetry == nil {
		o.Telemetry = NewTelemetry(TelemetryOptions{})
	}
	if !o.Telemetry.used.CompareAndSwap(false, true) {
		return nil, errors.New("provider: Options.Telemetry serves another Server already")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = flows.SystemClock{}
	}
	s := &Server{
		flows:  o.Flows,
		origin: o.Flows.Config().Origin,
		admins: admins,
		log:    o.Logger,
		clock:  o.Clock,

		trustedProxies: proxies,
		directory:      slices.Clone(o.Directory),
		optional:       optional,
		tel:            o.Telemetry,
		readyTimeout:   o.ReadyTimeout,

		enrollLimit: newLimiter(o.Clock, enrollBurst, enrollEvery),
		deviceLimit: newLimiter(o.Clock, deviceAuthBurst, deviceAuthEvery),
		adminLimit:  newLimiter(o.Clock, adminAuthBurst, adminAuthEvery),
		mux:         http.NewServeMux(),
	}
	s.enrollLimit.hit = func() { s.tel.RateLimited("enroll") }
	s.deviceLimit.hit = func() { s.tel.RateLimited("device-auth") }
	s.adminLimit.hit = func() { s.tel.RateLimited("admin-auth") }
	s.routeDevice()
	s.routeAdmin()
	s.routeCodes()
	s.routeDirectory()
	s.routeMetrics()
	s.mux.HandleFunc("GET "+api.PathHealth, s.health)
	s.mux.HandleFunc("GET "+PathReady, s.ready)
	s.handler = s.guard(s.routeMisses(s.mux))
	return s, nil
}

// Handler returns the whole HTTP surface: device API, admin API, /healthz.
func (s *Server) Handler() http.Handler { return s.handler }

// healthTimeout bounds the store ping of /healthz.
const healthTimeout = 5 * time.Second

// healthAnswer is what /healthz says.
type healthAnswer struct {
	// Status is ok, degraded (keystep serves, but a directory sync fails
	// or was stopped by the guard: accounts keep their last known states)
	// or unavailable (the store does not answer: 503).
	Status string `json:"status"`
	// Directory is each directory source's sync health (api.Directory…),
	// when there are sources.
	Directory map[string]string `json:"directory,omitempty"`
}

// health answers {"status":"ok"} once the store answers a cheap query. With
// directory sources it adds each one's sync health, and says "degraded"
// (still 200: keystep serves on the last known states) when one fails or
// was stopped by the mass-removal guard.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := s.pingStore(ctx); err != nil {
		s.log.ErrorContext(r.Context(), "health check failed", "request_id", requestID(r.Context()), "err", err)
		writeJSON(w, http.StatusServiceUnavailable, healthAnswer{Status: "unavailable"})
		return
	}
	out := healthAnswer{Status: "ok"}
	if len(s.directory) > 0 {
		out.Directory = make(map[string]string, len(s.directory))
	}
	for _, src := range s.directory {
		health := "unknown"
		st, err := src.Status(ctx)
		if err != nil {
			s.log.ErrorContext(r.Context(), "health check: directory status", "request_id", requestID(r.Context()), "directory", src.Name(), "err", err)
		} else {
			health = st.Health
		}
		out.Directory[src.Name()] = health
		if health != api.DirectoryOK && health != api.DirectoryNever {
			out.Status = "degraded"
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// pingStore runs a cheap query; a store that panics counts as down.
func (s *Server) pingStore(ctx context.Context) (err error) {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("store panicked: %v", v)
		}
	}()
	_, err = s.flows.Audit(ctx, flows.AuditFilter{Limit: 1})
	return err
}

// Handle mounts another front door (the OpenID Provider, the step page)
// on the server's mux, inside its request ids and panic guard. Handlers
// set their own Content-Security-Policy over the default one.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Mux is the server's mux, for packages that register their own routes.
func (s *Server) Mux() *http.ServeMux { return s.mux }

// ClientIP is the client's address as the rate limits and the audit log
// see it: the TCP peer, or X-Forwarded-For from a trusted proxy.
func (s *Server) ClientIP(r *http.Request) string { return s.clientIP(r) }

// AdminFor returns the name of the admin whose token this is, comparing it
// with every admin's token in constant time (as the admin API does).
func (s *Server) AdminFor(token string) (string, bool) { return s.adminFor("Bearer " + token) }

// DirectorySources are the directory sources, in the configuration's order.
func (s *Server) DirectorySources() []*directory.Source { return slices.Clone(s.directory) }
