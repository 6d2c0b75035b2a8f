package provider

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/provider/api"
)

// PathReady is the readiness check: 200 when this instance may take
// traffic, 503 (with the reasons) when not. /healthz says only that the
// process lives and its store answers.
const PathReady = "/readyz"

// defaultReadyTimeout bounds each check of /readyz.
const defaultReadyTimeout = 2 * time.Second

// readyAnswer is what /readyz says.
type readyAnswer struct {
	// Status is "ready" (200) or "not ready" (503).
	Status string `json:"status"`
	// Checks are each check's result, by name: "store", "keys:<use>"
	// for each front door's signing keys, "directory:<source>".
	Checks map[string]readyCheck `json:"checks"`
}

// readyCheck is one check's result. Reason says, without internals, why
// it failed (the log has the error, under the request id).
type readyCheck struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// ready checks, each within the ready timeout: the store answers, every
// mounted front door has a signing key, and every directory source that
// is not optional has finished a sync.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	checks := map[string]readyCheck{}
	ok := true
	check := func(name string, fn func(ctx context.Context) (string, error)) {
		cctx, cancel := context.WithTimeout(ctx, s.readyTimeout)
		defer cancel()
		reason, err := fn(cctx)
		if err != nil {
			s.log.ErrorContext(ctx, "readiness check failed", "request_id", requestID(ctx), "check", name, "err", err)
			if cctx.Err() != nil {
				reason = "no answer within " + s.readyTimeout.String()
			}
		}
		if reason == "" {
			checks[name] = readyCheck{OK: true}
			return
		}
		ok = false
		checks[name] = readyCheck{Reason: reason}
	}
	check("store", func(ctx context.Context) (string, error) {
		if err := s.pingStore(ctx); err != nil {
			return "the store does not answer", err
		}
		return "", nil
	})
	uses, rings := s.mountedKeyRings()
	for _, use := range uses {
		check("keys:"+use, func(ctx context.Context) (string, error) {
			keys, err := rings[use].SigningKeys(ctx)
			if err != nil {
				return "the signing keys cannot be loaded", err
			}
			for _, k := range keys {
				if k.Signing {
					return "", nil
				}
			}
			return "no signing key is active", nil
		})
	}
	for _, src := range s.directory {
		if s.optional[src.Name()] {
			continue
		}
		check("directory:"+src.Name(), func(ctx context.Context) (string, error) {
			st, err := src.Status(ctx)
			if err != nil {
				return "the sync status cannot be read", err
			}
			if lastSync(st).IsZero() {
				if st.Health == directory.HealthFailing {
					return "no sync has finished yet, and the last attempt failed", nil
				}
				return "no sync has finished yet", nil
			}
			return "", nil
		})
	}
	out := readyAnswer{Status: "ready", Checks: checks}
	code := http.StatusOK
	if !ok {
		out.Status, code = "not ready", http.StatusServiceUnavailable
	}
	writeJSON(w, code, out)
}

// mountedKeyRings returns the signing keys mounted (MountKeys), by use,
// without registering the key endpoints when there are none.
func (s *Server) mountedKeyRings() ([]string, map[string]KeyRing) {
	probe := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: api.PathKeys}}
	if h, _ := s.mux.Handler(probe); h != nil {
		if kr, ok := h.(*keyRings); ok {
			return kr.uses()
		}
	}
	return nil, nil
}
