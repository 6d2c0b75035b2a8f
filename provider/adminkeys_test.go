package provider

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// fakeRing is a key ring that numbers its keys and counts rotations.
type fakeRing struct {
	prefix string
	mu     sync.Mutex
	keys   []api.SigningKey
}

func newFakeRing(prefix string) *fakeRing {
	return &fakeRing{prefix: prefix, keys: []api.SigningKey{{ID: prefix + "1", Alg: "RS256", Signing: true}}}
}

func (f *fakeRing) SigningKeys(context.Context) ([]api.SigningKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.SigningKey(nil), f.keys...), nil
}

func (f *fakeRing) RotateKeys(context.Context) ([]api.SigningKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.keys {
		f.keys[i].Signing, f.keys[i].RetireAt = false, time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	}
	f.keys = append(f.keys, api.SigningKey{ID: f.prefix + string(rune('1'+len(f.keys))), Alg: "RS256", Signing: true})
	return append([]api.SigningKey(nil), f.keys...), nil
}

// ids lists the keys as use/id.
func ids(l api.KeyList) string {
	var b []string
	for _, k := range l.Keys {
		b = append(b, k.Use+"/"+k.ID)
	}
	return strings.Join(b, " ")
}

// rotations returns the audit texts of the key rotations.
func (e *env) rotations() []string {
	e.t.Helper()
	var out []string
	for _, ev := range decode[api.AuditList](e.t, e.admin("GET", api.PathAudit, nil), http.StatusOK).Events {
		if ev.Action == flows.AuditKeysRotated {
			out = append(out, ev.Detail)
		}
	}
	return out
}

// TestAdminKeysOneUse: with one ring mounted, rotate needs no use, and
// names the ring's use in the keys and the audit log.
func TestAdminKeysOneUse(t *testing.T) {
	e := newEnv(t)
	wantProblem(t, e.admin("GET", api.PathKeys, nil), http.StatusNotFound, api.ProblemNotFound)
	e.srv.MountKeys("oidc", newFakeRing("o"))

	if got := ids(decode[api.KeyList](t, e.admin("GET", api.PathKeys, nil), http.StatusOK)); got != "oidc/o1" {
		t.Fatalf("list: %s", got)
	}
	if got := ids(decode[api.KeyList](t, e.admin("POST", api.PathKeysRotate, nil), http.StatusOK)); got != "oidc/o1 oidc/o2" {
		t.Fatalf("rotate: %s", got)
	}
	if got := ids(decode[api.KeyList](t, e.admin("POST", api.PathKeysRotate+"?use=oidc", nil), http.StatusOK)); got != "oidc/o1 oidc/o2 oidc/o3" {
		t.Fatalf("rotate ?use=oidc: %s", got)
	}
	p := wantProblem(t, e.admin("POST", api.PathKeysRotate+"?use=saml", nil), http.StatusBadRequest, api.ProblemInvalid)
	if !strings.Contains(p.Detail, "oidc") {
		t.Errorf("unknown use: %q does not say which uses there are", p.Detail)
	}
	if got := e.rotations(); len(got) != 2 || got[0] != "oidc signing keys rotated (ID tokens)" {
		t.Errorf("audit: %q", got)
	}
	wantProblem(t, e.adminAs("", "POST", api.PathKeysRotate, nil), http.StatusUnauthorized, api.ProblemUnauthorized)
	wantProblem(t, e.adminAs("", "GET", api.PathKeys, nil), http.StatusUnauthorized, api.ProblemUnauthorized)
}

// TestAdminKeysTwoUses: the list merges the rings by use; rotate needs a
// use and rotates only its ring; a use may be mounted only once.
func TestAdminKeysTwoUses(t *testing.T) {
	e := newEnv(t)
	saml, oidc := newFakeRing("s"), newFakeRing("o")
	e.srv.MountKeys("saml", saml)
	e.srv.MountKeys("oidc", oidc)

	if got := ids(decode[api.KeyList](t, e.admin("GET", api.PathKeys, nil), http.StatusOK)); got != "oidc/o1 saml/s1" {
		t.Fatalf("list: %s", got)
	}
	p := wantProblem(t, e.admin("POST", api.PathKeysRotate, nil), http.StatusBadRequest, api.ProblemInvalid)
	if !strings.Contains(p.Detail, "oidc, saml") {
		t.Errorf("rotate without use: %q", p.Detail)
	}
	wantProblem(t, e.admin("POST", api.PathKeysRotate+"?use=cookie", nil), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.admin("POST", api.PathKeysRotate+"?use=saml", map[string]string{"use": "oidc"}), http.StatusBadRequest, api.ProblemInvalid)

	if got := ids(decode[api.KeyList](t, e.admin("POST", api.PathKeysRotate+"?use=saml", nil), http.StatusOK)); got != "saml/s1 saml/s2" {
		t.Fatalf("rotate saml: %s", got)
	}
	if got := ids(decode[api.KeyList](t, e.admin("GET", api.PathKeys, nil), http.StatusOK)); got != "oidc/o1 saml/s1 saml/s2" {
		t.Fatalf("list after the SAML rotation: %s", got)
	}
	if got := e.rotations(); len(got) != 1 || got[0] != "saml signing keys rotated (SAML assertions)" {
		t.Errorf("audit: %q", got)
	}

	defer func() {
		if recover() == nil {
			t.Error("mounting saml twice did not panic")
		}
	}()
	e.srv.MountKeys("saml", newFakeRing("x"))
}
