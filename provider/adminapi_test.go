package provider

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

func TestAdminAuth(t *testing.T) {
	e := newEnv(t)
	for _, token := range []string{"", "wrong-token-wrong-token", testToken + "x", strings.ToUpper(testToken)} {
		resp := e.adminAs(token, "GET", api.PathUsers, nil)
		wantProblem(t, resp, http.StatusUnauthorized, api.ProblemUnauthorized)
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
		}
		e.clock.Advance(adminAuthEvery)
	}
	// Basic auth with the token is not the bearer token.
	req, _ := http.NewRequest("GET", e.ts.URL+api.PathUsers, nil)
	req.SetBasicAuth("admin", testToken)
	wantProblem(t, e.send(req), http.StatusUnauthorized, api.ProblemUnauthorized)
	// Every admin route is behind the token, whatever the method.
	for _, path := range adminPaths() {
		for _, method := range []string{"GET", "POST"} {
			resp := e.adminAs("", method, path, nil)
			if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s without a token: %d", method, path, resp.StatusCode)
			}
			e.clock.Advance(adminAuthEvery) // earn back the failed attempt's token
		}
	}
	decode[api.UserList](t, e.admin("GET", api.PathUsers, nil), http.StatusOK)
}

// adminPaths are the admin API paths filled in with sample values.
func adminPaths() []string {
	r := strings.NewReplacer("{user}", "alice", "{device}", "dev1", "{id}", "sgn1")
	var out []string
	for _, p := range []string{api.PathUsers, api.PathUser, api.PathUserSuspend, api.PathUserRestore, api.PathUserRemove,
		api.PathUserInvite, api.PathUserDevices, api.PathDeviceUnreg, api.PathDevicesUnregAll, api.PathTestSignIn,
		api.PathSignIn, api.PathAudit, api.PathAuditVerify,
		api.PathUserOverride, api.PathUserUnlock, api.PathSendCode, api.PathSubmitCode} {
		out = append(out, r.Replace(p))
	}
	return out
}

func TestAdminUsers(t *testing.T) {
	e := newEnv(t)
	resp := e.admin("POST", api.PathUsers, api.NewUser{Username: "alice", Email: "alice@example.com", Phone: "+15551234567", DisplayName: "Alice A"})
	if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, api.AdminPrefix+"/users/") {
		t.Errorf("Location %q", loc)
	}
	alice := decode[api.User](t, resp, http.StatusCreated)
	if alice.ID == "" || alice.Username != "alice" || alice.Email != "alice@example.com" || alice.Phone != "+15551234567" ||
		alice.DisplayName != "Alice A" || alice.State != "active" || alice.StateSource != "admin" {
		t.Fatalf("created %+v", alice)
	}
	e.addUser("bob")
	wantProblem(t, e.admin("POST", api.PathUsers, api.NewUser{Username: "alice"}), http.StatusConflict, api.ProblemConflict)
	wantProblem(t, e.admin("POST", api.PathUsers, api.NewUser{Username: "has space"}), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", api.PathUsers, api.NewUser{Username: "carol", Email: "not an address"}), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", api.PathUsers, nil), http.StatusBadRequest, api.ProblemInvalid)

	// Show by username and by id.
	if got := decode[api.User](t, e.admin("GET", userPath(api.PathUser, "alice"), nil), http.StatusOK); got != alice {
		t.Fatalf("show by name %+v", got)
	}
	if got := decode[api.User](t, e.admin("GET", userPath(api.PathUser, alice.ID), nil), http.StatusOK); got.ID != alice.ID {
		t.Fatalf("show by id %+v", got)
	}
	wantProblem(t, e.admin("GET", userPath(api.PathUser, "nobody"), nil), http.StatusNotFound, api.ProblemNotFound)

	// Suspend, restore, remove, and the list filters.
	s := decode[api.User](t, e.admin("POST", userPath(api.PathUserSuspend, "bob"), api.StateChange{Reason: "on leave"}), http.StatusOK)
	if s.State != "suspended" || s.StateReason != "on leave" || s.StateSource != "admin" {
		t.Fatalf("suspended %+v", s)
	}
	names := func(query string) string {
		t.Helper()
		l := decode[api.UserList](t, e.admin("GET", api.PathUsers+query, nil), http.StatusOK)
		var out []string
		for _, u := range l.Users {
			out = append(out, u.Username+":"+u.State)
		}
		return strings.Join(out, ",")
	}
	if got := names(""); got != "alice:active,bob:suspended" {
		t.Fatalf("list %s", got)
	}
	if got := names("?state=suspended"); got != "bob:suspended" {
		t.Fatalf("list suspended %s", got)
	}
	r := decode[api.User](t, e.admin("POST", userPath(api.PathUserRestore, "bob"), nil), http.StatusOK)
	if r.State != "active" {
		t.Fatalf("restored %+v", r)
	}
	decode[api.User](t, e.admin("POST", userPath(api.PathUserRemove, "bob"), api.StateChange{Reason: "left"}), http.StatusOK)
	if got := names(""); got != "alice:active" {
		t.Fatalf("list without removed %s", got)
	}
	if got := names("?include_removed=true"); got != "alice:active,bob:removed" {
		t.Fatalf("list with removed %s", got)
	}
	if got := names("?state=removed"); got != "bob:removed" {
		t.Fatalf("list removed %s", got)
	}
	wantProblem(t, e.admin("GET", api.PathUsers+"?state=sleeping", nil), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("GET", api.PathUsers+"?include_removed=yes", nil), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", userPath(api.PathUserSuspend, "nobody"), nil), http.StatusNotFound, api.ProblemNotFound)
	wantProblem(t, e.admin("POST", userPath(api.PathUserSuspend, "alice"), api.StateChange{Reason: " padded "}), http.StatusBadRequest, api.ProblemInvalid)

	// A username that needs escaping in the path.
	decode[api.User](t, e.admin("POST", api.PathUsers, api.NewUser{Username: "d/o'neil"}), http.StatusCreated)
	if got := decode[api.User](t, e.admin("GET", userPath(api.PathUser, url.PathEscape("d/o'neil")), nil), http.StatusOK); got.Username != "d/o'neil" {
		t.Fatalf("escaped name %+v", got)
	}
}

