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
	qPurgeAccounts

	qCreateDevice
	qGetDevice
	qListDevices
	qUnregisterDevice

	qCreateInvitation
	qGetInvitation
	qGetInvitationByHash
	qRedeemInvitation
	qRevokeInvitations

	qCreateSignIn
	qGetSignIn
	qSignInExists
	qListPendingSignIns
	qDecideSignIn
	qCancelPendingSignIns

	qUseNonce
	qPurgeNonces

	qAuditLock
	qAuditHead
	qAuditInsert
	qListAudit
	qListAuditAccount

	numQueries
)

const (
	accountCols = `id, username, email, phone, display_name, state, state_source, state_reason,
		state_changed_at, created_at, updated_at`
	deviceCols = `id, account_id, name, public_key, push_route, state, unregistered_at,
		unregister_reason, created_at, last_seen_at, enrolled_invitation`
	invitationCols = `id, account_id, token_hash, created_by, created_at, expires_at, used_at,
		revoked_at, used_device`
	signInCols = `id, account_id, client, ip, user_agent, methods, number, qr_secret_hash, nonce,
		created_at, expires_at, status, decided_at, decided_by, device_id, reason, fraud_report`
	auditCols = `seq, at, actor, action, account_id, device_id, signin_id, detail, prev_hash, hash`
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
	qGetSignIn:    `SELECT ` + signInCols + ` FROM signins WHERE id = ?`,
	qSignInExists: `SELECT COUNT(*) FROM signins WHERE id = ?`,
	qListPendingSignIns: `SELECT ` + signInCols + ` FROM signins
		WHERE account_id = ? AND status = 'pending' AND expires_at > ? ORDER BY created_at, id`,
	qDecideSignIn: `UPDATE signins SET status = ?, decided_at = ?, decided_by = ?, device_id = ?,
		reason = ?, fraud_report = ? WHERE id = ? AND status = 'pending'`,
	qCancelPendingSignIns: `UPDATE signins SET status = 'cancelled', decided_at = ?, reason = ?
		WHERE account_id = ? AND status = 'pending' RETURNING id`,

	qUseNonce:    `INSERT INTO nonces (nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING`,
	qPurgeNonces: `DELETE FROM nonces WHERE expires_at < ?`,

	qAuditLock: ``, // the dialect's LockAuditChain
	qAuditHead: `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`,
	qAuditInsert: `INSERT INTO audit (` + auditCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
	qListAudit:        `SELECT ` + auditCols + ` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`,
	qListAuditAccount: `SELECT ` + auditCols + ` FROM audit WHERE seq > ? AND account_id = ? ORDER BY seq LIMIT ?`,
}
