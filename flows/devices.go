package flows

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Invite issues a one-use enrollment token for an account, revoking any
// older invitation, and returns the invitation and its link. The account
// must be active when the invitation is stored (checked in the same
// transaction), and of concurrent invitations only the last stays open. The token
// itself is never stored; only its hash is.
func (s *Service) Invite(ctx context.Context, actor, ref string) (Invitation, EnrollLink, error) {
	a, err := s.FindAccount(ctx, ref)
	if err != nil {
		return Invitation{}, EnrollLink{}, err
	}
	if err := usable(a); err != nil {
		return Invitation{}, EnrollLink{}, fmt.Errorf("invite %q: %w", ref, err)
	}
	now := s.now()
	token := NewSecret(32)
	inv := Invitation{ID: NewID(), AccountID: a.ID, TokenHash: HashSecret(token), CreatedBy: actor, CreatedAt: now, ExpiresAt: now.Add(s.cfg.InvitationTTL)}
	err = s.write(ctx, func(tx Tx) error {
		// The account must still be active when the invitation lands, and
		// two inviters of one account take turns: each revokes the other's.
		if err := tx.LockActiveAccount(ctx, a.ID); err != nil {
			return err
		}
		if _, err := tx.RevokeInvitations(ctx, a.ID, now); err != nil {
			return err
		}
		if err := tx.CreateInvitation(ctx, inv); err != nil {
			return err
		}
		ev := auditAt(now, actor, AuditInvitationCreated)
		ev.AccountID, ev.Detail = a.ID, inv.ID
		_, err := tx.AppendAudit(ctx, ev)
		return err
	})
	if err != nil {
		return Invitation{}, EnrollLink{}, fmt.Errorf("invite %q: %w", ref, err)
	}
	return inv, EnrollLink{Server: s.cfg.Origin, Token: token}, nil
}

// usable returns the error that refuses a non-active account, or nil.
func usable(a Account) error {
	switch a.State {
	case AccountActive:
		return nil
	case AccountSuspended:
		return ErrAccountSuspended
	default:
		return ErrAccountRemoved
	}
}

// EnrollRequest is what a device sends to enroll with an invitation.
type EnrollRequest struct {
	Token     string
	PublicKey []byte // PKIX DER, ECDSA P-256
	Signature []byte // ES256 over EnrollPayload(origin, Token, PublicKey)
	Name      string
	PushRoute string
}

