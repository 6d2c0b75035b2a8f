package sqlstore

// query names one statement of the store. Every statement is prepared once
// when the store opens, so the hot path never parses SQL.
type query int

const (
	qCreateAccount query = iota
	qGetAccount
	qGetAccountByUsername
	qListAccountsLive
	qListAccountsAll
	qListAccountsState
	qUpdateAccount
	qSetAccountState
	qLockActiveAccount
	qPurgeAccounts

	qCreateDevice
	qGetDevice
	qListDevices
	qUnregisterDevice
	qUpdateDevicePushRoute

	qCreateInvitation
	qGetInvitation
	qGetInvitationByHash
	qRedeemInvitation
	qRevokeInvitations

	qCreateSignIn
	qGetSignIn
	qListPendingSignIns
	qDecideSignIn
	qDecideSignInByDevice
	qCancelPendingSignIns

	qUseNonce
	qPurgeNonces

	qAuditLock
	qAuditHead
	qAuditInsert
	qListAudit
	qListAuditAccount
	qListAuditNewest
	qListAuditAccountNewest

	qCreateCode
	qGetCode
	qListActiveCodes
	qRedeemCode
	qCodeAttempt
	qRevokeCodes
	qPurgeCodes
	qGetLimits
	qCodeFailure
	qResetFailures
	qUnlockCodes
	qBlockPush
	qHitRateLimit
	qPurgeRateLimits

	qCreateAuthRequest
	qGetAuthRequest
	qGetAuthRequestByCode
	qBindAuthRequest
	qAttachSignIn
	qCompleteAuthRequest
	qSaveAuthCode
	qRedeemAuthCode
	qPurgeAuthRequests
	qCreateOIDCToken
	qGetOIDCToken
	qGetOIDCTokenByRefresh
	qRevokeRefresh
	qRevokeOIDCToken
	qRevokeGrant
	qPurgeOIDCTokens
	qCreateKey
	qGetKey
	qListKeys
	qRetireKey
	qLinkSubject
	qLinkedAccount

	qGetDirectoryLinks
	qGetDirectoryLinkByAccount
	qPutDirectoryLink
	qMarkDirectorySeen
	qListUnseenDirectoryLinks
	qCountDirectoryLinks
	qStageDirectoryEntries
	qListStagedDirectoryEntries
	qClearStagedDirectoryEntries
	qGetDirectoryState
	qPutDirectoryState
	qListDirectoryStates

	qAcquireLease
	qReleaseLease

	qCreateSession
	qGetSession
	qTouchSession
	qDeleteSession
	qPurgeSessions

	numQueries
)

const (
	sessionCols = `id, kind, subject, data, created_at, last_seen_at, expires_at`
	accountCols = `id, username, email, phone, display_name, state, state_source, state_reason,
		state_changed_at, created_at, updated_at`
	deviceCols = `id, account_id, name, public_key, push_route, state, unregistered_at,
		unregister_reason, created_at, last_seen_at, enrolled_invitation`
	invitationCols = `id, account_id, token_hash, created_by, created_at, expires_at, used_at,
		revoked_at, used_device`
	signInCols = `id, account_id, client, ip, user_agent, methods, number, qr_secret_hash, nonce,
		created_at, expires_at, status, decided_at, decided_by, device_id, reason, fraud_report`
	auditCols = `seq, at, actor, action, account_id, device_id, signin_id, detail, prev_hash, hash`
	codeCols  = `id, account_id, signin_id, kind, hash, created_by, created_at, expires_at, used_at,
		revoked_at, attempts, max_attempts`
	authRequestCols = `id, client_id, protocol, request, account_id, subject, session_hash, signin_id,
		done_at, auth_time, acr, amr, code_hash, code_used_at, created_at, expires_at`
	oidcTokenCols = `id, grant_id, client_id, subject, account_id, scopes, audience, acr, amr, auth_time,
		refresh_hash, refresh_exp, created_at, expires_at, revoked_at`
	serverKeyCols = `id, use, alg, sealed, cert, created_at, active_at, retire_at`
	// dirLinkCols are qualified: some statements join accounts.
	dirLinkCols = `directory_links.source, directory_links.external_id, directory_links.account_id,
		directory_links.dn, directory_links.hash, directory_links.seen_run, directory_links.updated_at`
	dirStateCols = `source, cookie, cookie_scope, status, updated_at`
)

