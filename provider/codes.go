package provider

import (
	"context"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// routeCodes registers the admin API of one-time codes, behind the admin
// bearer token like every admin route.
func (s *Server) routeCodes() {
	for pattern, h := range map[string]http.HandlerFunc{
		"POST " + api.PathUserOverride: s.issueOverride,
		"POST " + api.PathUserUnlock:   s.unlockCodes,
		"POST " + api.PathSendCode:     s.sendCode,
		"POST " + api.PathSubmitCode:   s.submitCode,
	} {
		s.mux.HandleFunc(pattern, s.authAdmin(h))
	}
}

// parseTTL reads a lifetime: a Go duration ("90m", "36h") or whole days
// ("7d"); empty is 0, the server's default.
func parseTTL(v string) (time.Duration, bool) {
	if v == "" {
		return 0, true
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 366 || strings.HasPrefix(days, "+") {
			return 0, false
		}
		return time.Duration(n) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(v)
	return d, err == nil && d > 0
}

// issueOverride issues an override code (201); the code is in this answer
// only.
func (s *Server) issueOverride(w http.ResponseWriter, r *http.Request) {
	var req api.OverrideRequest
	if !body(w, r, &req, true) {
		return
	}
	ttl, ok := parseTTL(req.TTL)
	if !ok {
		writeProblem(w, invalid("ttl must be a duration such as 30m, 2h or 7d"))
		return
	}
	oc, code, err := s.flows.IssueOverride(r.Context(), adminActor(r.Context()), r.PathValue("user"), ttl, req.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.OverrideCode{ID: oc.ID, User: oc.Username, Code: code, ExpiresAt: oc.ExpiresAt})
}

// unlockCodes lifts an account's code lock and answers the account.
func (s *Server) unlockCodes(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !body(w, r, &req, true) {
		return
	}
	a, err := s.flows.UnlockCodes(r.Context(), adminActor(r.Context()), r.PathValue("user"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.showAccount(w, r, a)
}

// showAccount answers an account with the state of its defences.
func (s *Server) showAccount(w http.ResponseWriter, r *http.Request, a flows.Account) {
	u, err := s.userWithLimits(r.Context(), a)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, u)
}

// userWithLimits is the admin's view of an account with its code lock and
// push block.
func (s *Server) userWithLimits(ctx context.Context, a flows.Account) (api.User, error) {
	l, err := s.flows.CodeLimits(ctx, a.ID)
	if err != nil {
		return api.User{}, err
	}
	u := user(a)
	u.FailedCodes = l.FailedCodes
	u.CodesLocked, u.CodesLockedUntil = l.CodesLocked(s.clock.Now())
	if l.PushBlockedUntil.After(s.clock.Now()) {
		u.PushBlockedUntil = l.PushBlockedUntil
	}
	return u, nil
}

// sendCode sends an SMS or email code for a pending sign-in.
func (s *Server) sendCode(w http.ResponseWriter, r *http.Request) {
	var req api.SendCodeRequest
	if !body(w, r, &req, false) {
		return
	}
	sent, err := s.flows.SendCode(r.Context(), r.PathValue("id"), flows.Method(req.Channel))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.SentCode{Channel: string(sent.Channel), To: sent.To, ExpiresAt: sent.ExpiresAt, ResendAfter: sent.ResendAfter})
}

// submitCode checks a code typed for a sign-in and answers the sign-in. The
// per-address limit on code checks counts the end user's address, which
// the caller gives in the body's ip; without it, the caller's own.
func (s *Server) submitCode(w http.ResponseWriter, r *http.Request) {
	var req api.SubmitCodeRequest
	if !body(w, r, &req, false) {
		return
	}
	ip := s.clientIP(r)
	if req.IP != "" {
		a, err := netip.ParseAddr(req.IP)
		if err != nil || a.Zone() != "" {
			writeProblem(w, invalid("ip must be the end user's IPv4 or IPv6 address, like 203.0.113.7"))
			return
		}
		ip = a.Unmap().String()
	}
	sgn, err := s.flows.SubmitCode(r.Context(), flows.SubmitCodeRequest{SignInID: r.PathValue("id"), Code: req.Code, IP: ip})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminSignIn(sgn))
}

// setRetryAfter sets Retry-After (whole seconds) when err says when to retry.
func setRetryAfter(w http.ResponseWriter, err error) {
	if d := flows.RetryAfter(err); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(d.Seconds())))))
	}
}

// lockOf says how long an ErrLocked lasts, without the rest of err.
func lockOf(err error) string {
	until, ok := flows.LockedUntil(err)
	if !ok {
		return ""
	}
	return (&flows.LockedError{Until: until}).Error()
}