// Enroll redeems an invitation and registers the device that proves it
// holds the private key of PublicKey.
func (s *Service) Enroll(ctx context.Context, r EnrollRequest) (Device, Account, error) {
	if !validToken(r.Token) {
		return Device{}, Account{}, invalidf("malformed invitation token")
	}
	if err := checkText("device name", r.Name, false, 128); err != nil {
		return Device{}, Account{}, err
	}
	if err := CheckPushRoute(r.PushRoute); err != nil {
		return Device{}, Account{}, err
	}
	pub, err := ParsePublicKey(r.PublicKey)
	if err != nil {
		return Device{}, Account{}, err
	}
	msg, err := EnrollPayload(s.cfg.Origin, r.Token, r.PublicKey)
	if err != nil {
		return Device{}, Account{}, err
	}
	if !VerifyES256(pub, msg, r.Signature) {
		return Device{}, Account{}, fmt.Errorf("enroll: %w", ErrBadSignature)
	}
	inv, err := s.store.GetInvitationByTokenHash(ctx, HashSecret(r.Token))
	if err != nil {
		return Device{}, Account{}, fmt.Errorf("enroll: invitation: %w", err)
	}
	a, err := s.store.GetAccount(ctx, inv.AccountID)
	if err != nil {
		return Device{}, Account{}, fmt.Errorf("enroll: %w", err)
	}
	if err := usable(a); err != nil {
		return Device{}, Account{}, fmt.Errorf("enroll: %w", err)
	}
	now := s.now()
	d := Device{ID: NewID(), AccountID: a.ID, Name: r.Name, PublicKey: r.PublicKey, PushRoute: r.PushRoute, State: DeviceActive, CreatedAt: now, EnrolledInvitation: inv.ID}
	var replaced []string // sign-ins cancelled with the replaced devices
	err = s.write(ctx, func(tx Tx) error {
		replaced = nil
		if err := tx.LockActiveAccount(ctx, a.ID); err != nil { // suspended or removed meanwhile
			return err
		}
		if err := tx.RedeemInvitation(ctx, inv.ID, now, d.ID); err != nil {
			return err
		}
		if s.cfg.ReplaceDevicesOnEnroll {
			// Push requests shown on the replaced devices go with them,
			// cancelled before any audit event (see Decide).
			if replaced, err = s.cancelPushPending(ctx, tx, a.ID, now, "devices replaced by a new enrollment"); err != nil {
				return err
			}
			if _, err := s.unregisterAll(ctx, tx, "device:"+d.ID, a.ID, now, "replaced by new enrollment"); err != nil {
				return err
			}
			if err := auditCancelled(ctx, tx, "device:"+d.ID, a.ID, replaced, now, "devices replaced by a new enrollment"); err != nil {
				return err
			}
		}
		if err := tx.CreateDevice(ctx, d); err != nil {
			return err
		}
		ev := auditAt(now, "device:"+d.ID, AuditDeviceEnrolled)
		ev.AccountID, ev.DeviceID, ev.Detail = a.ID, d.ID, d.Name
		_, err := tx.AppendAudit(ctx, ev)
		return err
	}, accountTopic(a.ID))
	if err != nil {
		return Device{}, Account{}, fmt.Errorf("enroll: %w", err)
	}
	s.cancelledMany(len(replaced))
	for _, id := range replaced {
		s.events.Publish(signInTopic(id))
	}
	return d, a, nil
}

// ListDevices lists an account's devices.
func (s *Service) ListDevices(ctx context.Context, ref string) (Account, []Device, error) {
	a, err := s.FindAccount(ctx, ref)
	if err != nil {
		return Account{}, nil, err
	}
	ds, err := s.store.ListDevices(ctx, a.ID)
	if err != nil {
		return Account{}, nil, fmt.Errorf("list devices of %q: %w", ref, err)
	}
	return a, ds, nil
}

// UnregisterDevice unregisters one device of the account ref: from then on
// every signature by its key is refused. The account's pending sign-ins
// that include push are cancelled (one started on a stolen phone must not
// stay open on the others; the user starts a new one), and if the account
// has no active device left, all of its pending sign-ins are.
func (s *Service) UnregisterDevice(ctx context.Context, actor, ref, deviceID, reason string) (Device, error) {
	if err := checkText("reason", reason, true, 1024); err != nil {
		return Device{}, err
	}
	a, err := s.FindAccount(ctx, ref)
	if err != nil {
		return Device{}, err
	}
	d, err := s.store.GetDevice(ctx, deviceID)
	if err != nil || d.AccountID != a.ID {
		return Device{}, fmt.Errorf("device %q of %q: %w", deviceID, ref, ErrNotFound)
	}
	if d.State != DeviceActive {
		return Device{}, fmt.Errorf("device %q: %w", deviceID, ErrDeviceUnregistered)
	}
	now := s.now()
	var cancelled []string
	// Row writes first, audit events last: a transaction holding the audit
	// chain's lock takes no other (see Decide).
	err = s.write(ctx, func(tx Tx) error {
		if err := tx.UnregisterDevice(ctx, d.ID, now, reason); err != nil {
			return err
		}
		left, err := tx.ListDevices(ctx, a.ID)
		if err != nil {
			return err
		}
		why := "a device was unregistered"
		if slices.ContainsFunc(left, func(x Device) bool { return x.State == DeviceActive }) {
			cancelled, err = s.cancelPushPending(ctx, tx, a.ID, now, why)
		} else {
			why = "no registered device"
			cancelled, err = tx.CancelPendingSignIns(ctx, a.ID, now, why)
		}
		if err != nil {
			return err
		}
		ev := auditAt(now, actor, AuditDeviceUnregistered)
		ev.AccountID, ev.DeviceID, ev.Detail = d.AccountID, d.ID, reason
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
		return auditCancelled(ctx, tx, actor, a.ID, cancelled, now, why)
	}, accountTopic(a.ID))
	if err != nil {
		return Device{}, fmt.Errorf("unregister device %q: %w", deviceID, err)
	}
	s.cancelledMany(len(cancelled))
	for _, id := range cancelled {
		s.events.Publish(signInTopic(id))
	}
	d.State, d.UnregisteredAt, d.UnregisterReason = DeviceUnregistered, now, reason
	return d, nil
}

