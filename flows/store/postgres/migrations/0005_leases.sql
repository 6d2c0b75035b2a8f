-- Leases, PostgreSQL: which instance runs a job that only one instance may
-- run at a time (a directory source's sync). A lease is held by holder
-- until expires_at (Unix nanoseconds); a holder renews it before then, and
-- another instance takes it over once it has expired.
CREATE TABLE leases (
	name       TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
	holder     TEXT    NOT NULL,
	expires_at BIGINT  NOT NULL
);
