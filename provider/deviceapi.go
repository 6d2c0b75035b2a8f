package provider

import (
	"errors"
	"net/http"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// routeDevice registers the device API.
func (s *Server) routeDevice() {
	s.mux.HandleFunc("POST "+api.PathEnroll, s.enroll)
	s.mux.HandleFunc("GET "+api.PathDeviceAccount, s.authDevice(s.deviceAccount))
	s.mux.HandleFunc("GET "+api.PathRequests, s.authDevice(s.pendingRequests))
	s.mux.HandleFunc("GET "+api.PathRequestStream, s.authDevice(s.requestStream))
	s.mux.HandleFunc("POST "+api.PathDecision, s.authDevice(s.decide))
	s.mux.HandleFunc("POST "+api.PathQRClaim, s.authDevice(s.claimQR))
	s.mux.HandleFunc("POST "+api.PathRebind, s.authDevice(s.rebind))
	s.mux.HandleFunc("PUT "+api.PathPushRoute, s.authDevice(s.setPushRoute))
}

// enroll redeems an invitation for a new device. It needs no device
// signature (the device has no registration yet). A failed enrollment (a
// bad signature, an unknown, used or expired invitation) spends one of the
// client address's enrollment tokens, and once they are spent such a
// failure is answered 429; a valid enrollment always gets through.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	body, p := readBody(w, r)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	var req api.EnrollRequest
	if p := decodeJSON(r, body, &req, false); p != nil {
		writeProblem(w, *p)
		return
	}
	pub, sig, p := decodeKeyProof(req.PublicKey, req.Signature)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	d, a, err := s.flows.Enroll(r.Context(), flows.EnrollRequest{
		Token: req.Token, PublicKey: pub, Signature: sig, Name: req.Name, PushRoute: req.PushRoute,
	})
	if err != nil {
		if enrollFailure(err) {
			if wait := s.enrollLimit.take(s.clientKey(r)); wait > 0 {
				writeRateLimited(w, wait)
				return
			}
		}
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.EnrollResponse{DeviceID: d.ID, Server: s.origin, Account: accountView(a)})
}

// deviceAccount shows the device its account: active or suspended (a
// removed account never gets this far: authentication answers 410).
func (s *Server) deviceAccount(w http.ResponseWriter, r *http.Request, _ []byte, _ flows.Device, a flows.Account) {
	writeJSON(w, http.StatusOK, accountView(a))
}

// pendingRequests lists the push requests waiting for the device.
func (s *Server) pendingRequests(w http.ResponseWriter, r *http.Request, _ []byte, d flows.Device, _ flows.Account) {
	pending, err := s.flows.PendingForDevice(r.Context(), d)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	list := api.RequestList{Requests: make([]api.SignInRequest, 0, len(pending))}
	for _, sgn := range pending {
		list.Requests = append(list.Requests, signInRequest(sgn))
	}
	writeJSON(w, http.StatusOK, list)
}

// decide records the device's signed decision on a sign-in. A wrong number
// denies the sign-in and answers 409 wrong-number.
func (s *Server) decide(w http.ResponseWriter, r *http.Request, body []byte, d flows.Device, _ flows.Account) {
	var req api.DecisionRequest
	if p := decodeJSON(r, body, &req, false); p != nil {
		writeProblem(w, *p)
		return
	}
	sig, err := b64.DecodeString(req.Signature)
	if err != nil || len(sig) == 0 {
		writeProblem(w, invalid("signature must be an unpadded base64url ES256 signature"))
		return
	}
	sgn, err := s.flows.Decide(r.Context(), flows.DecisionRequest{
		SignInID:  r.PathValue("id"),
		DeviceID:  d.ID,
		Decision:  flows.Decision(req.Decision),
		Method:    flows.Method(req.Method),
		Number:    req.Number,
		Time:      time.Unix(req.Time, 0),
		Signature: sig,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.DecisionResponse{ID: sgn.ID, Status: string(sgn.Status), Reason: sgn.Reason})
}

// claimQR takes a scanned sign-in QR payload and returns the sign-in for
// the device to show and sign.
func (s *Server) claimQR(w http.ResponseWriter, r *http.Request, body []byte, d flows.Device, _ flows.Account) {
	var req api.QRClaimRequest
	if p := decodeJSON(r, body, &req, false); p != nil {
		writeProblem(w, *p)
		return
	}
	qr, err := flows.ParseSignInQR(req.Payload)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	sgn, err := s.flows.ClaimQR(r.Context(), d.ID, qr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, signInRequest(sgn))
}

// enrollFailure reports whether err is an enrollment that failed on its
// credentials (what a stranger guessing invitation tokens gets), rather
// than on its form or the account's state.
func enrollFailure(err error) bool {
	return errors.Is(err, flows.ErrBadSignature) || errors.Is(err, flows.ErrNotFound) ||
		errors.Is(err, flows.ErrAlreadyUsed) || errors.Is(err, flows.ErrExpired)
}

// decodeKeyProof decodes a new device key (base64url PKIX DER) and the
// signature that proves its possession (base64url ES256), as enroll and
// rebind carry them.
func decodeKeyProof(publicKey, signature string) (pub, sig []byte, p *api.Problem) {
	pub, err := b64.DecodeString(publicKey)
	if err != nil || len(pub) == 0 {
		q := invalid("public_key must be the unpadded base64url of a PKIX DER P-256 key")
		return nil, nil, &q
	}
	sig, err = b64.DecodeString(signature)
	if err != nil || len(sig) == 0 {
		q := invalid("signature must be an unpadded base64url ES256 signature")
		return nil, nil, &q
	}
	return pub, sig, nil
}
