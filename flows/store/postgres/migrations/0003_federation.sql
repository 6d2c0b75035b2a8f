-- Federation: auth requests, OpenID Connect tokens, server keys and linked
-- federated subjects, PostgreSQL. String lists are JSON arrays ('[]': none).

-- An OpenID Connect (later SAML) request waiting for keystep's step, then
-- redeemed once through its authorization code (stored as a hash only).
-- account_id is no foreign key: a request outlives a purged account.
CREATE TABLE auth_requests (
	id           TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	client_id    TEXT    NOT NULL,
	protocol     TEXT    NOT NULL DEFAULT '',
	request      BYTEA,
	account_id   TEXT    NOT NULL DEFAULT '',
	subject      TEXT    NOT NULL DEFAULT '',
	session_hash BYTEA,
	signin_id    TEXT    NOT NULL DEFAULT '',
	done_at      BIGINT  NOT NULL DEFAULT 0,
	auth_time    BIGINT  NOT NULL DEFAULT 0,
	acr          TEXT    NOT NULL DEFAULT '',
	amr          TEXT    NOT NULL DEFAULT '[]',
	code_hash    BYTEA   UNIQUE,
	code_used_at BIGINT  NOT NULL DEFAULT 0,
	created_at   BIGINT  NOT NULL DEFAULT 0,
	expires_at   BIGINT  NOT NULL
);
CREATE INDEX auth_requests_expiry ON auth_requests (expires_at);

-- Access tokens, each with the refresh token issued with it (its hash).
CREATE TABLE oidc_tokens (
	id           TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	grant_id     TEXT    NOT NULL,
	client_id    TEXT    NOT NULL,
	subject      TEXT    NOT NULL DEFAULT '',
	account_id   TEXT    NOT NULL DEFAULT '',
	scopes       TEXT    NOT NULL DEFAULT '[]',
	audience     TEXT    NOT NULL DEFAULT '[]',
	acr          TEXT    NOT NULL DEFAULT '',
	amr          TEXT    NOT NULL DEFAULT '[]',
	auth_time    BIGINT  NOT NULL DEFAULT 0,
	refresh_hash BYTEA   UNIQUE,
	refresh_exp  BIGINT  NOT NULL DEFAULT 0,
	created_at   BIGINT  NOT NULL DEFAULT 0,
	expires_at   BIGINT  NOT NULL,
	revoked_at   BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX oidc_tokens_grant ON oidc_tokens (grant_id);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens (expires_at);

-- Server signing and cookie keys, private parts sealed by the caller.
CREATE TABLE server_keys (
	id         TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	use        TEXT    NOT NULL,
	alg        TEXT    NOT NULL,
	sealed     BYTEA   NOT NULL,
	cert       BYTEA,
	created_at BIGINT  NOT NULL DEFAULT 0,
	active_at  BIGINT  NOT NULL DEFAULT 0,
	retire_at  BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX server_keys_use ON server_keys (use, created_at, id);

-- A federated subject (an upstream issuer's subject) linked to an account.
CREATE TABLE federated_subjects (
	issuer     TEXT NOT NULL,
	subject    TEXT NOT NULL,
	account_id TEXT NOT NULL,
	PRIMARY KEY (issuer, subject)
);
