package directory

import (
	"encoding/json"
	"time"
)

// Sync health, as Status.Health says it.
const (
	HealthNever   = "never"   // no sync has finished yet
	HealthOK      = "ok"      // the last sync worked
	HealthFailing = "failing" // the directory does not answer: the last known states stay
	HealthGuard   = "guard"   // the mass-removal guard stopped a sync: an admin must look
)

// Status is where a source's sync stands, for the admin API, the CLI and
// the health endpoint. It is kept in the store, so every instance and a
// restarted one sees it.
type Status struct {
	Source string `json:"source"`
	Health string `json:"health"`
	// Mode is the incremental sync in use: syncrepl, dirsync or none.
	Mode string `json:"mode,omitempty"`
	// Server is the URL that answered last.
	Server string `json:"server,omitempty"`
	// LastFull is the last full sync that ran to its end (or was stopped
	// by the guard); LastAttempt the last one started.
	LastFull *RunReport `json:"last_full,omitempty"`
	// LastChange is when the incremental sync last applied a change, and
	// Incremental its counts since the last full sync.
	LastChange  time.Time  `json:"last_change,omitzero"`
	Incremental *RunReport `json:"incremental,omitempty"`
	// LastError is the last failure, Failures how many in a row.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Failures    int       `json:"failures,omitempty"`
	NextRetry   time.Time `json:"next_retry,omitzero"`
	// Guard says why the guard stopped the last sync.
	Guard string `json:"guard,omitempty"`
}

// SyncRequest is an admin's request for a full sync, kept in the store (a
// row of its own) so that whichever instance syncs the source runs it.
type SyncRequest struct {
	At              time.Time `json:"at"`
	ConfirmRemovals int       `json:"confirm_removals,omitempty"`
}

// RunReport is what one sync did (or, dry, would do).
type RunReport struct {
	Run      string    `json:"run"`
	Kind     string    `json:"kind"` // full, syncrepl or dirsync
	DryRun   bool      `json:"dry_run,omitempty"`
	Server   string    `json:"server,omitempty"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Entries is how many directory entries were read; Skipped how many
	// could not be mapped (no id, no username…).
	Entries   int `json:"entries"`
	Skipped   int `json:"skipped,omitempty"`
	Unchanged int `json:"unchanged"`
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Suspended int `json:"suspended"`
	Restored  int `json:"restored"`
	Removed   int `json:"removed"`
	// Invited is how many new accounts were emailed an invitation.
	Invited int `json:"invited,omitempty"`
	// Conflicts are entries whose username another account holds.
	Conflicts int `json:"conflicts,omitempty"`
	// Failed are entries that could not be applied for another reason.
	Failed int `json:"failed,omitempty"`
	// Problems are the first few skipped, conflicting or failed entries.
	Problems []string `json:"problems,omitempty"`
	// Guard is set when the mass-removal guard stopped the sync.
	Guard string `json:"guard,omitempty"`
}

// maxProblems bounds RunReport.Problems.
const maxProblems = 20

func (r *RunReport) problem(s string) {
	if len(r.Problems) < maxProblems {
		r.Problems = append(r.Problems, s)
	}
}

// Changes is how many accounts the run changed.
func (r *RunReport) Changes() int {
	return r.Created + r.Updated + r.Suspended + r.Restored + r.Removed
}

// Duration is how long the run took.
func (r *RunReport) Duration() time.Duration {
	if r.Finished.IsZero() {
		return 0
	}
	return r.Finished.Sub(r.Started)
}

// DecodeStatus reads a status as the store keeps it.
func DecodeStatus(source string, data []byte) Status {
	st := Status{Source: source, Health: HealthNever}
	if len(data) > 0 {
		_ = json.Unmarshal(data, &st) // a status we cannot read is a status we start again
	}
	st.Source = source
	return st
}
