package console

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

const (
	testOrigin = "https://keystep.test"
	aliceToken = "alice-admin-token-0123456789abcdef"
	bobToken   = "bob-admin-token-0123456789abcdef"
)

var testCodeKey = []byte("keystep-test-code-key-0123456789abcdef")

// env is a provider with the console, over a real SQLite store with a fake
// clock, served by httptest.
type env struct {
	t     testing.TB
	ctx   context.Context
	clock *clocktest.Clock
	svc   *flows.Service
	srv   *provider.Server
	con   *Console
	ts    *httptest.Server
	corp  *directory.Source
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// newEnv starts a server with two admins (alice-admin, bob) and one
// directory source, corp, that does not run.
func newEnv(t testing.TB, secure bool) *env {
	t.Helper()
	return newEnvAt(t, secure, time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC))
}

func newEnvAt(t testing.TB, secure bool, now time.Time) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return newEnvOn(t, st, clocktest.New(now), secure)
}

// newEnvOn starts a server with the console over st: another instance,
// when st is already another env's store.
func newEnvOn(t testing.TB, st flows.Store, clock *clocktest.Clock, secure bool) *env {
	t.Helper()
	return newEnvWith(t, st, clock, secure, map[string]string{"alice-admin": aliceToken, "bob": bobToken})
}

// newEnvWith is newEnvOn with the given admin tokens (by admin name).
func newEnvWith(t testing.TB, st flows.Store, clock *clocktest.Clock, secure bool, admins map[string]string) *env {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := flows.Config{Origin: testOrigin}
	cfg.CodeKey = testCodeKey
	svc, err := flows.New(st, cfg, flows.WithClock(clock), flows.WithLogger(log))
	if err != nil {
		t.Fatalf("flows: %v", err)
	}
	corp, err := directory.NewSource(directory.SourceConfig{
		Name: "corp", URLs: []string{"ldaps://dc1.example"}, BindDN: "cn=k,dc=example", BindPassword: "x", BaseDN: "dc=example",
	}, svc)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := provider.New(provider.Options{Flows: svc, AdminTokens: admins,
		Logger: log, Clock: clock, Directory: []*directory.Source{corp}})
	if err != nil {
		t.Fatalf("provider: %v", err)
	}
	con, err := Mount(Options{Server: srv, Flows: svc, Secure: secure, Clock: clock, Logger: log})
	if err != nil {
		t.Fatalf("console: %v", err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return &env{t: t, ctx: ctx, clock: clock, svc: svc, srv: srv, con: con, ts: ts, corp: corp, logs: logs}
}

// browser is a cookie-keeping client that does not follow redirects.
func (e *env) browser() *steptest.Browser { return steptest.NewBrowser(e.t) }

// url is the absolute URL of a path on the test server.
func (e *env) url(path string) string { return e.ts.URL + path }

// login signs b in with token and returns the answer to the login POST.
func (e *env) login(b *steptest.Browser, token string) *steptest.Page {
	e.t.Helper()
	p := b.Get(e.url("/console/login"))
	if p.Status != http.StatusOK {
		e.t.Fatalf("GET /console/login: %d\n%s", p.Status, p.Body)
	}
	return b.Submit(p.Form(e.t, "/console/login"), url.Values{"token": {token}})
}

// signedIn returns a browser signed in as alice-admin.
func (e *env) signedIn() *steptest.Browser {
	e.t.Helper()
	b := e.browser()
	if p := e.login(b, aliceToken); p.Status != http.StatusSeeOther || p.Location != e.url("/console/") {
		e.t.Fatalf("login: %d → %q\n%s", p.Status, p.Location, p.Body)
	}
	return b
}

// addUser creates an active account by an admin.
func (e *env) addUser(name string) flows.Account {
	e.t.Helper()
	a, err := e.svc.AddAccount(e.ctx, "admin:setup", flows.NewAccount{Username: name, Email: name + "@example.com", DisplayName: strings.ToUpper(name[:1]) + name[1:], Source: flows.SourceAdmin})
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// account reads an account by id.
func (e *env) account(id string) flows.Account {
	e.t.Helper()
	a, err := e.svc.Store().GetAccount(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// phone is an enrolled test device.
type phone struct {
	key *ecdsa.PrivateKey
	dev flows.Device
}

// addDevice stores an active device for the account.
func (e *env) addDevice(a flows.Account, name string) phone {
	e.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		e.t.Fatal(err)
	}
	d := flows.Device{ID: flows.NewID(), AccountID: a.ID, Name: name, PublicKey: der, State: flows.DeviceActive, CreatedAt: e.clock.Now()}
	if err := e.svc.Store().CreateDevice(e.ctx, d); err != nil {
		e.t.Fatal(err)
	}
	return phone{key: key, dev: d}
}

// signIn runs one real sign-in of a to the outcome: approve, deny,
// report, or cancel.
func (e *env) signIn(a flows.Account, p phone, outcome string) {
	e.t.Helper()
	ch, err := e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: a.ID, Client: "Payroll", IP: "192.0.2.7", Methods: []flows.Method{flows.MethodPush}, Actor: "client:payroll"})
	if err != nil {
		e.t.Fatalf("begin: %v", err)
	}
	if outcome == "cancel" {
		if _, err := e.svc.Cancel(e.ctx, "client:payroll", ch.SignIn.ID, "the user went away"); err != nil {
			e.t.Fatal(err)
		}
		return
	}
	d := flows.Decision(outcome)
	number := ""
	if d == flows.DecisionApprove {
		number = ch.Number
	}
	at := e.clock.Now()
	msg, err := flows.DecisionPayload(testOrigin, ch.SignIn.ID, ch.SignIn.Nonce, d, flows.MethodPush, number, at)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := flows.SignES256(p.key, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.Decide(e.ctx, flows.DecisionRequest{SignInID: ch.SignIn.ID, DeviceID: p.dev.ID, Decision: d,
		Method: flows.MethodPush, Number: number, Time: at, Signature: sig}); err != nil {
		e.t.Fatalf("decide %s: %v", outcome, err)
	}
}

// audit returns the whole audit log.
func (e *env) audit() []flows.AuditEvent {
	e.t.Helper()
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// lastEvent is the newest audit event with the action, or fails.
func (e *env) lastEvent(action string) flows.AuditEvent {
	e.t.Helper()
	evs := e.audit()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Action == action {
			return evs[i]
		}
	}
	e.t.Fatalf("no %s event in the audit log", action)
	return flows.AuditEvent{}
}

// setCorpStatus stores a status for corp as its sync would.
func (e *env) setCorpStatus(st directory.Status) {
	e.t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.svc.Store().PutDirectoryState(e.ctx, flows.DirectoryState{Source: "corp", Status: b, UpdatedAt: e.clock.Now()}); err != nil {
		e.t.Fatal(err)
	}
}

// csrf is the CSRF token of a signed-in page's forms.
func csrf(t testing.TB, p *steptest.Page) string {
	t.Helper()
	for _, f := range p.Forms {
		if v := f.Fields.Get("csrf"); v != "" {
			return v
		}
	}
	t.Fatalf("%s has no form with a CSRF token:\n%s", p.URL, p.Body)
	return ""
}
