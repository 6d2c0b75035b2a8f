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
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// Options configures a Server.
type Options struct {
	// Flows is the domain service the handlers call (required).
	Flows *flows.Service
	// AdminToken is the bearer token of the admin API (required, at least
	// 16 bytes). It is compared in constant time.
	AdminToken string
	// Logger receives internal errors and panics, each with the request id
	// that the client was given; nil: slog.Default().
	Logger *slog.Logger
	// Clock drives rate limits, SSE heartbeats and the audit long-poll;
	// nil: flows.SystemClock{}.
	Clock flows.Clock
}

// MinAdminTokenLen is the shortest admin token New accepts.
const MinAdminTokenLen = 16

// Server serves the device API, the admin API and /healthz.
type Server struct {
	flows     *flows.Service
	origin    string
	adminHash [sha256.Size]byte
	log       *slog.Logger
	clock     flows.Clock

	enrollLimit *limiter // every enrollment attempt, per client IP
	deviceLimit *limiter // failed device authentications, per client IP
	adminLimit  *limiter // failed admin authentications, per client IP

	mux     *http.ServeMux
	handler http.Handler
}

// New builds a Server from o.
func New(o Options) (*Server, error) {
	if o.Flows == nil {
		return nil, errors.New("provider: Options.Flows is required")
	}
	if len(o.AdminToken) < MinAdminTokenLen {
		return nil, fmt.Errorf("provider: the admin token must be at least %d bytes", MinAdminTokenLen)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = flows.SystemClock{}
	}
	s := &Server{
		flows:       o.Flows,
		origin:      o.Flows.Config().Origin,
		adminHash:   sha256.Sum256([]byte(o.AdminToken)),
		log:         o.Logger,
		clock:       o.Clock,
		enrollLimit: newLimiter(o.Clock, enrollBurst, enrollEvery),
		deviceLimit: newLimiter(o.Clock, deviceAuthBurst, deviceAuthEvery),
		adminLimit:  newLimiter(o.Clock, adminAuthBurst, adminAuthEvery),
		mux:         http.NewServeMux(),
	}
	s.routeDevice()
	s.routeAdmin()
	s.routeCodes()
	s.mux.HandleFunc("GET "+api.PathHealth, s.health)
	s.handler = s.guard(s.routeMisses(s.mux))
	return s, nil
}

// Handler returns the whole HTTP surface: device API, admin API, /healthz.
func (s *Server) Handler() http.Handler { return s.handler }

// healthTimeout bounds the store ping of /healthz.
const healthTimeout = 5 * time.Second

// health answers {"status":"ok"} once the store answers a cheap query.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if err := s.pingStore(r.Context()); err != nil {
		s.log.Error("health check failed", "request_id", requestID(r.Context()), "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
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