// cancelPushPending cancels, inside tx, an account's pending sign-ins that
// include push, and returns their ids. It writes no audit event (see
// auditCancelled).
func (s *Service) cancelPushPending(ctx context.Context, tx Tx, accountID string, now time.Time, reason string) ([]string, error) {
	pending, err := tx.ListPendingSignIns(ctx, accountID, now)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, sgn := range pending {
		if !sgn.HasMethod(MethodPush) {
			continue
		}
		d := sgn
		d.Status, d.DecidedAt, d.Reason = StatusCancelled, now, reason
		switch err := tx.DecideSignIn(ctx, d); {
		case errors.Is(err, ErrAlreadyDecided):
			continue // decided meanwhile
		case err != nil:
			return nil, err
		}
		ids = append(ids, sgn.ID)
	}
	return ids, nil
}

// auditCancelled writes the audit event of each cancelled sign-in.
func auditCancelled(ctx context.Context, tx Tx, actor, accountID string, ids []string, now time.Time, reason string) error {
	for _, id := range ids {
		ev := auditAt(now, actor, AuditSignInCancelled)
		ev.AccountID, ev.SignInID, ev.Detail = accountID, id, reason
		if _, err := tx.AppendAudit(ctx, ev); err != nil {
			return err
		}
	}
	return nil
}

// UnregisterAllDevices unregisters every active device of an account (a
// lost phone when the admin does not know which) and cancels its pending
// sign-ins. It returns how many devices it unregistered.
func (s *Service) UnregisterAllDevices(ctx context.Context, actor, ref, reason string) (int, error) {
	if err := checkText("reason", reason, true, 1024); err != nil {
		return 0, err
	}
	a, err := s.FindAccount(ctx, ref)
	if err != nil {
		return 0, err
	}
	now := s.now()
	var n int
	var cancelled []string
	err = s.write(ctx, func(tx Tx) error {
		var err error
		if n, err = s.unregisterAll(ctx, tx, actor, a.ID, now, reason); err != nil {
			return err
		}
		cancelled, err = s.cancelPending(ctx, tx, actor, a.ID, now, "no registered device")
		return err
	}, accountTopic(a.ID))
	if err != nil {
		return 0, fmt.Errorf("unregister devices of %q: %w", ref, err)
	}
	s.cancelledMany(len(cancelled))
	for _, id := range cancelled {
		s.events.Publish(signInTopic(id))
	}
	return n, nil
}

