package flows

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// Audit actions.
const (
	AuditAccountCreated     = "account.created"
	AuditAccountSuspended   = "account.suspended"
	AuditAccountRestored    = "account.restored"
	AuditAccountRemoved     = "account.removed"
	AuditAccountPurged      = "account.purged"
	AuditInvitationCreated  = "invitation.created"
	AuditDeviceEnrolled     = "device.enrolled"
	AuditDeviceUnregistered = "device.unregistered"
	AuditSignInStarted      = "signin.started"
	AuditSignInApproved     = "signin.approved"
	AuditSignInDenied       = "signin.denied"
	AuditSignInFraud        = "signin.fraud_reported"
	AuditSignInExpired      = "signin.expired"
	AuditSignInCancelled    = "signin.cancelled"
)

// SealAudit fills in ev's place in the chain: its sequence number, the hash
// of the event before it, and its own hash. Stores call it while holding the
// chain's lock.
func SealAudit(ev AuditEvent, seq int64, prevHash []byte) AuditEvent {
	ev.Seq = seq
	ev.Time = ev.Time.UTC()
	ev.PrevHash = append([]byte(nil), prevHash...)
	ev.Hash = auditHash(ev)
	return ev
}

// auditHash hashes every field of ev but Hash, each length-prefixed so no two
// different events hash alike.
func auditHash(ev AuditEvent) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte("keystep-audit-v1"))
	binary.BigEndian.PutUint64(n[:], uint64(ev.Seq))
	field(n[:])
	binary.BigEndian.PutUint64(n[:], uint64(ev.Time.UnixNano()))
	field(n[:])
	for _, s := range []string{ev.Actor, ev.Action, ev.AccountID, ev.DeviceID, ev.SignInID, ev.Detail} {
		field([]byte(s))
	}
	field(ev.PrevHash)
	return h.Sum(nil)
}

// AuditVerification is the result of checking the audit chain.
type AuditVerification struct {
	Events  int64  `json:"events"`
	OK      bool   `json:"ok"`
	BadSeq  int64  `json:"bad_seq,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// VerifyAuditChain reads the whole audit log and checks that every event's
// hash is right and links to the one before it, with no gaps.
func VerifyAuditChain(ctx context.Context, store Tx) (AuditVerification, error) {
	var res AuditVerification
	var prev []byte
	var after int64
	for {
		page, err := store.ListAudit(ctx, AuditFilter{AfterSeq: after, Limit: 1000})
		if err != nil {
			return res, fmt.Errorf("read audit log: %w", err)
		}
		if len(page) == 0 {
			res.OK = true
			return res, nil
		}
		for _, ev := range page {
			switch {
			case ev.Seq != after+1:
				res.BadSeq, res.Problem = ev.Seq, fmt.Sprintf("gap: expected event %d", after+1)
			case !bytes.Equal(ev.PrevHash, prev):
				res.BadSeq, res.Problem = ev.Seq, "does not link to the event before it"
			case !bytes.Equal(ev.Hash, auditHash(ev)):
				res.BadSeq, res.Problem = ev.Seq, "hash does not match its content"
			}
			if res.Problem != "" {
				return res, nil
			}
			res.Events++
			prev, after = ev.Hash, ev.Seq
		}
	}
}

// auditAt builds an event stamped with t.
func auditAt(t time.Time, actor, action string) AuditEvent {
	return AuditEvent{Time: t, Actor: actor, Action: action}
}

// AuditKeysRotated is a forced rotation of the server's signing keys.
const AuditKeysRotated = "keys.rotated"

// RecordEvent appends an event about something the flows do not do
// themselves (a signing key rotation) to the audit log.
func (s *Service) RecordEvent(ctx context.Context, actor, action, detail string) error {
	if err := checkText("actor", actor, true, 200); err != nil {
		return err
	}
	if err := checkText("action", action, true, 64); err != nil {
		return err
	}
	ev := auditAt(s.now(), actor, action)
	ev.Detail = clipText(detail, 500)
	if _, err := s.store.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}
