package api

import "time"

// Paths of the admin API for one-time codes. {user} is a username or an
// account id; {id} a sign-in's id.
const (
	PathUserOverride = AdminPrefix + "/users/{user}/override"  // POST OverrideRequest → 201 OverrideCode (the code appears only there)
	PathUserUnlock   = AdminPrefix + "/users/{user}/unlock"    // POST (empty body) → User, its codes unlocked
	PathSendCode     = AdminPrefix + "/signins/{id}/send-code" // POST SendCodeRequest → SentCode
	PathSubmitCode   = AdminPrefix + "/signins/{id}/code"      // POST SubmitCodeRequest → SignIn
)

// OverrideRequest issues an administrative override code.
type OverrideRequest struct {
	TTL    string `json:"ttl,omitempty"`    // a Go duration ("90m", "36h") or days ("7d"); empty: the server's default (at most 7 days)
	Reason string `json:"reason,omitempty"` // for the audit log
}

// OverrideCode is a new override code. Code is shown in this answer only,
// grouped for reading aloud; the server keeps only a keyed hash of it.
type OverrideCode struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SendCodeRequest asks for a one-time code for a pending sign-in.
type SendCodeRequest struct {
	Channel string `json:"channel"` // sms | email
}

// SentCode says where a code went (masked) and when it may be sent again.
type SentCode struct {
	Channel     string    `json:"channel"`
	To          string    `json:"to"`
	ExpiresAt   time.Time `json:"expires_at"`
	ResendAfter time.Time `json:"resend_after"`
}

// SubmitCodeRequest is a code typed for a sign-in: an OTP sent for it or an
// override code. Spaces and dashes are ignored.
type SubmitCodeRequest struct {
	Code string `json:"code"`
	// IP is the end user's address, which the caller (the identity
	// provider) saw; the per-address limit on code checks counts it. Empty:
	// the admin API caller's own address.
	IP string `json:"ip,omitempty"`
}

// Problem types of codes and their defences.
const (
	ProblemWrongCode          = ProblemBase + "wrong-code"          // 400: wrong, used, expired or revoked: one answer
	ProblemLocked             = ProblemBase + "locked"              // 423: too many wrong codes; the detail says until when
	ProblemDeliveryFailed     = ProblemBase + "delivery-failed"     // 502: the SMS or email could not be sent
	ProblemChannelUnavailable = ProblemBase + "channel-unavailable" // 409: no sender, or no phone number or address
)
