package flows

import (
	"context"
	"time"
)

// Store is keystep's persistence. Every backend (flows/store/sqlite,
// flows/store/postgres) implements it and passes the conformance suite in
// flows/storetest. Operations outside InTx each run in their own transaction.
type Store interface {
	Tx
	// InTx runs fn in one transaction: all of its writes land or none do.
	// fn must use only the Tx it is given.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the store's resources.
	Close() error
}

// AccountFilter narrows ListAccounts.
type AccountFilter struct {
	State          AccountState // empty: active and suspended
	IncludeRemoved bool         // with an empty State, include tombstones too
}

// AuditFilter narrows ListAudit. Events come in chain order, or newest
// first with Newest.
type AuditFilter struct {
	AfterSeq  int64
	BeforeSeq int64 // 0: no upper bound
	AccountID string
	Limit     int  // 0 means every event
	Newest    bool // newest first: the Limit newest events of the range
}

// Tx is the set of operations a Store offers, inside or outside a transaction.
type Tx interface {
	FederationTx
	DirectoryTx
	SessionTx

	// CreateAccount stores a new account; ErrConflict if its id, or its
	// username among accounts that are not removed, is taken.
	CreateAccount(ctx context.Context, a Account) error
	// GetAccount returns an account by id, tombstones included.
	GetAccount(ctx context.Context, id string) (Account, error)
	// GetAccountByUsername finds an account that is not removed, comparing
	// usernames case-insensitively.
	GetAccountByUsername(ctx context.Context, username string) (Account, error)
	// ListAccounts returns accounts ordered by username.
	ListAccounts(ctx context.Context, f AccountFilter) ([]Account, error)
	// UpdateAccount replaces the mutable fields of an existing account.
	// It writes the state unconditionally: flows change states with
	// SetAccountState.
	UpdateAccount(ctx context.Context, a Account) error
	// SetAccountState moves an account from the state from (the one the
	// caller read) to the state to, recording source, reason and at (as
	// StateChangedAt and UpdatedAt), atomically. ErrConflict if the account
	// is no longer in from (a concurrent change won) or if to makes its
	// username clash with another account's; ErrNotFound if there is none.
	SetAccountState(ctx context.Context, id string, from, to AccountState, source StateSource, reason string, at time.Time) error
	// LockActiveAccount checks that an account is active and holds it until
	// the transaction ends, so that transactions of one account that call it
	// first run one at a time and none of them acts on an account suspended
	// or removed meanwhile. ErrAccountSuspended, ErrAccountRemoved or
	// ErrNotFound otherwise.
	LockActiveAccount(ctx context.Context, id string) error
	// PurgeRemovedAccounts deletes accounts removed before the given time,
	// with their devices, invitations and sign-ins, and returns their ids.
	PurgeRemovedAccounts(ctx context.Context, removedBefore time.Time) ([]string, error)

	// CreateDevice stores a newly enrolled device.
	CreateDevice(ctx context.Context, d Device) error
	// GetDevice returns a device by id.
	GetDevice(ctx context.Context, id string) (Device, error)
	// ListDevices returns an account's devices, oldest first.
	ListDevices(ctx context.Context, accountID string) ([]Device, error)
	// UnregisterDevice marks an active device unregistered; ErrNotFound if
	// no active device has that id.
	UnregisterDevice(ctx context.Context, id string, at time.Time, reason string) error
	// UpdateDevicePushRoute replaces an active device's push route (empty:
	// none); ErrNotFound if no active device has that id.
	UpdateDevicePushRoute(ctx context.Context, id, route string) error

	// CreateInvitation stores an invitation.
	CreateInvitation(ctx context.Context, inv Invitation) error
	// GetInvitationByTokenHash finds an invitation by the hash of its token.
	GetInvitationByTokenHash(ctx context.Context, tokenHash []byte) (Invitation, error)
	// RedeemInvitation marks an unused, unrevoked invitation that has not
	// expired at the given time as used by deviceID. Exactly one of any
	// number of concurrent calls succeeds; the others get ErrAlreadyUsed
	// (or ErrExpired).
	RedeemInvitation(ctx context.Context, id string, at time.Time, deviceID string) error
	// RevokeInvitations revokes every open invitation of an account and
	// returns how many it revoked.
	RevokeInvitations(ctx context.Context, accountID string, at time.Time) (int, error)

	// CreateSignIn stores a new pending sign-in.
	CreateSignIn(ctx context.Context, s SignIn) error
	// GetSignIn returns a sign-in by id.
	GetSignIn(ctx context.Context, id string) (SignIn, error)
	// ListPendingSignIns returns an account's pending sign-ins that have not
	// expired at now, oldest first.
	ListPendingSignIns(ctx context.Context, accountID string, now time.Time) ([]SignIn, error)
	// DecideSignIn moves a pending sign-in to d.Status, recording
	// DecidedAt, DecidedBy, DeviceID, Reason and FraudReport from d. Exactly
	// one of any number of concurrent calls succeeds; the others get
	// ErrAlreadyDecided. A decision with a DeviceID (a device's) lands only
	// if, atomically with it, that device is active and of the sign-in's
	// account and the account is active: else ErrDeviceUnregistered (or
	// ErrWrongAccount, ErrNotFound for the device), ErrAccountSuspended or
	// ErrAccountRemoved.
	DecideSignIn(ctx context.Context, d SignIn) error
	// CancelPendingSignIns cancels every pending sign-in of an account and
	// returns their ids.
	CancelPendingSignIns(ctx context.Context, accountID string, at time.Time, reason string) ([]string, error)

	// UseNonce records a single-use value until it expires; ErrReplay if it
	// was recorded before.
	UseNonce(ctx context.Context, key string, expires time.Time) error
	// PurgeNonces forgets nonces that expired before the given time.
	PurgeNonces(ctx context.Context, before time.Time) error

	// CreateCode stores a new one-time code (its hash only); ErrConflict if
	// its id is taken, ErrNotFound if its account does not exist.
	CreateCode(ctx context.Context, c Code) error
	// GetCode returns a code by id, whatever its state.
	GetCode(ctx context.Context, id string) (Code, error)
	// ListActiveCodes returns the codes that can still be redeemed at now:
	// the account's override codes and the OTPs of signInID, neither used,
	// revoked, expired nor out of attempts; oldest first.
	ListActiveCodes(ctx context.Context, accountID, signInID string, now time.Time) ([]Code, error)
	// RedeemCode marks an active code used at the given time. Exactly one
	// of any number of concurrent calls succeeds; the others get
	// ErrAlreadyUsed (or ErrExpired for a revoked, expired or exhausted code).
	RedeemCode(ctx context.Context, id string, at time.Time) error
	// RecordCodeAttempt counts one wrong attempt against a code and returns
	// its new count of attempts.
	RecordCodeAttempt(ctx context.Context, id string) (int, error)
	// RevokeCodes revokes the open codes of an account, only those of kind
	// (empty: every kind) and of sign-in signInID (empty: any), and returns
	// how many it revoked.
	RevokeCodes(ctx context.Context, accountID string, kind Method, signInID string, at time.Time) (int, error)
	// PurgeCodes deletes codes that expired before the given time.
	PurgeCodes(ctx context.Context, before time.Time) error

	// GetAccountLimits returns an account's code failures and locks; an
	// account never limited has the zero AccountLimits.
	GetAccountLimits(ctx context.Context, accountID string) (AccountLimits, error)
	// RecordCodeFailure counts one more consecutive code failure of an
	// account, atomically. When the count reaches max, the account's codes
	// are locked until now+lockFor. It returns the new count and the lock's
	// end (zero if not locked).
	RecordCodeFailure(ctx context.Context, accountID string, now time.Time, max int, lockFor time.Duration) (int, time.Time, error)
	// ResetCodeFailures sets an account's consecutive code failures to zero
	// (after a success).
	ResetCodeFailures(ctx context.Context, accountID string) error
	// UnlockCodes clears an account's code failures and lock.
	UnlockCodes(ctx context.Context, accountID string) error
	// BlockPush refuses pushes to an account until the given time (a later
	// block already in place stays).
	BlockPush(ctx context.Context, accountID string, until time.Time) error

	// HitRateLimit counts one hit on key, atomically across every instance
	// that shares the store. A key's window opens at its first hit and lasts
	// window; the first limit hits of a window are allowed, later ones are
	// not and get the time until the window ends.
	HitRateLimit(ctx context.Context, key string, now time.Time, window time.Duration, limit int) (bool, time.Duration, error)
	// PurgeRateLimits forgets windows that ended before the given time.
	PurgeRateLimits(ctx context.Context, before time.Time) error

	// AppendAudit seals ev onto the end of the audit chain (see SealAudit)
	// and returns it as stored.
	AppendAudit(ctx context.Context, ev AuditEvent) (AuditEvent, error)
	// ListAudit returns audit events in chain order.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}
