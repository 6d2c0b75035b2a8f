package flows

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"time"
)

// AuditAccountUpdated is a change of an account's username, email, phone or
// display name (by the directory).
const AuditAccountUpdated = "account.updated"

// DirectoryResult says what ApplyDirectoryEntry or RemoveDirectoryEntry did
// to the account.
type DirectoryResult struct {
	Account   Account
	Created   bool // a new account
	Updated   bool // its username, email, phone or display name changed
	Suspended bool
	Restored  bool
	Removed   bool
}

// Changed reports whether the account itself changed.
func (r DirectoryResult) Changed() bool {
	return r.Created || r.Updated || r.Suspended || r.Restored || r.Removed
}

// errUsernameTaken is the conflict of a directory entry whose username
// another account holds; retrying does not help.
var errUsernameTaken = fmt.Errorf("username is taken by another account: %w", ErrConflict)

// Check reports what makes the entry unfit to apply (ErrInvalid), or nil.
func (e DirectoryEntry) Check() error {
	if !validID(e.ExternalID) {
		return invalidf("directory id %q has characters other than letters, digits, '-', '_', '.'", e.ExternalID)
	}
	if e.State != AccountActive && e.State != AccountSuspended {
		return invalidf("a directory entry is active or suspended, not %q", e.State)
	}
	if err := checkText("dn", e.DN, false, 2048); err != nil {
		return err
	}
	if err := checkText("reason", e.Reason, false, 1024); err != nil {
		return err
	}
	return NewAccount{Username: e.Username, Email: e.Email, Phone: e.Phone, DisplayName: e.DisplayName}.check()
}

// ApplyDirectoryEntry makes the account linked to the entry e of the
// directory source match it, in one transaction: a new entry becomes an
// account (its id is the entry's stable id when that is free), changed
// attributes are written, and the account is suspended or restored as the
// entry says. The directory restores only what it suspended: an account an
// admin suspended stays suspended. An entry whose account was removed gets
// a new account (the tombstone stays for the audit trail). hash is stored
// on the link so that the caller can skip unchanged entries next time, and
// run is recorded as the run that saw it. ErrConflict if the username
// belongs to another account.
func (s *Service) ApplyDirectoryEntry(ctx context.Context, actor, source string, e DirectoryEntry, hash []byte, run string) (DirectoryResult, error) {
	if err := e.Check(); err != nil {
		return DirectoryResult{}, fmt.Errorf("directory entry %q: %w", e.DN, err)
	}
	if err := checkText("source", source, true, 64); err != nil {
		return DirectoryResult{}, err
	}
	var (
		res       DirectoryResult
		cancelled []string
	)
	for attempt := 0; ; attempt++ {
		now := s.now()
		err := s.store.InTx(ctx, func(tx Tx) error {
			var err error
			res, cancelled = DirectoryResult{}, nil
			res, cancelled, err = s.applyEntry(ctx, tx, actor, source, e, hash, run, now)
			return err
		})
		// A concurrent state change (an admin, a live check) moved the
		// account between our read and write: read it again.
		if errors.Is(err, ErrConflict) && !errors.Is(err, errUsernameTaken) && attempt < maxStateAttempts-1 {
			continue
		}
		if err != nil {
			return DirectoryResult{}, fmt.Errorf("apply directory entry %q (%s): %w", e.Username, e.ExternalID, err)
		}
		break
	}
	if res.Changed() {
		s.events.Publish(AuditTopic)
		s.events.Publish(accountTopic(res.Account.ID))
	}
	for _, sid := range cancelled {
		s.events.Publish(signInTopic(sid))
	}
	s.cancelledMany(len(cancelled))
	return res, nil
}

