package sqlstore

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/keystep/keystep/flows"
)

func checkAccount(a flows.Account) error {
	switch {
	case a.ID == "":
		return fmt.Errorf("%w: account without id", flows.ErrInvalid)
	case a.Username == "":
		return fmt.Errorf("%w: account %q without username", flows.ErrInvalid, a.ID)
	case !a.State.Valid():
		return fmt.Errorf("%w: account %q has unknown state %q", flows.ErrInvalid, a.ID, a.State)
	}
	return nil
}

// CreateAccount stores a new account; ErrConflict if its id, or its username
// among accounts that are not removed, is taken.
func (o ops) CreateAccount(ctx context.Context, a flows.Account) error {
	if err := checkAccount(a); err != nil {
		return fmt.Errorf("create account: %w", err)
	}
	n, err := o.execN(ctx, qCreateAccount, a.ID, a.Username, usernameKey(a.Username), a.Email, a.Phone,
		a.DisplayName, string(a.State), string(a.StateSource), a.StateReason, unixNano(a.StateChangedAt),
		unixNano(a.CreatedAt), unixNano(a.UpdatedAt))
	if (err == nil && n == 0) || o.s.d.isUnique(err) {
		return fmt.Errorf("create account %q (username %q): %w", a.ID, a.Username, flows.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create account %q: %w", a.ID, err)
	}
	return nil
}

func scanAccount(r scanner) (flows.Account, error) {
	var (
		a                     flows.Account
		state, source         string
		changed, created, upd int64
	)
	err := r.Scan(&a.ID, &a.Username, &a.Email, &a.Phone, &a.DisplayName, &state, &source, &a.StateReason,
		&changed, &created, &upd)
	if err != nil {
		return flows.Account{}, err
	}
	a.State, a.StateSource = flows.AccountState(state), flows.StateSource(source)
	a.StateChangedAt, a.CreatedAt, a.UpdatedAt = fromUnixNano(changed), fromUnixNano(created), fromUnixNano(upd)
	return a, nil
}

// GetAccount returns an account by id, tombstones included.
func (o ops) GetAccount(ctx context.Context, id string) (flows.Account, error) {
	a, err := scanAccount(o.queryRow(ctx, qGetAccount, id))
	if err != nil {
		return flows.Account{}, fmt.Errorf("get account %q: %w", id, notFound(err))
	}
	return a, nil
}

// GetAccountByUsername finds an account that is not removed, comparing
// usernames case-insensitively.
func (o ops) GetAccountByUsername(ctx context.Context, username string) (flows.Account, error) {
	a, err := scanAccount(o.queryRow(ctx, qGetAccountByUsername, usernameKey(username)))
	if err != nil {
		return flows.Account{}, fmt.Errorf("get account by username %q: %w", username, notFound(err))
	}
	return a, nil
}

// ListAccounts returns accounts ordered by username (case-insensitively,
// then by id).
func (o ops) ListAccounts(ctx context.Context, f flows.AccountFilter) ([]flows.Account, error) {
	var (
		as  []flows.Account
		err error
	)
	switch {
	case f.State != "" && !f.State.Valid():
		return nil, fmt.Errorf("list accounts: %w: unknown state %q", flows.ErrInvalid, f.State)
	case f.State != "":
		as, err = queryAll(ctx, o, qListAccountsState, scanAccount, string(f.State))
	case f.IncludeRemoved:
		as, err = queryAll(ctx, o, qListAccountsAll, scanAccount)
	default:
		as, err = queryAll(ctx, o, qListAccountsLive, scanAccount)
	}
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return as, nil
}

// UpdateAccount replaces the mutable fields of an existing account: all but
// its id and CreatedAt.
func (o ops) UpdateAccount(ctx context.Context, a flows.Account) error {
	if err := checkAccount(a); err != nil {
		return fmt.Errorf("update account: %w", err)
	}
	n, err := o.execN(ctx, qUpdateAccount, a.Username, usernameKey(a.Username), a.Email, a.Phone, a.DisplayName,
		string(a.State), string(a.StateSource), a.StateReason, unixNano(a.StateChangedAt), unixNano(a.UpdatedAt), a.ID)
	switch {
	case o.s.d.isUnique(err):
		return fmt.Errorf("update account %q: username %q: %w", a.ID, a.Username, flows.ErrConflict)
	case err != nil:
		return fmt.Errorf("update account %q: %w", a.ID, err)
	case n == 0:
		return fmt.Errorf("update account %q: %w", a.ID, flows.ErrNotFound)
	}
	return nil
}

// SetAccountState moves an account from the state from to the state to,
// recording source, reason and at (as StateChangedAt and UpdatedAt), in one
// conditional update. ErrConflict if the account is no longer in from (a
// concurrent change won), or if to makes its username clash; ErrNotFound if
// there is no such account.
func (o ops) SetAccountState(ctx context.Context, id string, from, to flows.AccountState, source flows.StateSource, reason string, at time.Time) error {
	if !from.Valid() || !to.Valid() {
		return fmt.Errorf("set account %q state: %w: unknown state %q or %q", id, flows.ErrInvalid, from, to)
	}
	n, err := o.execN(ctx, qSetAccountState, string(to), string(source), reason, unixNano(at), unixNano(at), id, string(from))
	switch {
	case o.s.d.isUnique(err):
		return fmt.Errorf("set account %q %s: its username is taken: %w", id, to, flows.ErrConflict)
	case err != nil:
		return fmt.Errorf("set account %q %s: %w", id, to, err)
	case n == 1:
		return nil
	}
	a, err := o.GetAccount(ctx, id)
	if err != nil {
		return fmt.Errorf("set account %q %s: %w", id, to, err)
	}
	return fmt.Errorf("set account %q %s: it is %s, not %s, after a concurrent change: %w", id, to, a.State, from, flows.ErrConflict)
}

// LockActiveAccount checks that an account is active and, inside a
// transaction on PostgreSQL, holds its row until the transaction ends, so
// that writers of one account that take it first run one at a time (SQLite
// runs one write transaction at a time anyway). ErrAccountSuspended,
// ErrAccountRemoved or ErrNotFound otherwise.
func (o ops) LockActiveAccount(ctx context.Context, id string) error {
	n, err := o.execN(ctx, qLockActiveAccount, id)
	if err != nil {
		return fmt.Errorf("lock account %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	a, err := o.GetAccount(ctx, id)
	if err != nil {
		return fmt.Errorf("lock account %q: %w", id, err)
	}
	switch a.State {
	case flows.AccountSuspended:
		return fmt.Errorf("account %q: %w", id, flows.ErrAccountSuspended)
	case flows.AccountRemoved:
		return fmt.Errorf("account %q: %w", id, flows.ErrAccountRemoved)
	}
	return fmt.Errorf("lock account %q: it is %s after a concurrent change: %w", id, a.State, flows.ErrConflict)
}

// PurgeRemovedAccounts deletes accounts removed before the given time, with
// their devices, invitations and sign-ins (the audit log keeps its events),
// and returns their ids, sorted.
func (o ops) PurgeRemovedAccounts(ctx context.Context, removedBefore time.Time) ([]string, error) {
	ids, err := queryAll(ctx, o, qPurgeAccounts, scanString, unixNano(removedBefore))
	if err != nil {
		return nil, fmt.Errorf("purge removed accounts: %w", err)
	}
	sort.Strings(ids)
	return ids, nil
}

func scanString(r scanner) (string, error) {
	var s string
	err := r.Scan(&s)
	return s, err
}
