package provider

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// Long-poll bounds of the admin API.
const (
	MaxWait           = 60 * time.Second // longest ?wait= honoured
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	// deadlineSlack is added to a long-poll's wait for its write deadline.
	deadlineSlack = 10 * time.Second
)

// parseWait reads ?wait=DUR (a Go duration such as 30s), capped at MaxWait.
func parseWait(r *http.Request) (time.Duration, *api.Problem) {
	v := r.URL.Query().Get("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p := invalid("wait must be a duration such as 30s")
		return 0, &p
	}
	return min(d, MaxWait), nil
}

// extendDeadline lets a long-poll outlive the server's WriteTimeout.
func extendDeadline(w http.ResponseWriter, wait time.Duration) {
	if wait > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + deadlineSlack))
	}
}

// showSignIn returns a sign-in; with ?wait=DUR it first waits (at most
// MaxWait) for it to become final, then answers its state either way.
func (s *Server) showSignIn(w http.ResponseWriter, r *http.Request) {
	wait, p := parseWait(r)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	id := r.PathValue("id")
	var sgn flows.SignIn
	var err error
	if wait > 0 {
		extendDeadline(w, wait)
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		sgn, err = s.flows.Await(ctx, id)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil {
			sgn, err = s.flows.GetSignIn(r.Context(), id) // still pending: its state now
		}
	} else {
		sgn, err = s.flows.GetSignIn(r.Context(), id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, adminSignIn(sgn))
}

// listAudit returns a page of the audit log: ?after=SEQ, ?limit=N (1 to
// 1000, default 100), ?account=ID. With ?wait=DUR and nothing after SEQ,
// it waits (at most MaxWait, on Options.Clock) for the next event.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := flows.AuditFilter{Limit: DefaultAuditLimit, AccountID: q.Get("account")}
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeProblem(w, invalid("after must be a sequence number (0 or more)"))
			return
		}
		f.AfterSeq = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAuditLimit {
			writeProblem(w, invalid("limit must be 1 to "+strconv.Itoa(MaxAuditLimit)))
			return
		}
		f.Limit = n
	}
	if f.AccountID != "" && !validID(f.AccountID) {
		writeProblem(w, invalid("account must be an account id"))
		return
	}
	wait, p := parseWait(r)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	var timeout <-chan time.Time
	var wake <-chan struct{}
	if wait > 0 {
		extendDeadline(w, wait)
		var stop func()
		wake, stop = s.flows.Events().Subscribe(flows.AuditTopic) // before the first read
		defer stop()
	}
	for {
		evs, err := s.flows.Audit(r.Context(), f)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if len(evs) > 0 || wait == 0 {
			out := api.AuditList{Events: make([]api.AuditEvent, 0, len(evs))}
			for _, e := range evs {
				out.Events = append(out.Events, auditEvent(e))
			}
			writeJSON(w, http.StatusOK, out)
			return
		}
		if timeout == nil {
			timeout = s.clock.After(wait) // armed only when there is something to wait for
		}
		select {
		case <-wake:
		case <-timeout:
			wait = 0 // answer what there is, even if nothing
		case <-r.Context().Done():
			return
		}
	}
}

// validID reports whether s has the shape of an id: 1 to 128 letters,
// digits, '-', '_' or '.' (the rule flows applies).
func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
