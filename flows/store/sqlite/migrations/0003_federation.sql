-- Federation: auth requests, OpenID Connect tokens, server keys and linked
-- federated subjects, SQLite. String lists are JSON arrays ('[]': none).

-- An OpenID Connect (later SAML) request waiting for keystep's step, then
-- redeemed once through its authorization code (stored as a hash only).
-- account_id is no foreign key: a request outlives a purged account.
CREATE TABLE auth_requests (
	id           TEXT    NOT NULL PRIMARY KEY,
	client_id    TEXT    NOT NULL,
	protocol     TEXT    NOT NULL DEFAULT '',
	request      BLOB,
	account_id   TEXT    NOT NULL DEFAULT '',
	subject      TEXT    NOT NULL DEFAULT '',
	session_hash BLOB,
	signin_id    TEXT    NOT NULL DEFAULT '',
	done_at      INTEGER NOT NULL DEFAULT 0,
	auth_time    INTEGER NOT NULL DEFAULT 0,
	acr          TEXT    NOT NULL DEFAULT '',
	amr          TEXT    NOT NULL DEFAULT '[]',
	code_hash    BLOB    UNIQUE,
	code_used_at INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL DEFAULT 0,
	expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX auth_requests_expiry ON auth_requests (expires_at);

-- Access tokens, each with the refresh token issued with it (its hash).
CREATE TABLE oidc_tokens (
	id           TEXT    NOT NULL PRIMARY KEY,
	grant_id     TEXT    NOT NULL,
	client_id    TEXT    NOT NULL,
	subject      TEXT    NOT NULL DEFAULT '',
	account_id   TEXT    NOT NULL DEFAULT '',
	scopes       TEXT    NOT NULL DEFAULT '[]',
	audience     TEXT    NOT NULL DEFAULT '[]',
	acr          TEXT    NOT NULL DEFAULT '',
	amr          TEXT    NOT NULL DEFAULT '[]',
	auth_time    INTEGER NOT NULL DEFAULT 0,
	refresh_hash BLOB    UNIQUE,
	refresh_exp  INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL DEFAULT 0,
	expires_at   INTEGER NOT NULL,
	revoked_at   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX oidc_tokens_grant ON oidc_tokens (grant_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens (expires_at);

-- Server signing and cookie keys, private parts sealed by the caller.
CREATE TABLE server_keys (
	id         TEXT    NOT NULL PRIMARY KEY,
	use        TEXT    NOT NULL,
	alg        TEXT    NOT NULL,
	sealed     BLOB    NOT NULL,
	cert       BLOB,
	created_at INTEGER NOT NULL DEFAULT 0,
	active_at  INTEGER NOT NULL DEFAULT 0,
	retire_at  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX server_keys_use ON server_keys (use, created_at, id);

-- A federated subject (an upstream issuer's subject) linked to an account.
CREATE TABLE federated_subjects (
	issuer     TEXT NOT NULL,
	subject    TEXT NOT NULL,
	account_id TEXT NOT NULL,
	PRIMARY KEY (issuer, subject)
) WITHOUT ROWID;
