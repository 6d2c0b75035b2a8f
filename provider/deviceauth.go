package provider

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// deviceHandler serves a device API call once its signature has been
// checked; body is the request body the signature covers.
type deviceHandler func(w http.ResponseWriter, r *http.Request, body []byte, d flows.Device, a flows.Account)

// deviceAuthChallenge is the WWW-Authenticate value of the device API.
const deviceAuthChallenge = `Keystep-Signature realm="keystep device API"`

// authDevice authenticates a device API call from its Keystep-* headers
// before calling next. The proof is checked first: a valid one always gets
// through. A failed one spends one of the client address's rate-limit
// tokens, and once they are spent a failure is answered 429. Every failure
// that could depend on whether a device id exists gets the same answer, so
// a stranger learns nothing about device ids.
func (s *Server) authDevice(next deviceHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, p := readBody(w, r)
		if p != nil {
			writeProblem(w, *p)
			return
		}
		proof, p := deviceProof(r, body)
		if p != nil {
			if s.deviceFailureLimited(w, r) {
				return
			}
			w.Header().Set("WWW-Authenticate", deviceAuthChallenge)
			writeProblem(w, *p)
			return
		}
		d, a, err := s.flows.AuthenticateDevice(r.Context(), proof)
		if err != nil {
			if errors.Is(err, flows.ErrBadSignature) || errors.Is(err, flows.ErrReplay) || errors.Is(err, flows.ErrExpired) {
				if s.deviceFailureLimited(w, r) {
					return
				}
			}
			if errors.Is(err, flows.ErrBadSignature) || errors.Is(err, flows.ErrReplay) {
				w.Header().Set("WWW-Authenticate", deviceAuthChallenge)
			}
			if errors.Is(err, flows.ErrBadSignature) {
				writeProblem(w, problem(api.ProblemBadSignature, http.StatusUnauthorized, badSignatureDetail))
				return
			}
			if errors.Is(err, flows.ErrExpired) {
				writeProblem(w, problem(api.ProblemExpired, http.StatusGone,
					"the request's "+api.HeaderTime+" is too far from the server's clock; check the device's clock"))
				return
			}
			s.fail(w, r, err)
			return
		}
		next(w, r, body, d, a)
	}
}

// deviceFailureLimited spends one of the client address's device-auth
// tokens for a failed proof; if there is none left it answers 429 and
// reports true.
func (s *Server) deviceFailureLimited(w http.ResponseWriter, r *http.Request) bool {
	if wait := s.deviceLimit.take(s.clientKey(r)); wait > 0 {
		writeRateLimited(w, wait)
		return true
	}
	return false
}

// deviceProof reads the four Keystep-* headers. A missing or malformed
// header is refused on its own form alone.
func deviceProof(r *http.Request, body []byte) (flows.DeviceProof, *api.Problem) {
	h := r.Header
	for _, name := range []string{api.HeaderDevice, api.HeaderTime, api.HeaderNonce, api.HeaderSignature} {
		if len(h.Values(name)) != 1 || h.Get(name) == "" {
			p := problem(api.ProblemUnauthorized, http.StatusUnauthorized,
				"the request must carry exactly one "+name+" header; every device API call is signed")
			return flows.DeviceProof{}, &p
		}
	}
	secs, err := strconv.ParseInt(h.Get(api.HeaderTime), 10, 64)
	if err != nil {
		p := problem(api.ProblemBadSignature, http.StatusUnauthorized, api.HeaderTime+" must be unix seconds")
		return flows.DeviceProof{}, &p
	}
	sig, err := b64.DecodeString(h.Get(api.HeaderSignature))
	if err != nil {
		p := problem(api.ProblemBadSignature, http.StatusUnauthorized, api.HeaderSignature+" must be unpadded base64url")
		return flows.DeviceProof{}, &p
	}
	return flows.DeviceProof{
		DeviceID:  h.Get(api.HeaderDevice),
		Method:    r.Method,
		PathQuery: r.URL.RequestURI(),
		Time:      time.Unix(secs, 0),
		Nonce:     h.Get(api.HeaderNonce),
		Body:      body,
		Signature: sig,
	}, nil
}
