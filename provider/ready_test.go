package provider

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/provider/api"
)

// readyz asks h for /readyz and decodes the answer, which must have status.
func readyz(t *testing.T, h http.Handler, status int) readyAnswer {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", PathReady, nil))
	res := rec.Result()
	res.Request = httptest.NewRequest("GET", PathReady, nil)
	return decode[readyAnswer](t, res, status)
}

// wantNotReady checks that a is not ready because of check, whose reason
// contains reason, and that every other check passed.
func wantNotReady(t *testing.T, a readyAnswer, check, reason string) {
	t.Helper()
	if a.Status != "not ready" {
		t.Fatalf("status %q", a.Status)
	}
	for name, c := range a.Checks {
		if name == check {
			if c.OK || !strings.Contains(c.Reason, reason) {
				t.Errorf("check %s = %+v, want a failure with %q", name, c, reason)
			}
		} else if !c.OK {
			t.Errorf("check %s failed too: %+v", name, c)
		}
	}
	if _, ok := a.Checks[check]; !ok {
		t.Errorf("no check %s in %+v", check, a.Checks)
	}
}

func TestReady(t *testing.T) {
	e := newEnv(t)
	a := readyz(t, e.srv.Handler(), http.StatusOK)
	if a.Status != "ready" || len(a.Checks) != 1 || !a.Checks["store"].OK {
		t.Fatalf("ready %+v", a)
	}
}

func TestNotReadyStoreFails(t *testing.T) {
	e := newEnv(t)
	e.breakStore()
	a := readyz(t, e.ts.Config.Handler, http.StatusServiceUnavailable)
	wantNotReady(t, a, "store", "the store does not answer")
	if strings.Contains(a.Checks["store"].Reason, "disk") {
		t.Errorf("the reason leaks the error: %q", a.Checks["store"].Reason)
	}
	if !strings.Contains(e.logText(), "disk I/O error") {
		t.Errorf("the error is not logged:\n%s", e.logText())
	}
}

// hangingStore is a store whose audit log never answers until the caller
// gives up.
type hangingStore struct{ flows.Store }

func (hangingStore) ListAudit(ctx context.Context, _ flows.AuditFilter) ([]flows.AuditEvent, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestNotReadyStoreHangs(t *testing.T) {
	e := newBareEnv(t)
	svc, err := flows.New(hangingStore{e.store}, flows.Config{Origin: testOrigin, CodeConfig: flows.CodeConfig{CodeKey: testCodeKey}})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Flows: svc, AdminToken: testToken, Logger: e.srv.log, ReadyTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wantNotReady(t, readyz(t, srv.Handler(), http.StatusServiceUnavailable), "store", "no answer within 50ms")
}

// fixedRing is a key ring with fixed keys, or an error.
type fixedRing struct {
	keys []api.SigningKey
	err  error
}

func (f fixedRing) SigningKeys(context.Context) ([]api.SigningKey, error) { return f.keys, f.err }
func (f fixedRing) RotateKeys(context.Context) ([]api.SigningKey, error)  { return f.keys, f.err }

func TestNotReadyKeys(t *testing.T) {
	signing := []api.SigningKey{{ID: "old"}, {ID: "k1", Signing: true}}
	for _, c := range []struct {
		name   string
		saml   fixedRing
		reason string
	}{
		{"cannot load", fixedRing{err: errors.New("unseal: wrong key")}, "the signing keys cannot be loaded"},
		{"none signs", fixedRing{keys: []api.SigningKey{{ID: "next"}}}, "no signing key is active"},
		{"no keys", fixedRing{}, "no signing key is active"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newBareEnv(t)
			e.srv.MountKeys("oidc", fixedRing{keys: signing})
			e.srv.MountKeys("saml", c.saml)
			wantNotReady(t, readyz(t, e.srv.Handler(), http.StatusServiceUnavailable), "keys:saml", c.reason)
		})
	}
	e := newBareEnv(t)
	e.srv.MountKeys("oidc", fixedRing{keys: signing})
	if a := readyz(t, e.srv.Handler(), http.StatusOK); !a.Checks["keys:oidc"].OK || len(a.Checks) != 2 {
		t.Fatalf("ready with keys: %+v", a)
	}
}

// TestNotReadyDirectory: a source that has never finished a sync keeps
// keystep not ready, unless it is optional.
func TestNotReadyDirectory(t *testing.T) {
	e := newDirEnv(t)
	a := readyz(t, e.srv.Handler(), http.StatusServiceUnavailable)
	if a.Checks["directory:corp"].Reason != "no sync has finished yet" || a.Checks["directory:down"].Reason != "no sync has finished yet" {
		t.Fatalf("before any sync: %+v", a)
	}
	if _, err := e.corp.FullSync(e.ctx, directory.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.down.FullSync(e.ctx, directory.SyncOptions{}); err == nil {
		t.Fatal("the sync of an unreachable directory worked")
	}
	wantNotReady(t, readyz(t, e.srv.Handler(), http.StatusServiceUnavailable), "directory:down", "no sync has finished yet, and the last attempt failed")

	srv, err := New(Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock,
		Directory: []*directory.Source{e.corp, e.down}, OptionalDirectories: []string{"down"}})
	if err != nil {
		t.Fatal(err)
	}
	a = readyz(t, srv.Handler(), http.StatusOK)
	if _, checked := a.Checks["directory:down"]; checked || !a.Checks["directory:corp"].OK {
		t.Fatalf("with down optional: %+v", a)
	}
	if _, err := New(Options{Flows: e.svc, AdminToken: testToken, Directory: []*directory.Source{e.corp}, OptionalDirectories: []string{"nope"}}); err == nil {
		t.Error("an optional directory that is no source was accepted")
	}

	// The lag: now minus the last full sync (the sources keep time by the
	// system clock: the server's clock is set from it).
	st, err := e.corp.Status(e.ctx)
	if err != nil || st.LastFull == nil {
		t.Fatalf("corp status %+v, %v", st, err)
	}
	srv, err = New(Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: clocktest.New(st.LastFull.Finished.Add(90 * time.Second)),
		Directory: []*directory.Source{e.corp, e.down}})
	if err != nil {
		t.Fatal(err)
	}
	e.ts.Config.Handler = srv.Handler()
	fams := e.scrape()
	if got := metricValue(fams, "keystep_directory_lag_seconds", map[string]string{"source": "corp"}); got != 90 {
		t.Errorf("corp's lag %v, want 90 s", got)
	}
	if got := metricValue(fams, "keystep_directory_lag_seconds", map[string]string{"source": "down"}); got != -1 {
		t.Errorf("down, never synced, has a lag: %v", got)
	}
}
