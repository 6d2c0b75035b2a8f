package provider

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// KeyRing is a set of signing keys that the admin API shows and rotates:
// the OpenID Provider's (use "oidc") or the SAML IdP's ("saml").
type KeyRing interface {
	// SigningKeys lists the published keys, oldest first.
	SigningKeys(ctx context.Context) ([]api.SigningKey, error)
	// RotateKeys makes new keys that sign from now and lists the
	// published keys.
	RotateKeys(ctx context.Context) ([]api.SigningKey, error)
}

// MountKeys adds the signing keys of one use ("oidc", "saml") to the admin
// API's key endpoints: GET /admin/v1/keys lists the keys of every use
// mounted, POST /admin/v1/keys/rotate?use= rotates the keys of one (use
// may be left out while only one is mounted). Call it once per use; it
// panics on an empty or repeated use, as ServeMux.Handle does on a
// repeated pattern. The endpoints exist once it has been called.
func (s *Server) MountKeys(use string, keys KeyRing) {
	if use == "" || keys == nil {
		panic("provider: MountKeys needs a use and its key ring")
	}
	kr := s.keyRings()
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if kr.rings[use] != nil {
		panic("provider: MountKeys: the " + use + " signing keys are mounted already")
	}
	kr.rings[use] = keys
}

// keyRings serves the key endpoints over the rings mounted, by use.
type keyRings struct {
	s     *Server
	mu    sync.RWMutex
	rings map[string]KeyRing
}

// keyRings returns the server's key endpoints, registering them on the
// first call: the mux, which routes to them, is where they are kept.
func (s *Server) keyRings() *keyRings {
	probe := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: api.PathKeys}}
	if h, _ := s.mux.Handler(probe); h != nil {
		if kr, ok := h.(*keyRings); ok {
			return kr
		}
	}
	kr := &keyRings{s: s, rings: map[string]KeyRing{}}
	s.mux.Handle("GET "+api.PathKeys, kr)
	s.mux.Handle("POST "+api.PathKeysRotate, kr)
	return kr
}

// ServeHTTP answers both key endpoints, for an admin only.
func (kr *keyRings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Pattern == "POST "+api.PathKeysRotate {
		kr.s.authAdmin(kr.rotate)(w, r)
		return
	}
	kr.s.authAdmin(kr.list)(w, r)
}

// uses returns the uses mounted, sorted, and their rings.
func (kr *keyRings) uses() ([]string, map[string]KeyRing) {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	rings := make(map[string]KeyRing, len(kr.rings))
	uses := make([]string, 0, len(kr.rings))
	for use, ring := range kr.rings {
		rings[use] = ring
		uses = append(uses, use)
	}
	slices.Sort(uses)
	return uses, rings
}

// list answers the keys of every use, by use, oldest first within each.
func (kr *keyRings) list(w http.ResponseWriter, r *http.Request) {
	uses, rings := kr.uses()
	all := []api.SigningKey{}
	for _, use := range uses {
		keys, err := rings[use].SigningKeys(r.Context())
		if err != nil {
			kr.s.fail(w, r, err)
			return
		}
		all = append(all, withUse(keys, use)...)
	}
	writeJSON(w, http.StatusOK, api.KeyList{Keys: all})
}

// rotate rotates the keys of the use ?use= names (or of the only one).
func (kr *keyRings) rotate(w http.ResponseWriter, r *http.Request) {
	if !body(w, r, &struct{}{}, true) {
		return
	}
	uses, rings := kr.uses()
	use := r.URL.Query().Get("use")
	switch {
	case use == "" && len(uses) == 1:
		use = uses[0]
	case use == "":
		writeProblem(w, invalid("name the keys to rotate with ?use=, one of "+strings.Join(uses, ", ")))
		return
	case rings[use] == nil:
		writeProblem(w, invalid("use must be one of "+strings.Join(uses, ", ")+", not "+strconv.Quote(use)))
		return
	}
	keys, err := rings[use].RotateKeys(r.Context())
	if err != nil {
		kr.s.fail(w, r, err)
		return
	}
	if err := kr.s.flows.RecordEvent(r.Context(), adminActor(r.Context()), flows.AuditKeysRotated, rotatedText(use)); err != nil {
		kr.s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.KeyList{Keys: withUse(keys, use)})
}

// rotatedText is the audit text of a rotation of the keys of use.
func rotatedText(use string) string {
	switch use {
	case string(flows.KeyUseOIDC):
		return "oidc signing keys rotated (ID tokens)"
	case string(flows.KeyUseSAML):
		return "saml signing keys rotated (SAML assertions)"
	}
	return use + " signing keys rotated"
}

// withUse marks keys as of use, whatever their ring said.
func withUse(keys []api.SigningKey, use string) []api.SigningKey {
	out := make([]api.SigningKey, len(keys))
	for i, k := range keys {
		k.Use = use
		out[i] = k
	}
	return out
}
