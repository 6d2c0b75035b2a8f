package provider

import (
	"context"
	"net/http"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// KeyRing is the set of ID token signing keys that the admin API shows
// and rotates (the OpenID Provider's).
type KeyRing interface {
	SigningKeys(ctx context.Context) ([]api.SigningKey, error)
	RotateKeys(ctx context.Context) ([]api.SigningKey, error)
}

// MountKeys adds the admin API's signing key endpoints (GET
// /admin/v1/keys, POST /admin/v1/keys/rotate) over keys.
func (s *Server) MountKeys(keys KeyRing) {
	s.mux.HandleFunc("GET "+api.PathKeys, s.authAdmin(func(w http.ResponseWriter, r *http.Request) {
		list, err := keys.SigningKeys(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.KeyList{Keys: list})
	}))
	s.mux.HandleFunc("POST "+api.PathKeysRotate, s.authAdmin(func(w http.ResponseWriter, r *http.Request) {
		if !body(w, r, &struct{}{}, true) {
			return
		}
		list, err := keys.RotateKeys(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		if err := s.flows.RecordEvent(r.Context(), adminActor(r.Context()), flows.AuditKeysRotated, "ID token signing keys rotated"); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, api.KeyList{Keys: list})
	}))
}
