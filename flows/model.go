// Package flows is keystep's domain: accounts and their states, devices,
// invitations, the sign-in transaction state machine (push with number
// matching and QR), and the hash-chained audit log. It owns the Store
// interface that the backends under flows/store implement, and it imports
// nothing above it.
package flows

import "time"

// AccountState is where an account stands: only active accounts may sign in.
type AccountState string

// Account states.
const (
	AccountActive    AccountState = "active"
	AccountSuspended AccountState = "suspended" // refused, reversible
	AccountRemoved   AccountState = "removed"   // devices dead; a tombstone until purged
)

// Valid reports whether s is a known state.
func (s AccountState) Valid() bool {
	return s == AccountActive || s == AccountSuspended || s == AccountRemoved
}

// StateSource says who set an account's state.
type StateSource string

// State sources.
const (
	SourceAdmin     StateSource = "admin"
	SourceDirectory StateSource = "directory"
)

// Account is a person who may sign in.
type Account struct {
	ID             string       `json:"id"`
	Username       string       `json:"username"`
	Email          string       `json:"email,omitempty"`
	Phone          string       `json:"phone,omitempty"`
	DisplayName    string       `json:"display_name,omitempty"`
	State          AccountState `json:"state"`
	StateSource    StateSource  `json:"state_source"`
	StateReason    string       `json:"state_reason,omitempty"`
	StateChangedAt time.Time    `json:"state_changed_at"`
	CreatedAt      time.Time    `json:"created_at"`
	UpdatedAt      time.Time    `json:"updated_at"`
}

// DeviceState is whether a device may still sign decisions.
type DeviceState string

// Device states.
const (
	DeviceActive       DeviceState = "active"
	DeviceUnregistered DeviceState = "unregistered" // its signatures are refused forever
)

// Device is an authenticator (the phone app) enrolled for one account. Only
// its P-256 public key is known here; the private key never leaves it.
type Device struct {
	ID                 string      `json:"id"`
	AccountID          string      `json:"account_id"`
	Name               string      `json:"name,omitempty"`
	PublicKey          []byte      `json:"public_key"` // PKIX DER of a P-256 key
	PushRoute          string      `json:"push_route,omitempty"`
	State              DeviceState `json:"state"`
	UnregisteredAt     time.Time   `json:"unregistered_at,omitzero"`
	UnregisterReason   string      `json:"unregister_reason,omitempty"`
	CreatedAt          time.Time   `json:"created_at"`
	LastSeenAt         time.Time   `json:"last_seen_at,omitzero"`
	EnrolledInvitation string      `json:"-"`
}

// Invitation is a one-use enrollment token for an account. Only the hash of
// its token is stored.
type Invitation struct {
	ID         string    `json:"id"`
	AccountID  string    `json:"account_id"`
	TokenHash  []byte    `json:"-"`
	CreatedBy  string    `json:"created_by"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	UsedAt     time.Time `json:"used_at,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	UsedDevice string    `json:"used_device,omitempty"`
}

// Method is a way a sign-in can be decided.
type Method string

// Sign-in methods decided by a device.
const (
	MethodPush Method = "push" // push with number matching
	MethodQR   Method = "qr"   // the device scanned the QR code on the page
)

// SignInStatus is where a sign-in transaction stands. It leaves pending
// exactly once.
type SignInStatus string

// Sign-in statuses.
const (
	StatusPending   SignInStatus = "pending"
	StatusApproved  SignInStatus = "approved"
	StatusDenied    SignInStatus = "denied"
	StatusExpired   SignInStatus = "expired"
	StatusCancelled SignInStatus = "cancelled"
)

// Final reports whether the status can no longer change.
func (s SignInStatus) Final() bool { return s != StatusPending }

// SignIn is one sign-in transaction.
type SignIn struct {
	ID           string       `json:"id"`
	AccountID    string       `json:"account_id"`
	Client       string       `json:"client"`
	IP           string       `json:"ip,omitempty"`
	UserAgent    string       `json:"user_agent,omitempty"`
	Methods      []Method     `json:"methods"`
	Number       string       `json:"-"` // shown on the sign-in screen only
	QRSecretHash []byte       `json:"-"`
	Nonce        string       `json:"nonce"`
	CreatedAt    time.Time    `json:"created_at"`
	ExpiresAt    time.Time    `json:"expires_at"`
	Status       SignInStatus `json:"status"`
	DecidedAt    time.Time    `json:"decided_at,omitzero"`
	DecidedBy    Method       `json:"decided_by,omitempty"`
	DeviceID     string       `json:"device_id,omitempty"`
	Reason       string       `json:"reason,omitempty"`
	FraudReport  bool         `json:"fraud_report,omitempty"`
}

// HasMethod reports whether m is open for this sign-in.
func (s SignIn) HasMethod(m Method) bool {
	for _, x := range s.Methods {
		if x == m {
			return true
		}
	}
	return false
}

// AuditEvent is one entry of the append-only, hash-chained audit log.
type AuditEvent struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	AccountID string    `json:"account_id,omitempty"`
	DeviceID  string    `json:"device_id,omitempty"`
	SignInID  string    `json:"signin_id,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	PrevHash  []byte    `json:"prev_hash"`
	Hash      []byte    `json:"hash"`
}
