package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/keystep/keystep/provider/api"
)

// DefaultAdminName is the admin that Options.AdminToken names.
const DefaultAdminName = "admin"

// adminKey is one admin's name and the SHA-256 of its token.
type adminKey struct {
	name string
	hash [sha256.Size]byte
}

// adminKeys checks and hashes the admin tokens of Options.
func adminKeys(tokens map[string]string, token string) ([]adminKey, error) {
	all := make(map[string]string, len(tokens)+1)
	for name, t := range tokens {
		all[name] = t
	}
	if token != "" {
		if _, dup := all[DefaultAdminName]; dup {
			return nil, fmt.Errorf("provider: AdminToken and AdminTokens both name an admin %q", DefaultAdminName)
		}
		all[DefaultAdminName] = token
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("provider: an admin token is required (Options.AdminToken or AdminTokens)")
	}
	keys := make([]adminKey, 0, len(all))
	for name, t := range all {
		if !validAdminName(name) {
			return nil, fmt.Errorf("provider: admin name %q must be 1 to 64 letters, digits, '.', '_', '-' or '@'", name)
		}
		if len(t) < MinAdminTokenLen {
			return nil, fmt.Errorf("provider: the admin token of %q must be at least %d bytes", name, MinAdminTokenLen)
		}
		keys = append(keys, adminKey{name: name, hash: sha256.Sum256([]byte(t))})
	}
	slices.SortFunc(keys, func(a, b adminKey) int { return strings.Compare(a.name, b.name) })
	for i := 1; i < len(keys); i++ {
		for _, k := range keys[:i] {
			if k.hash == keys[i].hash {
				return nil, fmt.Errorf("provider: admins %q and %q have the same token", k.name, keys[i].name)
			}
		}
	}
	return keys, nil
}

// validAdminName reports whether name may name an admin in the audit log.
func validAdminName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)
		if !ok {
			return false
		}
	}
	return true
}

const adminNameKey ctxKey = requestIDKey + 1

// adminActor is the actor the audit log names for the admin API call of
// ctx: "admin:<name>", the admin whose token authenticated it.
func adminActor(ctx context.Context) string {
	name, _ := ctx.Value(adminNameKey).(string)
	return "admin:" + name
}

// authAdmin lets a request through only with an admin's bearer token. The
// token is checked first: a valid one always gets through. A wrong one
// spends one of the client address's tokens, and once they are spent a
// wrong token is answered 429, so guessing goes no faster than the limit.
func (s *Server) authAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ok := s.adminFor(r.Header.Get("Authorization"))
		if ok {
			next(w, r.WithContext(context.WithValue(r.Context(), adminNameKey, name)))
			return
		}
		key := s.clientKey(r)
		if wait := s.adminLimit.take(key); wait > 0 {
			writeRateLimited(w, wait)
			return
		}
		s.log.Warn("admin API: refused a request without an admin token", "request_id", requestID(r.Context()),
			"client", key, "method", r.Method, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Bearer realm="keystep admin API"`)
		writeProblem(w, problem(api.ProblemUnauthorized, http.StatusUnauthorized,
			"the admin API needs the header Authorization: Bearer <admin token>"))
	}
}

// adminFor returns the admin whose token the Authorization header carries.
// Both sides are hashed, so lengths do not leak, and every admin's token is
// compared, with no early exit, so the time taken says nothing about which
// one (if any) matched.
func (s *Server) adminFor(authz string) (string, bool) {
	scheme, token, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(token)))
	match := -1
	for i, k := range s.admins {
		eq := subtle.ConstantTimeCompare(got[:], k.hash[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return "", false
	}
	return s.admins[match].name, true
}
