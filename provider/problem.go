package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// ContentTypeProblem is the media type of every error response.
const ContentTypeProblem = "application/problem+json"

// titles is the fixed title of each problem type.
var titles = map[string]string{
	api.ProblemInvalid:              "Invalid request",
	api.ProblemUnauthorized:         "Unauthorized",
	api.ProblemNotFound:             "Not found",
	api.ProblemConflict:             "Conflict",
	api.ProblemAccountSuspended:     "Account suspended",
	api.ProblemAccountRemoved:       "Account removed",
	api.ProblemNoDevice:             "No registered device",
	api.ProblemDeviceUnregistered:   "Device unregistered",
	api.ProblemWrongAccount:         "Device belongs to another account",
	api.ProblemExpired:              "Expired",
	api.ProblemAlreadyDecided:       "Already decided",
	api.ProblemAlreadyUsed:          "Already used",
	api.ProblemBadSignature:         "Bad signature",
	api.ProblemReplay:               "Replayed request",
	api.ProblemMethodNotAllowed:     "Method not open for this sign-in",
	api.ProblemWrongNumber:          "Wrong number",
	api.ProblemTooLarge:             "Request too large",
	api.ProblemRateLimited:          "Too many requests",
	api.ProblemInternal:             "Internal error",
	api.ProblemWrongCode:            "Wrong code",
	api.ProblemLocked:               "Codes locked",
	api.ProblemDeliveryFailed:       "Code not delivered",
	api.ProblemChannelUnavailable:   "Channel unavailable",
	api.ProblemDirectoryUnavailable: "Directory unavailable",
}

// problem builds a problem document of type typ.
func problem(typ string, status int, detail string) api.Problem {
	return api.Problem{Type: typ, Title: titles[typ], Status: status, Detail: detail}
}

// invalid is a 400 invalid-request problem that says what is wrong.
func invalid(detail string) api.Problem {
	return problem(api.ProblemInvalid, http.StatusBadRequest, detail)
}

// internalProblem tells the client only the request id to quote.
func internalProblem(id string) api.Problem {
	return problem(api.ProblemInternal, http.StatusInternalServerError,
		"the server failed to answer; quote request id "+id+" to its operator")
}

// badSignatureDetail is the one answer to every device authentication that
// fails before the device is known to be genuine, whether its id exists or not.
const badSignatureDetail = "the request is not signed by a registered device key"

// writeProblem sends p as application/problem+json.
func writeProblem(w http.ResponseWriter, p api.Problem) {
	b, err := json.Marshal(p)
	if err != nil { // a Problem always marshals
		b = []byte(`{"type":"` + api.ProblemInternal + `","title":"Internal error","status":500}`)
		p.Status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", ContentTypeProblem)
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}

// errorMap maps each flows error that crosses the wire to its problem type
// and status, most specific first.
var errorMap = []struct {
	err    error
	typ    string
	status int
}{
	// First: the live check's failure wraps the error that caused it,
	// which may be any of the others.
	{flows.ErrDirectoryUnavailable, api.ProblemDirectoryUnavailable, http.StatusServiceUnavailable},
	{flows.ErrDeliveryFailed, api.ProblemDeliveryFailed, http.StatusBadGateway},
	{flows.ErrLocked, api.ProblemLocked, http.StatusLocked},
	{flows.ErrRateLimited, api.ProblemRateLimited, http.StatusTooManyRequests},
	{flows.ErrWrongCode, api.ProblemWrongCode, http.StatusBadRequest},
	{flows.ErrChannelUnavailable, api.ProblemChannelUnavailable, http.StatusConflict},
	{flows.ErrWrongNumber, api.ProblemWrongNumber, http.StatusConflict},
	{flows.ErrBadSignature, api.ProblemBadSignature, http.StatusUnauthorized},
	{flows.ErrReplay, api.ProblemReplay, http.StatusUnauthorized},
	{flows.ErrAccountRemoved, api.ProblemAccountRemoved, http.StatusGone},
	{flows.ErrAccountSuspended, api.ProblemAccountSuspended, http.StatusForbidden},
	{flows.ErrDeviceUnregistered, api.ProblemDeviceUnregistered, http.StatusForbidden},
	{flows.ErrWrongAccount, api.ProblemWrongAccount, http.StatusForbidden},
	{flows.ErrNoDevice, api.ProblemNoDevice, http.StatusConflict},
	{flows.ErrExpired, api.ProblemExpired, http.StatusGone},
	{flows.ErrAlreadyDecided, api.ProblemAlreadyDecided, http.StatusConflict},
	{flows.ErrAlreadyUsed, api.ProblemAlreadyUsed, http.StatusConflict},
	{flows.ErrMethodNotAllowed, api.ProblemMethodNotAllowed, http.StatusConflict},
	{flows.ErrConflict, api.ProblemConflict, http.StatusConflict},
	{flows.ErrNotFound, api.ProblemNotFound, http.StatusNotFound},
	{flows.ErrInvalid, api.ProblemInvalid, http.StatusBadRequest},
}

// problemFor maps a flows error to the problem the client sees, or reports
// false when err is not one the client may see (an internal failure).
// Domain errors say what is wrong in their text, which is made of the
// client's own input and ids, so it becomes the detail.
func problemFor(err error) (api.Problem, bool) {
	for _, m := range errorMap {
		if errors.Is(err, m.err) {
			detail := err.Error()
			switch m.err {
			case flows.ErrBadSignature:
				detail = "the signature does not verify"
			case flows.ErrReplay:
				detail = "this request was seen before; sign every request with a fresh nonce"
			case flows.ErrWrongNumber:
				detail = "the number does not match the one on the sign-in screen; the sign-in is denied"
			case flows.ErrWrongCode:
				detail = flows.ErrWrongCode.Error()
			case flows.ErrDirectoryUnavailable:
				// The cause (an LDAP error) is in the server's log, not
				// for the client.
				detail = "the directory could not confirm the account; try again in a moment"
			case flows.ErrDeliveryFailed:
				detail = "the code could not be sent; try again later or use another method (the server's log says why)"
			case flows.ErrLocked:
				detail = "too many wrong codes: " + flows.ErrLocked.Error()
				if le := lockOf(err); le != "" {
					detail = "too many wrong codes: " + le
				}
			}
			return problem(m.typ, m.status, detail), true
		}
	}
	return api.Problem{}, false
}

// fail answers err: a flows error as its problem, anything else as an
// internal error that is logged with the request id and never shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if p, ok := problemFor(err); ok {
		if errors.Is(err, flows.ErrDirectoryUnavailable) {
			s.log.Warn("sign-in refused: the live check could not reach the directory", "request_id", requestID(r.Context()), "err", err)
		}
		setRetryAfter(w, err)
		writeProblem(w, p)
		return
	}
	id := requestID(r.Context())
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		s.log.DebugContext(r.Context(), "client went away", "request_id", id, "method", r.Method, "path", r.URL.Path)
	} else {
		s.log.ErrorContext(r.Context(), "internal error", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeProblem(w, internalProblem(id))
}