func TestAdminInvitationsAndDevices(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	inv := decode[api.Invitation](t, e.admin("POST", userPath(api.PathUserInvite, "alice"), nil), http.StatusCreated)
	if inv.ID == "" || inv.User != "alice" || !strings.HasPrefix(inv.Link, "keystep://enroll?") || inv.ExpiresAt.IsZero() {
		t.Fatalf("invitation %+v", inv)
	}
	// A body, if any, must be an empty object.
	decode[api.Invitation](t, e.admin("POST", userPath(api.PathUserInvite, "alice"), []byte(`{}`)), http.StatusCreated)
	wantProblem(t, e.admin("POST", userPath(api.PathUserInvite, "alice"), []byte(`{"x":1}`)), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", userPath(api.PathUserInvite, "nobody"), nil), http.StatusNotFound, api.ProblemNotFound)

	// The link is shown once: the invitation listing in the audit log names it by id only.
	for _, ev := range decode[api.AuditList](t, e.admin("GET", api.PathAudit, nil), http.StatusOK).Events {
		if strings.Contains(ev.Detail, "token") {
			t.Fatalf("audit event leaks the token: %+v", ev)
		}
	}

	p1, p2 := e.enroll("alice"), e.enroll("alice")
	list := decode[api.DeviceList](t, e.admin("GET", userPath(api.PathUserDevices, "alice"), nil), http.StatusOK)
	if list.User != "alice" || len(list.Devices) != 2 || list.Devices[0].State != "active" || list.Devices[1].State != "active" ||
		!(list.Devices[0].ID == p1.id && list.Devices[1].ID == p2.id || list.Devices[0].ID == p2.id && list.Devices[1].ID == p1.id) {
		t.Fatalf("devices %+v", list)
	}
	unreg := strings.Replace(userPath(api.PathDeviceUnreg, "alice"), "{device}", p1.id, 1)
	wantProblem(t, e.admin("POST", unreg, nil), http.StatusBadRequest, api.ProblemInvalid)              // no body
	wantProblem(t, e.admin("POST", unreg, api.Unregister{}), http.StatusBadRequest, api.ProblemInvalid) // no reason
	wantProblem(t, e.admin("POST", strings.Replace(unreg, p1.id, "nodevice", 1), api.Unregister{Reason: "x"}), http.StatusNotFound, api.ProblemNotFound)
	d := decode[api.Device](t, e.admin("POST", unreg, api.Unregister{Reason: "lost"}), http.StatusOK)
	if d.ID != p1.id || d.State != "unregistered" || d.UnregisteredAt.IsZero() {
		t.Fatalf("unregistered %+v", d)
	}
	wantProblem(t, e.admin("POST", unreg, api.Unregister{Reason: "again"}), http.StatusForbidden, api.ProblemDeviceUnregistered)

	all := userPath(api.PathDevicesUnregAll, "alice")
	wantProblem(t, e.admin("POST", all, api.Unregister{}), http.StatusBadRequest, api.ProblemInvalid)
	if res := decode[api.UnregisterAllResult](t, e.admin("POST", all, api.Unregister{Reason: "phone stolen"}), http.StatusOK); res.Unregistered != 1 {
		t.Fatalf("unregister all %+v", res)
	}
	wantProblem(t, e.device(p2, "GET", api.PathDeviceAccount, nil), http.StatusForbidden, api.ProblemDeviceUnregistered)
	wantProblem(t, e.admin("POST", userPath(api.PathTestSignIn, "alice"), nil), http.StatusConflict, api.ProblemNoDevice)
}

func TestAdminSignIns(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")

	resp := e.admin("POST", userPath(api.PathTestSignIn, "alice"), nil)
	ch := decode[api.Challenge](t, resp, http.StatusCreated)
	if ch.ID == "" || len(ch.Number) != 2 || !strings.HasPrefix(ch.QRPayload, "keystep://signin?") || ch.ExpiresAt.IsZero() {
		t.Fatalf("challenge %+v", ch)
	}
	if loc := resp.Header.Get("Location"); loc != api.AdminPrefix+"/signins/"+ch.ID {
		t.Errorf("Location %q", loc)
	}
	s := e.signIn(ch.ID)
	if s.Status != "pending" || s.Client != TestSignInClient || s.AccountID == "" {
		t.Fatalf("sign-in %+v", s)
	}
	// The test sign-in is the admin's in the audit log.
	evs := decode[api.AuditList](t, e.admin("GET", api.PathAudit+"?limit=1000", nil), http.StatusOK).Events
	if last := evs[len(evs)-1]; last.Action != flows.AuditSignInStarted || last.Actor != "admin:admin" || last.SignInID != ch.ID {
		t.Fatalf("last audit event %+v", last)
	}
	push := decode[api.Challenge](t, e.admin("POST", userPath(api.PathTestSignIn, "alice"), api.TestSignIn{Methods: []string{"push"}}), http.StatusCreated)
	if push.Number == "" || push.QRPayload != "" {
		t.Fatalf("push-only challenge %+v", push)
	}
	wantProblem(t, e.admin("POST", userPath(api.PathTestSignIn, "alice"), api.TestSignIn{Methods: []string{"fax"}}), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", userPath(api.PathTestSignIn, "nobody"), nil), http.StatusNotFound, api.ProblemNotFound)

	// A wait that ends answers the current state.
	if got := decode[api.SignIn](t, e.admin("GET", api.AdminPrefix+"/signins/"+ch.ID+"?wait=1ms", nil), http.StatusOK); got.Status != "pending" {
		t.Fatalf("after a short wait %+v", got)
	}
	// A long-poll answers as soon as the device decides.
	done := make(chan api.SignIn, 1)
	go func() {
		resp, err := http.DefaultClient.Do(mustRequest(t, e.ts.URL+api.AdminPrefix+"/signins/"+ch.ID+"?wait=60s"))
		if err != nil {
			t.Error(err)
			done <- api.SignIn{}
			return
		}
		defer resp.Body.Close()
		done <- decode[api.SignIn](t, resp, http.StatusOK)
	}()
	decode[api.DecisionResponse](t, e.decide(p, ch, flows.DecisionApprove, ch.Number), http.StatusOK)
	if got := <-done; got.Status != "approved" || got.DecidedBy != "push" || got.DeviceID != p.id || got.DecidedAt.IsZero() {
		t.Fatalf("long-poll answered %+v", got)
	}
	wantProblem(t, e.admin("GET", api.AdminPrefix+"/signins/"+ch.ID+"?wait=soon", nil), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("GET", api.AdminPrefix+"/signins/nosuchsignin", nil), http.StatusNotFound, api.ProblemNotFound)
	wantProblem(t, e.admin("GET", api.AdminPrefix+"/signins/bad%20id", nil), http.StatusBadRequest, api.ProblemInvalid)
}

func mustRequest(t *testing.T, u string) *http.Request {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	return req
}

func TestAdminAudit(t *testing.T) {
	e := newEnv(t)
	alice := e.addUser("alice")
	e.addUser("bob")
	e.invite("alice")

	all := decode[api.AuditList](t, e.admin("GET", api.PathAudit, nil), http.StatusOK).Events
	if len(all) != 3 || all[0].Seq != 1 || all[0].Action != flows.AuditAccountCreated || all[0].Actor != "admin:admin" || all[0].Hash == "" || all[1].PrevHash != all[0].Hash {
		t.Fatalf("audit %+v", all)
	}
	page := decode[api.AuditList](t, e.admin("GET", api.PathAudit+"?after=1&limit=1", nil), http.StatusOK).Events
	if len(page) != 1 || page[0].Seq != 2 {
		t.Fatalf("page %+v", page)
	}
	mine := decode[api.AuditList](t, e.admin("GET", api.PathAudit+"?account="+alice.ID, nil), http.StatusOK).Events
	if len(mine) != 2 || mine[1].Action != flows.AuditInvitationCreated {
		t.Fatalf("alice's events %+v", mine)
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?after=-1", "?after=x", "?account=bad%20id", "?wait=-1s", "?wait=x"} {
		wantProblem(t, e.admin("GET", api.PathAudit+q, nil), http.StatusBadRequest, api.ProblemInvalid)
	}
	if n := len(decode[api.AuditList](t, e.admin("GET", api.PathAudit+"?limit=1000", nil), http.StatusOK).Events); n != 3 {
		t.Fatalf("limit 1000: %d events", n)
	}

	// Nothing new: an answer with events that are already there comes at once...
	if n := len(decode[api.AuditList](t, e.admin("GET", api.PathAudit+"?after=0&wait=60s", nil), http.StatusOK).Events); n != 3 {
		t.Fatalf("wait with events: %d", n)
	}
	// ...a long-poll answers when the next event is appended...
	done := make(chan []api.AuditEvent, 1)
	poll := func(query string) {
		resp, err := http.DefaultClient.Do(mustRequest(t, e.ts.URL+api.PathAudit+query))
		if err != nil {
			t.Error(err)
			done <- nil
			return
		}
		defer resp.Body.Close()
		done <- decode[api.AuditList](t, resp, http.StatusOK).Events
	}
	go poll("?after=3&wait=60s")
	e.clock.BlockUntilWaiters(1) // the long-poll is waiting
	e.addUser("carol")
	if got := <-done; len(got) != 1 || got[0].Seq != 4 || got[0].Detail != "carol" {
		t.Fatalf("long-poll answered %+v", got)
	}
	// ...and one that times out answers an empty page.
	go poll("?after=4&wait=30s")
	e.clock.BlockUntilWaiters(2) // this one and the spent timer of the last
	e.clock.Advance(MaxWait)
	if got := <-done; got == nil || len(got) != 0 {
		t.Fatalf("timed-out long-poll answered %+v", got)
	}

	v := decode[api.AuditVerification](t, e.admin("GET", api.PathAuditVerify, nil), http.StatusOK)
	if !v.OK || v.Events != 4 {
		t.Fatalf("verification %+v", v)
	}
}

func TestAdminEveryRouteAnswersJSON(t *testing.T) {
	e := newEnv(t)
	for _, path := range adminPaths() {
		for _, method := range []string{"GET", "POST", "DELETE"} {
			resp := e.admin(method, path, nil)
			b, _ := io.ReadAll(resp.Body)
			ct := resp.Header.Get("Content-Type")
			if ct != "application/json" && ct != ContentTypeProblem {
				t.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, ct, b)
			}
			if resp.StatusCode >= 500 {
				t.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, b)
			}
			if ct == ContentTypeProblem {
				if _, err := parseProblem(resp.Header, b); err != nil {
					t.Errorf("%s %s: %v", method, path, err)
				}
			}
		}
	}
}