// applyEntry is ApplyDirectoryEntry inside tx.
func (s *Service) applyEntry(ctx context.Context, tx Tx, actor, source string, e DirectoryEntry, hash []byte, run string, now time.Time) (DirectoryResult, []string, error) {
	var res DirectoryResult
	links, err := tx.GetDirectoryLinks(ctx, source, []string{e.ExternalID})
	if err != nil {
		return res, nil, err
	}
	link := DirectoryLink{Source: source, ExternalID: e.ExternalID, DN: e.DN, Hash: hash, SeenRun: run, UpdatedAt: now}
	var a Account
	if len(links) == 1 {
		if a, err = tx.GetAccount(ctx, links[0].AccountID); err != nil && !isNotFound(err) {
			return res, nil, err
		}
	}
	if a.ID == "" || a.State == AccountRemoved {
		if a, err = s.createFromEntry(ctx, tx, actor, source, e, now); err != nil {
			return res, nil, err
		}
		res.Account, res.Created = a, true
		link.AccountID = a.ID
		return res, nil, tx.PutDirectoryLink(ctx, link)
	}
	res.Account = a
	link.AccountID = a.ID
	if a.Username != e.Username || a.Email != e.Email || a.Phone != e.Phone || a.DisplayName != e.DisplayName {
		before := a.Username
		a.Username, a.Email, a.Phone, a.DisplayName, a.UpdatedAt = e.Username, e.Email, e.Phone, e.DisplayName, now
		if err := tx.UpdateAccount(ctx, a); err != nil {
			if errors.Is(err, ErrConflict) {
				return res, nil, fmt.Errorf("%q: %w", e.Username, errUsernameTaken)
			}
			return res, nil, err
		}
		ev := auditAt(now, actor, AuditAccountUpdated)
		ev.AccountID, ev.Detail = a.ID, clipText(updateDetail(before, e.Username, source), 500)
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return res, nil, err
		}
		res.Updated = true
	}
	var cancelled []string
	switch {
	case e.State == AccountSuspended && a.State == AccountActive:
		if cancelled, err = s.moveState(ctx, tx, actor, &a, AccountSuspended, SourceDirectory, e.Reason, now); err != nil {
			return res, nil, err
		}
		res.Suspended = true
	case e.State == AccountSuspended && a.State == AccountSuspended && a.StateSource == SourceDirectory && a.StateReason != e.Reason:
		// Still suspended, for another reason: say so, without an event.
		if err := tx.SetAccountState(ctx, a.ID, a.State, a.State, SourceDirectory, e.Reason, a.StateChangedAt); err != nil {
			return res, nil, err
		}
		a.StateReason = e.Reason
	case e.State == AccountActive && a.State == AccountSuspended && a.StateSource == SourceDirectory:
		if cancelled, err = s.moveState(ctx, tx, actor, &a, AccountActive, SourceDirectory, "active in the directory", now); err != nil {
			return res, nil, err
		}
		res.Restored = true
	}
	res.Account = a
	if !res.Changed() && len(links) == 1 && links[0].DN == e.DN && bytes.Equal(links[0].Hash, hash) && links[0].SeenRun == run {
		return res, nil, nil
	}
	return res, cancelled, tx.PutDirectoryLink(ctx, link)
}

// createFromEntry creates the account of a new directory entry, with the
// entry's state.
func (s *Service) createFromEntry(ctx context.Context, tx Tx, actor, source string, e DirectoryEntry, now time.Time) (Account, error) {
	a := Account{
		ID: e.ExternalID, Username: e.Username, Email: e.Email, Phone: e.Phone, DisplayName: e.DisplayName,
		State: AccountActive, StateSource: SourceDirectory, StateChangedAt: now, CreatedAt: now, UpdatedAt: now,
	}
	if e.State == AccountSuspended {
		a.State, a.StateReason = AccountSuspended, e.Reason
	}
	// The stable id becomes the account id unless a tombstone (an earlier
	// life of the entry) holds it.
	if _, err := tx.GetAccount(ctx, a.ID); err == nil {
		a.ID = NewID()
	} else if !isNotFound(err) {
		return Account{}, err
	}
	if err := tx.CreateAccount(ctx, a); err != nil {
		if errors.Is(err, ErrConflict) {
			return Account{}, fmt.Errorf("%q: %w", e.Username, errUsernameTaken)
		}
		return Account{}, err
	}
	ev := auditAt(now, actor, AuditAccountCreated)
	ev.AccountID, ev.Detail = a.ID, clipText(a.Username+" from directory "+source, 500)
	if _, err := tx.AppendAudit(ctx, ev); err != nil {
		return Account{}, err
	}
	if a.State == AccountSuspended {
		ev := auditAt(now, actor, AuditAccountSuspended)
		ev.AccountID, ev.Detail = a.ID, e.Reason
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return Account{}, err
		}
	}
	return a, nil
}

func updateDetail(before, after, source string) string {
	if before != after {
		return "renamed from " + before + " to " + after + " by directory " + source
	}
	return "attributes changed in directory " + source
}

// RemoveDirectoryEntry removes the account linked to the entry externalID
// of source (it is gone from the directory, or out of the sync's scope):
// its devices are unregistered at once and its pending sign-ins cancelled.
// An entry with no link, or whose account is removed already, changes
// nothing.
func (s *Service) RemoveDirectoryEntry(ctx context.Context, actor, source, externalID, reason string) (DirectoryResult, error) {
	if err := checkText("reason", reason, false, 1024); err != nil {
		return DirectoryResult{}, err
	}
	links, err := s.store.GetDirectoryLinks(ctx, source, []string{externalID})
	if err != nil {
		return DirectoryResult{}, fmt.Errorf("remove directory entry %s: %w", externalID, err)
	}
	if len(links) == 0 {
		return DirectoryResult{}, nil
	}
	a, err := s.setState(ctx, actor, links[0].AccountID, AccountRemoved, SourceDirectory, reason)
	if errors.Is(err, ErrAccountRemoved) || isNotFound(err) {
		return DirectoryResult{}, nil
	}
	if err != nil {
		return DirectoryResult{}, fmt.Errorf("remove directory entry %s: %w", externalID, err)
	}
	return DirectoryResult{Account: a, Removed: true}, nil
}

