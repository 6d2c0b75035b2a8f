package oidcop_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/notify/notifytest"
	"github.com/keystep/keystep/flows/store/postgres"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/internal/pgtest"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/authenticator"
	"github.com/keystep/keystep/provider/oidcop"
	"github.com/keystep/keystep/provider/steppage"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// TestMain stops the private PostgreSQL server, if a test started one.
func TestMain(m *testing.M) { pgtest.Main(m) }

var testSecret = []byte("keystep-test-code-key-0123456789abcdef")

const (
	clientID     = "host-idp"
	clientSecret = "host-idp-secret-0123456789"
	redirectURI  = "https://idp.example.com/callback"
)

// env is keystep (flows, device API, OpenID Provider, step page) on an
// httptest server over a real SQLite store, with a fake clock.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *clocktest.Clock
	svc   *flows.Service
	op    *oidcop.Provider
	ts    *httptest.Server
	logs  *syncBuffer
	mail  *notifytest.Mailbox
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

// defaultClient is a code-flow client that names users by login_hint.
func defaultClient() oidcop.ClientConfig {
	return oidcop.ClientConfig{ID: clientID, Name: "Example SSO", Secret: clientSecret, RedirectURIs: []string{redirectURI},
		Methods:              []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodEmail, flows.MethodOverride},
		RefreshTokenLifetime: time.Hour}
}

// newEnv starts keystep with the given clients (defaultClient if none).
func newEnv(t *testing.T, clients ...oidcop.ClientConfig) *env {
	t.Helper()
	o := envOptions{}
	if len(clients) > 0 {
		o.clients = func(string) []oidcop.ClientConfig { return clients }
	}
	return newEnvWith(t, o)
}

type envOptions struct {
	// clients are the clients, given the issuer (the server's URL, known
	// only once it listens); nil: defaultClient.
	clients func(issuer string) []oidcop.ClientConfig
	// quiet keeps no server log (fuzz targets run many requests).
	quiet bool
	// authorizePerMinute is the per-address limit of new auth requests
	// (0: so high that only the limit's own test meets it).
	authorizePerMinute int
	// postgres runs on a fresh PostgreSQL database instead of SQLite.
	postgres bool
}

