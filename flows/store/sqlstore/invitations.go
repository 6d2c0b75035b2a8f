package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keystep/keystep/flows"
)

// CreateInvitation stores an invitation; ErrConflict if its id or token hash
// is taken, ErrNotFound if its account does not exist.
func (o ops) CreateInvitation(ctx context.Context, inv flows.Invitation) error {
	if inv.ID == "" || inv.AccountID == "" || len(inv.TokenHash) == 0 {
		return fmt.Errorf("create invitation: %w: invitation needs an id, an account and a token hash", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qCreateInvitation, inv.ID, inv.AccountID, inv.TokenHash, inv.CreatedBy,
		unixNano(inv.CreatedAt), unixNano(inv.ExpiresAt), unixNano(inv.UsedAt), unixNano(inv.RevokedAt), inv.UsedDevice)
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create invitation %q: %w", inv.ID, flows.ErrConflict)
	case o.s.d.isForeignKey(err):
		return fmt.Errorf("create invitation %q: account %q: %w", inv.ID, inv.AccountID, flows.ErrNotFound)
	case err != nil:
		return fmt.Errorf("create invitation %q: %w", inv.ID, err)
	}
	return nil
}

func scanInvitation(r scanner) (flows.Invitation, error) {
	var (
		inv                             flows.Invitation
		created, expires, used, revoked int64
	)
	err := r.Scan(&inv.ID, &inv.AccountID, &inv.TokenHash, &inv.CreatedBy, &created, &expires, &used, &revoked,
		&inv.UsedDevice)
	if err != nil {
		return flows.Invitation{}, err
	}
	inv.TokenHash = blob(inv.TokenHash)
	inv.CreatedAt, inv.ExpiresAt = fromUnixNano(created), fromUnixNano(expires)
	inv.UsedAt, inv.RevokedAt = fromUnixNano(used), fromUnixNano(revoked)
	return inv, nil
}

// GetInvitationByTokenHash finds an invitation by the hash of its token.
func (o ops) GetInvitationByTokenHash(ctx context.Context, tokenHash []byte) (flows.Invitation, error) {
	inv, err := scanInvitation(o.queryRow(ctx, qGetInvitationByHash, tokenHash))
	if err != nil {
		return flows.Invitation{}, fmt.Errorf("get invitation by token hash: %w", notFound(err))
	}
	return inv, nil
}

// RedeemInvitation marks an unused, unrevoked invitation that has not
// expired at the given time as used by deviceID, in one conditional update.
// When the update finds nothing to change it reads the invitation to say why:
// ErrNotFound if there is none, ErrAlreadyUsed if it was used, ErrExpired if
// it was revoked (an early end) or has expired.
func (o ops) RedeemInvitation(ctx context.Context, id string, at time.Time, deviceID string) error {
	if at.IsZero() {
		return fmt.Errorf("redeem invitation %q: %w: no time of use", id, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qRedeemInvitation, unixNano(at), deviceID, id, unixNano(at))
	if err != nil {
		return fmt.Errorf("redeem invitation %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	inv, err := scanInvitation(o.queryRow(ctx, qGetInvitation, id))
	switch {
	case err != nil:
		return fmt.Errorf("redeem invitation %q: %w", id, notFound(err))
	case !inv.UsedAt.IsZero():
		return fmt.Errorf("redeem invitation %q: used at %s: %w", id, inv.UsedAt.Format(time.RFC3339), flows.ErrAlreadyUsed)
	case !inv.RevokedAt.IsZero():
		return fmt.Errorf("redeem invitation %q: revoked at %s: %w", id, inv.RevokedAt.Format(time.RFC3339), flows.ErrExpired)
	default:
		return fmt.Errorf("redeem invitation %q: expired at %s: %w", id, inv.ExpiresAt.Format(time.RFC3339), flows.ErrExpired)
	}
}

// RevokeInvitations revokes every open (unused, unrevoked) invitation of an
// account and returns how many it revoked.
func (o ops) RevokeInvitations(ctx context.Context, accountID string, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, fmt.Errorf("revoke invitations of account %q: %w: no time of revocation", accountID, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qRevokeInvitations, unixNano(at), accountID)
	if err != nil {
		return 0, fmt.Errorf("revoke invitations of account %q: %w", accountID, err)
	}
	return int(n), nil
}
