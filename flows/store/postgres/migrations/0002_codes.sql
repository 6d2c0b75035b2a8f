-- One-time codes, account limits and rate-limit windows, PostgreSQL.

-- Override codes (signin_id '') and SMS/email OTPs (bound to a sign-in),
-- stored as keyed hashes only.
CREATE TABLE codes (
	id           TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	account_id   TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	signin_id    TEXT    NOT NULL DEFAULT '',
	kind         TEXT    NOT NULL CHECK (kind IN ('override', 'sms', 'email')),
	hash         BYTEA   NOT NULL,
	created_by   TEXT    NOT NULL DEFAULT '',
	created_at   BIGINT  NOT NULL DEFAULT 0,
	expires_at   BIGINT  NOT NULL,
	used_at      BIGINT  NOT NULL DEFAULT 0,
	revoked_at   BIGINT  NOT NULL DEFAULT 0,
	attempts     INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX codes_account ON codes (account_id, signin_id, created_at);
CREATE INDEX codes_expiry ON codes (expires_at);

-- Consecutive code failures, code lock and push block of an account.
CREATE TABLE account_limits (
	account_id         TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
	failed_codes       INTEGER NOT NULL DEFAULT 0,
	locked_until       BIGINT  NOT NULL DEFAULT 0,
	push_blocked_until BIGINT  NOT NULL DEFAULT 0
);

-- Fixed windows of the rate limits, shared by every instance on the store.
CREATE TABLE rate_limits (
	key        TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	hits       INTEGER NOT NULL,
	window_end BIGINT  NOT NULL
);
CREATE INDEX rate_limits_end ON rate_limits (window_end);
