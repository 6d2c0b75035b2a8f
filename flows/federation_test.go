package flows_test

import (
	"errors"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
)

// TestPurgeForgetsOldFederationState: auth requests and tokens go a day
// after they expired, not before.
func TestPurgeForgetsOldFederationState(t *testing.T) {
	e := newEnv(t, flows.Config{})
	now := e.clock.Now()
	ar := flows.AuthRequest{ID: "ar1", ClientID: "c", Protocol: "oidc", Request: []byte("{}"), CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	tok := flows.OIDCToken{ID: "t1", GrantID: "ar1", ClientID: "c", Subject: "s", CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	if err := e.store.CreateAuthRequest(e.ctx, ar); err != nil {
		t.Fatal(err)
	}
	if err := e.store.CreateOIDCToken(e.ctx, tok); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(10*time.Minute + 23*time.Hour)
	if err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetAuthRequest(e.ctx, "ar1"); err != nil {
		t.Fatalf("an auth request expired less than a day ago was purged: %v", err)
	}
	if _, err := e.store.GetOIDCToken(e.ctx, "t1"); err != nil {
		t.Fatalf("a token expired less than a day ago was purged: %v", err)
	}
	e.clock.Advance(time.Hour + time.Second)
	if err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetAuthRequest(e.ctx, "ar1"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("auth request a day after expiry: %v", err)
	}
	if _, err := e.store.GetOIDCToken(e.ctx, "t1"); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("token a day after expiry: %v", err)
	}
}

// TestRecordEvent: an outside event lands in the audit chain; bad input
// changes nothing.
func TestRecordEvent(t *testing.T) {
	e := newEnv(t, flows.Config{})
	if err := e.svc.RecordEvent(e.ctx, "admin:ops", flows.AuditKeysRotated, "rotated"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordEvent(e.ctx, "", flows.AuditKeysRotated, "x"); !errors.Is(err, flows.ErrInvalid) {
		t.Errorf("empty actor: %v", err)
	}
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil || len(evs) != 1 || evs[0].Action != flows.AuditKeysRotated || evs[0].Actor != "admin:ops" {
		t.Fatalf("audit %+v, %v", evs, err)
	}
	if v, err := e.svc.VerifyAudit(e.ctx); err != nil || v.Problem != "" {
		t.Errorf("verify %+v, %v", v, err)
	}
}

// TestBeginForRequest: Begin binds a federation request to the browser
// session and attaches the sign-in in one transaction; a request bound to
// another session gets no sign-in at all.
func TestBeginForRequest(t *testing.T) {
	e := newEnv(t, flows.Config{})
	a := e.addUser("alice")
	e.enroll("alice")
	now := e.clock.Now()
	for _, id := range []string{"req1", "req2"} {
		if err := e.store.CreateAuthRequest(e.ctx, flows.AuthRequest{ID: id, ClientID: "c", Protocol: "oidc", Request: []byte("{}"),
			AccountID: a.ID, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	mine, theirs := []byte("session-hash-of-this-browser-000"), []byte("session-hash-of-another-browser")
	ch, err := e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: a.ID, Client: "App", For: &flows.RequestBinding{RequestID: "req1", SessionHash: mine}})
	if err != nil {
		t.Fatal(err)
	}
	ar, _ := e.store.GetAuthRequest(e.ctx, "req1")
	if string(ar.SessionHash) != string(mine) || ar.SignInID != ch.SignIn.ID {
		t.Fatalf("request after Begin: %+v", ar)
	}
	// The same browser again (a retry): fine.
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: a.ID, Client: "App", For: &flows.RequestBinding{RequestID: "req1", SessionHash: mine}}); err != nil {
		t.Fatalf("retry from the same browser: %v", err)
	}
	before := len(e.auditActions())
	pending, _ := e.store.ListPendingSignIns(e.ctx, a.ID, e.clock.Now())
	_, err = e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: a.ID, Client: "App", For: &flows.RequestBinding{RequestID: "req1", SessionHash: theirs}})
	if !errors.Is(err, flows.ErrRequestBinding) || !errors.Is(err, flows.ErrConflict) {
		t.Fatalf("another browser: %v", err)
	}
	after, _ := e.store.ListPendingSignIns(e.ctx, a.ID, e.clock.Now())
	if len(after) != len(pending) || len(e.auditActions()) != before {
		t.Errorf("a refused binding wrote something: %d → %d sign-ins, %d → %d audit events", len(pending), len(after), before, len(e.auditActions()))
	}
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: a.ID, Client: "App", For: &flows.RequestBinding{RequestID: "gone", SessionHash: mine}}); !errors.Is(err, flows.ErrRequestBinding) || !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("unknown request: %v", err)
	}
	if _, err := e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: a.ID, Client: "App", For: &flows.RequestBinding{RequestID: "req2"}}); !errors.Is(err, flows.ErrInvalid) {
		t.Errorf("no session hash: %v", err)
	}
}
