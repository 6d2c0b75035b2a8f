package api

// PathRebind moves an account to a new device key after a restore from
// backup: POST RebindRequest → 201 RebindResponse. It is authenticated like
// every device API call, by the restored (old) key; the old device is
// unregistered by it.
const PathRebind = DevicePrefix + "/rebind"

// RebindRequest carries the restored phone's new key. Signature is ES256 by
// the NEW key over flows.RebindPayload(origin, old device id, public key).
type RebindRequest struct {
	PublicKey string `json:"public_key"` // base64url PKIX DER, P-256
	Signature string `json:"signature"`
	Name      string `json:"name,omitempty"` // empty: the old device's name
	PushRoute string `json:"push_route,omitempty"`
}

// RebindResponse names the new device, the one it replaced, and the account.
type RebindResponse struct {
	DeviceID         string      `json:"device_id"`
	ReplacedDeviceID string      `json:"replaced_device_id"`
	Server           string      `json:"server"`
	Account          AccountView `json:"account"`
}
