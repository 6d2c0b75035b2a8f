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
