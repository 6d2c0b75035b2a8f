package provider

import (
	"net/http"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// rebind moves the calling device's account to a new key (a restore from
// backup on a new phone). The restored key has signed the call; the body
// proves the caller also holds the new key. It answers 201 with the new
// device, which replaces the caller from then on.
func (s *Server) rebind(w http.ResponseWriter, r *http.Request, body []byte, old flows.Device, a flows.Account) {
	var req api.RebindRequest
	if p := decodeJSON(r, body, &req, false); p != nil {
		writeProblem(w, *p)
		return
	}
	pub, sig, p := decodeKeyProof(req.PublicKey, req.Signature)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	d, err := s.flows.Rebind(r.Context(), old, flows.RebindRequest{
		PublicKey: pub, Signature: sig, Name: req.Name, PushRoute: req.PushRoute,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.RebindResponse{DeviceID: d.ID, ReplacedDeviceID: old.ID, Server: s.origin, Account: accountView(a)})
}
