package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"

	"github.com/keystep/keystep/flows"
)

// AppendAudit seals ev onto the end of the audit chain and returns it as
// stored. Inside a transaction it takes the chain's lock until the
// transaction ends, so call it last in a transaction to keep other writers
// waiting as briefly as possible; the Store's own AppendAudit opens a
// transaction of its own.
func (o ops) AppendAudit(ctx context.Context, ev flows.AuditEvent) (flows.AuditEvent, error) {
	if o.tx == nil {
		return o.s.AppendAudit(ctx, ev)
	}
	if o.s.stmts[qAuditLock] != nil {
		if _, err := o.exec(ctx, qAuditLock); err != nil {
			return flows.AuditEvent{}, fmt.Errorf("append audit event: lock the chain: %w", err)
		}
	}
	var (
		lastSeq  int64
		lastHash []byte
	)
	err := o.queryRow(ctx, qAuditHead).Scan(&lastSeq, &lastHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return flows.AuditEvent{}, fmt.Errorf("append audit event: read the chain's head: %w", err)
	}
	ev.Time = ev.Time.Round(0) // no monotonic reading: what is returned is what is stored
	ev = flows.SealAudit(ev, lastSeq+1, blob(lastHash))
	_, err = o.exec(ctx, qAuditInsert, ev.Seq, unixNano(ev.Time), ev.Actor, ev.Action, ev.AccountID, ev.DeviceID,
		ev.SignInID, ev.Detail, ev.PrevHash, ev.Hash)
	if err != nil {
		return flows.AuditEvent{}, fmt.Errorf("append audit event %d: %w", ev.Seq, err)
	}
	return ev, nil
}

func scanAudit(r scanner) (flows.AuditEvent, error) {
	var (
		ev flows.AuditEvent
		at int64
	)
	err := r.Scan(&ev.Seq, &at, &ev.Actor, &ev.Action, &ev.AccountID, &ev.DeviceID, &ev.SignInID, &ev.Detail,
		&ev.PrevHash, &ev.Hash)
	if err != nil {
		return flows.AuditEvent{}, err
	}
	ev.Time = fromUnixNano(at)
	ev.PrevHash, ev.Hash = blob(ev.PrevHash), blob(ev.Hash)
	return ev, nil
}

// ListAudit returns audit events in chain order (newest first with
// f.Newest): after f.AfterSeq and before f.BeforeSeq (if set), of
// f.AccountID if set, at most f.Limit if positive.
func (o ops) ListAudit(ctx context.Context, f flows.AuditFilter) ([]flows.AuditEvent, error) {
	if f.Limit < 0 {
		return nil, fmt.Errorf("list audit events: %w: negative limit %d", flows.ErrInvalid, f.Limit)
	}
	limit := int64(f.Limit)
	if limit == 0 {
		limit = math.MaxInt64
	}
	var (
		evs []flows.AuditEvent
		err error
	)
	before := f.BeforeSeq
	if before <= 0 {
		before = math.MaxInt64
	}
	switch {
	case f.Newest && f.AccountID != "":
		evs, err = queryAll(ctx, o, qListAuditAccountNewest, scanAudit, f.AfterSeq, before, f.AccountID, limit)
	case f.Newest:
		evs, err = queryAll(ctx, o, qListAuditNewest, scanAudit, f.AfterSeq, before, limit)
	case f.AccountID != "":
		evs, err = queryAll(ctx, o, qListAuditAccount, scanAudit, f.AfterSeq, before, f.AccountID, limit)
	default:
		evs, err = queryAll(ctx, o, qListAudit, scanAudit, f.AfterSeq, before, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return evs, nil
}
