package flows

import (
	"context"
	"time"
)

// Session is a signed-in session of a web UI (the admin console), kept in
// the store so that every instance sharing it knows the session and a
// logout on one ends it on all.
type Session struct {
	// ID is the hash of the secret the session's cookie carries (the
	// console's: hex SHA-256 of a random 256-bit token), never the secret
	// itself: a copied row cannot be replayed as a cookie.
	ID string
	// Kind is the UI the session belongs to: "console".
	Kind string
	// Subject is who is signed in (for the console, the admin's name).
	Subject string
	// Data is what the UI keeps with the session (small JSON).
	Data []byte
	// CreatedAt is the login; LastSeenAt the last use recorded (a UI may
	// record uses coarsely); ExpiresAt the end of the session's absolute
	// lifetime, after which Purge deletes it.
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
}

// SessionTx is the part of Tx that keeps web UI sessions.
type SessionTx interface {
	// CreateSession stores a new session; ErrConflict if its id is taken,
	// ErrInvalid without an id or a kind.
	CreateSession(ctx context.Context, s Session) error
	// GetSession returns a session by id, expired or not; ErrNotFound if
	// there is none.
	GetSession(ctx context.Context, id string) (Session, error)
	// TouchSession sets a session's LastSeenAt; ErrNotFound if there is
	// none.
	TouchSession(ctx context.Context, id string, lastSeen time.Time) error
	// DeleteSession deletes a session; nothing happens if there is none.
	DeleteSession(ctx context.Context, id string) error
	// PurgeSessions deletes the sessions that expired before the given time.
	PurgeSessions(ctx context.Context, before time.Time) error
}
