package api

import "time"

// Paths of the admin API for the server's signing keys.
const (
	PathKeys = AdminPrefix + "/keys" // GET → KeyList, every use
	// PathKeysRotate makes new keys of one use that sign from now: POST
	// (empty body) with ?use=oidc|saml, which may be left out when the
	// server signs for one use only → KeyList of that use.
	PathKeysRotate = AdminPrefix + "/keys/rotate"
)

// SigningKey is one published signing key.
type SigningKey struct {
	ID        string    `json:"id"`
	Alg       string    `json:"alg"`
	Use       string    `json:"use"` // what it signs: "oidc" (ID tokens) or "saml" (assertions)
	CreatedAt time.Time `json:"created_at"`
	ActiveAt  time.Time `json:"active_at"`          // signs from then
	RetireAt  time.Time `json:"retire_at,omitzero"` // leaves the key set then
	Signing   bool      `json:"signing"`            // the key that signs now for its use and alg
}

// KeyList is the published signing keys, by use, oldest first within each.
type KeyList struct {
	Keys []SigningKey `json:"keys"`
}
