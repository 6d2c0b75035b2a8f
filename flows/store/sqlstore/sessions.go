package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keystep/keystep/flows"
)

// CreateSession stores a new session; ErrConflict if its id is taken.
func (o ops) CreateSession(ctx context.Context, s flows.Session) error {
	if s.ID == "" || s.Kind == "" {
		return fmt.Errorf("create session: %w: a session needs an id and a kind", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qCreateSession, s.ID, s.Kind, s.Subject, s.Data, unixNano(s.CreatedAt),
		unixNano(s.LastSeenAt), unixNano(s.ExpiresAt))
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create %s session: %w", s.Kind, flows.ErrConflict)
	case err != nil:
		return fmt.Errorf("create %s session: %w", s.Kind, err)
	}
	return nil
}

// GetSession returns a session by id.
func (o ops) GetSession(ctx context.Context, id string) (flows.Session, error) {
	var (
		s                      flows.Session
		created, seen, expires int64
	)
	err := o.queryRow(ctx, qGetSession, id).Scan(&s.ID, &s.Kind, &s.Subject, &s.Data, &created, &seen, &expires)
	if err != nil {
		// The id is a credential's hash: errors do not repeat it.
		return flows.Session{}, fmt.Errorf("get session: %w", notFound(err))
	}
	s.Data = blob(s.Data)
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromUnixNano(created), fromUnixNano(seen), fromUnixNano(expires)
	return s, nil
}

// TouchSession sets a session's last use; ErrNotFound if there is none.
func (o ops) TouchSession(ctx context.Context, id string, lastSeen time.Time) error {
	n, err := o.execN(ctx, qTouchSession, unixNano(lastSeen), id)
	switch {
	case err != nil:
		return fmt.Errorf("touch session: %w", err)
	case n == 0:
		return fmt.Errorf("touch session: %w", flows.ErrNotFound)
	}
	return nil
}

// DeleteSession deletes a session, if there is one.
func (o ops) DeleteSession(ctx context.Context, id string) error {
	if _, err := o.exec(ctx, qDeleteSession, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// PurgeSessions deletes the sessions that expired before the given time.
func (o ops) PurgeSessions(ctx context.Context, before time.Time) error {
	if _, err := o.exec(ctx, qPurgeSessions, unixNano(before)); err != nil {
		return fmt.Errorf("purge sessions: %w", err)
	}
	return nil
}
