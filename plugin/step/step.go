// Package step is the Go face of keystep's passwordless step for a host
// identity provider: the Step and Accounts interfaces, and Local, which
// runs them in process over flows. The host SDK (plugin/host) gives the
// same interfaces through the keystep binary launched as a go-plugin
// plugin, so a host can switch between the two without other changes.
//
// Errors are flows' own (errors.Is(err, flows.ErrAccountSuspended), a
// *flows.RateLimitError with its RetryAfter …), in process and through the
// plugin alike.
package step

import (
	"context"
	"time"

	"github.com/keystep/keystep/flows"
)

// Step runs the passwordless step for a user the host has named.
type Step interface {
	// Begin starts a sign-in transaction: the user's phone is asked
	// (push), and the number, the QR code and the open fallbacks are
	// returned for the host's page.
	Begin(ctx context.Context, r BeginRequest) (Transaction, error)
	// Await waits until the transaction is final and returns its result;
	// progress, if not nil, gets each status from now on, the current one
	// first.
	Await(ctx context.Context, id string, progress func(Result)) (Result, error)
	// SendCode sends a one-time code by SMS or email.
	SendCode(ctx context.Context, id string, channel flows.Method) (SentCode, error)
	// SubmitCode checks a code the user typed (a one-time code, or an
	// administrative override code); ip is the user's address.
	SubmitCode(ctx context.Context, id, code, ip string) (Result, error)
	// Cancel ends a pending transaction.
	Cancel(ctx context.Context, id, reason string) (Result, error)
}

// Accounts is the admin's account operations.
type Accounts interface {
	// AddAccount creates an active account (without a device: Invite
	// enrolls one).
	AddAccount(ctx context.Context, n NewAccount) (Account, error)
	GetAccount(ctx context.Context, ref AccountRef) (Account, error)
	Invite(ctx context.Context, ref AccountRef) (Invitation, error)
	Suspend(ctx context.Context, ref AccountRef, reason string) (Account, error)
	Restore(ctx context.Context, ref AccountRef, reason string) (Account, error)
	Remove(ctx context.Context, ref AccountRef, reason string) (Account, error)
	// Unregister unregisters one device, or every device of the account
	// when deviceID is empty.
	Unregister(ctx context.Context, ref AccountRef, deviceID, reason string) (Account, error)
	// IssueOverride makes a one-use administrative override code.
	IssueOverride(ctx context.Context, ref AccountRef, reason string) (OverrideCode, error)
}

// BeginRequest names the user and the sign-in.
type BeginRequest struct {
	AccountID string // keystep's stable account id, or
	Username  string // the username (exactly one of the two)
	Client    string // the app the user signs in to, shown on the phone
	IP        string // the user's address, shown on the phone
	UserAgent string
	// Methods are the open methods (push, qr, sms, email, override);
	// empty: push and QR.
	Methods []flows.Method
	// BindingMessage is a short text the phone shows next to the app's
	// name (such as the host's own transaction reference).
	BindingMessage string
}

// Transaction is a begun sign-in, as the host's page shows it.
type Transaction struct {
	ID        string
	ExpiresAt time.Time
	Number    string // the number the user matches on the phone (empty when push is not open)
	QRPayload string // what the QR code encodes (empty when QR is not open)
	QRPNG     []byte // the QR code as a PNG image (nil when QR is not open)
	// Fallbacks are the code methods that are open and that the server can
	// deliver (sms, email) or that need no delivery (override).
	Fallbacks []flows.Method
	Methods   []flows.Method // every open method
	// PushSuppressed says why push was left out (flows.PushSuppressedRate,
	// flows.PushSuppressedFraud); empty otherwise.
	PushSuppressed string
}

// Result is where a transaction stands.
type Result struct {
	ID          string
	AccountID   string
	Status      flows.SignInStatus
	Method      flows.Method // how it was decided
	DecidedAt   time.Time
	Reason      string
	FraudReport bool // the user said they did not start it
}

// Approved reports whether the user proved themselves.
func (r Result) Approved() bool { return r.Status == flows.StatusApproved }

// SentCode says where a code went (masked) and when another may be sent.
type SentCode = flows.SentCode

// AccountRef names an account by id or username (exactly one).
type AccountRef struct {
	AccountID string
	Username  string
}

// ref is the reference flows takes: an id or a username.
func (r AccountRef) ref() string {
	if r.AccountID != "" {
		return r.AccountID
	}
	return r.Username
}

// Account is an account as the admin sees it.
type Account struct {
	ID          string
	Username    string
	Email       string
	DisplayName string
	State       flows.AccountState
	StateSource flows.StateSource
	StateReason string
	Devices     int // registered devices
}

// NewAccount is an account to create.
type NewAccount struct {
	Username    string
	Email       string // for email codes and alerts
	Phone       string // E.164, for SMS codes
	DisplayName string
}

// Invitation is an enrollment link for the keystep app.
type Invitation struct {
	Link      string
	ExpiresAt time.Time
}

// OverrideCode is an administrative override code, shown once.
type OverrideCode struct {
	Code      string
	ExpiresAt time.Time
}