// queryText is every statement, written with "?" placeholders. An INSERT of
// a new row uses ON CONFLICT DO NOTHING and reports a conflict by affecting
// no row, so a duplicate never aborts the caller's transaction (PostgreSQL
// aborts a transaction on any error).
var queryText = [numQueries]string{
	qCreateAccount: `INSERT INTO accounts (id, username, username_key, email, phone, display_name,
		state, state_source, state_reason, state_changed_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetAccount: `SELECT ` + accountCols + ` FROM accounts WHERE id = ?`,
	qGetAccountByUsername: `SELECT ` + accountCols + ` FROM accounts
		WHERE username_key = ? AND state <> 'removed'`,
	qListAccountsLive: `SELECT ` + accountCols + ` FROM accounts WHERE state <> 'removed'
		ORDER BY username_key, id`,
	qListAccountsAll:   `SELECT ` + accountCols + ` FROM accounts ORDER BY username_key, id`,
	qListAccountsState: `SELECT ` + accountCols + ` FROM accounts WHERE state = ? ORDER BY username_key, id`,
	qUpdateAccount: `UPDATE accounts SET username = ?, username_key = ?, email = ?, phone = ?,
		display_name = ?, state = ?, state_source = ?, state_reason = ?, state_changed_at = ?,
		updated_at = ? WHERE id = ?`,
	// The state moves only from the state the caller read: of a concurrent
	// restore and removal one changes the row, the other finds it moved.
	qSetAccountState: `UPDATE accounts SET state = ?, state_source = ?, state_reason = ?, state_changed_at = ?,
		updated_at = ? WHERE id = ? AND state = ?`,
	// A no-op update of an active account: it checks the state and, on
	// PostgreSQL, holds the row lock until the transaction ends, so writers
	// of one account that take it first run one after the other.
	qLockActiveAccount: `UPDATE accounts SET updated_at = updated_at WHERE id = ? AND state = 'active'`,
	// Devices, invitations and sign-ins go with their account (ON DELETE
	// CASCADE); the conditions are checked row by row as it is deleted, so
	// an account restored meanwhile is not purged.
	qPurgeAccounts: `DELETE FROM accounts WHERE state = 'removed' AND state_changed_at < ? RETURNING id`,

	qCreateDevice: `INSERT INTO devices (` + deviceCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetDevice:   `SELECT ` + deviceCols + ` FROM devices WHERE id = ?`,
	qListDevices: `SELECT ` + deviceCols + ` FROM devices WHERE account_id = ? ORDER BY created_at, id`,
	qUnregisterDevice: `UPDATE devices SET state = 'unregistered', unregistered_at = ?, unregister_reason = ?
		WHERE id = ? AND state = 'active'`,
	qUpdateDevicePushRoute: `UPDATE devices SET push_route = ? WHERE id = ? AND state = 'active'`,

	qCreateInvitation: `INSERT INTO invitations (` + invitationCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetInvitation:       `SELECT ` + invitationCols + ` FROM invitations WHERE id = ?`,
	qGetInvitationByHash: `SELECT ` + invitationCols + ` FROM invitations WHERE token_hash = ?`,
	qRedeemInvitation: `UPDATE invitations SET used_at = ?, used_device = ?
		WHERE id = ? AND used_at = 0 AND revoked_at = 0 AND expires_at > ?`,
	qRevokeInvitations: `UPDATE invitations SET revoked_at = ?
		WHERE account_id = ? AND used_at = 0 AND revoked_at = 0`,

	qCreateSignIn: `INSERT INTO signins (` + signInCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetSignIn: `SELECT ` + signInCols + ` FROM signins WHERE id = ?`,
	qListPendingSignIns: `SELECT ` + signInCols + ` FROM signins
		WHERE account_id = ? AND status = 'pending' AND expires_at > ? ORDER BY created_at, id`,
	qDecideSignIn: `UPDATE signins SET status = ?, decided_at = ?, decided_by = ?, device_id = ?,
		reason = ?, fraud_report = ? WHERE id = ? AND status = 'pending'`,
	// A device's decision lands only while the device is active and
	// belongs to the sign-in's account, and that account is active: checked
	// in the same statement as the status, so an unregistration or
	// suspension that commits first wins.
	qDecideSignInByDevice: `UPDATE signins SET status = ?, decided_at = ?, decided_by = ?, device_id = ?,
		reason = ?, fraud_report = ? WHERE id = ? AND status = 'pending'
		AND EXISTS (SELECT 1 FROM devices WHERE devices.id = ? AND devices.account_id = signins.account_id
			AND devices.state = 'active')
		AND EXISTS (SELECT 1 FROM accounts WHERE accounts.id = signins.account_id AND accounts.state = 'active')`,
	qCancelPendingSignIns: `UPDATE signins SET status = 'cancelled', decided_at = ?, reason = ?
		WHERE account_id = ? AND status = 'pending' RETURNING id`,

	qUseNonce:    `INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING`,
	qPurgeNonces: `DELETE FROM nonces WHERE expires_at < ?`,

	qAuditLock: ``, // the dialect's LockAuditChain
	qAuditHead: `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`,
	qAuditInsert: `INSERT INTO audit (` + auditCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	qListAudit:              `SELECT ` + auditCols + ` FROM audit WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?`,
	qListAuditAccount:       `SELECT ` + auditCols + ` FROM audit WHERE seq > ? AND seq < ? AND account_id = ? ORDER BY seq LIMIT ?`,
	qListAuditNewest:        `SELECT ` + auditCols + ` FROM audit WHERE seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?`,
	qListAuditAccountNewest: `SELECT ` + auditCols + ` FROM audit WHERE seq > ? AND seq < ? AND account_id = ? ORDER BY seq DESC LIMIT ?`,

	qCreateCode: `INSERT INTO codes (` + codeCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetCode: `SELECT ` + codeCols + ` FROM codes WHERE id = ?`,
	qListActiveCodes: `SELECT ` + codeCols + ` FROM codes
		WHERE account_id = ? AND (signin_id = '' OR signin_id = ?) AND used_at = 0 AND revoked_at = 0
		AND expires_at > ? AND (max_attempts = 0 OR attempts < max_attempts) ORDER BY created_at, id`,
	// The conditions are those of ListActiveCodes: of concurrent redeemers
	// one updates the row, the others find it used.
	qRedeemCode: `UPDATE codes SET used_at = ? WHERE id = ? AND used_at = 0 AND revoked_at = 0
		AND expires_at > ? AND (max_attempts = 0 OR attempts < max_attempts)`,
	qCodeAttempt: `UPDATE codes SET attempts = attempts + 1 WHERE id = ? RETURNING attempts`,
	qRevokeCodes: `UPDATE codes SET revoked_at = ? WHERE account_id = ? AND used_at = 0 AND revoked_at = 0
		AND (CAST(? AS TEXT) = '' OR kind = ?) AND (CAST(? AS TEXT) = '' OR signin_id = ?)`,
	qPurgeCodes: `DELETE FROM codes WHERE expires_at < ?`,

	qGetLimits: `SELECT failed_codes, locked_until, push_blocked_until FROM account_limits WHERE account_id = ?`,
	// One statement counts the failure and sets the lock, so concurrent
	// failures each count once and the one that reaches the limit locks.
	qCodeFailure: `INSERT INTO account_limits (account_id, failed_codes, locked_until, push_blocked_until)
		VALUES (?, 1, ?, 0) ON CONFLICT (account_id) DO UPDATE SET
		failed_codes = account_limits.failed_codes + 1,
		locked_until = CASE WHEN account_limits.failed_codes + 1 >= ? THEN ? ELSE account_limits.locked_until END
		RETURNING failed_codes, locked_until`,
	qResetFailures: `UPDATE account_limits SET failed_codes = 0 WHERE account_id = ?`,
	qUnlockCodes:   `UPDATE account_limits SET failed_codes = 0, locked_until = 0 WHERE account_id = ?`,
	qBlockPush: `INSERT INTO account_limits (account_id, failed_codes, locked_until, push_blocked_until)
		VALUES (?, 0, 0, ?) ON CONFLICT (account_id) DO UPDATE SET push_blocked_until =
		CASE WHEN excluded.push_blocked_until > account_limits.push_blocked_until
		THEN excluded.push_blocked_until ELSE account_limits.push_blocked_until END`,

	// A window opens at a key's first hit; a hit after it ended opens the
	// next one. Every SET expression reads the row as it was before.
	qHitRateLimit: `INSERT INTO rate_limits (key, hits, window_end) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
		hits = CASE WHEN rate_limits.window_end <= ? THEN 1 ELSE rate_limits.hits + 1 END,
		window_end = CASE WHEN rate_limits.window_end <= ? THEN excluded.window_end ELSE rate_limits.window_end END
		RETURNING hits, window_end`,
	qPurgeRateLimits: `DELETE FROM rate_limits WHERE window_end < ?`,

	qCreateAuthRequest: `INSERT INTO auth_requests (` + authRequestCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetAuthRequest:       `SELECT ` + authRequestCols + ` FROM auth_requests WHERE id = ?`,
	qGetAuthRequestByCode: `SELECT ` + authRequestCols + ` FROM auth_requests WHERE code_hash = ?`,
	// A request is bound to the first session that asks; of concurrent
	// binders one sets the hash, the others find it set.
	qBindAuthRequest: `UPDATE auth_requests SET session_hash = ? WHERE id = ? AND session_hash IS NULL`,
	qAttachSignIn:    `UPDATE auth_requests SET signin_id = ? WHERE id = ? AND done_at = 0`,
	qCompleteAuthRequest: `UPDATE auth_requests SET done_at = ?, auth_time = ?, acr = ?, amr = ?
		WHERE id = ? AND done_at = 0`,
	// The NOT EXISTS spares a transaction the unique violation (which ends
	// it on PostgreSQL) when the hash is another request's; the unique
	// index still settles concurrent savers.
	qSaveAuthCode: `UPDATE auth_requests SET code_hash = ? WHERE id = ? AND done_at <> 0 AND code_hash IS NULL
		AND NOT EXISTS (SELECT 1 FROM auth_requests AS other WHERE other.code_hash = ?)`,
	// Of concurrent redeemers one sets code_used_at and gets the row back,
	// the others find it set.
	qRedeemAuthCode: `UPDATE auth_requests SET code_used_at = ? WHERE code_hash = ? AND code_used_at = 0
		RETURNING ` + authRequestCols,
	qPurgeAuthRequests: `DELETE FROM auth_requests WHERE expires_at < ?`,

	qCreateOIDCToken: `INSERT INTO oidc_tokens (` + oidcTokenCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetOIDCToken:          `SELECT ` + oidcTokenCols + ` FROM oidc_tokens WHERE id = ?`,
	qGetOIDCTokenByRefresh: `SELECT ` + oidcTokenCols + ` FROM oidc_tokens WHERE refresh_hash = ?`,
	// The first step of a rotation: of concurrent rotations of one refresh
	// token one revokes it, the others find it revoked.
	qRevokeRefresh:   `UPDATE oidc_tokens SET revoked_at = ? WHERE refresh_hash = ? AND revoked_at = 0`,
	qRevokeOIDCToken: `UPDATE oidc_tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0`,
	qRevokeGrant:     `UPDATE oidc_tokens SET revoked_at = ? WHERE grant_id = ? AND revoked_at = 0`,
	qPurgeOIDCTokens: `DELETE FROM oidc_tokens WHERE expires_at < ? AND refresh_exp < ?`,

	qCreateKey: `INSERT INTO server_keys (` + serverKeyCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
	qGetKey: `SELECT ` + serverKeyCols + ` FROM server_keys WHERE id = ?`,
	qListKeys: `SELECT ` + serverKeyCols + ` FROM server_keys
		WHERE use = ? AND (retire_at = 0 OR retire_at > ?) ORDER BY created_at, id`,
	qRetireKey: `UPDATE server_keys SET retire_at = ? WHERE id = ? AND (retire_at = 0 OR retire_at > ?)`,

	qLinkSubject: `INSERT INTO federated_subjects (issuer, subject, account_id) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`,
	qLinkedAccount: `SELECT account_id FROM federated_subjects WHERE issuer = ? AND subject = ?`,

	// The statements that take a list of ids get it as one JSON array
	// (Dialect.list); queryArrayText has their array form.
	qGetDirectoryLinks: `SELECT ` + dirLinkCols + ` FROM directory_links
		WHERE source = ? AND external_id IN (SELECT value FROM json_each(?))`,
	qGetDirectoryLinkByAccount: `SELECT ` + dirLinkCols + ` FROM directory_links WHERE account_id = ?`,
	// An upsert of the entry's link that lands only if the account exists
	// and has no link to another entry, so that neither case is a
	// foreign-key or unique violation (which would end the caller's
	// transaction on PostgreSQL); the constraints still settle concurrent
	// writers.
	qPutDirectoryLink: `INSERT INTO directory_links (source, external_id, account_id, dn, hash, seen_run, updated_at)
		SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM accounts WHERE accounts.id = ?)
		AND NOT EXISTS (SELECT 1 FROM directory_links AS other WHERE other.account_id = ?
			AND (other.source <> ? OR other.external_id <> ?))
		ON CONFLICT (source, external_id) DO UPDATE SET account_id = excluded.account_id, dn = excluded.dn,
		hash = excluded.hash, seen_run = excluded.seen_run, updated_at = excluded.updated_at`,
	// Links seen by the run already are left alone: marking a page twice
	// writes nothing the second time.
	qMarkDirectorySeen: `UPDATE directory_links SET seen_run = ?
		WHERE source = ? AND seen_run <> ? AND external_id IN (SELECT value FROM json_each(?))`,
	qListUnseenDirectoryLinks: `SELECT ` + dirLinkCols + ` FROM directory_links
		JOIN accounts ON accounts.id = directory_links.account_id
		WHERE directory_links.source = ? AND directory_links.seen_run <> ? AND directory_links.external_id > ?
		AND accounts.state <> 'removed' ORDER BY directory_links.external_id LIMIT ?`,
	qCountDirectoryLinks: `SELECT COUNT(*) FROM directory_links JOIN accounts ON accounts.id = directory_links.account_id
		WHERE directory_links.source = ? AND accounts.state <> 'removed'`,
	// entries is a JSON array of flows.DirectoryEntry, without two of one
	// external id (PostgreSQL refuses to upsert a row twice in a statement).
	qStageDirectoryEntries: `INSERT INTO directory_staged (source, run, external_id, entry)
		SELECT ?, ?, json_extract(value, '$.external_id'), value FROM json_each(?) WHERE true
		ON CONFLICT (source, run, external_id) DO UPDATE SET entry = excluded.entry`,
	qListStagedDirectoryEntries: `SELECT entry FROM directory_staged
		WHERE source = ? AND run = ? AND external_id > ? ORDER BY external_id LIMIT ?`,
	qClearStagedDirectoryEntries: `DELETE FROM directory_staged WHERE source = ?`,
	qGetDirectoryState:           `SELECT ` + dirStateCols + ` FROM directory_state WHERE source = ?`,
	qPutDirectoryState: `INSERT INTO directory_state (` + dirStateCols + `) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (source) DO UPDATE SET cookie = excluded.cookie, cookie_scope = excluded.cookie_scope,
		status = excluded.status, updated_at = excluded.updated_at`,
	qListDirectoryStates: `SELECT ` + dirStateCols + ` FROM directory_state ORDER BY source`,

	// Takes a free or expired lease, or renews the holder's own; affects
	// no row while another holder's lease runs.
	qAcquireLease: `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`,
	qReleaseLease: `DELETE FROM leases WHERE name = ? AND holder = ?`,

	qCreateSession: `INSERT INTO sessions (` + sessionCols + `) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
	qGetSession:    `SELECT ` + sessionCols + ` FROM sessions WHERE id = ?`,
	qTouchSession:  `UPDATE sessions SET last_seen_at = ? WHERE id = ?`,
	qDeleteSession: `DELETE FROM sessions WHERE id = ?`,
	qPurgeSessions: `DELETE FROM sessions WHERE expires_at < ?`,
}

// queryArrayText is the form of the statements that take a list of ids (or
// a JSON document) on engines with Dialect.ArrayParams (PostgreSQL): the
// list is a text[], the JSON is read with PostgreSQL's functions.
var queryArrayText = [numQueries]string{
	qGetDirectoryLinks: `SELECT ` + dirLinkCols + ` FROM directory_links
		WHERE source = ? AND external_id = ANY (CAST(? AS TEXT[]))`,
	qMarkDirectorySeen: `UPDATE directory_links SET seen_run = ?
		WHERE source = ? AND seen_run <> ? AND external_id = ANY (CAST(? AS TEXT[]))`,
	// json, not jsonb: each entry is stored as the text it was sent as.
	qStageDirectoryEntries: `INSERT INTO directory_staged (source, run, external_id, entry)
		SELECT ?, ?, e ->> 'external_id', CAST(e AS TEXT) FROM json_array_elements(CAST(? AS JSON)) AS e
		ON CONFLICT (source, run, external_id) DO UPDATE SET entry = excluded.entry`,
}
