package api

import "time"

// Paths of the admin API for the ID token signing keys.
const (
	PathKeys       = AdminPrefix + "/keys"        // GET → KeyList
	PathKeysRotate = AdminPrefix + "/keys/rotate" // POST (empty body) → KeyList, new keys signing from now
)

// SigningKey is one published signing key.
type SigningKey struct {
	ID        string    `json:"id"`
	Alg       string    `json:"alg"`
	CreatedAt time.Time `json:"created_at"`
	ActiveAt  time.Time `json:"active_at"`          // signs from then
	RetireAt  time.Time `json:"retire_at,omitzero"` // leaves the key set then
	Signing   bool      `json:"signing"`            // the key that signs now for its alg
}

// KeyList is the published signing keys, oldest first.
type KeyList struct {
	Keys []SigningKey `json:"keys"`
}
