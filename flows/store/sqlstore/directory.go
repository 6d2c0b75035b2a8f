package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/keystep/keystep/flows"
)

// The directory tables: the links of accounts to directory entries, the
// entries a full sync stages, and each source's state. A list of ids goes
// to a statement as one parameter (Dialect.list), so that a page of entries
// costs one statement, not one per entry.

// idsPerStatement bounds the ids (or staged entries) one statement takes: a
// page of a directory sync (1,000 entries) is one statement, a longer list
// is cut into statements of this many.
const idsPerStatement = 1000

// distinct returns the ids sorted and without duplicates, in a new slice.
func distinct(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// listLimit is the LIMIT of a listing: 0 is none, negative is ErrInvalid.
func listLimit(limit int) (int64, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("%w: negative limit %d", flows.ErrInvalid, limit)
	case limit == 0:
		return math.MaxInt64, nil
	}
	return int64(limit), nil
}

// --- links ---

func scanDirectoryLink(r scanner) (flows.DirectoryLink, error) {
	var (
		l   flows.DirectoryLink
		upd int64
	)
	if err := r.Scan(&l.Source, &l.ExternalID, &l.AccountID, &l.DN, &l.Hash, &l.SeenRun, &upd); err != nil {
		return flows.DirectoryLink{}, err
	}
	l.Hash, l.UpdatedAt = blob(l.Hash), fromUnixNano(upd)
	return l, nil
}

// GetDirectoryLinks returns the links of source for the given external ids,
// in no particular order; ids without a link are left out. It runs one
// statement per idsPerStatement ids (outside a transaction each is a
// transaction of its own).
func (o ops) GetDirectoryLinks(ctx context.Context, source string, externalIDs []string) ([]flows.DirectoryLink, error) {
	if len(externalIDs) > idsPerStatement {
		externalIDs = distinct(externalIDs) // a duplicate in two statements would come back twice
	}
	var out []flows.DirectoryLink
	for chunk := range slices.Chunk(externalIDs, idsPerStatement) {
		ls, err := queryAll(ctx, o, qGetDirectoryLinks, scanDirectoryLink, source, o.s.d.list(chunk))
		if err != nil {
			return nil, fmt.Errorf("get directory links of source %q: %w", source, err)
		}
		out = append(out, ls...)
	}
	return out, nil
}

// GetDirectoryLinkByAccount returns the link of an account; ErrNotFound if
// it has none.
func (o ops) GetDirectoryLinkByAccount(ctx context.Context, accountID string) (flows.DirectoryLink, error) {
	l, err := scanDirectoryLink(o.queryRow(ctx, qGetDirectoryLinkByAccount, accountID))
	if err != nil {
		return flows.DirectoryLink{}, fmt.Errorf("get directory link of account %q: %w", accountID, notFound(err))
	}
	return l, nil
}

