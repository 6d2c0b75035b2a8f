package flows

import (
	"context"
	"time"
)

// DirectoryEntry is a user as a directory source describes it, already
// mapped onto an account's fields by the directory package.
type DirectoryEntry struct {
	// ExternalID is the entry's stable id (entryUUID, objectGUID) in its
	// canonical text form; never the DN.
	ExternalID  string       `json:"external_id"`
	DN          string       `json:"dn"`
	Username    string       `json:"username"`
	Email       string       `json:"email,omitempty"`
	Phone       string       `json:"phone,omitempty"`
	DisplayName string       `json:"display_name,omitempty"`
	State       AccountState `json:"state"`            // active or suspended
	Reason      string       `json:"reason,omitempty"` // why suspended, e.g. "disabled in the directory"
}

// DirectoryLink ties an account to the directory entry it comes from. A
// source's entry has at most one link and an account at most one.
type DirectoryLink struct {
	Source     string
	ExternalID string
	AccountID  string
	DN         string
	// Hash is the hash of the DirectoryEntry last applied: an entry that
	// hashes the same is unchanged and costs no write.
	Hash []byte
	// SeenRun is the last full sync run that saw the entry.
	SeenRun   string
	UpdatedAt time.Time
}

// DirectoryState is what a source's sync keeps between runs and instances.
type DirectoryState struct {
	Source string
	// Cookie is the incremental sync's cookie (RFC 4533 or DirSync), valid
	// for the search described by CookieScope; empty: none yet.
	Cookie []byte
	// CookieScope identifies the search the cookie belongs to (server
	// kind, base DN, filter); a cookie of another scope is not used.
	CookieScope string
	// Status is the sync's status as the directory package encodes it
	// (JSON), for the admin API and the health endpoint.
	Status    []byte
	UpdatedAt time.Time
}

// DirectoryTx is the part of Tx that directory sync uses.
type DirectoryTx interface {
	// GetDirectoryLinks returns the links of source for the given external
	// ids; ids without a link are left out. Order is unspecified.
	GetDirectoryLinks(ctx context.Context, source string, externalIDs []string) ([]DirectoryLink, error)
	// GetDirectoryLinkByAccount returns the link of an account; ErrNotFound
	// if it has none.
	GetDirectoryLinkByAccount(ctx context.Context, accountID string) (DirectoryLink, error)
	// PutDirectoryLink creates or replaces the link of (l.Source,
	// l.ExternalID). ErrConflict if l.AccountID is linked to another entry;
	// ErrNotFound if the account does not exist.
	PutDirectoryLink(ctx context.Context, l DirectoryLink) error
	// MarkDirectorySeen sets SeenRun to run on the links of source with the
	// given external ids (ids without a link are ignored).
	MarkDirectorySeen(ctx context.Context, source, run string, externalIDs []string) error
	// ListUnseenDirectoryLinks returns up to limit links of source, ordered
	// by external id and after the external id after, whose SeenRun is not
	// run and whose account is not removed.
	ListUnseenDirectoryLinks(ctx context.Context, source, run, after string, limit int) ([]DirectoryLink, error)
	// CountDirectoryLinks counts the links of source whose account is not
	// removed.
	CountDirectoryLinks(ctx context.Context, source string) (int, error)

	// StageDirectoryEntries keeps entries of a run of source for applying
	// later (a full sync stages what it would change, checks the guard,
	// then applies). Staging an external id twice in one run keeps the last.
	StageDirectoryEntries(ctx context.Context, source, run string, entries []DirectoryEntry) error
	// ListStagedDirectoryEntries returns up to limit staged entries of the
	// run, ordered by external id and after the external id after.
	ListStagedDirectoryEntries(ctx context.Context, source, run, after string, limit int) ([]DirectoryEntry, error)
	// ClearStagedDirectoryEntries forgets every staged entry of source
	// (of every run).
	ClearStagedDirectoryEntries(ctx context.Context, source string) error

	// GetDirectoryState returns a source's state; the zero state (with
	// Source set) if it has none yet.
	GetDirectoryState(ctx context.Context, source string) (DirectoryState, error)
	// PutDirectoryState creates or replaces a source's state.
	PutDirectoryState(ctx context.Context, st DirectoryState) error
	// ListDirectoryStates returns every source's state, by source name.
	ListDirectoryStates(ctx context.Context) ([]DirectoryState, error)

	// AcquireLease takes or renews the lease name for holder until now+ttl,
	// so that one instance among several runs a job (a directory source's
	// sync, lease "directory:<source>"). It reports true if holder holds
	// the lease now: it was free, it had expired at now, or it was holder's
	// already (renewed); false if another holder's lease runs past now.
	// Instances compare their own clocks with the stored expiry: keep them
	// in step (NTP) well within ttl. ErrInvalid without a name or a holder,
	// or for a ttl that is not positive.
	AcquireLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// ReleaseLease gives up holder's lease name so that another can take it
	// at once; nothing happens if holder does not hold it.
	ReleaseLease(ctx context.Context, name, holder string) error
}