// AccountChecker looks an account up in its source of truth when a sign-in
// begins, so that a change there is effective before the next sync.
type AccountChecker interface {
	// CheckAccount returns the account's state at its source now and why.
	// ok is false when it has no opinion (the account is not from a
	// directory, or the look-up is off, or it failed and the source fails
	// open). An error means the source could not answer and the sign-in
	// must be refused.
	CheckAccount(ctx context.Context, a Account) (state AccountState, reason string, ok bool, err error)
}

// ErrDirectoryUnavailable refuses a sign-in whose live directory check
// could not be made (fail-closed).
var ErrDirectoryUnavailable = errors.New("the directory cannot confirm the account")

// WithAccountChecker makes Begin ask c about the account before it starts a
// sign-in: an account c says is suspended or removed is moved there (state
// source directory) and refused.
func WithAccountChecker(c AccountChecker) Option { return func(s *Service) { s.checker = c } }

// liveCheck asks the account checker, if any, about a before a sign-in.
func (s *Service) liveCheck(ctx context.Context, a Account) error {
	if s.checker == nil {
		return nil
	}
	state, reason, ok, err := s.checker.CheckAccount(ctx, a)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDirectoryUnavailable, err)
	}
	if !ok || state == AccountActive {
		return nil
	}
	if state != AccountSuspended && state != AccountRemoved {
		return fmt.Errorf("%w: unknown state %q", ErrDirectoryUnavailable, state)
	}
	if _, err := s.setState(ctx, "directory", a.ID, state, SourceDirectory, reason); err != nil && !errors.Is(err, ErrAccountRemoved) {
		return fmt.Errorf("%w: %w", ErrDirectoryUnavailable, err)
	}
	if state == AccountSuspended {
		return ErrAccountSuspended
	}
	return ErrAccountRemoved
}

// forgetDirectoryHash makes the next sync apply the directory entry of an
// account whose state just changed outside the sync (an admin, the live
// check, a removal), even though the entry did not change: the directory
// decides who is suspended and who exists, so an admin's restore of an
// account the directory suspends lasts until the next sync (an admin's
// suspension lasts, since the directory restores only what it suspended), a
// live check's suspension is lifted by the next sync if the entry is fine
// again, and an entry still in the directory after its account was removed
// gets a new account, without devices.
func forgetDirectoryHash(ctx context.Context, tx Tx, accountID string) error {
	l, err := tx.GetDirectoryLinkByAccount(ctx, accountID)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	l.Hash = nil
	return tx.PutDirectoryLink(ctx, l)
}

// EmailInvitation invites an account (see Invite) and emails the
// enrollment link to its address: how accounts the directory creates are
// invited. It needs an email sender and an account with an email address.
func (s *Service) EmailInvitation(ctx context.Context, actor, ref string) (Invitation, error) {
	if s.email == nil {
		return Invitation{}, fmt.Errorf("email invitation: no email sender is configured: %w", ErrMethodNotAllowed)
	}
	a, err := s.FindAccount(ctx, ref)
	if err != nil {
		return Invitation{}, err
	}
	if a.Email == "" {
		return Invitation{}, invalidf("account %q has no email address", a.Username)
	}
	inv, link, err := s.Invite(ctx, actor, a.ID)
	if err != nil {
		return Invitation{}, err
	}
	m := invitationEmail(a, link, inv.ExpiresAt)
	if err := s.email.SendEmail(ctx, m); err != nil {
		return inv, fmt.Errorf("email invitation to %s: %w", MaskEmail(a.Email), err)
	}
	return inv, nil
}

// invitationEmail is the message that carries an enrollment link.
func invitationEmail(a Account, link EnrollLink, expires time.Time) Email {
	name := a.DisplayName
	if name == "" {
		name = a.Username
	}
	l := link.String()
	until := expires.UTC().Format("2 January 2006 15:04 MST")
	text := "Hello " + name + ",\n\n" +
		"Your organisation signs you in with keystep: you approve sign-ins on your phone instead of typing a password.\n\n" +
		"To set it up, install the keystep app, then open this link on your phone (or scan it with the app):\n\n" +
		l + "\n\nThe link works once, until " + until + ". If you did not expect this message, tell your IT administrator.\n"
	body := "<p>Hello " + html.EscapeString(name) + ",</p>" +
		"<p>Your organisation signs you in with keystep: you approve sign-ins on your phone instead of typing a password.</p>" +
		"<p>To set it up, install the keystep app, then open this link on your phone (or scan it with the app):</p>" +
		"<p><a href=\"" + html.EscapeString(l) + "\">" + html.EscapeString(l) + "</a></p>" +
		"<p>The link works once, until " + html.EscapeString(until) + ". If you did not expect this message, tell your IT administrator.</p>"
	return Email{To: a.Email, Subject: "Set up keystep on your phone", Text: text, HTML: body}
}
