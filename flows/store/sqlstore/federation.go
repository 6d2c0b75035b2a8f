package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keystep/keystep/flows"
)

// The federation tables: auth requests, OpenID Connect tokens, server keys
// and linked federated subjects. Optional hashes (session, code, refresh)
// are NULL until set, so that their unique indexes hold only set values;
// string lists are JSON arrays.

// nullBlob stores an empty byte slice as NULL.
func nullBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// joinList stores a string list as a JSON array; nil and empty are "[]".
func joinList(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, err := json.Marshal(ss)
	if err != nil {
		panic(fmt.Sprintf("marshal a string list: %v", err)) // cannot happen: strings always marshal
	}
	return string(b)
}

// splitList reads back what joinList stored; no element is nil.
func splitList(s string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var ss []string
	if err := json.Unmarshal([]byte(s), &ss); err != nil {
		return nil, fmt.Errorf("read string list %q: %w", s, err)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return ss, nil
}

// --- auth requests ---

// CreateAuthRequest stores a new auth request; ErrConflict if its id (or its
// code hash) is taken, ErrInvalid if it lacks an id, a client or an expiry.
func (o ops) CreateAuthRequest(ctx context.Context, r flows.AuthRequest) error {
	if r.ID == "" || r.ClientID == "" || r.ExpiresAt.IsZero() {
		return fmt.Errorf("create auth request: %w: a request needs an id, a client and an expiry", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qCreateAuthRequest, r.ID, r.ClientID, r.Protocol, nullBlob(r.Request), r.AccountID,
		r.Subject, nullBlob(r.SessionHash), r.SignInID, unixNano(r.DoneAt), unixNano(r.AuthTime), r.ACR,
		joinList(r.AMR), nullBlob(r.CodeHash), unixNano(r.CodeUsedAt), unixNano(r.CreatedAt), unixNano(r.ExpiresAt))
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create auth request %q: %w", r.ID, flows.ErrConflict)
	case err != nil:
		return fmt.Errorf("create auth request %q: %w", r.ID, err)
	}
	return nil
}

func scanAuthRequest(r scanner) (flows.AuthRequest, error) {
	var (
		a                                     flows.AuthRequest
		amr                                   string
		done, authTime, used, created, expire int64
	)
	err := r.Scan(&a.ID, &a.ClientID, &a.Protocol, &a.Request, &a.AccountID, &a.Subject, &a.SessionHash,
		&a.SignInID, &done, &authTime, &a.ACR, &amr, &a.CodeHash, &used, &created, &expire)
	if err != nil {
		return flows.AuthRequest{}, err
	}
	if a.AMR, err = splitList(amr); err != nil {
		return flows.AuthRequest{}, fmt.Errorf("auth request %q: amr: %w", a.ID, err)
	}
	a.Request, a.SessionHash, a.CodeHash = blob(a.Request), blob(a.SessionHash), blob(a.CodeHash)
	a.DoneAt, a.AuthTime, a.CodeUsedAt = fromUnixNano(done), fromUnixNano(authTime), fromUnixNano(used)
	a.CreatedAt, a.ExpiresAt = fromUnixNano(created), fromUnixNano(expire)
	return a, nil
}

// GetAuthRequest returns an auth request by id.
func (o ops) GetAuthRequest(ctx context.Context, id string) (flows.AuthRequest, error) {
	a, err := scanAuthRequest(o.queryRow(ctx, qGetAuthRequest, id))
	if err != nil {
		return flows.AuthRequest{}, fmt.Errorf("get auth request %q: %w", id, notFound(err))
	}
	return a, nil
}

// BindAuthRequest binds an unbound request to a session hash in one
// conditional update. When it finds nothing to change it reads the request:
// bound to the same hash is success, to another ErrConflict; ErrNotFound if
// there is none. ErrInvalid for an empty hash.
func (o ops) BindAuthRequest(ctx context.Context, id string, sessionHash []byte) error {
	if len(sessionHash) == 0 {
		return fmt.Errorf("bind auth request %q: %w: no session hash", id, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qBindAuthRequest, sessionHash, id)
	if err != nil {
		return fmt.Errorf("bind auth request %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	a, err := o.GetAuthRequest(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("bind auth request: %w", err)
	case bytes.Equal(a.SessionHash, sessionHash):
		return nil
	default:
		return fmt.Errorf("bind auth request %q: bound to another session: %w", id, flows.ErrConflict)
	}
}

// AttachSignIn records the sign-in running for a request that is not done,
// in one conditional update; ErrAlreadyDecided if it is done, ErrNotFound if
// there is none.
func (o ops) AttachSignIn(ctx context.Context, id, signInID string) error {
	n, err := o.execN(ctx, qAttachSignIn, signInID, id)
	if err != nil {
		return fmt.Errorf("attach sign-in %q to auth request %q: %w", signInID, id, err)
	}
	if n == 1 {
		return nil
	}
	a, err := o.GetAuthRequest(ctx, id)
	if err != nil {
		return fmt.Errorf("attach sign-in %q: %w", signInID, err)
	}
	return fmt.Errorf("attach sign-in %q to auth request %q: done at %s: %w", signInID, id,
		a.DoneAt.Format(time.RFC3339Nano), flows.ErrAlreadyDecided)
}

// CompleteAuthRequest records the step's success on a request that is not
// done, in one conditional update: of concurrent calls one lands, the others
// get ErrAlreadyDecided; ErrNotFound if there is none, ErrInvalid without a
// time.
func (o ops) CompleteAuthRequest(ctx context.Context, id string, res flows.AuthResult) error {
	if res.At.IsZero() {
		return fmt.Errorf("complete auth request %q: %w: no time of completion", id, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qCompleteAuthRequest, unixNano(res.At), unixNano(res.AuthTime), res.ACR, joinList(res.AMR), id)
	if err != nil {
		return fmt.Errorf("complete auth request %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	a, err := o.GetAuthRequest(ctx, id)
	if err != nil {
		return fmt.Errorf("complete auth request: %w", err)
	}
	return fmt.Errorf("complete auth request %q: done at %s: %w", id, a.DoneAt.Format(time.RFC3339Nano), flows.ErrAlreadyDecided)
}

// SaveAuthCode records the code hash of a done request that has none, in one
// conditional update. ErrConflict if the request is not done, already has a
// code, or the hash is another request's; ErrNotFound if there is none;
// ErrInvalid for an empty hash.
func (o ops) SaveAuthCode(ctx context.Context, id string, codeHash []byte) error {
	if len(codeHash) == 0 {
		return fmt.Errorf("save code of auth request %q: %w: no code hash", id, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qSaveAuthCode, codeHash, id, codeHash)
	switch {
	case o.s.d.isUnique(err):
		return fmt.Errorf("save code of auth request %q: the code is another request's: %w", id, flows.ErrConflict)
	case err != nil:
		return fmt.Errorf("save code of auth request %q: %w", id, err)
	case n == 1:
		return nil
	}
	a, err := o.GetAuthRequest(ctx, id)
	switch {
	case err != nil:
		return fmt.Errorf("save code: %w", err)
	case !a.Done():
		return fmt.Errorf("save code of auth request %q: not done: %w", id, flows.ErrConflict)
	case a.CodeHash != nil:
		return fmt.Errorf("save code of auth request %q: it has a code: %w", id, flows.ErrConflict)
	default:
		return fmt.Errorf("save code of auth request %q: the code is another request's: %w", id, flows.ErrConflict)
	}
}

// RedeemAuthCode marks the code with that hash used, in one conditional
// update that returns the request. When it finds nothing to change it reads
// the request: used before, it returns it with ErrAlreadyUsed; ErrNotFound
// if no request has that code. ErrInvalid without a time of use. It does not
// look at the request's expiry: the caller does.
func (o ops) RedeemAuthCode(ctx context.Context, codeHash []byte, at time.Time) (flows.AuthRequest, error) {
	if at.IsZero() {
		return flows.AuthRequest{}, fmt.Errorf("redeem authorization code: %w: no time of use", flows.ErrInvalid)
	}
	if len(codeHash) == 0 {
		return flows.AuthRequest{}, fmt.Errorf("redeem authorization code: no code hash: %w", flows.ErrNotFound)
	}
	a, err := scanAuthRequest(o.queryRow(ctx, qRedeemAuthCode, unixNano(at), codeHash))
	if err == nil {
		return a, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return flows.AuthRequest{}, fmt.Errorf("redeem authorization code: %w", err)
	}
	a, err = scanAuthRequest(o.queryRow(ctx, qGetAuthRequestByCode, codeHash))
	if err != nil {
		return flows.AuthRequest{}, fmt.Errorf("redeem authorization code: %w", notFound(err))
	}
	return a, fmt.Errorf("redeem authorization code of auth request %q: used at %s: %w", a.ID,
		a.CodeUsedAt.Format(time.RFC3339Nano), flows.ErrAlreadyUsed)
}

// PurgeAuthRequests deletes requests that expired before the given time.
func (o ops) PurgeAuthRequests(ctx context.Context, before time.Time) error {
	if _, err := o.exec(ctx, qPurgeAuthRequests, unixNano(before)); err != nil {
		return fmt.Errorf("purge auth requests: %w", err)
	}
	return nil
}

// --- OpenID Connect tokens ---

// CreateOIDCToken stores a token; ErrConflict if its id or refresh hash is
// taken, ErrInvalid if it lacks an id, a grant, a client or an expiry.
func (o ops) CreateOIDCToken(ctx context.Context, t flows.OIDCToken) error {
	if t.ID == "" || t.GrantID == "" || t.ClientID == "" || t.ExpiresAt.IsZero() {
		return fmt.Errorf("create oidc token: %w: a token needs an id, a grant, a client and an expiry", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qCreateOIDCToken, t.ID, t.GrantID, t.ClientID, t.Subject, t.AccountID,
		joinList(t.Scopes), joinList(t.Audience), t.ACR, joinList(t.AMR), unixNano(t.AuthTime),
		nullBlob(t.RefreshHash), unixNano(t.RefreshExp), unixNano(t.CreatedAt), unixNano(t.ExpiresAt),
		unixNano(t.RevokedAt))
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create oidc token %q: its id or refresh token is taken: %w", t.ID, flows.ErrConflict)
	case err != nil:
		return fmt.Errorf("create oidc token %q: %w", t.ID, err)
	}
	return nil
}

func scanOIDCToken(r scanner) (flows.OIDCToken, error) {
	var (
		t                                             flows.OIDCToken
		scopes, audience, amr                         string
		authTime, refreshExp, created, expire, revoke int64
	)
	err := r.Scan(&t.ID, &t.GrantID, &t.ClientID, &t.Subject, &t.AccountID, &scopes, &audience, &t.ACR, &amr,
		&authTime, &t.RefreshHash, &refreshExp, &created, &expire, &revoke)
	if err != nil {
		return flows.OIDCToken{}, err
	}
	for _, l := range []struct {
		dst  *[]string
		text string
	}{{&t.Scopes, scopes}, {&t.Audience, audience}, {&t.AMR, amr}} {
		if *l.dst, err = splitList(l.text); err != nil {
			return flows.OIDCToken{}, fmt.Errorf("oidc token %q: %w", t.ID, err)
		}
	}
	t.RefreshHash = blob(t.RefreshHash)
	t.AuthTime, t.RefreshExp = fromUnixNano(authTime), fromUnixNano(refreshExp)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromUnixNano(created), fromUnixNano(expire), fromUnixNano(revoke)
	return t, nil
}

// GetOIDCToken returns a token by id, revoked or not.
func (o ops) GetOIDCToken(ctx context.Context, id string) (flows.OIDCToken, error) {
	t, err := scanOIDCToken(o.queryRow(ctx, qGetOIDCToken, id))
	if err != nil {
		return flows.OIDCToken{}, fmt.Errorf("get oidc token %q: %w", id, notFound(err))
	}
	return t, nil
}

// GetOIDCTokenByRefresh returns the token whose refresh token has that hash,
// revoked or not; ErrNotFound if none (an empty hash finds none).
func (o ops) GetOIDCTokenByRefresh(ctx context.Context, refreshHash []byte) (flows.OIDCToken, error) {
	if len(refreshHash) == 0 {
		return flows.OIDCToken{}, fmt.Errorf("get oidc token by refresh hash: no hash: %w", flows.ErrNotFound)
	}
	t, err := scanOIDCToken(o.queryRow(ctx, qGetOIDCTokenByRefresh, refreshHash))
	if err != nil {
		return flows.OIDCToken{}, fmt.Errorf("get oidc token by refresh hash: %w", notFound(err))
	}
	return t, nil
}

// RotateRefreshToken revokes the unrevoked token whose refresh token has
// oldHash, in one conditional update, then stores next; outside a
// transaction it runs in one of its own, so both land or neither does. Of
// concurrent rotations one revokes the token and the others get
// ErrAlreadyUsed; ErrNotFound if no token has that refresh hash. If next
// cannot be stored (ErrConflict, ErrInvalid) the old token is not revoked
// (inside InTx: once the caller returns the error and the transaction rolls
// back). It does not look at the refresh token's expiry: the caller does.
func (o ops) RotateRefreshToken(ctx context.Context, oldHash []byte, next flows.OIDCToken, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("rotate refresh token: %w: no time of rotation", flows.ErrInvalid)
	}
	if o.tx == nil {
		return o.s.InTx(ctx, func(tx flows.Tx) error { return tx.RotateRefreshToken(ctx, oldHash, next, at) })
	}
	if next.ID == "" || next.GrantID == "" || next.ClientID == "" || next.ExpiresAt.IsZero() {
		return fmt.Errorf("rotate refresh token: %w: the next token needs an id, a grant, a client and an expiry", flows.ErrInvalid)
	}
	if len(oldHash) == 0 {
		return fmt.Errorf("rotate refresh token: no refresh hash: %w", flows.ErrNotFound)
	}
	n, err := o.execN(ctx, qRevokeRefresh, unixNano(at), oldHash)
	if err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	if n == 0 {
		old, err := o.GetOIDCTokenByRefresh(ctx, oldHash)
		if err != nil {
			return fmt.Errorf("rotate refresh token: %w", err)
		}
		return fmt.Errorf("rotate refresh token of oidc token %q: revoked at %s: %w", old.ID,
			old.RevokedAt.Format(time.RFC3339Nano), flows.ErrAlreadyUsed)
	}
	if err := o.CreateOIDCToken(ctx, next); err != nil {
		return fmt.Errorf("rotate refresh token: %w", err)
	}
	return nil
}

// RevokeOIDCToken revokes one token; a revoked token keeps its first
// revocation time. ErrNotFound if none, ErrInvalid without a time.
func (o ops) RevokeOIDCToken(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("revoke oidc token %q: %w: no time of revocation", id, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qRevokeOIDCToken, unixNano(at), id)
	if err != nil {
		return fmt.Errorf("revoke oidc token %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := o.GetOIDCToken(ctx, id); err != nil {
		return fmt.Errorf("revoke oidc token: %w", err)
	}
	return nil // revoked before
}

// RevokeGrant revokes every unrevoked token of a grant and returns how many
// it revoked.
func (o ops) RevokeGrant(ctx context.Context, grantID string, at time.Time) (int, error) {
	if at.IsZero() {
		return 0, fmt.Errorf("revoke grant %q: %w: no time of revocation", grantID, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qRevokeGrant, unixNano(at), grantID)
	if err != nil {
		return 0, fmt.Errorf("revoke grant %q: %w", grantID, err)
	}
	return int(n), nil
}

// PurgeOIDCTokens deletes tokens whose access token and refresh token (if
// any) both expired before the given time.
func (o ops) PurgeOIDCTokens(ctx context.Context, before time.Time) error {
	b := unixNano(before)
	if _, err := o.exec(ctx, qPurgeOIDCTokens, b, b); err != nil {
		return fmt.Errorf("purge oidc tokens: %w", err)
	}
	return nil
}

// --- server keys ---

// CreateKey stores a key; ErrConflict if its id is taken, ErrInvalid if it
// lacks an id, a use, an algorithm or its sealed private part.
func (o ops) CreateKey(ctx context.Context, k flows.StoredKey) error {
	if k.ID == "" || k.Use == "" || k.Alg == "" || len(k.Sealed) == 0 {
		return fmt.Errorf("create key: %w: a key needs an id, a use, an algorithm and its sealed private part", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qCreateKey, k.ID, string(k.Use), k.Alg, k.Sealed, nullBlob(k.Cert),
		unixNano(k.CreatedAt), unixNano(k.ActiveAt), unixNano(k.RetireAt))
	switch {
	case (err == nil && n == 0) || o.s.d.isUnique(err):
		return fmt.Errorf("create key %q: %w", k.ID, flows.ErrConflict)
	case err != nil:
		return fmt.Errorf("create key %q: %w", k.ID, err)
	}
	return nil
}

func scanKey(r scanner) (flows.StoredKey, error) {
	var (
		k                         flows.StoredKey
		use                       string
		created, active, retireAt int64
	)
	if err := r.Scan(&k.ID, &use, &k.Alg, &k.Sealed, &k.Cert, &created, &active, &retireAt); err != nil {
		return flows.StoredKey{}, err
	}
	k.Use, k.Sealed, k.Cert = flows.KeyUse(use), blob(k.Sealed), blob(k.Cert)
	k.CreatedAt, k.ActiveAt, k.RetireAt = fromUnixNano(created), fromUnixNano(active), fromUnixNano(retireAt)
	return k, nil
}

// ListKeys returns the keys of one use that are not retired at now (retired
// at or before it), oldest first, then by id.
func (o ops) ListKeys(ctx context.Context, use flows.KeyUse, now time.Time) ([]flows.StoredKey, error) {
	ks, err := queryAll(ctx, o, qListKeys, scanKey, string(use), unixNano(now))
	if err != nil {
		return nil, fmt.Errorf("list %s keys: %w", use, err)
	}
	return ks, nil
}

// RetireKey sets when a key leaves the key sets, keeping an earlier time
// already set; ErrNotFound if none, ErrInvalid without a time.
func (o ops) RetireKey(ctx context.Context, id string, at time.Time) error {
	if at.IsZero() {
		return fmt.Errorf("retire key %q: %w: no time of retirement", id, flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qRetireKey, unixNano(at), id, unixNano(at))
	if err != nil {
		return fmt.Errorf("retire key %q: %w", id, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := scanKey(o.queryRow(ctx, qGetKey, id)); err != nil {
		return fmt.Errorf("retire key %q: %w", id, notFound(err))
	}
	return nil // retired at an earlier time already
}

// --- federated subjects ---

// LinkSubject links a federated subject to an account, once: the same link
// again is no error, a link to another account is ErrConflict. ErrInvalid
// without an issuer, a subject or an account.
func (o ops) LinkSubject(ctx context.Context, issuer, subject, accountID string) error {
	if issuer == "" || subject == "" || accountID == "" {
		return fmt.Errorf("link federated subject: %w: needs an issuer, a subject and an account", flows.ErrInvalid)
	}
	n, err := o.execN(ctx, qLinkSubject, issuer, subject, accountID)
	if err != nil {
		return fmt.Errorf("link subject %q of %q: %w", subject, issuer, err)
	}
	if n == 1 {
		return nil
	}
	linked, err := o.LinkedAccount(ctx, issuer, subject)
	switch {
	case err != nil:
		return fmt.Errorf("link subject: %w", err)
	case linked != accountID:
		return fmt.Errorf("link subject %q of %q to account %q: linked to another account: %w", subject, issuer,
			accountID, flows.ErrConflict)
	}
	return nil
}

// LinkedAccount returns the account a federated subject is linked to;
// ErrNotFound if none.
func (o ops) LinkedAccount(ctx context.Context, issuer, subject string) (string, error) {
	var id string
	if err := o.queryRow(ctx, qLinkedAccount, issuer, subject).Scan(&id); err != nil {
		return "", fmt.Errorf("linked account of subject %q of %q: %w", subject, issuer, notFound(err))
	}
	return id, nil
}
