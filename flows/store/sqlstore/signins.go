package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/keystep/keystep/flows"
)

// CreateSignIn stores a new pending sign-in (an empty Status is stored as
// pending; any other status is ErrInvalid). ErrConflict if its id is taken,
// ErrNotFound if its account does not exist.
func (o ops) CreateSignIn(ctx context.Context, s flows.SignIn) error {
	switch {
	case s.ID == "" || s.AccountID == "":
		return fmt.Errorf("create sign-in: %w: sign-in needs an id and an account", flows.ErrInvalid)
	case s.Status != "" && s.Status != flows.StatusPending:
		return fmt.Errorf("create sign-in %q: %w: a new sign-in is pending, not %q", s.ID, flows.ErrInvalid, s.Status)
	}
	methods, err := joinMethods(s.Methods)
	if err != nil {
		return fmt.Errorf("create sign-in %q: %w", s.ID, err)
	}
	n, err := o.execN(ctx, qCreateSignIn, s.ID, s.AccountID, s.Client, s.IP, s.UserAgent, methods, s.Number,
		s.QRSecretHash, s.Nonce, unixNano(s.CreatedAt), unixNano(s.ExpiresAt), string(flows.StatusPending),
		unixNano(s.DecidedAt), string(s.DecidedBy), s.DeviceID, s.Reason, s.FraudReport)
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create sign-in %q: %w", s.ID, flows.ErrConflict)
	case o.s.d.isForeignKey(err):
		return fmt.Errorf("create sign-in %q: account %q: %w", s.ID, s.AccountID, flows.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create sign-in %q: %w", s.ID, err)
	}
	return nil
}

func scanSignIn(r scanner) (flows.SignIn, error) {
	var (
		s                          flows.SignIn
		methods, status, decidedBy string
		created, expires, decided  int64
	)
	err := r.Scan(&s.ID, &s.AccountID, &s.Client, &s.IP, &s.UserAgent, &methods, &s.Number, &s.QRSecretHash,
		&s.Nonce, &created, &expires, &status, &decided, &decidedBy, &s.DeviceID, &s.Reason, &s.FraudReport)
	if err != nil {
		return flows.SignIn{}, err
	}
	s.Methods = splitMethods(methods)
	s.QRSecretHash = blob(s.QRSecretHash)
	s.Status, s.DecidedBy = flows.SignInStatus(status), flows.Method(decidedBy)
	s.CreatedAt, s.ExpiresAt, s.DecidedAt = fromUnixNano(created), fromUnixNano(expires), fromUnixNano(decided)
	return s, nil
}

// GetSignIn returns a sign-in by id.
func (o ops) GetSignIn(ctx context.Context, id string) (flows.SignIn, error) {
	s, err := scanSignIn(o.queryRow(ctx, qGetSignIn, id))
	if err != nil {
		return flows.SignIn{}, fmt.Errorf("get sign-in %q: %w", id, notFound(err))
	}
	return s, nil
}

// ListPendingSignIns returns an account's pending sign-ins that have not
// expired at now, oldest first (then by id).
func (o ops) ListPendingSignIns(ctx context.Context, accountID string, now time.Time) ([]flows.SignIn, error) {
	ss, err := queryAll(ctx, o, qListPendingSignIns, scanSignIn, accountID, unixNano(now))
	if err != nil {
		return nil, fmt.Errorf("list pending sign-ins of account %q: %w", accountID, err)
	}
	return ss, nil
}

