-- Directory sync (LDAP, Active Directory), SQLite: the link of each account
-- to the directory entry it comes from, the entries a full sync stages
-- before it applies them, and each source's cookie and status.

-- An account linked to an entry of a directory source, by the entry's
-- stable id (never its DN): an entry has at most one link, an account at
-- most one. hash is the hash of the entry last applied; seen_run the last
-- full sync run that saw the entry ('': none). The link goes with its
-- account when the account is purged. The primary key serves the lookups
-- by id of a page of entries, the marking of the entries a run saw and the
-- listing of those it did not see, in id order.
CREATE TABLE directory_links (
	source      TEXT    NOT NULL,
	external_id TEXT    NOT NULL,
	account_id  TEXT    NOT NULL UNIQUE REFERENCES accounts (id) ON DELETE CASCADE,
	dn          TEXT    NOT NULL DEFAULT '',
	hash        BLOB,
	seen_run    TEXT    NOT NULL DEFAULT '',
	updated_at  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (source, external_id)
) WITHOUT ROWID;

-- Entries of a full sync run, staged until the run's guard lets it apply
-- them: entry is the JSON of a flows.DirectoryEntry.
CREATE TABLE directory_staged (
	source      TEXT NOT NULL,
	run         TEXT NOT NULL,
	external_id TEXT NOT NULL,
	entry       TEXT NOT NULL,
	PRIMARY KEY (source, run, external_id)
) WITHOUT ROWID;

-- What a source's sync keeps between runs and instances: the incremental
-- sync's cookie and the search it belongs to, and the sync's status (JSON).
CREATE TABLE directory_state (
	source       TEXT    NOT NULL PRIMARY KEY,
	cookie       BLOB,
	cookie_scope TEXT    NOT NULL DEFAULT '',
	status       BLOB,
	updated_at   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