// newEnvWith is newEnv for clients that need the issuer (a hint client
// whose hint issuer is keystep itself) and for fuzz targets (tb may be a
// *testing.F; e.t is then nil and the *testing.T helpers must not be used).
func newEnvWith(tb testing.TB, o envOptions) *env {
	tb.Helper()
	ctx := context.Background()
	var st flows.Store
	var err error
	if o.postgres {
		st, err = postgres.Open(ctx, pgtest.DSN(tb))
	} else {
		st, err = sqlite.Open(ctx, filepath.Join(tb.TempDir(), "keystep.db"))
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	e := &env{ctx: ctx, clock: clocktest.New(time.Now().UTC()), logs: &syncBuffer{}, mail: &notifytest.Mailbox{}}
	e.t, _ = tb.(*testing.T)
	var logw io.Writer = e.logs
	if o.quiet {
		logw = io.Discard
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux := http.NewServeMux()
	e.ts = httptest.NewServer(mux)
	tb.Cleanup(e.ts.Close)
	e.svc, err = flows.New(st, flows.Config{Origin: e.ts.URL, CodeConfig: flows.CodeConfig{CodeKey: testSecret}},
		flows.WithClock(e.clock), flows.WithLogger(log), flows.WithEmailSender(e.mail))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.svc.Close() })
	p, err := provider.New(provider.Options{Flows: e.svc, AdminToken: "admin-token-for-tests-0123456789", Logger: log, Clock: e.clock})
	if err != nil {
		tb.Fatal(err)
	}
	clients := []oidcop.ClientConfig{defaultClient()}
	if o.clients != nil {
		clients = o.clients(e.ts.URL)
	}
	if o.authorizePerMinute == 0 {
		o.authorizePerMinute = 1 << 30
	}
	e.op, err = oidcop.New(oidcop.Options{Flows: e.svc, Issuer: e.ts.URL, Clients: clients, Secret: testSecret,
		Clock: e.clock, Logger: log, HTTPClient: http.DefaultClient, ClientIP: p.ClientIP, AuthorizePerIPPerMinute: o.authorizePerMinute})
	if err != nil {
		tb.Fatal(err)
	}
	step, err := steppage.New(ctx, steppage.Options{Flows: e.svc, Requests: e.op, SealKey: testSecret, Secure: false,
		ClientIP: p.ClientIP, Clock: e.clock, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	for _, path := range oidcop.Paths {
		p.Handle(path, e.op.Handler())
	}
	step.Register(p.Mux())
	mux.Handle("/", p.Handler())
	if !o.quiet {
		tb.Cleanup(func() {
			if tb.Failed() {
				tb.Logf("server log:\n%s", e.logs.String())
			}
		})
	}
	return e
}

// user is an account with an enrolled reference authenticator.
type user struct {
	name    string
	account flows.Account
	phone   *authenticator.Authenticator
}

func (e *env) newUser(name string) user {
	e.t.Helper()
	email := name + "@example.com"
	if strings.Contains(name, "@") {
		email = name
	}
	a, err := e.svc.AddAccount(e.ctx, "admin:test", flows.NewAccount{Username: name, Email: email, DisplayName: "User " + name})
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
func (u user) approve(t *testing.T, number string) {
	t.Helper()
	reqs, err := u.phone.Pending(context.Background())
	if err != nil || len(reqs) != 1 {
		t.Fatalf("pending requests of %s: %d, %v", u.name, len(reqs), err)
	}
	if _, err := u.phone.Approve(context.Background(), reqs[0].ID, number); err != nil {
		t.Fatalf("approve: %v", err)
	}
}

func (u user) deny(t *testing.T) {
	t.Helper()
	reqs, err := u.phone.Pending(context.Background())
	if err != nil || len(reqs) != 1 {
		t.Fatalf("pending requests of %s: %d, %v", u.name, len(reqs), err)
	}
	if _, err := u.phone.Deny(context.Background(), reqs[0].ID, false); err != nil {
		t.Fatalf("deny: %v", err)
	}
}

var numberRE = regexp.MustCompile(`<strong class="number">(\d+)</strong>`)

// number reads the number to match from a step page.
func number(t *testing.T, p *steptest.Page) string {
	t.Helper()
	m := numberRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no number on the step page (%d):\n%s", p.Status, p.Body)
	}
	return m[1]
}

// authorizeURL is an authorization request of the default client.
func (e *env) authorizeURL(params url.Values) string {
	v := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "scope": {"openid"}}
	for k, vs := range params {
		v[k] = vs
	}
	for k, vs := range v {
		if len(vs) == 1 && vs[0] == "" {
			delete(v, k)
		}
	}
	return e.ts.URL + "/authorize?" + v.Encode()
}

// startStep sends a browser through /authorize to the step page.
func (e *env) startStep(b *steptest.Browser, params url.Values) *steptest.Page {
	e.t.Helper()
	p := b.Get(e.authorizeURL(params))
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, e.ts.URL+"/step/") {
		e.t.Fatalf("authorize answered %d → %q, not the step page:\n%s", p.Status, p.Location, p.Body)
	}
	return b.Follow(p)
}

// finish approves on the phone and presses Continue; it returns the
// answer to the client.
func (e *env) finish(b *steptest.Browser, u user, step *steptest.Page) *steptest.Page {
	e.t.Helper()
	u.approve(e.t, number(e.t, step))
	return b.Submit(step.Form(e.t, "/finish"), nil)
}

// callbackParams reads the query of a redirect to the client.
func (e *env) callbackParams(p *steptest.Page) url.Values {
	e.t.Helper()
	if p.Status != http.StatusSeeOther && p.Status != http.StatusFound {
		e.t.Fatalf("expected a redirect to the client, got %d:\n%s", p.Status, p.Body)
	}
	u, err := url.Parse(p.Location)
	if err != nil || u.Scheme+"://"+u.Host+u.Path != redirectURI {
		e.t.Fatalf("redirect to %q, not the client's redirect URI", p.Location)
	}
	return u.Query()
}

// pkce makes a verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = flows.NewSecret(32)
	h := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(h[:])
}

// do sends a request to the server; form, if not nil, is the body.
func (e *env) do(method, path string, form url.Values, set func(*http.Request)) (int, string) {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// tokenRequest posts to the token endpoint with client_secret_basic.
func (e *env) tokenRequest(form url.Values) (int, string) {
	e.t.Helper()
	return e.do(http.MethodPost, "/oauth/token", form, func(r *http.Request) { r.SetBasicAuth(clientID, clientSecret) })
}
