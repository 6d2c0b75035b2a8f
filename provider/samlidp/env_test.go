package samlidp_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crewjam/saml"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/authenticator"
	"github.com/keystep/keystep/provider/samlidp"
	"github.com/keystep/keystep/provider/samlidp/samltest"
	"github.com/keystep/keystep/provider/steppage"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

var testSecret = []byte("keystep-test-code-key-0123456789abcdef")

// env is keystep (flows, device API, SAML IdP, step page) on an httptest
// server over a real SQLite store, with a fake clock, and one test SP.
type env struct {
	t     testing.TB
	ctx   context.Context
	clock *clocktest.Clock
	svc   *flows.Service
	idp   *samlidp.Provider
	ts    *httptest.Server
	sp    *samltest.SP
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

type envOptions struct {
	sp      samltest.Options        // BaseURL is filled in
	policy  func(*samlidp.SPConfig) // changes the SP's policy
	options func(*samlidp.Options)  // changes the IdP's options
	quiet   bool                    // no server log (fuzz)
}

const spBase = "https://sp.example.com"

// newEnv starts keystep with one SP (id "portal") whose metadata is a
// file.
func newEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(tb.TempDir(), "keystep.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	e := &env{t: tb, ctx: ctx, clock: clocktest.New(time.Now().UTC()), logs: &syncBuffer{}}
	var logw io.Writer = e.logs
	if o.quiet {
		logw = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux := http.NewServeMux()
	e.ts = httptest.NewServer(mux)
	tb.Cleanup(e.ts.Close)
	e.svc, err = flows.New(st, flows.Config{Origin: e.ts.URL, CodeConfig: flows.CodeConfig{CodeKey: testSecret}},
		flows.WithClock(e.clock), flows.WithLogger(log))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.svc.Close() })
	p, err := provider.New(provider.Options{Flows: e.svc, AdminToken: "admin-token-for-tests-0123456789", Logger: log, Clock: e.clock})
	if err != nil {
		tb.Fatal(err)
	}
	o.sp.BaseURL = spBase
	e.sp = samltest.NewSP(tb, o.sp)
	cfg := samlidp.SPConfig{ID: "portal", EntityID: e.sp.EntityID, Name: "Example portal", MetadataFile: e.sp.MetadataFile,
		Methods:               []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodEmail, flows.MethodOverride},
		AllowUnsignedRequests: o.sp.Unsigned}
	if o.policy != nil {
		o.policy(&cfg)
	}
	opts := samlidp.Options{Flows: e.svc, PublicURL: e.ts.URL, Secret: testSecret, ServiceProviders: []samlidp.SPConfig{cfg},
		AllowUnsignedRequests: o.sp.Unsigned, SSOPerIPPerMinute: 1 << 30, Clock: e.clock, Logger: log, ClientIP: p.ClientIP}
	if o.options != nil {
		o.options(&opts)
	}
	e.idp, err = samlidp.New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.idp.Reload(ctx); err != nil {
		tb.Fatal(err)
	}
	step, err := steppage.New(ctx, steppage.Options{Flows: e.svc,
		Requests: steppage.ByProtocol(st, map[string]steppage.Requests{"saml": e.idp}), SealKey: testSecret,
		ClientIP: p.ClientIP, Clock: e.clock, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	for _, path := range samlidp.Paths {
		p.Handle(path, e.idp.Handler())
	}
	step.Register(p.Mux())
	mux.Handle("/", p.Handler())
	e.sp.UseIdPMetadata(tb, e.get("/saml/metadata"))
	if !o.quiet {
		tb.Cleanup(func() {
			if tb.Failed() {
				tb.Logf("server log:\n%s", e.logs.String())
			}
		})
	}
	return e
}

// get fetches a path and fails unless it answers 200.
func (e *env) get(path string) []byte {
	e.t.Helper()
	resp, err := http.Get(e.ts.URL + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// user is an account with an enrolled reference authenticator.
type user struct {
	name    string
	account flows.Account
	phone   *authenticator.Authenticator
}

func (e *env) newUser(name string) user {
	e.t.Helper()
	a, err := e.svc.AddAccount(e.ctx, "admin:test", flows.NewAccount{Username: name, Email: name + "@example.com", DisplayName: "User " + name})
	if err != nil {
		e.t.Fatal(err)
	}
	_, link, err := e.svc.Invite(e.ctx, "admin:test", name)
	if err != nil {
		e.t.Fatal(err)
	}
	phone, err := authenticator.Open(filepath.Join(e.t.TempDir(), name+".json"), authenticator.WithHTTPClient(e.ts.Client()),
		authenticator.WithClock(e.clock.Now))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := phone.Enroll(e.ctx, link.String()); err != nil {
		e.t.Fatal(err)
	}
	return user{name: name, account: a, phone: phone}
}

// approve approves the user's one pending request with the number shown.
func (u user) approve(t testing.TB, number string) {
	t.Helper()
	reqs, err := u.phone.Pending(context.Background())
	if err != nil || len(reqs) != 1 {
		t.Fatalf("pending requests of %s: %d, %v", u.name, len(reqs), err)
	}
	if _, err := u.phone.Approve(context.Background(), reqs[0].ID, number); err != nil {
		t.Fatalf("approve: %v", err)
	}
}

func (u user) deny(t testing.TB) {
	t.Helper()
	reqs, err := u.phone.Pending(context.Background())
	if err != nil || len(reqs) != 1 {
		t.Fatalf("pending requests of %s: %d, %v", u.name, len(reqs), err)
	}
	if _, err := u.phone.Deny(context.Background(), reqs[0].ID, false); err != nil {
		t.Fatalf("deny: %v", err)
	}
}

// pending is how many requests wait on the user's phone.
func (u user) pending(t testing.TB) int {
	t.Helper()
	reqs, err := u.phone.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(reqs)
}

var numberRE = regexp.MustCompile(`<strong class="number">(\d+)</strong>`)

func number(t testing.TB, p *steptest.Page) string {
	t.Helper()
	m := numberRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no number on the step page (%d):\n%s", p.Status, p.Body)
	}
	return m[1]
}

// send sends an AuthnRequest with the browser.
func (e *env) send(b *steptest.Browser, r samltest.Request) *steptest.Page {
	e.t.Helper()
	if r.Form != nil {
		req, err := http.NewRequest(http.MethodPost, r.URL, strings.NewReader(r.Form.Encode()))
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site") // the SP's page posts it
		return b.Do(req)
	}
	return b.Get(r.URL)
}

// startStep sends the request and follows to the step page.
func (e *env) startStep(b *steptest.Browser, r samltest.Request) *steptest.Page {
	e.t.Helper()
	p := e.send(b, r)
	if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, e.ts.URL+"/step/") {
		e.t.Fatalf("SSO answered %d → %q, not the step page:\n%s", p.Status, p.Location, p.Body)
	}
	return b.Follow(p)
}

// answer is the auto-posting form to the SP's ACS.
func (e *env) answer(p *steptest.Page) (samlResponse, relayState string) {
	e.t.Helper()
	f, ok := p.FindForm("/saml/acs")
	if !ok || f.Action != e.sp.AcsURL.String() {
		e.t.Fatalf("expected the answer posted to %s, got %d:\n%s", e.sp.AcsURL.String(), p.Status, p.Body)
	}
	return f.Fields.Get("SAMLResponse"), f.Fields.Get("RelayState")
}

// signIn runs a whole sign-in for u over binding and returns the posted
// Response.
func (e *env) signIn(u user, binding string, edit func(*saml.AuthnRequest)) (samltest.Request, string) {
	e.t.Helper()
	b := steptest.NewBrowser(e.t)
	r := e.sp.AuthnRequest(e.t, binding, u.name, "relay-123", edit)
	step := e.startStep(b, r)
	u.approve(e.t, number(e.t, step))
	resp, relay := e.answer(b.Submit(step.Form(e.t, "/finish"), nil))
	if relay != "relay-123" {
		e.t.Fatalf("RelayState %q came back as %q", "relay-123", relay)
	}
	return r, resp
}
