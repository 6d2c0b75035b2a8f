package directory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/keystep/keystep/flows"
)

// lookup finds one user by its stable id within the source's base DN and
// filter, within timeout; nil if there is none.
func (s *Source) lookup(ctx context.Context, conn *ldap.Conn, externalID string, timeout time.Duration) (*ldap.Entry, error) {
	f, err := idFilter(s.cfg, externalID)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := ldap.NewSearchRequest(s.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2,
		max(1, int(timeout/time.Second)), false, f, s.mapper.attributes(), nil)
	resp := conn.SearchAsync(ctx, req, 2)
	var found []*ldap.Entry
	for resp.Next() {
		if e := resp.Entry(); e != nil {
			found = append(found, e)
		}
	}
	if err := resp.Err(); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", externalID, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("looking up %s: %w", externalID, err)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("looking up %s: more than one entry has this id", externalID)
}

// LiveChecker looks a user up in their directory at each sign-in (the
// sources with live_check on), so that a disable is effective even between
// syncs. It implements flows.AccountChecker.
type LiveChecker struct {
	sources map[string]*Source
	store   flows.Store // nil: no sources

	mu    sync.Mutex
	cache map[string]liveAnswer
	conns map[string]*ldap.Conn
}

type liveAnswer struct {
	state   flows.AccountState
	reason  string
	expires time.Time
}

// NewLiveChecker returns the live check of the given sources (more can
// be added with Add: the flows service takes the checker before the
// sources, which need the service, exist).
func NewLiveChecker(sources ...*Source) *LiveChecker {
	c := &LiveChecker{sources: map[string]*Source{}, cache: map[string]liveAnswer{}, conns: map[string]*ldap.Conn{}}
	for _, s := range sources {
		c.Add(s)
	}
	return c
}

// Add adds a source to the live check. Call it before sign-ins begin.
func (c *LiveChecker) Add(s *Source) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sources[s.cfg.Name] = s
	c.store = s.store
}

// maxLiveCache bounds the live check's cache; past it, it starts again.
const maxLiveCache = 100_000

// CheckAccount looks the account up in its source: not there (deleted or
// out of scope) means suspended until the sync decides; the suspension
// rules decide otherwise. Accounts of no source, or of a source without
// the live check, get no opinion. A directory that does not answer refuses
// the sign-in, or with fail_open lets the last synced state decide.
func (c *LiveChecker) CheckAccount(ctx context.Context, a flows.Account) (flows.AccountState, string, bool, error) {
	c.mu.Lock()
	store := c.store
	c.mu.Unlock()
	if store == nil {
		return "", "", false, nil
	}
	link, err := store.GetDirectoryLinkByAccount(ctx, a.ID)
	if errors.Is(err, flows.ErrNotFound) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("live check: %w", err)
	}
	c.mu.Lock()
	s := c.sources[link.Source]
	c.mu.Unlock()
	if s == nil || !s.cfg.LiveCheck.Enabled {
		return "", "", false, nil
	}
	now := s.now()
	c.mu.Lock()
	ans, ok := c.cache[a.ID]
	c.mu.Unlock()
	if ok && now.Before(ans.expires) {
		return ans.state, ans.reason, true, nil
	}
	state, reason, err := c.ask(ctx, s, link.ExternalID)
	if err != nil {
		if s.cfg.LiveCheck.FailOpen {
			s.log.Warn("live check failed; the last synced state decides (fail_open)", "account", a.Username, "err", err)
			return "", "", false, nil
		}
		s.log.Error("live check failed; the sign-in is refused (fail-closed)", "account", a.Username, "err", err)
		return "", "", false, err
	}
	c.mu.Lock()
	if len(c.cache) >= maxLiveCache {
		clear(c.cache)
	}
	c.cache[a.ID] = liveAnswer{state: state, reason: reason, expires: now.Add(s.cfg.LiveCheck.CacheTTL)}
	c.mu.Unlock()
	return state, reason, true, nil
}

// ask makes one look-up, on the source's kept connection (dialled again
// once if it broke).
func (c *LiveChecker) ask(ctx context.Context, s *Source, externalID string) (flows.AccountState, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LiveCheck.Timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		conn, fresh, err := c.conn(ctx, s)
		if err != nil {
			return "", "", err
		}
		e, err := s.lookup(ctx, conn, externalID, s.cfg.LiveCheck.Timeout)
		if err != nil {
			c.drop(s.cfg.Name, conn)
			if !fresh && attempt == 0 && ctx.Err() == nil {
				continue // the kept connection had gone stale
			}
			return "", "", err
		}
		if e == nil {
			return flows.AccountSuspended, "not found in the directory", nil
		}
		de, err := s.mapper.entry(e, s.now())
		if err != nil {
			return "", "", fmt.Errorf("live check of %s: %w", externalID, err)
		}
		return de.State, de.Reason, nil
	}
}

// conn returns the source's kept connection, dialling one if needed; fresh
// says it was just dialled.
func (c *LiveChecker) conn(ctx context.Context, s *Source) (*ldap.Conn, bool, error) {
	c.mu.Lock()
	conn := c.conns[s.cfg.Name]
	c.mu.Unlock()
	if conn != nil && !conn.IsClosing() {
		return conn, false, nil
	}
	conn, _, err := dial(ctx, s.cfg)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	if old := c.conns[s.cfg.Name]; old != nil {
		old.Close()
	}
	c.conns[s.cfg.Name] = conn
	c.mu.Unlock()
	return conn, true, nil
}

func (c *LiveChecker) drop(name string, conn *ldap.Conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conns[name] == conn {
		delete(c.conns, name)
	}
	conn.Close()
}

// Forget drops the cached answer about an account (after a sync changed it).
func (c *LiveChecker) Forget(accountID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.cache, accountID)
}

// Close closes the kept connections.
func (c *LiveChecker) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, conn := range c.conns {
		conn.Close()
		delete(c.conns, name)
	}
}
