package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/flows"
)

// CreateCode stores a new one-time code; ErrConflict if its id is taken,
// ErrNotFound if its account does not exist, ErrInvalid if it lacks an id,
// an account, a known kind, a hash or an expiry.
func (o ops) CreateCode(ctx context.Context, c flows.Code) error {
	switch {
	case c.ID == "" || c.AccountID == "" || len(c.Hash) == 0 || c.ExpiresAt.IsZero():
		return fmt.Errorf("create code: %w: a code needs an id, an account, a hash and an expiry", flows.ErrInvalid)
	case !c.Kind.IsCode():
		return fmt.Errorf("create code %q: %w: unknown kind %q", c.ID, flows.ErrInvalid, c.Kind)
	case (c.Kind == flows.MethodOverride) != (c.SignInID == ""):
		return fmt.Errorf("create code %q: %w: an override code has no sign-in and an OTP has one", c.ID, flows.ErrInvalid)
	case c.Attempts < 0 || c.MaxAttempts < 0:
		return fmt.Errorf("create code %q: %w: negative attempts", c.ID, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qCreateCode, c.ID, c.AccountID, c.SignInID, string(c.Kind), c.Hash, c.CreatedBy,
		unixNano(c.CreatedAt), unixNano(c.ExpiresAt), unixNano(c.UsedAt), unixNano(c.RevokedAt), c.Attempts, c.MaxAttempts)
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create code %q: %w", c.ID, flows.ErrConflict)
	case o.s.d.isForeignKey(err):
		return fmt.Errorf("create code %q: account %q: %w", c.ID, c.AccountID, flows.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create code %q: %w", c.ID, err)
	}
	return nil
}

func scanCode(r scanner) (flows.Code, error) {
	var (
		c                               flows.Code
		kind                            string
		created, expires, used, revoked int64
	)
	err := r.Scan(&c.ID, &c.AccountID, &c.SignInID, &kind, &c.Hash, &c.CreatedBy, &created, &expires, &used, &revoked,
		&c.Attempts, &c.MaxAttempts)
	if err != nil {
		return flows.Code{}, err
	}
	c.Kind, c.Hash = flows.Method(kind), blob(c.Hash)
	c.CreatedAt, c.ExpiresAt = fromUnixNano(created), fromUnixNano(expires)
	c.UsedAt, c.RevokedAt = fromUnixNano(used), fromUnixNano(revoked)
	return c, nil
}

// GetCode returns a code by id.
func (o ops) GetCode(ctx context.Context, id string) (flows.Code, error) {
	c, err := scanCode(o.queryRow(ctx, qGetCode, id))
	if err != nil {
		return flows.Code{}, fmt.Errorf("get code %q: %w", id, notFound(err))
	}
	return c, nil
}

// ListActiveCodes returns the account's override codes and the OTPs of
// signInID that are neither used, revoked, expired at now nor out of
// attempts, oldest first (then by id).
func (o ops) ListActiveCodes(ctx context.Context, accountID, signInID string, now time.Time) ([]flows.Code, error) {
	cs, err := queryAll(ctx, o, qListActiveCodes, scanCode, accountID, signInID, unixNano(now))
	if err != nil {
		return nil, fmt.Errorf("list active codes of account %q: %w", accountID, err)
	}
	return cs, nil
}

// RedeemCode marks an active code used, in one conditional update. When it
// finds nothing to change it reads the code to say why: ErrNotFound if
// there is none, ErrAlreadyUsed if it was used, ErrExpired if it was
// revoked, has expired or is out of attempts.
func (o ops) RedeemCode(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("redeem code %q: %w: no time of use", id, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qRedeemCode, unixNano(at), id, unixNano(at))
	if err != nil {
		return fmt.Errorf("redeem code %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	c, err := scanCode(o.queryRow(ctx, qGetCode, id))
	switch {
	case err != nil:
		return fmt.Errorf("redeem code %q: %w", id, notFound(err))
	case !c.UsedAt.IsZero():
		return fmt.Errorf("redeem code %q: used at %s: %w", id, c.UsedAt.Format(time.RFC3339), flows.ErrAlreadyUsed)
	case !c.RevokedAt.IsZero():
		return fmt.Errorf("redeem code %q: revoked at %s: %w", id, c.RevokedAt.Format(time.RFC3339), flows.ErrExpired)
	case c.MaxAttempts > 0 && c.Attempts >= c.MaxAttempts:
		return fmt.Errorf("redeem code %q: out of attempts: %w", id, flows.ErrExpired)
	default:
		return fmt.Errorf("redeem code %q: expired at %s: %w", id, c.ExpiresAt.Format(time.RFC3339), flows.ErrExpired)
	}
}

// RecordCodeAttempt adds one wrong attempt to a code and returns the new
// count; ErrNotFound if there is no such code.
func (o ops) RecordCodeAttempt(ctx context.Context, id string) (int, error) {
	var n int
	if err := o.queryRow(ctx, qCodeAttempt, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("count attempt on code %q: %w", id, notFound(err))
	}
	return n, nil
}

// RevokeCodes revokes an account's open codes of kind (empty: all) and of
// sign-in signInID (empty: any) and returns how many it revoked.
func (o ops) RevokeCodes(ctx context.Context, accountID string, kind flows.Method, signInID string, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, fmt.Errorf("revoke codes of account %q: %w: no time of revocation", accountID, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qRevokeCodes, unixNano(at), accountID, string(kind), string(kind), signInID, signInID)
	if err != nil {
		return 0, fmt.Errorf("revoke codes of account %q: %w", accountID, err)
	}
	return int(n), nil
}

// PurgeCodes deletes codes that expired before the given time.
func (o ops) PurgeCodes(ctx context.Context, before time.Time) error {
	if _, err := o.exec(ctx, qPurgeCodes, unixNano(before)); err != nil {
		return fmt.Errorf("purge codes: %w", err)
	}
	return nil
}

// GetAccountLimits returns an account's limits; the zero value if it has
// never been limited (or does not exist).
func (o ops) GetAccountLimits(ctx context.Context, accountID string) (flows.AccountLimits, error) {
	var (
		l              flows.AccountLimits
		locked, pushed int64
	)
	err := o.queryRow(ctx, qGetLimits, accountID).Scan(&l.FailedCodes, &locked, &pushed)
	if errors.Is(err, sql.ErrNoRows) {
		return flows.AccountLimits{}, nil
	}
	if err != nil {
		return flows.AccountLimits{}, fmt.Errorf("get limits of account %q: %w", accountID, err)
	}
	l.LockedUntil, l.PushBlockedUntil = fromUnixNano(locked), fromUnixNano(pushed)
	return l, nil
}

// RecordCodeFailure counts one more consecutive failure in one statement
// and, when the count reaches max, locks the account's codes until
// now+lockFor. It returns the new count and the lock's end if it is later
// than now. ErrNotFound if the account does not exist.
func (o ops) RecordCodeFailure(ctx context.Context, accountID string, now time.Time, max int, lockFor time.Duration) (int, time.Time, error) {
	if max < 1 || lockFor <= 0 || now.IsZero() {
		return 0, time.Time{}, fmt.Errorf("record code failure of %q: %w: needs a time, a limit and a lock duration", accountID, flows.ErrInvalid)
	}
	until := unixNano(now.Add(lockFor))
	first := int64(0)
	if max <= 1 {
		first = until
	}
	var (
		n      int
		locked int64
	)
	err := o.queryRow(ctx, qCodeFailure, accountID, first, max, until).Scan(&n, &locked)
	if o.s.d.isForeignKey(err) {
		return 0, time.Time{}, fmt.Errorf("record code failure: account %q: %w", accountID, flows.ErrNotFound)
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("record code failure of %q: %w", accountID, err)
	}
	end := fromUnixNano(locked)
	if !end.After(now) {
		end = time.Time{}
	}
	return n, end, nil
}

// ResetCodeFailures sets an account's consecutive failures to zero.
func (o ops) ResetCodeFailures(ctx context.Context, accountID string) error {
	if _, err := o.exec(ctx, qResetFailures, accountID); err != nil {
		return fmt.Errorf("reset code failures of %q: %w", accountID, err)
	}
	return nil
}

// UnlockCodes clears an account's failures and code lock.
func (o ops) UnlockCodes(ctx context.Context, accountID string) error {
	if _, err := o.exec(ctx, qUnlockCodes, accountID); err != nil {
		return fmt.Errorf("unlock codes of %q: %w", accountID, err)
	}
	return nil
}

// BlockPush blocks an account's pushes until the given time, keeping a
// later block already in place. ErrNotFound if the account does not exist.
func (o ops) BlockPush(ctx context.Context, accountID string, until time.Time) error {
	if until.IsZero() {
		return fmt.Errorf("block pushes of %q: %w: no end", accountID, flows.ErrInvalid)
	}
	_, err := o.exec(ctx, qBlockPush, accountID, unixNano(until))
	switch {
	case o.s.d.isForeignKey(err):
		return fmt.Errorf("block pushes: account %q: %w", accountID, flows.ErrNotFound)
	case err != nil:
		return fmt.Errorf("block pushes of %q: %w", accountID, err)
	}
	return nil
}

// HitRateLimit counts a hit on key in one upsert: the first hit, or the
// first after the window ended, opens a window of the given length; a hit
// is allowed while the window holds at most limit hits. A refused hit gets
// the time left until the window ends.
func (o ops) HitRateLimit(ctx context.Context, key string, now time.Time, window time.Duration, limit int) (bool, time.Duration, error) {
	if key == "" || window <= 0 || limit < 1 || now.IsZero() {
		return false, 0, fmt.Errorf("rate limit %q: %w: needs a key, a time, a window and a limit", key, flows.ErrInvalid)
	}
	var (
		hits int
		end  int64
	)
	at := unixNano(now)
	err := o.queryRow(ctx, qHitRateLimit, key, unixNano(now.Add(window)), at, at).Scan(&hits, &end)
	if err != nil {
		return false, 0, fmt.Errorf("rate limit %q: %w", key, err)
	}
	if hits <= limit {
		return true, 0, nil
	}
	return false, fromUnixNano(end).Sub(now), nil
}

// PurgeRateLimits forgets windows that ended before the given time.
func (o ops) PurgeRateLimits(ctx context.Context, before time.Time) error {
	if _, err := o.exec(ctx, qPurgeRateLimits, unixNano(before)); err != nil {
		return fmt.Errorf("purge rate limits: %w", err)
	}
	return nil
}
