package provider

import (
	"net/http"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// setPushRoute records the route the calling device's pushes go to (the
// app got a new token from APNs or FCM, or wants no more pushes). A
// malformed route is refused and changes nothing.
func (s *Server) setPushRoute(w http.ResponseWriter, r *http.Request, body []byte, d flows.Device, _ flows.Account) {
	// A pointer, so that a body without push_route is refused rather than
	// read as "clear the route".
	var req struct {
		PushRoute *string `json:"push_route"`
	}
	if p := decodeJSON(r, body, &req, false); p != nil {
		writeProblem(w, *p)
		return
	}
	if req.PushRoute == nil {
		writeProblem(w, invalid(`push_route is required: "apns:<hex device token>", "fcm:<registration token>", or "" to stop pushes`))
		return
	}
	d, err := s.flows.SetPushRoute(r.Context(), d, *req.PushRoute)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.PushRoute{PushRoute: d.PushRoute})
}