// PutDirectoryLink creates or replaces the link of (l.Source, l.ExternalID)
// in one conditional upsert. When it lands nothing it finds out why:
// ErrNotFound if the account does not exist, ErrConflict if it is linked to
// another entry. Neither leaves a PostgreSQL transaction aborted, except
// when a concurrent writer gets there between the check and the write.
// ErrInvalid without a source, an external id or an account.
func (o ops) PutDirectoryLink(ctx context.Context, l flows.DirectoryLink) error {
	if l.Source == "" || l.ExternalID == "" || l.AccountID == "" {
		return fmt.Errorf("put directory link: %w: a link needs a source, an external id and an account", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qPutDirectoryLink, l.Source, l.ExternalID, l.AccountID, l.DN, nullBlob(l.Hash), l.SeenRun,
		unixNano(l.UpdatedAt), l.AccountID, l.AccountID, l.Source, l.ExternalID)
	switch {
	case o.s.d.isUnique(err):
		return fmt.Errorf("put directory link %q/%q: account %q is linked to another entry: %w", l.Source, l.ExternalID,
			l.AccountID, flows.ErrConflict)
	case o.s.d.isForeignKey(err):
		return fmt.Errorf("put directory link %q/%q: account %q: %w", l.Source, l.ExternalID, l.AccountID, flows.ErrNotFound)
	case err != nil:
		return fmt.Errorf("put directory link %q/%q: %w", l.Source, l.ExternalID, err)
	case n > 0:
		return nil
	}
	if _, err := o.GetAccount(ctx, l.AccountID); err != nil {
		return fmt.Errorf("put directory link %q/%q: %w", l.Source, l.ExternalID, err)
	}
	other, err := o.GetDirectoryLinkByAccount(ctx, l.AccountID)
	if err != nil {
		return fmt.Errorf("put directory link %q/%q: %w", l.Source, l.ExternalID, err)
	}
	return fmt.Errorf("put directory link %q/%q: account %q is linked to %q/%q: %w", l.Source, l.ExternalID,
		l.AccountID, other.Source, other.ExternalID, flows.ErrConflict)
}

// MarkDirectorySeen sets SeenRun to run on the links of source with the
// given external ids; ids without a link are ignored, and links the run saw
// already are not written again. It runs one statement per idsPerStatement
// ids, in a transaction of its own when it is called outside one and needs
// more than one. ErrInvalid for an empty run.
func (o ops) MarkDirectorySeen(ctx context.Context, source, run string, externalIDs []string) error {
	if run == "" {
		return fmt.Errorf("mark directory entries of source %q seen: %w: no run", source, flows.ErrInvalid)
	}
	if o.tx == nil && len(externalIDs) > idsPerStatement {
		return o.s.InTx(ctx, func(tx flows.Tx) error { return tx.MarkDirectorySeen(ctx, source, run, externalIDs) })
	}
	for chunk := range slices.Chunk(externalIDs, idsPerStatement) {
		if _, err := o.exec(ctx, qMarkDirectorySeen, run, source, run, o.s.d.list(chunk)); err != nil {
			return fmt.Errorf("mark directory entries of source %q seen by run %q: %w", source, run, err)
		}
	}
	return nil
}

// ListUnseenDirectoryLinks returns up to limit (0: every) links of source,
// ordered by external id and after the external id after, whose SeenRun is
// not run and whose account is not removed. ErrInvalid for a negative limit.
func (o ops) ListUnseenDirectoryLinks(ctx context.Context, source, run, after string, limit int) ([]flows.DirectoryLink, error) {
	n, err := listLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("list directory links of source %q unseen by run %q: %w", source, run, err)
	}
	ls, err := queryAll(ctx, o, qListUnseenDirectoryLinks, scanDirectoryLink, source, run, after, n)
	if err != nil {
		return nil, fmt.Errorf("list directory links of source %q unseen by run %q: %w", source, run, err)
	}
	return ls, nil
}

// CountDirectoryLinks counts the links of source whose account is not
// removed.
func (o ops) CountDirectoryLinks(ctx context.Context, source string) (int, error) {
	var n int64
	if err := o.queryRow(ctx, qCountDirectoryLinks, source).Scan(&n); err != nil {
		return 0, fmt.Errorf("count directory links of source %q: %w", source, err)
	}
	return int(n), nil
}

// --- staged entries ---

// StageDirectoryEntries keeps entries of a run of source; an external id
// staged twice in the run, in one call or in two, keeps the last. It runs
// one statement per idsPerStatement entries, in a transaction of its own
// when it is called outside one and needs more than one. ErrInvalid without
// a source or a run, or for an entry without an external id.
func (o ops) StageDirectoryEntries(ctx context.Context, source, run string, entries []flows.DirectoryEntry) error {
	if source == "" || run == "" {
		return fmt.Errorf("stage directory entries: %w: no source or no run", flows.ErrInvalid)
	}
	last := make(map[string]int, len(entries))
	for i, e := range entries {
		if e.ExternalID == "" {
			return fmt.Errorf("stage directory entries of source %q: %w: entry %q without external id", source,
				flows.ErrInvalid, e.DN)
		}
		last[e.ExternalID] = i
	}
	if len(last) < len(entries) {
		// One statement may not upsert a row twice (PostgreSQL refuses):
		// keep the last of each id only.
		kept := make([]flows.DirectoryEntry, 0, len(last))
		for i, e := range entries {
			if last[e.ExternalID] == i {
				kept = append(kept, e)
			}
		}
		entries = kept
	}
	if o.tx == nil && len(entries) > idsPerStatement {
		return o.s.InTx(ctx, func(tx flows.Tx) error { return tx.StageDirectoryEntries(ctx, source, run, entries) })
	}
	for chunk := range slices.Chunk(entries, idsPerStatement) {
		doc, err := json.Marshal(chunk)
		if err != nil {
			return fmt.Errorf("stage directory entries of source %q: %w", source, err)
		}
		if _, err := o.exec(ctx, qStageDirectoryEntries, source, run, string(doc)); err != nil {
			return fmt.Errorf("stage directory entries of source %q run %q: %w", source, run, err)
		}
	}
	return nil
}

