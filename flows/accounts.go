package flows

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// NewAccount is what an admin (or the directory) gives to create an account.
type NewAccount struct {
	ID          string // stable id; empty: a new UUID
	Username    string
	Email       string
	Phone       string
	DisplayName string
	Source      StateSource // empty: admin
}

// checkText refuses empty-when-required, over-long or control-character text.
func checkText(field, v string, required bool, max int) error {
	if v == "" {
		if required {
			return invalidf("%s is required", field)
		}
		return nil
	}
	if !utf8.ValidString(v) || len(v) > max {
		return invalidf("%s must be valid UTF-8 of at most %d bytes", field, max)
	}
	if strings.TrimSpace(v) != v {
		return invalidf("%s must not start or end with spaces", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return invalidf("%s must not hold control characters", field)
		}
		// Format characters (bidirectional overrides, zero-width ones),
		// line and paragraph separators, private-use and replacement
		// characters would let a text shown on the phone or the step page
		// pretend to be something else.
		if unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Co, unicode.Cs) || r == utf8.RuneError {
			return invalidf("%s must not hold invisible, direction-changing or line-breaking characters", field)
		}
	}
	return nil
}

// CheckEmail accepts an empty string or one plain address.
func CheckEmail(v string) error {
	if err := checkText("email", v, false, 254); err != nil || v == "" {
		return err
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || a.Name != "" {
		return invalidf("email %q is not a plain address", v)
	}
	return nil
}

// CheckPhone accepts an empty string or an E.164 number (+ and 7-15 digits).
func CheckPhone(v string) error {
	if v == "" {
		return nil
	}
	ok := len(v) >= 8 && len(v) <= 16 && v[0] == '+' && v[1] != '0'
	for _, c := range v[1:] {
		ok = ok && c >= '0' && c <= '9'
	}
	if !ok {
		return invalidf("phone %q must be in E.164 form, like +15551234567", v)
	}
	return nil
}

func (n NewAccount) check() error {
	if n.ID != "" && !validID(n.ID) {
		return invalidf("account id %q has characters other than letters, digits, '-', '_', '.'", n.ID)
	}
	if err := checkText("username", n.Username, true, 256); err != nil {
		return err
	}
	if strings.ContainsAny(n.Username, " \t") {
		return invalidf("username must not hold spaces")
	}
	if err := CheckEmail(n.Email); err != nil {
		return err
	}
	if err := CheckPhone(n.Phone); err != nil {
		return err
	}
	if n.Source != "" && n.Source != SourceAdmin && n.Source != SourceDirectory {
		return invalidf("unknown state source %q", n.Source)
	}
	return checkText("display name", n.DisplayName, false, 256)
}

// AddAccount creates an active account.
func (s *Service) AddAccount(ctx context.Context, actor string, n NewAccount) (Account, error) {
	if err := n.check(); err != nil {
		return Account{}, err
	}
	now := s.now()
	a := Account{
		ID: n.ID, Username: n.Username, Email: n.Email, Phone: n.Phone, DisplayName: n.DisplayName,
		State: AccountActive, StateSource: n.Source, StateChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if a.ID == "" {
		a.ID = uuid.NewString()
	}
	if a.StateSource == "" {
		a.StateSource = SourceAdmin
	}
	err := s.write(ctx, func(tx Tx) error {
		if err := tx.CreateAccount(ctx, a); err != nil {
			return err
		}
		ev := auditAt(now, actor, AuditAccountCreated)
		ev.AccountID, ev.Detail = a.ID, a.Username
		_, err := tx.AppendAudit(ctx, ev)
		return err
	})
	if err != nil {
		return Account{}, fmt.Errorf("add account %q: %w", n.Username, err)
	}
	return a, nil
}

// FindAccount resolves an admin's reference to an account: a username (not
// removed) or an account id (tombstones included).
func (s *Service) FindAccount(ctx context.Context, ref string) (Account, error) {
	a, err := s.store.GetAccountByUsername(ctx, ref)
	if isNotFound(err) && validID(ref) {
		a, err = s.store.GetAccount(ctx, ref)
	}
	if err != nil {
		return Account{}, fmt.Errorf("account %q: %w", ref, err)
	}
	return a, nil
}

// ListAccounts lists accounts.
func (s *Service) ListAccounts(ctx context.Context, f AccountFilter) ([]Account, error) {
	as, err := s.store.ListAccounts(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	return as, nil
}

// SuspendAccount refuses an account's sign-ins until it is restored and
// cancels its pending sign-ins.
func (s *Service) SuspendAccount(ctx context.Context, actor, ref string, source StateSource, reason string) (Account, error) {
	return s.setState(ctx, actor, ref, AccountSuspended, source, reason)
}

// RestoreAccount makes a suspended account active again.
func (s *Service) RestoreAccount(ctx context.Context, actor, ref string, source StateSource, reason string) (Account, error) {
	return s.setState(ctx, actor, ref, AccountActive, source, reason)
}

// RemoveAccount removes an account: every device is unregistered at once,
// pending sign-ins are cancelled, open invitations revoked, and a tombstone
// stays for the audit trail until the retention period purges it.
func (s *Service) RemoveAccount(ctx context.Context, actor, ref string, source StateSource, reason string) (Account, error) {
	return s.setState(ctx, actor, ref, AccountRemoved, source, reason)
}

// setState moves an account to the state to. The move is conditional on the
// state read inside the transaction (SetAccountState), so of a concurrent
// restore and removal exactly one lands on the state the other read; the
// loser re-reads once and decides again (a removed account stays removed).
func (s *Service) setState(ctx context.Context, actor, ref string, to AccountState, source StateSource, reason string) (Account, error) {
	if err := checkText("reason", reason, false, 1024); err != nil {
		return Account{}, err
	}
	if source != SourceAdmin && source != SourceDirectory {
		return Account{}, invalidf("unknown state source %q", source)
	}
	found, err := s.FindAccount(ctx, ref)
	if err != nil {
		return Account{}, err
	}
	for attempt := 0; ; attempt++ {
		a, changed, err := s.trySetState(ctx, actor, found.ID, to, source, reason)
		// Moved under us: read it again and decide again. Each conflict
		// means another change won, and states converge (removed is
		// final), so a few attempts are enough even under a burst.
		if errors.Is(err, ErrConflict) && attempt < maxStateAttempts-1 {
			continue
		}
		if errors.Is(err, ErrAccountRemoved) {
			return Account{}, fmt.Errorf("account %q: %w", ref, ErrAccountRemoved)
		}
		if err != nil {
			return Account{}, fmt.Errorf("set account %q %s: %w", ref, to, err)
		}
		if changed {
			s.events.Publish(accountTopic(a.ID))
		}
		return a, nil
	}
}

// maxStateAttempts bounds setState's attempts under concurrent changes.
const maxStateAttempts = 5

// trySetState is one attempt of setState on the account id: it reads the
// account inside the transaction and moves it from the state read. It
// reports whether it changed anything; ErrConflict if a concurrent change
// moved the account between the read and the write.
func (s *Service) trySetState(ctx context.Context, actor, id string, to AccountState, source StateSource, reason string) (Account, bool, error) {
	now := s.now()
	var (
		a         Account
		changed   bool
		cancelled []string
	)
	err := s.store.InTx(ctx, func(tx Tx) error {
		var err error
		changed, cancelled = false, nil
		if a, err = tx.GetAccount(ctx, id); err != nil {
			return err
		}
		switch {
		case a.State == AccountRemoved:
			return ErrAccountRemoved
		case a.State == to:
			return nil // already there: nothing to change
		}
		changed = true
		cancelled, err = s.moveState(ctx, tx, actor, &a, to, source, reason, now)
		return err
	})
	if err != nil {
		return Account{}, false, err
	}
	if changed {
		s.events.Publish(AuditTopic)
	}
	for _, sid := range cancelled {
		s.events.Publish(signInTopic(sid))
	}
	s.cancelledMany(len(cancelled))
	return a, changed, nil
}

// moveState moves the account a, read inside tx, to the state to, with
// everything that goes with it: the audit event, codes revoked when it stops
// being eligible, devices unregistered and invitations revoked when it is
// removed, pending sign-ins cancelled. It updates *a and returns the ids of
// the cancelled sign-ins, for waking their waiters once tx commits.
func (s *Service) moveState(ctx context.Context, tx Tx, actor string, a *Account, to AccountState, source StateSource, reason string, now time.Time) ([]string, error) {
	action := map[AccountState]string{AccountActive: AuditAccountRestored, AccountSuspended: AuditAccountSuspended, AccountRemoved: AuditAccountRemoved}[to]
	if err := tx.SetAccountState(ctx, a.ID, a.State, to, source, reason, now); err != nil {
		return nil, err
	}
	a.State, a.StateSource, a.StateReason, a.StateChangedAt, a.UpdatedAt = to, source, reason, now, now
	ev := auditAt(now, actor, action)
	ev.AccountID, ev.Detail = a.ID, reason
	if _, err := tx.AppendAudit(ctx, ev); err != nil {
		return nil, err
	}
	if err := forgetDirectoryHash(ctx, tx, a.ID); err != nil { // ApplyDirectoryEntry writes its own hash after this
		return nil, err
	}
	if to == AccountActive {
		return nil, nil
	}
	if _, err := tx.RevokeCodes(ctx, a.ID, "", "", now); err != nil { // no code outlives eligibility
		return nil, err
	}
	if to == AccountRemoved {
		if _, err := s.unregisterAll(ctx, tx, actor, a.ID, now, "account removed"); err != nil {
			return nil, err
		}
		if _, err := tx.RevokeInvitations(ctx, a.ID, now); err != nil {
			return nil, err
		}
	}
	return s.cancelPending(ctx, tx, actor, a.ID, now, "account "+string(to))
}

// cancelPending cancels an account's pending sign-ins inside tx, with an
// audit event for each, and returns their ids for waking waiters.
func (s *Service) cancelPending(ctx context.Context, tx Tx, actor, accountID string, now time.Time, reason string) ([]string, error) {
	ids, err := tx.CancelPendingSignIns(ctx, accountID, now, reason)
	if err != nil {
		return nil, err
	}
	if err := auditCancelled(ctx, tx, actor, accountID, ids, now, reason); err != nil {
		return nil, err
	}
	return ids, nil
}
