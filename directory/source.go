package directory

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keystep/keystep/flows"
)

// ErrGuard is a sync stopped by the mass-removal guard: it changed nothing.
var ErrGuard = errors.New("directory sync stopped by the mass-removal guard")

// Source keeps the accounts of one directory source in step with it. Its
// methods are safe for concurrent use; syncs of one source run one at a
// time.
type Source struct {
	cfg    SourceConfig
	flows  *flows.Service
	store  flows.Store
	clock  flows.Clock
	log    *slog.Logger
	mapper *mapper
	filter string // the search filter: UserFilter and Group

	syncMu  sync.Mutex // one full or incremental sync at a time
	stateMu sync.Mutex // read-modify-write of the stored state
	trigger chan struct{}
	// fullWanted asks Run for a full sync before the incremental one
	// resumes (a trigger, a change of the scope group).
	fullWanted atomic.Bool
	// confirmRemovals is the removals an admin confirmed for the next full
	// sync Run starts.
	confirmRemovals atomic.Int64

	// removalsSinceFull counts incremental removals since the last full
	// sync, for the guard.
	removalsSinceFull int

	// holder names this Run among the instances that share the store; Run
	// syncs only while holder holds the source's lease, of leaseTTL.
	holder   string
	leaseTTL time.Duration
	// keepLease leaves the lease in the store when Run ends, as a crash
	// would (tests).
	keepLease bool
}

// DefaultLeaseTTL is how long a directory sync lease lasts without
// renewal: an instance that dies is replaced within about this long.
const DefaultLeaseTTL = 30 * time.Second

// WithLease sets the holder id Run takes the source's lease under (by
// default the host name, the process id and a random part) and the lease's
// TTL (zero: DefaultLeaseTTL).
func WithLease(holder string, ttl time.Duration) Option {
	return func(s *Source) {
		if holder != "" {
			s.holder = holder
		}
		if ttl > 0 {
			s.leaseTTL = ttl
		}
	}
}

// defaultHolder is this process's lease holder id: host name, process id
// and a random part (two sources, or two Runs, never share one).
func defaultHolder() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown-host"
	}
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Option changes how NewSource builds a Source.
type Option func(*Source)

// WithClock sets the clock (tests inject a fake one).
func WithClock(c flows.Clock) Option { return func(s *Source) { s.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.log = l } }

// NewSource checks cfg, fills in its defaults and returns the source,
// which applies what it reads through svc.
func NewSource(cfg SourceConfig, svc *flows.Service, opts ...Option) (*Source, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("directory source %q: %w", cfg.Name, err)
	}
	m, err := newMapper(cfg)
	if err != nil {
		return nil, fmt.Errorf("directory source %q: %w", cfg.Name, err)
	}
	s := &Source{cfg: cfg, flows: svc, store: svc.Store(), clock: flows.SystemClock{}, log: slog.Default(),
		mapper: m, filter: cfg.searchFilter(), trigger: make(chan struct{}, 1),
		holder: defaultHolder(), leaseTTL: DefaultLeaseTTL}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("directory", cfg.Name)
	m.warn = func(dn string, err error) {
		s.log.Warn("directory entry has a value keystep cannot read", "dn", dn, "err", err)
	}
	return s, nil
}

// Name is the source's name.
func (s *Source) Name() string { return s.cfg.Name }

// Config is the source's configuration, defaults filled in, without the
// bind password.
func (s *Source) Config() SourceConfig {
	c := s.cfg
	if c.BindPassword != "" {
		c.BindPassword = "********"
	}
	return c
}

func (s *Source) now() time.Time { return s.clock.Now().UTC() }

// actor is who the audit log says made the sync's changes.
func (s *Source) actor() string { return "directory:" + s.cfg.Name }

// Status returns the source's status as the store keeps it.
func (s *Source) Status(ctx context.Context) (Status, error) {
	st, err := s.store.GetDirectoryState(ctx, s.cfg.Name)
	if err != nil {
		return Status{}, fmt.Errorf("directory %s status: %w", s.cfg.Name, err)
	}
	return DecodeStatus(s.cfg.Name, st.Status), nil
}

// updateState reads the stored state, lets fn change it and its status,
// and writes it back.
func (s *Source) updateState(ctx context.Context, fn func(st *flows.DirectoryState, status *Status)) error {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	ctx = context.WithoutCancel(ctx) // a status must land even as the sync stops
	st, err := s.store.GetDirectoryState(ctx, s.cfg.Name)
	if err != nil {
		return fmt.Errorf("directory %s state: %w", s.cfg.Name, err)
	}
	status := DecodeStatus(s.cfg.Name, st.Status)
	fn(&st, &status)
	if st.Status, err = json.Marshal(status); err != nil {
		return fmt.Errorf("directory %s state: %w", s.cfg.Name, err)
	}
	st.Source, st.UpdatedAt = s.cfg.Name, s.now()
	if err := s.store.PutDirectoryState(ctx, st); err != nil {
		return fmt.Errorf("directory %s state: %w", s.cfg.Name, err)
	}
	return nil
}

// recordFailure notes a failed sync in the status; the accounts keep their
// last known states.
func (s *Source) recordFailure(ctx context.Context, cause error, retry time.Time) int {
	failures := 0
	err := s.updateState(ctx, func(_ *flows.DirectoryState, st *Status) {
		st.Failures++
		failures = st.Failures
		st.LastError, st.LastErrorAt, st.NextRetry = cause.Error(), s.now(), retry
		if st.Health != HealthGuard {
			st.Health = HealthFailing
		}
	})
	if err != nil {
		s.log.Error("recording a failed sync", "err", err)
	}
	return failures
}

// hashEntry is the hash kept on an entry's link: an entry that hashes the
// same as last time is unchanged.
func hashEntry(e flows.DirectoryEntry) []byte {
	h := sha256.New()
	var n [4]byte
	for _, f := range []string{"v1", e.ExternalID, e.DN, e.Username, e.Email, e.Phone, e.DisplayName, string(e.State), e.Reason} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// guardLimit is how many removals the guard lets through for a source
// with total accounts.
func (s *Source) guardLimit(total int) int {
	if s.cfg.MaxRemovalsCount > 0 {
		return s.cfg.MaxRemovalsCount
	}
	return int(s.cfg.MaxRemovals * float64(total))
}

// tripGuard records and announces a sync the guard stopped.
func (s *Source) tripGuard(ctx context.Context, rep *RunReport, why string) error {
	rep.Guard = why
	s.log.Error("directory sync stopped by the mass-removal guard; nothing was changed", "run", rep.Run, "why", why)
	if !rep.DryRun {
		if err := s.updateState(ctx, func(_ *flows.DirectoryState, st *Status) {
			st.Health, st.Guard = HealthGuard, why
			r := *rep
			if r.Kind == "full" {
				st.LastFull = &r
			} else {
				st.Incremental = &r
			}
		}); err != nil {
			s.log.Error("recording the guard", "err", err)
		}
		s.flows.AlertAdmins(ctx, flows.AdminAlert{Kind: flows.AlertDirectoryGuard,
			Detail: fmt.Sprintf("directory %s: %s; nothing was changed. Check the source's base DN, filter and bind, or confirm with: keystep directory sync --source %s --confirm-removals N", s.cfg.Name, why, s.cfg.Name)})
		if err := s.flows.RecordEvent(ctx, s.actor(), "directory.guard", why); err != nil {
			s.log.Error("auditing the guard", "err", err)
		}
	}
	return fmt.Errorf("directory %s: %w: %s", s.cfg.Name, ErrGuard, why)
}
