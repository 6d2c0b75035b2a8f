package provider

import (
	"context"
	"net/http"
	"net/url"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// TestSignInClient is the client name a test sign-in shows on the phone.
const TestSignInClient = "keystep admin test-signin"

// routeAdmin registers the admin API, every route behind the bearer token.
func (s *Server) routeAdmin() {
	for pattern, h := range map[string]http.HandlerFunc{
		"GET " + api.PathUsers:            s.listUsers,
		"POST " + api.PathUsers:           s.addUser,
		"GET " + api.PathUser:             s.showUser,
		"POST " + api.PathUserSuspend:     s.changeState(s.flows.SuspendAccount),
		"POST " + api.PathUserRestore:     s.changeState(s.flows.RestoreAccount),
		"POST " + api.PathUserRemove:      s.changeState(s.flows.RemoveAccount),
		"POST " + api.PathUserInvite:      s.invite,
		"GET " + api.PathUserDevices:      s.listDevices,
		"POST " + api.PathDeviceUnreg:     s.unregisterDevice,
		"POST " + api.PathDevicesUnregAll: s.unregisterAll,
		"POST " + api.PathTestSignIn:      s.testSignIn,
		"GET " + api.PathSignIn:           s.showSignIn,
		"GET " + api.PathAudit:            s.listAudit,
		"GET " + api.PathAuditVerify:      s.verifyAudit,
	} {
		s.mux.HandleFunc(pattern, s.authAdmin(h))
	}
}

// body reads and strictly decodes a JSON request body into v, answering
// the problem itself and reporting false when it cannot.
func body(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) bool {
	b, p := readBody(w, r)
	if p == nil {
		p = decodeJSON(r, b, v, emptyOK)
	}
	if p != nil {
		writeProblem(w, *p)
		return false
	}
	return true
}

// listUsers lists accounts: ?state=active|suspended|removed and
// ?include_removed=true.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f flows.AccountFilter
	if st := q.Get("state"); st != "" {
		if !flows.AccountState(st).Valid() {
			writeProblem(w, invalid("state must be active, suspended or removed"))
			return
		}
		f.State = flows.AccountState(st)
	}
	switch q.Get("include_removed") {
	case "", "false":
	case "true":
		f.IncludeRemoved = true
	default:
		writeProblem(w, invalid("include_removed must be true or false"))
		return
	}
	as, err := s.flows.ListAccounts(r.Context(), f)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.UserList{Users: make([]api.User, 0, len(as))}
	for _, a := range as {
		out.Users = append(out.Users, user(a))
	}
	writeJSON(w, http.StatusOK, out)
}

// addUser creates an active account (201, with its Location).
func (s *Server) addUser(w http.ResponseWriter, r *http.Request) {
	var req api.NewUser
	if !body(w, r, &req, false) {
		return
	}
	a, err := s.flows.AddAccount(r.Context(), adminActor(r.Context()), flows.NewAccount{
		Username: req.Username, Email: req.Email, Phone: req.Phone, DisplayName: req.DisplayName, Source: flows.SourceAdmin,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", api.AdminPrefix+"/users/"+url.PathEscape(a.ID))
	writeJSON(w, http.StatusCreated, user(a))
}

// showUser shows one account by username or id.
func (s *Server) showUser(w http.ResponseWriter, r *http.Request) {
	a, err := s.flows.FindAccount(r.Context(), r.PathValue("user"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.showAccount(w, r, a)
}

// stateChanger is SuspendAccount, RestoreAccount or RemoveAccount.
type stateChanger func(ctx context.Context, actor, ref string, source flows.StateSource, reason string) (flows.Account, error)

// changeState serves suspend, restore and remove; the body (a StateChange)
// may be empty.
func (s *Server) changeState(change stateChanger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req api.StateChange
		if !body(w, r, &req, true) {
			return
		}
		a, err := change(r.Context(), adminActor(r.Context()), r.PathValue("user"), flows.SourceAdmin, req.Reason)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, user(a))
	}
}

// invite issues a new enrollment invitation, revoking older ones; its link
// is in this answer only (201).
func (s *Server) invite(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !body(w, r, &req, true) {
		return
	}
	ref := r.PathValue("user")
	a, err := s.flows.FindAccount(r.Context(), ref)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	inv, link, err := s.flows.Invite(r.Context(), adminActor(r.Context()), a.ID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, api.Invitation{ID: inv.ID, User: a.Username, Link: link.String(), ExpiresAt: inv.ExpiresAt})
}

// listDevices lists an account's devices, unregistered ones included.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) {
	a, ds, err := s.flows.ListDevices(r.Context(), r.PathValue("user"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := api.DeviceList{User: a.Username, Devices: make([]api.Device, 0, len(ds))}
	for _, d := range ds {
		out.Devices = append(out.Devices, device(d))
	}
	writeJSON(w, http.StatusOK, out)
}

// unregisterDevice unregisters one device; the reason is required.
func (s *Server) unregisterDevice(w http.ResponseWriter, r *http.Request) {
	var req api.Unregister
	if !body(w, r, &req, false) {
		return
	}
	d, err := s.flows.UnregisterDevice(r.Context(), adminActor(r.Context()), r.PathValue("user"), r.PathValue("device"), req.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, device(d))
}

// unregisterAll unregisters every device of an account; the reason is required.
func (s *Server) unregisterAll(w http.ResponseWriter, r *http.Request) {
	var req api.Unregister
	if !body(w, r, &req, false) {
		return
	}
	n, err := s.flows.UnregisterAllDevices(r.Context(), adminActor(r.Context()), r.PathValue("user"), req.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.UnregisterAllResult{Unregistered: n})
}

// testSignIn starts a sign-in for an account as an admin test and returns
// what the sign-in screen would show (201, with the sign-in's Location).
func (s *Server) testSignIn(w http.ResponseWriter, r *http.Request) {
	var req api.TestSignIn
	if !body(w, r, &req, true) {
		return
	}
	a, err := s.flows.FindAccount(r.Context(), r.PathValue("user"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	methods := make([]flows.Method, len(req.Methods))
	for i, m := range req.Methods {
		methods[i] = flows.Method(m)
	}
	ch, err := s.flows.Begin(r.Context(), flows.BeginRequest{
		AccountID: a.ID, Client: TestSignInClient, IP: s.clientIP(r), Methods: methods, Actor: adminActor(r.Context()),
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", api.AdminPrefix+"/signins/"+ch.SignIn.ID)
	writeJSON(w, http.StatusCreated, api.Challenge{
		ID: ch.SignIn.ID, Methods: methodStrings(ch.SignIn.Methods), Number: ch.Number, QRPayload: ch.QRPayload,
		PushSuppressed: ch.PushSuppressed, ExpiresAt: ch.SignIn.ExpiresAt,
	})
}

// verifyAudit checks the whole audit chain.
func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request) {
	v, err := s.flows.VerifyAudit(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.AuditVerification{Events: v.Events, OK: v.OK, BadSeq: v.BadSeq, Problem: v.Problem})
}
