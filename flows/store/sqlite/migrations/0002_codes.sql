-- One-time codes, account limits and rate-limit windows, SQLite.

-- Override codes (signin_id '') and SMS/email OTPs (bound to a sign-in),
-- stored as keyed hashes only.
CREATE TABLE codes (
	id           TEXT    NOT NULL PRIMARY KEY,
	account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	signin_id    TEXT    NOT NULL DEFAULT '',
	kind         TEXT    NOT NULL CHECK (kind IN ('override', 'sms', 'email')),
	hash         BLOB    NOT NULL,
	created_by   TEXT    NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL DEFAULT 0,
	expires_at   INTEGER NOT NULL,
	used_at      INTEGER NOT NULL DEFAULT 0,
	revoked_at   INTEGER NOT NULL DEFAULT 0,
	attempts     INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX codes_account ON codes (account_id, signin_id, created_at);
CREATE INDEX codes_expiry ON codes (expires_at);

-- Consecutive code failures, code lock and push block of an account.
CREATE TABLE account_limits (
	account_id         TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	failed_codes       INTEGER NOT NULL DEFAULT 0,
	locked_until       INTEGER NOT NULL DEFAULT 0,
	push_blocked_until INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Fixed windows of the rate limits, shared by every instance on the store.
CREATE TABLE rate_limits (
	key        TEXT    NOT NULL PRIMARY KEY,
	hits       INTEGER NOT NULL,
	window_end INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rate_limits_end ON rate_limits (window_end);
