package provider

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/keystep/keystep/provider/api"
)

// adminActor is the actor the audit log names for admin API calls.
const adminActor = "admin"

// authAdmin lets a request through only with the admin bearer token. A
// client IP that has failed too often is refused before its token is even
// compared, so guessing cannot go faster than the rate limit.
func (s *Server) authAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := clientKey(r)
		if wait := s.adminLimit.wait(key); wait > 0 {
			writeRateLimited(w, wait)
			return
		}
		if !s.adminTokenOK(r.Header.Get("Authorization")) {
			s.adminLimit.take(key)
			s.log.Warn("admin API: refused a request without the admin token", "request_id", requestID(r.Context()),
				"client", clientKey(r), "method", r.Method, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="keystep admin API"`)
			writeProblem(w, problem(api.ProblemUnauthorized, http.StatusUnauthorized,
				"the admin API needs the header Authorization: Bearer <admin token>"))
			return
		}
		next(w, r)
	}
}

// adminTokenOK compares the presented bearer token with the admin token in
// constant time (both hashed first, so their lengths do not leak either).
func (s *Server) adminTokenOK(authz string) bool {
	scheme, token, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1
}
