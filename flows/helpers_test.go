package flows_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
)

const origin = "https://keystep.test"

// env is one service on a real SQLite store with a fake clock.
type env struct {
	t     testing.TB
	ctx   context.Context
	svc   *flows.Service
	clock *clocktest.Clock
	store flows.Store
}

func newEnv(t testing.TB, cfg flows.Config, opts ...flows.Option) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return newEnvOn(t, st, cfg, opts...)
}

// testCodeKey is the code key of the tests' services.
var testCodeKey = []byte("keystep-test-code-key-0123456789abcdef")

func newEnvOn(t testing.TB, st flows.Store, cfg flows.Config, opts ...flows.Option) *env {
	t.Helper()
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	if cfg.Origin == "" {
		cfg.Origin = origin
	}
	if cfg.CodeKey == nil {
		cfg.CodeKey = testCodeKey
	}
	svc, err := flows.New(st, cfg, append([]flows.Option{flows.WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatalf("new service: %v", err)
	}
	return &env{t: t, ctx: context.Background(), svc: svc, clock: clock, store: st}
}

// phone is a test device: its key and its registration.
type phone struct {
	key    *ecdsa.PrivateKey
	device flows.Device
}

func (e *env) addUser(name string) flows.Account {
	e.t.Helper()
	a, err := e.svc.AddAccount(e.ctx, "admin", flows.NewAccount{Username: name, Email: name + "@example.com"})
	if err != nil {
		e.t.Fatalf("add %s: %v", name, err)
	}
	return a
}

func newKey(t testing.TB) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return key, der
}

func (e *env) enrollRequest(link flows.EnrollLink) (flows.EnrollRequest, *ecdsa.PrivateKey) {
	e.t.Helper()
	key, der := newKey(e.t)
	msg, err := flows.EnrollPayload(link.Server, link.Token, der)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	return flows.EnrollRequest{Token: link.Token, PublicKey: der, Signature: sig, Name: "test phone"}, key
}

func (e *env) enroll(user string) phone {
	e.t.Helper()
	_, link, err := e.svc.Invite(e.ctx, "admin", user)
	if err != nil {
		e.t.Fatalf("invite %s: %v", user, err)
	}
	req, key := e.enrollRequest(link)
	d, _, err := e.svc.Enroll(e.ctx, req)
	if err != nil {
		e.t.Fatalf("enroll %s: %v", user, err)
	}
	return phone{key: key, device: d}
}

func (e *env) begin(user string, methods ...flows.Method) flows.Challenge {
	e.t.Helper()
	ch, err := e.svc.Begin(e.ctx, flows.BeginRequest{Username: user, Client: "Payroll", IP: "192.0.2.7", Methods: methods})
	if err != nil {
		e.t.Fatalf("begin %s: %v", user, err)
	}
	return ch
}

// decision builds a signed decision as the phone would.
func (e *env) decision(p phone, sgn flows.SignIn, d flows.Decision, m flows.Method, number string) flows.DecisionRequest {
	e.t.Helper()
	now := e.clock.Now()
	msg, err := flows.DecisionPayload(origin, sgn.ID, sgn.Nonce, d, m, number, now)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := flows.SignES256(p.key, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	return flows.DecisionRequest{SignInID: sgn.ID, DeviceID: p.device.ID, Decision: d, Method: m, Number: number, Time: now, Signature: sig}
}

// auditActions lists the actions in the audit log, in order.
func (e *env) auditActions() []string {
	e.t.Helper()
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Action
	}
	return out
}
