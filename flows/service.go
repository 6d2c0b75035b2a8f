package flows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config holds the policy of the flows.
type Config struct {
	// Origin is the server's public URL; devices sign it, so a signature
	// made for one server is worthless at another.
	Origin string
	// NumberDigits is the length of the number to match (2 to 6; default 2).
	NumberDigits int
	// SignInTTL is how long a sign-in waits for a decision (default 120 s,
	// at most 10 minutes as NIST SP 800-63B requires).
	SignInTTL time.Duration
	// InvitationTTL is how long an invitation can be used (default 7 days).
	InvitationTTL time.Duration
	// TombstoneRetention is how long a removed account is kept for the
	// audit trail before it is purged (default 30 days).
	TombstoneRetention time.Duration
	// MaxClockSkew bounds the difference between a device's signed time and
	// the server's (default 5 minutes).
	MaxClockSkew time.Duration
	// CodeConfig is the policy of codes, lockouts and push limits; its
	// CodeKey is required.
	CodeConfig
	// ReplaceDevicesOnEnroll unregisters an account's other devices when it
	// enrolls a new one, in the same transaction (default false: the old
	// devices stay registered until an administrator unregisters them).
	ReplaceDevicesOnEnroll bool
}

// MaxSignInTTL is the longest a sign-in may wait (NIST SP 800-63B: 10 minutes).
const MaxSignInTTL = 10 * time.Minute

func (c *Config) setDefaults() error {
	if err := CheckServerURL(c.Origin); err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	if c.NumberDigits == 0 {
		c.NumberDigits = 2
	}
	if c.NumberDigits < 2 || c.NumberDigits > 6 {
		return invalidf("number digits must be 2 to 6, not %d", c.NumberDigits)
	}
	if c.SignInTTL == 0 {
		c.SignInTTL = 120 * time.Second
	}
	if c.SignInTTL < 10*time.Second || c.SignInTTL > MaxSignInTTL {
		return invalidf("sign-in lifetime must be 10s to 10m, not %s", c.SignInTTL)
	}
	if c.InvitationTTL == 0 {
		c.InvitationTTL = 7 * 24 * time.Hour
	}
	if c.InvitationTTL < time.Minute || c.InvitationTTL > 90*24*time.Hour {
		return invalidf("invitation lifetime must be 1m to 90 days, not %s", c.InvitationTTL)
	}
	if c.TombstoneRetention == 0 {
		c.TombstoneRetention = 30 * 24 * time.Hour
	}
	if c.TombstoneRetention < 0 {
		return invalidf("tombstone retention must not be negative")
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = 5 * time.Minute
	}
	if c.MaxClockSkew < time.Second || c.MaxClockSkew > time.Hour {
		return invalidf("max clock skew must be 1s to 1h, not %s", c.MaxClockSkew)
	}
	return c.CodeConfig.setDefaults()
}

// Service runs keystep's flows over a Store. It is safe for concurrent use.
type Service struct {
	store   Store
	events  Events
	clock   Clock
	log     *slog.Logger
	cfg     Config
	email   EmailSender    // nil: no email codes
	sms     SMSSender      // nil: no SMS codes
	alerter AdminAlerter   // nil: alerts are only logged
	push    PushSender     // nil: no wake-up pushes
	checker AccountChecker // nil: no live check at Begin
	pushes  pushes         // pushes in flight
	obs     Observer       // nopObserver{} unless WithObserver
}

// Option changes how New builds a Service.
type Option func(*Service)

// WithClock sets the clock (tests inject a fake one).
func WithClock(c Clock) Option { return func(s *Service) { s.clock = c } }

// WithEvents sets the event hub (several instances share one).
func WithEvents(e Events) Option { return func(s *Service) { s.events = e } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// New returns a Service over store with the given policy.
func New(store Store, cfg Config, opts ...Option) (*Service, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("flows config: %w", err)
	}
	s := &Service{store: store, cfg: cfg, clock: SystemClock{}, events: NewLocalEvents(), log: slog.Default(), obs: nopObserver{}}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Config returns the effective policy, defaults filled in, without the
// code key.
func (s *Service) Config() Config {
	c := s.cfg
	c.CodeKey = nil
	return c
}

// Store returns the store the service runs on.
func (s *Service) Store() Store { return s.store }

// Events returns the event hub.
func (s *Service) Events() Events { return s.events }

// now is the service's current time, truncated to what every store keeps.
func (s *Service) now() time.Time { return s.clock.Now().UTC() }

// write runs fn in a transaction and, once it has committed, wakes the
// watchers of the given topics and of the audit log.
func (s *Service) write(ctx context.Context, fn func(tx Tx) error, topics ...string) error {
	if err := s.store.InTx(ctx, fn); err != nil {
		return err
	}
	for _, t := range topics {
		s.events.Publish(t)
	}
	s.events.Publish(AuditTopic)
	return nil
}

// Audit returns audit events in chain order.
func (s *Service) Audit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	evs, err := s.store.ListAudit(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return evs, nil
}

// VerifyAudit checks the whole audit chain.
func (s *Service) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	return VerifyAuditChain(ctx, s.store)
}

// Purge deletes what has outlived its retention: removed accounts'
// tombstones, spent nonces, codes a day after they expired, ended
// rate-limit windows, federation requests and tokens a day after they
// expired, and web UI sessions past their lifetime. Run it periodically.
func (s *Service) Purge(ctx context.Context) error {
	now := s.now()
	err := s.write(ctx, func(tx Tx) error {
		ids, err := tx.PurgeRemovedAccounts(ctx, now.Add(-s.cfg.TombstoneRetention))
		if err != nil {
			return err
		}
		for _, id := range ids {
			ev := auditAt(now, "system", AuditAccountPurged)
			ev.AccountID = id
			if _, err := tx.AppendAudit(ctx, ev); err != nil {
				return err
			}
		}
		if err := tx.PurgeCodes(ctx, now.Add(-codeRetention)); err != nil {
			return err
		}
		if err := tx.PurgeRateLimits(ctx, now); err != nil {
			return err
		}
		if err := tx.PurgeAuthRequests(ctx, now.Add(-codeRetention)); err != nil {
			return err
		}
		if err := tx.PurgeOIDCTokens(ctx, now.Add(-codeRetention)); err != nil {
			return err
		}
		if err := tx.PurgeSessions(ctx, now); err != nil {
			return err
		}
		return tx.PurgeNonces(ctx, now)
	})
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	}
	return nil
}

// isNotFound reports whether err is ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