// unregisterAll unregisters every active device of an account inside tx
// and returns how many it unregistered.
func (s *Service) unregisterAll(ctx context.Context, tx Tx, actor, accountID string, now time.Time, reason string) (int, error) {
	ds, err := tx.ListDevices(ctx, accountID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range ds {
		if d.State == DeviceActive {
			if err := s.unregister(ctx, tx, actor, d, now, reason); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

func (s *Service) unregister(ctx context.Context, tx Tx, actor string, d Device, now time.Time, reason string) error {
	if err := tx.UnregisterDevice(ctx, d.ID, now, reason); err != nil {
		return err
	}
	ev := auditAt(now, actor, AuditDeviceUnregistered)
	ev.AccountID, ev.DeviceID, ev.Detail = d.AccountID, d.ID, reason
	_, err := tx.AppendAudit(ctx, ev)
	return err
}

// DeviceProof is the signature a device puts on a device API call.
type DeviceProof struct {
	DeviceID  string
	Method    string // HTTP method
	PathQuery string // request path with its query
	Time      time.Time
	Nonce     string
	Body      []byte
	Signature []byte // ES256 over RequestPayload(...)
}

// AuthenticateDevice checks a device API call: the device exists, the
// signature verifies with its key, the time is within the allowed skew and
// the nonce was never seen. Only then does it tell an unregistered device
// (ErrDeviceUnregistered, or ErrAccountRemoved when its account is gone)
// that it is refused, so a stranger learns nothing.
func (s *Service) AuthenticateDevice(ctx context.Context, p DeviceProof) (Device, Account, error) {
	if !validID(p.DeviceID) || len(p.Nonce) < 16 || len(p.Nonce) > 128 {
		return Device{}, Account{}, fmt.Errorf("device proof: %w", ErrBadSignature)
	}
	d, err := s.store.GetDevice(ctx, p.DeviceID)
	if isNotFound(err) {
		// Spend the time a verification takes, so timing does not tell
		// whether the device id exists.
		VerifyES256(&decoyKey.PublicKey, []byte(p.Nonce), p.Signature)
		return Device{}, Account{}, fmt.Errorf("device proof: %w", ErrBadSignature)
	}
	if err != nil {
		return Device{}, Account{}, fmt.Errorf("device proof: %w", err)
	}
	pub, err := ParsePublicKey(d.PublicKey)
	if err != nil {
		return Device{}, Account{}, fmt.Errorf("device %s key: %w", d.ID, err)
	}
	msg, err := RequestPayload(s.cfg.Origin, p.Method, p.PathQuery, p.Time, p.Nonce, p.Body)
	if err != nil || !VerifyES256(pub, msg, p.Signature) {
		return Device{}, Account{}, fmt.Errorf("device proof: %w", ErrBadSignature)
	}
	now := s.now()
	if skew := now.Sub(p.Time); skew > s.cfg.MaxClockSkew || skew < -s.cfg.MaxClockSkew {
		return Device{}, Account{}, fmt.Errorf("device proof: time is %s off the server's: %w", skew.Round(time.Second), ErrExpired)
	}
	if err := s.store.UseNonce(ctx, "req:"+d.ID+":"+p.Nonce, now.Add(2*s.cfg.MaxClockSkew)); err != nil {
		return Device{}, Account{}, fmt.Errorf("device proof: %w", err)
	}
	a, err := s.store.GetAccount(ctx, d.AccountID)
	if err != nil {
		return Device{}, Account{}, fmt.Errorf("device %s account: %w", d.ID, err)
	}
	if a.State == AccountRemoved {
		return d, a, fmt.Errorf("device %s: %w", d.ID, ErrAccountRemoved)
	}
	if d.State != DeviceActive {
		return d, a, fmt.Errorf("device %s: %w", d.ID, ErrDeviceUnregistered)
	}
	return d, a, nil
}

// decoyKey is verified against when a device id is unknown.
var decoyKey = func() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic("keystep: generate decoy key: " + err.Error())
	}
	return k
}()

// activeDevice loads a device that may decide for accountID.
func (s *Service) activeDevice(ctx context.Context, deviceID, accountID string) (Device, *ecdsa.PublicKey, error) {
	d, err := s.store.GetDevice(ctx, deviceID)
	if err != nil {
		return Device{}, nil, fmt.Errorf("device %q: %w", deviceID, err)
	}
	if d.State != DeviceActive {
		return Device{}, nil, fmt.Errorf("device %s: %w", d.ID, ErrDeviceUnregistered)
	}
	if d.AccountID != accountID {
		return Device{}, nil, fmt.Errorf("device %s: %w", d.ID, ErrWrongAccount)
	}
	pub, err := ParsePublicKey(d.PublicKey)
	if err != nil {
		return Device{}, nil, fmt.Errorf("device %s key: %w", d.ID, err)
	}
	return d, pub, nil
}