// DecideSignIn moves a pending sign-in to d.Status in one conditional
// update, recording DecidedAt, DecidedBy, DeviceID, Reason and FraudReport.
// A decision with a DeviceID lands only if, in the same statement, that
// device is active and belongs to the sign-in's account and the account is
// active. ErrNotFound if there is no such sign-in, ErrAlreadyDecided if it
// is no longer pending, else ErrAccountSuspended, ErrAccountRemoved or
// ErrDeviceUnregistered.
func (o ops) DecideSignIn(ctx context.Context, d flows.SignIn) error {
	switch d.Status {
	case flows.StatusApproved, flows.StatusDenied, flows.StatusExpired, flows.StatusCancelled:
	default:
		return fmt.Errorf("decide sign-in %q: %w: cannot move to status %q", d.ID, flows.ErrInvalid, d.Status)
	}
	args := []any{string(d.Status), unixNano(d.DecidedAt), string(d.DecidedBy), d.DeviceID, d.Reason, d.FraudReport, d.ID}
	q := qDecideSignIn
	if d.DeviceID != "" {
		q, args = qDecideSignInByDevice, append(args, d.DeviceID)
	}
	n, err := o.execN(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("decide sign-in %q: %w", d.ID, err)
	}
	if n == 1 {
		return nil
	}
	return fmt.Errorf("decide sign-in %q: %w", d.ID, o.whyUndecided(ctx, d))
}

// whyUndecided finds why a decision changed no row: the sign-in is gone or
// decided, or else the account or the device may no longer decide.
func (o ops) whyUndecided(ctx context.Context, d flows.SignIn) error {
	s, err := o.GetSignIn(ctx, d.ID)
	switch {
	case errors.Is(err, flows.ErrNotFound):
		return flows.ErrNotFound
	case err != nil:
		return err
	case s.Status != flows.StatusPending || d.DeviceID == "":
		return flows.ErrAlreadyDecided
	}
	a, err := o.GetAccount(ctx, s.AccountID)
	if err != nil {
		return err
	}
	switch a.State {
	case flows.AccountSuspended:
		return flows.ErrAccountSuspended
	case flows.AccountRemoved:
		return flows.ErrAccountRemoved
	}
	dev, err := o.GetDevice(ctx, d.DeviceID)
	switch {
	case errors.Is(err, flows.ErrNotFound):
		return fmt.Errorf("device %q: %w", d.DeviceID, flows.ErrNotFound)
	case err != nil:
		return err
	case dev.AccountID != s.AccountID:
		return fmt.Errorf("device %q: %w", d.DeviceID, flows.ErrWrongAccount)
	case dev.State != flows.DeviceActive:
		return flows.ErrDeviceUnregistered
	}
	// Every condition holds now: something changed between the update and
	// these reads (PostgreSQL, READ COMMITTED).
	return fmt.Errorf("%w: the sign-in, its account or the device changed meanwhile; try again", flows.ErrConflict)
}

// CancelPendingSignIns cancels every pending sign-in of an account and
// returns their ids, sorted.
func (o ops) CancelPendingSignIns(ctx context.Context, accountID string, at time.Time, reason string) ([]string, error) {
	ids, err := queryAll(ctx, o, qCancelPendingSignIns, scanString, unixNano(at), reason, accountID)
	if err != nil {
		return nil, fmt.Errorf("cancel pending sign-ins of account %q: %w", accountID, err)
	}
	sort.Strings(ids)
	return ids, nil
}

// UseNonce records a single-use value until it expires; ErrReplay if it is
// recorded already (until PurgeNonces forgets it).
func (o ops) UseNonce(ctx context.Context, key string, expires time.Time) error {
	if key == "" {
		return fmt.Errorf("use nonce: %w: empty nonce", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qUseNonce, key, unixNano(expires))
	switch {
	case err == nil && n == 0, o.s.d.isUnique(err):
		return fmt.Errorf("use nonce: %w", flows.ErrReplay)
	case err != nil:
		return fmt.Errorf("use nonce: %w", err)
	}
	return nil
}

// PurgeNonces forgets nonces that expired before the given time.
func (o ops) PurgeNonces(ctx context.Context, before time.Time) error {
	if _, err := o.exec(ctx, qPurgeNonces, unixNano(before)); err != nil {
		return fmt.Errorf("purge nonces: %w", err)
	}
	return nil
}
