package flows

import (
	"context"
	"errors"
	"fmt"
)

// Restoring a backup on a new phone re-binds each of its accounts: the new
// phone makes a new key, and the restored (old) key signs the device API
// call that registers the new key and unregisters the old device, in one
// transaction. The backup itself never reaches the server.

// AuditDeviceRebound is the audit action of a re-bind: a device restored
// from a backup took over from the device the backup was made on.
const AuditDeviceRebound = "device.rebound"

// RebindPayload is what a restored device signs with its NEW key to take
// over from oldDeviceID: the server origin, the old device's id and the new
// public key, proving it holds the new private key.
func RebindPayload(origin, oldDeviceID string, newPublicKey []byte) ([]byte, error) {
	return payload("keystep-rebind-v1", origin, oldDeviceID, b64.EncodeToString(newPublicKey))
}

// RebindRequest is what a restored device sends, signed as a whole by the
// restored (old) key through the device API, to move its account to a new key.
type RebindRequest struct {
	PublicKey []byte // the new key: PKIX DER, ECDSA P-256
	Signature []byte // ES256 by the new key over RebindPayload(origin, old device id, PublicKey)
	Name      string // the new device's name; empty: the old device's
	PushRoute string
}

// Rebind moves old's account to a new device key. old is the device whose
// key signed the call (see AuthenticateDevice); r proves the caller also
// holds the new key. In one transaction it registers the new device for
// the same account and unregisters old, so old's signatures are refused
// from then on and the same request can never be replayed. The account must
// be active, and old must still be registered: a phone already unregistered
// by an administrator cannot hand its account on (the user needs a new
// invitation). Bad input changes nothing.
func (s *Service) Rebind(ctx context.Context, old Device, r RebindRequest) (Device, error) {
	if !validID(old.ID) {
		return Device{}, invalidf("rebind: malformed device id")
	}
	if err := checkText("device name", r.Name, false, 128); err != nil {
		return Device{}, fmt.Errorf("rebind: %w", err)
	}
	if err := CheckPushRoute(r.PushRoute); err != nil {
		return Device{}, fmt.Errorf("rebind: %w", err)
	}
	pub, err := ParsePublicKey(r.PublicKey)
	if err != nil {
		return Device{}, fmt.Errorf("rebind: new key: %w", err)
	}
	msg, err := RebindPayload(s.cfg.Origin, old.ID, r.PublicKey)
	if err != nil {
		return Device{}, fmt.Errorf("rebind: %w", err)
	}
	if !VerifyES256(pub, msg, r.Signature) {
		return Device{}, fmt.Errorf("rebind: the new key's signature: %w", ErrBadSignature)
	}
	if oldPub, err := ParsePublicKey(old.PublicKey); err == nil && oldPub.Equal(pub) {
		return Device{}, invalidf("rebind: the new key must not be the restored key; make a new one")
	}
	now := s.now()
	d := Device{ID: NewID(), Name: r.Name, PublicKey: r.PublicKey, PushRoute: r.PushRoute, State: DeviceActive, CreatedAt: now}
	reason := "replaced by restore on device " + d.ID
	actor := "device:" + old.ID
	err = s.write(ctx, func(tx Tx) error {
		cur, err := tx.GetDevice(ctx, old.ID)
		if err != nil {
			return err
		}
		if cur.AccountID != old.AccountID {
			return fmt.Errorf("device %s: %w", cur.ID, ErrWrongAccount)
		}
		a, err := tx.GetAccount(ctx, cur.AccountID)
		if err != nil {
			return err
		}
		if a.State == AccountRemoved {
			return ErrAccountRemoved
		}
		if cur.State != DeviceActive {
			return fmt.Errorf("device %s: %w", cur.ID, ErrDeviceUnregistered)
		}
		if err := usable(a); err != nil {
			return err
		}
		d.AccountID = a.ID
		if d.Name == "" {
			d.Name = cur.Name
		}
		if err := tx.CreateDevice(ctx, d); err != nil {
			return err
		}
		if err := s.unregister(ctx, tx, actor, cur, now, reason); err != nil {
			if errors.Is(err, ErrNotFound) { // unregistered since it was read
				return fmt.Errorf("device %s: %w", cur.ID, ErrDeviceUnregistered)
			}
			return err
		}
		ev := auditAt(now, actor, AuditDeviceRebound)
		ev.AccountID, ev.DeviceID, ev.Detail = a.ID, d.ID, "replaces device "+cur.ID
		_, err = tx.AppendAudit(ctx, ev)
		return err
	}, accountTopic(old.AccountID))
	if err != nil {
		return Device{}, fmt.Errorf("rebind device %s: %w", old.ID, err)
	}
	return d, nil
}
