// Package api is the wire format of keystep's two JSON APIs: the device API
// that the phone app (or the reference authenticator) calls, and the admin
// API. The server in provider and the clients (provider/adminclient,
// provider/authenticator) share these types, so they cannot drift apart.
//
// Binary values (keys, signatures) are unpadded base64url strings. Times
// are RFC 3339 in JSON and unix seconds in signed fields and headers.
// Errors are RFC 9457 problem+json documents (Problem).
package api

import "time"

// Paths of the device API.
const (
	DevicePrefix      = "/device/v1"
	PathEnroll        = DevicePrefix + "/enroll"                 // POST EnrollRequest → EnrollResponse (no device auth)
	PathDeviceAccount = DevicePrefix + "/account"                // GET → AccountView
	PathRequests      = DevicePrefix + "/requests"               // GET → RequestList
	PathRequestStream = DevicePrefix + "/requests/stream"        // GET → text/event-stream of "request" events (SignInRequest JSON)
	PathDecision      = DevicePrefix + "/requests/{id}/decision" // POST DecisionRequest → DecisionResponse
	PathQRClaim       = DevicePrefix + "/qr/claim"               // POST QRClaimRequest → SignInRequest
)

// Headers that authenticate every device API call after enrollment. The
// signature is ES256 (r||s, base64url) by the device key over
// flows.RequestPayload(origin, method, path-with-query, time, nonce, body).
const (
	HeaderDevice    = "Keystep-Device"    // device id
	HeaderTime      = "Keystep-Time"      // unix seconds
	HeaderNonce     = "Keystep-Nonce"     // 16+ random characters, never reused
	HeaderSignature = "Keystep-Signature" // base64url r||s
)

// SSE event names on the request stream.
const (
	EventRequest  = "request"  // data: SignInRequest, a new pending request (or one pending when the stream opened)
	EventResolved = "resolved" // data: ResolvedEvent, a request that is no longer pending
)

// EnrollRequest redeems an invitation. Signature is ES256 over
// flows.EnrollPayload(origin, token, public key).
type EnrollRequest struct {
	Token     string `json:"token"`
	PublicKey string `json:"public_key"` // base64url PKIX DER, P-256
	Signature string `json:"signature"`
	Name      string `json:"name,omitempty"`
	PushRoute string `json:"push_route,omitempty"`
}

// EnrollResponse names the new device and its account.
type EnrollResponse struct {
	DeviceID string      `json:"device_id"`
	Server   string      `json:"server"`
	Account  AccountView `json:"account"`
}

// AccountView is what a device may know of its account. A removed account
// is never shown: the API answers 410 with ProblemAccountRemoved instead.
type AccountView struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"display_name,omitempty"`
	State       string `json:"state"` // active | suspended
}

// SignInRequest is a pending sign-in as the device sees it: the context to
// show the user and the nonce to sign. It never holds the number to match.
type SignInRequest struct {
	ID        string    `json:"id"`
	Client    string    `json:"client"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
	Methods   []string  `json:"methods"`
	Nonce     string    `json:"nonce"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// RequestList is the pending requests of a device.
type RequestList struct {
	Requests []SignInRequest `json:"requests"`
}

// ResolvedEvent tells a stream that a request left the pending state.
type ResolvedEvent struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// DecisionRequest is a device's decision. Signature is ES256 over
// flows.DecisionPayload(origin, id, nonce, decision, method, number, time).
type DecisionRequest struct {
	Decision  string `json:"decision"` // approve | deny | report
	Method    string `json:"method"`   // push | qr
	Number    string `json:"number,omitempty"`
	Time      int64  `json:"time"` // unix seconds
	Signature string `json:"signature"`
}

// DecisionResponse is the sign-in's status after the decision.
type DecisionResponse struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// QRClaimRequest carries the scanned QR payload.
type QRClaimRequest struct {
	Payload string `json:"payload"`
}

// Paths of the admin API. {user} is a username or an account id. Every call
// carries "Authorization: Bearer <admin token>".
const (
	AdminPrefix         = "/admin/v1"
	PathUsers           = AdminPrefix + "/users"                                    // GET ?state=&include_removed=true → UserList; POST NewUser → User
	PathUser            = AdminPrefix + "/users/{user}"                             // GET → User
	PathUserSuspend     = AdminPrefix + "/users/{user}/suspend"                     // POST StateChange → User
	PathUserRestore     = AdminPrefix + "/users/{user}/restore"                     // POST StateChange → User
	PathUserRemove      = AdminPrefix + "/users/{user}/remove"                      // POST StateChange → User
	PathUserInvite      = AdminPrefix + "/users/{user}/invitations"                 // POST → Invitation
	PathUserDevices     = AdminPrefix + "/users/{user}/devices"                     // GET → DeviceList
	PathDeviceUnreg     = AdminPrefix + "/users/{user}/devices/{device}/unregister" // POST Unregister → Device
	PathDevicesUnregAll = AdminPrefix + "/users/{user}/devices/unregister-all"      // POST Unregister → UnregisterAllResult
	PathTestSignIn      = AdminPrefix + "/users/{user}/test-signin"                 // POST TestSignIn → Challenge
	PathSignIn          = AdminPrefix + "/signins/{id}"                             // GET ?wait=DUR (≤ 60s) → SignIn, long-polls until final or wait ends
	PathAudit           = AdminPrefix + "/audit"                                    // GET ?after=SEQ&limit=N&account=ID&wait=DUR → AuditList
	PathAuditVerify     = AdminPrefix + "/audit/verify"                             // GET → AuditVerification
	PathHealth          = "/healthz"                                                // GET → {"status":"ok"}
)

// NewUser creates an account.
type NewUser struct {
	Username    string `json:"username"`
	Email       string `json:"email,omitempty"`
	Phone       string `json:"phone,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
}

