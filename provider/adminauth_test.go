package provider

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

const (
	aliceToken = "alice-admin-token-0123456789abcdef"
	bobToken   = "bob-admin-token-0123456789abcdef"
)

// TestNamedAdmins checks that each admin's token works, that the audit log
// names the admin who issued an override, and that the shorthand
// AdminToken is the admin named "admin".
func TestNamedAdmins(t *testing.T) {
	e := newBareEnv(t)
	srv, err := New(Options{Flows: e.svc, Logger: e.srv.log, Clock: e.clock, AdminToken: testToken,
		AdminTokens: map[string]string{"alice": aliceToken, "bob": bobToken}})
	if err != nil {
		t.Fatal(err)
	}
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(e.ts.Close)
	e.addUser("carol")
	decode[api.OverrideCode](t, e.adminAs(aliceToken, "POST", userPath(api.PathUserOverride, "carol"), api.OverrideRequest{Reason: "lost phone"}), http.StatusCreated)
	decode[api.OverrideCode](t, e.adminAs(bobToken, "POST", userPath(api.PathUserOverride, "carol"), api.OverrideRequest{Reason: "again"}), http.StatusCreated)
	wantProblem(t, e.adminAs(aliceToken+"x", "GET", api.PathUsers, nil), http.StatusUnauthorized, api.ProblemUnauthorized)
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, ev := range evs {
		if ev.Action == flows.AuditOverrideIssued || ev.Action == flows.AuditAccountCreated {
			actors = append(actors, ev.Action+" by "+ev.Actor)
		}
	}
	want := "account.created by admin:admin, override.issued by admin:alice, override.issued by admin:bob"
	if got := strings.Join(actors, ", "); got != want {
		t.Fatalf("audit actors: %s\nwant: %s", got, want)
	}
}

func TestAdminTokensRefused(t *testing.T) {
	e := newBareEnv(t)
	for name, o := range map[string]Options{
		"none":          {},
		"short":         {AdminTokens: map[string]string{"alice": "short"}},
		"same token":    {AdminTokens: map[string]string{"alice": aliceToken, "bob": aliceToken}},
		"admin twice":   {AdminToken: testToken, AdminTokens: map[string]string{"admin": aliceToken}},
		"bad name":      {AdminTokens: map[string]string{"al ice": aliceToken}},
		"empty name":    {AdminTokens: map[string]string{"": aliceToken}},
		"same as short": {AdminToken: aliceToken, AdminTokens: map[string]string{"alice": aliceToken}},
	} {
		o.Flows = e.svc
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}
