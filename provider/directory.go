package provider

import (
	"net/http"
	"strconv"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/provider/api"
)

// routeDirectory registers the directory sync's admin endpoints: the status
// of every source, and a full sync of one started now. They exist with no
// sources too (an empty list; every source is unknown).
func (s *Server) routeDirectory() {
	s.mux.HandleFunc("GET "+api.PathDirectory, s.authAdmin(s.directoryStatus))
	s.mux.HandleFunc("POST "+api.PathDirectorySync, s.authAdmin(s.directorySync))
}

// directoryStatus lists every source's status, in the configuration's
// order.
func (s *Server) directoryStatus(w http.ResponseWriter, r *http.Request) {
	out := api.DirectoryStatusList{Sources: make([]api.DirectoryStatus, 0, len(s.directory))}
	for _, src := range s.directory {
		st, err := src.Status(r.Context())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		out.Sources = append(out.Sources, directoryStatus(st))
	}
	writeJSON(w, http.StatusOK, out)
}

// directorySync starts a full sync of one source now (202): the source's
// running sync loop picks it up. The result shows in the status.
func (s *Server) directorySync(w http.ResponseWriter, r *http.Request) {
	var req api.DirectorySync
	if !body(w, r, &req, true) {
		return
	}
	if req.ConfirmRemovals < 0 || req.ConfirmRemovals > maxConfirmRemovals {
		writeProblem(w, problem(api.ProblemInvalid, http.StatusBadRequest, "confirm_removals must be 0 to "+strconv.Itoa(maxConfirmRemovals)))
		return
	}
	name := r.PathValue("source")
	for _, src := range s.directory {
		if src.Name() == name {
			if req.ConfirmRemovals > 0 {
				detail := name + ": up to " + strconv.Itoa(req.ConfirmRemovals) + " removals confirmed for the next full sync"
				if err := s.flows.RecordEvent(r.Context(), adminActor(r.Context()), "directory.confirm_removals", detail); err != nil {
					s.fail(w, r, err)
					return
				}
			}
			if err := src.RequestFullSync(r.Context(), req.ConfirmRemovals); err != nil {
				s.fail(w, r, err)
				return
			}
			s.log.Info("directory sync requested", "directory", name, "admin", adminActor(r.Context()), "confirm_removals", req.ConfirmRemovals)
			writeJSON(w, http.StatusAccepted, api.DirectorySyncStarted{Source: name})
			return
		}
	}
	writeProblem(w, problem(api.ProblemNotFound, http.StatusNotFound, "no directory source is named "+quote(name)))
}

// maxConfirmRemovals bounds the removals one request can confirm.
const maxConfirmRemovals = 1_000_000

// quote quotes a name for a problem's detail, clipped.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// directoryStatus is a source's status on the wire.
func directoryStatus(st directory.Status) api.DirectoryStatus {
	return api.DirectoryStatus{
		Source: st.Source, Health: st.Health, Mode: st.Mode, Server: st.Server,
		LastFull: directoryRun(st.LastFull), LastChange: st.LastChange, Incremental: directoryRun(st.Incremental),
		LastError: st.LastError, LastErrorAt: st.LastErrorAt, Failures: st.Failures, NextRetry: st.NextRetry, Guard: st.Guard,
	}
}

// directoryRun is a sync's report on the wire.
func directoryRun(r *directory.RunReport) *api.DirectoryRun {
	if r == nil {
		return nil
	}
	return &api.DirectoryRun{
		Run: r.Run, Kind: r.Kind, DryRun: r.DryRun, Server: r.Server, Started: r.Started, Finished: r.Finished,
		Entries: r.Entries, Skipped: r.Skipped, Unchanged: r.Unchanged, Created: r.Created, Updated: r.Updated,
		Suspended: r.Suspended, Restored: r.Restored, Removed: r.Removed, Conflicts: r.Conflicts, Failed: r.Failed,
		Problems: r.Problems, Guard: r.Guard,
	}
}
