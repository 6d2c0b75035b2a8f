package api

import "time"

// Paths of the admin API for the directory sync (LDAP / Active Directory).
const (
	PathDirectory     = AdminPrefix + "/directory"               // GET → DirectoryStatusList
	PathDirectorySync = AdminPrefix + "/directory/{source}/sync" // POST DirectorySync (optional) → 202 DirectorySyncStarted
)

// Health of a directory source, in DirectoryStatus.Health and /healthz.
const (
	DirectoryNever   = "never"   // no sync has finished yet
	DirectoryOK      = "ok"      // the last sync worked
	DirectoryFailing = "failing" // the directory does not answer: accounts keep their last known states
	DirectoryGuard   = "guard"   // the mass-removal guard stopped a sync: an admin must look
)

// DirectoryStatus is where one directory source's sync stands.
type DirectoryStatus struct {
	Source string `json:"source"`
	Health string `json:"health"` // never | ok | failing | guard
	// Mode is the incremental sync in use: syncrepl, dirsync or none.
	Mode string `json:"mode,omitempty"`
	// Server is the URL that answered last.
	Server string `json:"server,omitempty"`
	// LastFull is the last full sync that ran to its end or was stopped
	// by the guard.
	LastFull *DirectoryRun `json:"last_full,omitempty"`
	// LastChange is when the incremental sync last applied a change;
	// Incremental is what it did since the last full sync.
	LastChange  time.Time     `json:"last_change,omitzero"`
	Incremental *DirectoryRun `json:"incremental,omitempty"`
	// LastError is the last failure, Failures how many in a row, NextRetry
	// when the server tries again.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Failures    int       `json:"failures,omitempty"`
	NextRetry   time.Time `json:"next_retry,omitzero"`
	// Guard says why the guard stopped the last sync.
	Guard string `json:"guard,omitempty"`
}

// DirectoryRun is what one sync did.
type DirectoryRun struct {
	Run      string    `json:"run"`
	Kind     string    `json:"kind"` // full, syncrepl or dirsync
	DryRun   bool      `json:"dry_run,omitempty"`
	Server   string    `json:"server,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Entries is how many directory entries were read; Skipped how many
	// could not be mapped.
	Entries   int `json:"entries"`
	Skipped   int `json:"skipped,omitempty"`
	Unchanged int `json:"unchanged"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Suspended int `json:"suspended"`
	Restored  int `json:"restored"`
	Removed   int `json:"removed"`
	// Conflicts are entries whose username another account holds; Failed
	// entries that could not be applied for another reason.
	Conflicts int `json:"conflicts,omitempty"`
	Failed    int `json:"failed,omitempty"`
	// Problems are the first few skipped, conflicting or failed entries.
	Problems []string `json:"problems,omitempty"`
	// Guard is set when the mass-removal guard stopped the sync.
	Guard string `json:"guard,omitempty"`
}

// DirectoryStatusList is every directory source's status, in the order
// of the configuration.
type DirectoryStatusList struct {
	Sources []DirectoryStatus `json:"sources"`
}

// DirectorySync asks for a full sync of a source now (the body is
// optional). ConfirmRemovals lets up to that many removals through the
// mass-removal guard in that sync, after it stopped one.
type DirectorySync struct {
	ConfirmRemovals int `json:"confirm_removals,omitempty"`
}

// DirectorySyncStarted answers a sync request: the server starts a full
// sync of the source now (or, if one runs, right after it).
type DirectorySyncStarted struct {
	Source string `json:"source"`
}

// ProblemDirectoryUnavailable is a sign-in refused because the live check
// could not reach the account's directory (fail-closed): 503, try again in
// a moment.
const ProblemDirectoryUnavailable = ProblemBase + "directory-unavailable"
