-- Sessions, PostgreSQL: the signed-in sessions of the admin console,
-- shared by every instance. id is the hash of the secret the session's
-- cookie carries (never the secret); data is the UI's small JSON. Times
-- are Unix nanoseconds; a session is deleted once expires_at (its
-- absolute end) has passed.
CREATE TABLE sessions (
	id           TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	kind         TEXT    NOT NULL,
	subject      TEXT    NOT NULL,
	data         BYTEA,
	created_at   BIGINT  NOT NULL,
	last_seen_at BIGINT  NOT NULL,
	expires_at   BIGINT  NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_at);