// User is an account as the admin sees it.
type User struct {
	ID             string    `json:"id"`
	Username       string    `json:"username"`
	Email          string    `json:"email,omitempty"`
	Phone          string    `json:"phone,omitempty"`
	DisplayName    string    `json:"display_name,omitempty"`
	State          string    `json:"state"`
	StateSource    string    `json:"state_source"`
	StateReason    string    `json:"state_reason,omitempty"`
	StateChangedAt time.Time `json:"state_changed_at"`
	CreatedAt      time.Time `json:"created_at"`
	// The defences' state, shown by GET PathUser and PathUserUnlock only.
	FailedCodes      int       `json:"failed_codes,omitempty"`      // consecutive wrong codes
	CodesLocked      bool      `json:"codes_locked,omitempty"`      // codes are refused now
	CodesLockedUntil time.Time `json:"codes_locked_until,omitzero"` // when the lock ends; zero while locked: only an admin unlocks
	PushBlockedUntil time.Time `json:"push_blocked_until,omitzero"` // pushes stopped after a fraud report
}

// UserList is a list of accounts.
type UserList struct {
	Users []User `json:"users"`
}

// StateChange carries the reason for a suspend, restore or remove.
type StateChange struct {
	Reason string `json:"reason,omitempty"`
}

// Invitation is a new enrollment invitation; Link is shown once.
type Invitation struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	Link      string    `json:"link"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Device is a device as the admin sees it.
type Device struct {
	ID               string    `json:"id"`
	Name             string    `json:"name,omitempty"`
	State            string    `json:"state"`
	CreatedAt        time.Time `json:"created_at"`
	UnregisteredAt   time.Time `json:"unregistered_at,omitzero"`
	UnregisterReason string    `json:"unregister_reason,omitempty"`
}

// DeviceList is an account's devices.
type DeviceList struct {
	User    string   `json:"user"`
	Devices []Device `json:"devices"`
}

// Unregister carries the (required) reason for unregistering.
type Unregister struct {
	Reason string `json:"reason"`
}

// UnregisterAllResult counts the devices unregistered.
type UnregisterAllResult struct {
	Unregistered int `json:"unregistered"`
}

// TestSignIn starts an admin's test sign-in.
type TestSignIn struct {
	Methods []string `json:"methods,omitempty"` // push, qr, sms, email, override; empty: push and qr
}

// Challenge is what a sign-in screen shows.
type Challenge struct {
	ID             string    `json:"id"`
	Methods        []string  `json:"methods,omitempty"` // the methods open (push and QR are left out without a device)
	Number         string    `json:"number,omitempty"`
	QRPayload      string    `json:"qr_payload,omitempty"`
	PushSuppressed string    `json:"push_suppressed,omitempty"` // rate | fraud: push was asked for but left out
	ExpiresAt      time.Time `json:"expires_at"`
}

// SignIn is a sign-in's state as the admin sees it.
type SignIn struct {
	ID          string    `json:"id"`
	AccountID   string    `json:"account_id"`
	Client      string    `json:"client"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason,omitempty"`
	DecidedBy   string    `json:"decided_by,omitempty"`
	DeviceID    string    `json:"device_id,omitempty"`
	FraudReport bool      `json:"fraud_report,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	DecidedAt   time.Time `json:"decided_at,omitzero"`
}

// AuditEvent is one audit log entry; hashes are base64url.
type AuditEvent struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	AccountID string    `json:"account_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	SignInID  string    `json:"signin_id,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	PrevHash  string    `json:"prev_hash"`
	Hash      string    `json:"hash"`
}

// AuditList is a page of the audit log.
type AuditList struct {
	Events []AuditEvent `json:"events"`
}

// AuditVerification is the result of checking the audit chain.
type AuditVerification struct {
	Events  int64  `json:"events"`
	OK      bool   `json:"ok"`
	BadSeq  int64  `json:"bad_seq,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// Problem is an RFC 9457 problem document (Content-Type
// application/problem+json). Type is one of the Problem* URIs below.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// ProblemBase prefixes every problem type.
const ProblemBase = "urn:keystep:problem:"

// Problem types: one for each error of flows that crosses the wire.
const (
	ProblemInvalid            = ProblemBase + "invalid-request"     // 400
	ProblemUnauthorized       = ProblemBase + "unauthorized"        // 401
	ProblemNotFound           = ProblemBase + "not-found"           // 404
	ProblemConflict           = ProblemBase + "conflict"            // 409
	ProblemAccountSuspended   = ProblemBase + "account-suspended"   // 403
	ProblemAccountRemoved     = ProblemBase + "account-removed"     // 410
	ProblemNoDevice           = ProblemBase + "no-device"           // 409
	ProblemDeviceUnregistered = ProblemBase + "device-unregistered" // 403
	ProblemWrongAccount       = ProblemBase + "wrong-account"       // 403
	ProblemExpired            = ProblemBase + "expired"             // 410
	ProblemAlreadyDecided     = ProblemBase + "already-decided"     // 409
	ProblemAlreadyUsed        = ProblemBase + "already-used"        // 409
	ProblemBadSignature       = ProblemBase + "bad-signature"       // 401
	ProblemReplay             = ProblemBase + "replayed"            // 401
	ProblemMethodNotAllowed   = ProblemBase + "method-not-open"     // 409
	ProblemWrongNumber        = ProblemBase + "wrong-number"        // 409 (the sign-in is now denied)
	ProblemTooLarge           = ProblemBase + "too-large"           // 413
	ProblemRateLimited        = ProblemBase + "rate-limited"        // 429
	ProblemInternal           = ProblemBase + "internal"            // 500, no details
)
