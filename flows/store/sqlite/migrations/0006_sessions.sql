-- Sessions, SQLite: the signed-in sessions of the admin console, shared by
-- every instance. id is the hash of the secret the session's cookie
-- carries (never the secret); data is the UI's small JSON. Times are Unix
-- nanoseconds; a session is deleted once expires_at (its absolute end) has
-- passed.
CREATE TABLE sessions (
	id           TEXT    NOT NULL PRIMARY KEY,
	kind         TEXT    NOT NULL,
	subject      TEXT    NOT NULL,
	data         BLOB,
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_at);
