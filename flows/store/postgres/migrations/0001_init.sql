-- keystep schema, PostgreSQL. Times are unix nanoseconds (0: none). Ordered text
-- columns use the "C" collation so that lists sort as they do on SQLite.

CREATE TABLE accounts (
	id               TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	username         TEXT    NOT NULL,
	username_key     TEXT    COLLATE "C" NOT NULL,
	email            TEXT    NOT NULL DEFAULT '',
	phone            TEXT    NOT NULL DEFAULT '',
	display_name     TEXT    NOT NULL DEFAULT '',
	state            TEXT    NOT NULL CHECK (state IN ('active', 'suspended', 'removed')),
	state_source     TEXT    NOT NULL DEFAULT '',
	state_reason     TEXT    NOT NULL DEFAULT '',
	state_changed_at BIGINT  NOT NULL DEFAULT 0,
	created_at       BIGINT  NOT NULL DEFAULT 0,
	updated_at       BIGINT  NOT NULL DEFAULT 0
);
-- A username is taken once among accounts that are not removed.
CREATE UNIQUE INDEX accounts_username_live ON accounts (username_key) WHERE state <> 'removed';
CREATE INDEX accounts_username ON accounts (username_key, id);
CREATE INDEX accounts_removed ON accounts (state, state_changed_at);

CREATE TABLE devices (
	id                  TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	account_id          TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	name                TEXT    NOT NULL DEFAULT '',
	public_key          BYTEA,
	push_route          TEXT    NOT NULL DEFAULT '',
	state               TEXT    NOT NULL CHECK (state IN ('active', 'unregistered')),
	unregistered_at     BIGINT  NOT NULL DEFAULT 0,
	unregister_reason   TEXT    NOT NULL DEFAULT '',
	created_at          BIGINT  NOT NULL DEFAULT 0,
	last_seen_at        BIGINT  NOT NULL DEFAULT 0,
	enrolled_invitation TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX devices_account ON devices (account_id, created_at, id);

CREATE TABLE invitations (
	id          TEXT    NOT NULL PRIMARY KEY,
	account_id  TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	token_hash  BYTEA   NOT NULL UNIQUE,
	created_by  TEXT    NOT NULL DEFAULT '',
	created_at  BIGINT  NOT NULL DEFAULT 0,
	expires_at  BIGINT  NOT NULL DEFAULT 0,
	used_at     BIGINT  NOT NULL DEFAULT 0,
	revoked_at  BIGINT  NOT NULL DEFAULT 0,
	used_device TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX invitations_account ON invitations (account_id);

CREATE TABLE signins (
	id             TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	account_id     TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
	client         TEXT    NOT NULL DEFAULT '',
	ip             TEXT    NOT NULL DEFAULT '',
	user_agent     TEXT    NOT NULL DEFAULT '',
	methods        TEXT    NOT NULL DEFAULT '',
	number         TEXT    NOT NULL DEFAULT '',
	qr_secret_hash BYTEA,
	nonce          TEXT    NOT NULL DEFAULT '',
	created_at     BIGINT  NOT NULL DEFAULT 0,
	expires_at     BIGINT  NOT NULL DEFAULT 0,
	status         TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
	decided_at     BIGINT  NOT NULL DEFAULT 0,
	decided_by     TEXT    NOT NULL DEFAULT '',
	device_id      TEXT    NOT NULL DEFAULT '',
	reason         TEXT    NOT NULL DEFAULT '',
	fraud_report   BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX signins_account ON signins (account_id, status, created_at, id);

CREATE TABLE nonces (
	nonce      TEXT    NOT NULL PRIMARY KEY,
	expires_at BIGINT  NOT NULL
);
CREATE INDEX nonces_expiry ON nonces (expires_at);

-- Append-only, hash-chained; kept when accounts are purged.
CREATE TABLE audit (
	seq        BIGINT  NOT NULL PRIMARY KEY,
	at         BIGINT  NOT NULL,
	actor      TEXT    NOT NULL DEFAULT '',
	action     TEXT    NOT NULL DEFAULT '',
	account_id TEXT    NOT NULL DEFAULT '',
	device_id  TEXT    NOT NULL DEFAULT '',
	signin_id  TEXT    NOT NULL DEFAULT '',
	detail     TEXT    NOT NULL DEFAULT '',
	prev_hash  BYTEA,
	hash       BYTEA   NOT NULL
);
CREATE INDEX audit_account ON audit (account_id, seq);