func scanStagedEntry(r scanner) (flows.DirectoryEntry, error) {
	var (
		doc string
		e   flows.DirectoryEntry
	)
	if err := r.Scan(&doc); err != nil {
		return flows.DirectoryEntry{}, err
	}
	if err := json.Unmarshal([]byte(doc), &e); err != nil {
		return flows.DirectoryEntry{}, fmt.Errorf("read staged entry: %w", err)
	}
	return e, nil
}

// ListStagedDirectoryEntries returns up to limit (0: every) staged entries
// of the run, ordered by external id and after the external id after.
// ErrInvalid for a negative limit.
func (o ops) ListStagedDirectoryEntries(ctx context.Context, source, run, after string, limit int) ([]flows.DirectoryEntry, error) {
	n, err := listLimit(limit)
	if err != nil {
		return nil, fmt.Errorf("list staged directory entries of source %q run %q: %w", source, run, err)
	}
	es, err := queryAll(ctx, o, qListStagedDirectoryEntries, scanStagedEntry, source, run, after, n)
	if err != nil {
		return nil, fmt.Errorf("list staged directory entries of source %q run %q: %w", source, run, err)
	}
	return es, nil
}

// ClearStagedDirectoryEntries forgets every staged entry of source, of
// every run.
func (o ops) ClearStagedDirectoryEntries(ctx context.Context, source string) error {
	if _, err := o.exec(ctx, qClearStagedDirectoryEntries, source); err != nil {
		return fmt.Errorf("clear staged directory entries of source %q: %w", source, err)
	}
	return nil
}

// --- state ---

func scanDirectoryState(r scanner) (flows.DirectoryState, error) {
	var (
		st  flows.DirectoryState
		upd int64
	)
	if err := r.Scan(&st.Source, &st.Cookie, &st.CookieScope, &st.Status, &upd); err != nil {
		return flows.DirectoryState{}, err
	}
	st.Cookie, st.Status, st.UpdatedAt = blob(st.Cookie), blob(st.Status), fromUnixNano(upd)
	return st, nil
}

// GetDirectoryState returns a source's state; the zero state with Source
// set if it has none yet.
func (o ops) GetDirectoryState(ctx context.Context, source string) (flows.DirectoryState, error) {
	st, err := scanDirectoryState(o.queryRow(ctx, qGetDirectoryState, source))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return flows.DirectoryState{Source: source}, nil
	case err != nil:
		return flows.DirectoryState{}, fmt.Errorf("get directory state of source %q: %w", source, err)
	}
	return st, nil
}

// PutDirectoryState creates or replaces a source's state; ErrInvalid
// without a source.
func (o ops) PutDirectoryState(ctx context.Context, st flows.DirectoryState) error {
	if st.Source == "" {
		return fmt.Errorf("put directory state: %w: no source", flows.ErrInvalid)
	}
	_, err := o.exec(ctx, qPutDirectoryState, st.Source, nullBlob(st.Cookie), st.CookieScope, nullBlob(st.Status),
		unixNano(st.UpdatedAt))
	if err != nil {
		return fmt.Errorf("put directory state of source %q: %w", st.Source, err)
	}
	return nil
}

// ListDirectoryStates returns every source's state, by source name.
func (o ops) ListDirectoryStates(ctx context.Context) ([]flows.DirectoryState, error) {
	sts, err := queryAll(ctx, o, qListDirectoryStates, scanDirectoryState)
	if err != nil {
		return nil, fmt.Errorf("list directory states: %w", err)
	}
	return sts, nil
}
