package hostidp_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"html"
	"image/png"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/internal/hostidp"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/authenticator"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

const (
	clientID     = "portal"
	clientSecret = "portal-secret-0123456789"
	redirectURI  = "https://app.example.com/callback"
)

// env is keystep in process (flows over SQLite, step.Local, the device
// API on an httptest server), the host IdP on another, and a relying
// party for it.
type env struct {
	t     *testing.T
	ctx   context.Context
	svc   *flows.Service
	local *step.Local
	api   *httptest.Server
	idp   *httptest.Server
	party rp.RelyingParty
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

func newEnv(t *testing.T, edit func(*hostidp.Options)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, ctx: ctx, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.logs.String())
		}
	})
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux := http.NewServeMux()
	e.api = httptest.NewServer(mux)
	t.Cleanup(e.api.Close)
	e.svc, err = flows.New(st, flows.Config{Origin: e.api.URL,
		CodeConfig: flows.CodeConfig{CodeKey: []byte("keystep-test-code-key-0123456789abcdef")}}, flows.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	p, err := provider.New(provider.Options{Flows: e.svc, AdminToken: "admin-token-for-tests-0123456789", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/", p.Handler())
	e.local = &step.Local{Flows: e.svc}

	var handler http.Handler
	e.idp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(e.idp.Close)
	o := hostidp.Options{Issuer: e.idp.URL, Step: e.local, Accounts: e.local, ClientID: clientID, ClientSecret: clientSecret,
		RedirectURI: redirectURI, Logger: log}
	if edit != nil {
		edit(&o)
	}
	idp, err := hostidp.New(o)
	if err != nil {
		t.Fatal(err)
	}
	handler = idp.Handler()
	e.party, err = rp.NewRelyingPartyOIDC(ctx, e.idp.URL, clientID, clientSecret, redirectURI,
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile})
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return e
}

// user adds an account and enrolls a reference authenticator for it.
func (e *env) user(name string) *authenticator.Authenticator {
	e.t.Helper()
	if _, err := e.local.AddAccount(e.ctx, step.NewAccount{Username: name}); err != nil {
		e.t.Fatal(err)
	}
	inv, err := e.local.Invite(e.ctx, step.AccountRef{Username: name})
	if err != nil {
		e.t.Fatal(err)
	}
	phone, err := authenticator.Open(filepath.Join(e.t.TempDir(), name+".json"), authenticator.WithHTTPClient(e.api.Client()))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := phone.Enroll(e.ctx, inv.Link); err != nil {
		e.t.Fatal(err)
	}
	return phone
}

// accountID is keystep's id for the account named.
func (e *env) accountID(name string) string {
	e.t.Helper()
	a, err := e.local.GetAccount(e.ctx, step.AccountRef{Username: name})
	if err != nil {
		e.t.Fatal(err)
	}
	return a.ID
}

// authorize starts a sign-in at the relying party and returns the
// username form, with the PKCE verifier.
func (e *env) authorize(b *steptest.Browser, state string) (*steptest.Page, string) {
	e.t.Helper()
	verifier := oauth2.GenerateVerifier()
	p := b.Get(rp.AuthURL(state, e.party, rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier))))
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, e.idp.URL+"/login?id=") {
		e.t.Fatalf("authorize answered %d → %q:\n%s", p.Status, p.Location, p.Body)
	}
	form := b.Follow(p)
	if form.Status != http.StatusOK {
		e.t.Fatalf("username form: %d\n%s", form.Status, form.Body)
	}
	return form, verifier
}

// username submits the username form and follows to the step page.
func (e *env) username(b *steptest.Browser, form *steptest.Page, name string) *steptest.Page {
	e.t.Helper()
	p := b.Submit(form.Form(e.t, "/login"), url.Values{"username": {name}})
	if p.Status != http.StatusSeeOther {
		e.t.Fatalf("username answered %d:\n%s", p.Status, p.Body)
	}
	page := b.Follow(p)
	if page.Status != http.StatusOK {
		e.t.Fatalf("step page: %d\n%s", page.Status, page.Body)
	}
	return page
}

var numberRE = regexp.MustCompile(`<strong class="number">(\d+)</strong>`)

func number(t *testing.T, p *steptest.Page) string {
	t.Helper()
	m := numberRE.FindStringSubmatch(p.Body)
	if m == nil {
		t.Fatalf("no number on the step page:\n%s", p.Body)
	}
	return m[1]
}

// pending is the phone's one pending request.
func pending(t *testing.T, phone *authenticator.Authenticator) authenticator.Request {
	t.Helper()
	reqs, err := phone.Pending(context.Background())
	if err != nil || len(reqs) != 1 {
		t.Fatalf("pending requests: %d, %v", len(reqs), err)
	}
	return reqs[0]
}

// callback checks that p redirects to the client and returns the query.
func callback(t *testing.T, p *steptest.Page) url.Values {
	t.Helper()
	u, err := url.Parse(p.Location)
	if p.Status != http.StatusFound || err != nil || u.Scheme+"://"+u.Host+u.Path != redirectURI {
		t.Fatalf("answered %d → %q, not a redirect to the client:\n%s", p.Status, p.Location, p.Body)
	}
	return u.Query()
}

// TestSignIn: the relying party's code flow through the host IdP, with the
// phone approving the number shown; the ID token's sub is keystep's account
// id and preferred_username the username.
func TestSignIn(t *testing.T) {
	e := newEnv(t, nil)
	phone := e.user("alice")
	b := steptest.NewBrowser(t)
	form, verifier := e.authorize(b, "st-1")
	if csp := form.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
		!strings.Contains(csp, "form-action 'self' https://app.example.com") {
		t.Errorf("CSP %q", csp)
	}
	page := e.username(b, form, "alice")
	if !strings.Contains(page.Text(), "Signing in as alice") {
		t.Errorf("step page: %s", page.Text())
	}
	m := regexp.MustCompile(`<img class="qr" src="data:image/png;base64,([^"]+)"`).FindStringSubmatch(page.Body)
	if m == nil {
		t.Fatalf("no inline QR image:\n%s", page.Body)
	}
	raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(raw)); err != nil {
		t.Errorf("QR image: %v", err)
	}
	for _, f := range []string{"/login/step", "/login/code", "/login/cancel"} {
		if _, ok := page.FindForm(f); !ok {
			t.Errorf("no form posting to %s", f)
		}
	}
	req := pending(t, phone)
	if req.Client != hostidp.ClientName || !slices.Contains(req.Methods, "push") {
		t.Errorf("the phone shows %+v", req.SignInRequest)
	}
	began := time.Now()
	if _, err := phone.ApproveRequest(e.ctx, req, number(t, page)); err != nil {
		t.Fatal(err)
	}
	q := callback(t, b.Submit(page.Form(t, "/login/step"), nil))
	if q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	// PKCE is enforced: without the verifier the code is refused (and
	// used up).
	if _, err := rp.CodeExchange[*oidc.IDTokenClaims](e.ctx, q.Get("code"), e.party); err == nil {
		t.Fatal("the code was exchanged without the PKCE verifier")
	}
	if _, err := rp.CodeExchange[*oidc.IDTokenClaims](e.ctx, q.Get("code"), e.party, rp.WithCodeVerifier(verifier)); err == nil {
		t.Fatal("a code was exchanged twice")
	}

	// Again, exchanged properly.
	form, verifier = e.authorize(b, "st-2")
	page = e.username(b, form, "alice")
	if _, err := phone.ApproveRequest(e.ctx, pending(t, phone), number(t, page)); err != nil {
		t.Fatal(err)
	}
	q = callback(t, b.Submit(page.Form(t, "/login/step"), nil))
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](e.ctx, q.Get("code"), e.party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	c := tokens.IDTokenClaims
	if c.Subject != e.accountID("alice") || c.Issuer != e.idp.URL || c.PreferredUsername != "alice" || !slices.Equal(c.AuthenticationMethodsReferences, []string{"pop"}) {
		t.Errorf("sub %q iss %q preferred_username %q amr %v", c.Subject, c.Issuer, c.PreferredUsername, c.AuthenticationMethodsReferences)
	}
	if at := c.AuthTime.AsTime(); at.Before(began.Add(-time.Second)) || at.After(time.Now()) {
		t.Errorf("auth_time %v", at)
	}
	info, err := rp.Userinfo[*oidc.UserInfo](e.ctx, tokens.AccessToken, tokens.TokenType, c.Subject, e.party)
	if err != nil || info.Subject != e.accountID("alice") || info.PreferredUsername != "alice" {
		t.Errorf("userinfo %+v, %v", info, err)
	}
	// A second Continue after the answer gets nothing more.
	if p := b.Submit(page.Form(t, "/login/step"), nil); p.Status != http.StatusNotFound {
		t.Errorf("Continue again: %d", p.Status)
	}
	// The library's callback, which would answer on a request id alone, is
	// not served.
	if p := b.Get(e.idp.URL + "/authorize/callback?id=x"); p.Status != http.StatusNotFound {
		t.Errorf("/authorize/callback: %d", p.Status)
	}
}

// TestDenied: the phone denies; the client gets access_denied.
func TestDenied(t *testing.T) {
	e := newEnv(t, nil)
	phone := e.user("bob")
	b := steptest.NewBrowser(t)
	form, _ := e.authorize(b, "st-deny")
	page := e.username(b, form, "bob")
	if _, err := phone.Deny(e.ctx, pending(t, phone).ID, false); err != nil {
		t.Fatal(err)
	}
	q := callback(t, b.Submit(page.Form(t, "/login/step"), nil))
	if q.Get("error") != "access_denied" || q.Get("state") != "st-deny" || q.Get("code") != "" {
		t.Fatalf("callback %v", q)
	}
}

// TestCancel: the user gives up; the step is cancelled and the client gets
// access_denied.
func TestCancel(t *testing.T) {
	e := newEnv(t, nil)
	phone := e.user("carol")
	b := steptest.NewBrowser(t)
	form, _ := e.authorize(b, "st-cancel")
	page := e.username(b, form, "carol")
	q := callback(t, b.Submit(page.Form(t, "/login/cancel"), nil))
	if q.Get("error") != "access_denied" || q.Get("state") != "st-cancel" {
		t.Fatalf("callback %v", q)
	}
	if reqs, err := phone.Pending(e.ctx); err != nil || len(reqs) != 0 {
		t.Errorf("the phone still has %d requests, %v", len(reqs), err)
	}
}

// TestNotYet: Continue before the phone answers waits AwaitTimeout and
// shows the step page again; once the phone approves, Continue answers.
func TestNotYet(t *testing.T) {
	e := newEnv(t, func(o *hostidp.Options) { o.AwaitTimeout = 100 * time.Millisecond })
	phone := e.user("dave")
	b := steptest.NewBrowser(t)
	form, verifier := e.authorize(b, "st-wait")
	page := e.username(b, form, "dave")
	again := b.Submit(page.Form(t, "/login/step"), nil)
	if again.Status != http.StatusOK || !strings.Contains(again.Text(), "has not answered yet") || number(t, again) != number(t, page) {
		t.Fatalf("Continue before the decision: %d\n%s", again.Status, again.Text())
	}
	if _, err := phone.ApproveRequest(e.ctx, pending(t, phone), number(t, again)); err != nil {
		t.Fatal(err)
	}
	q := callback(t, b.Submit(again.Form(t, "/login/step"), nil))
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](e.ctx, q.Get("code"), e.party, rp.WithCodeVerifier(verifier))
	if err != nil || tokens.IDTokenClaims.Subject != e.accountID("dave") {
		t.Fatalf("code exchange: %+v, %v", tokens, err)
	}
}

// TestContinueWaits: Continue pressed before the phone answers returns
// when it does, within AwaitTimeout.
func TestContinueWaits(t *testing.T) {
	e := newEnv(t, func(o *hostidp.Options) { o.AwaitTimeout = time.Minute })
	phone := e.user("erin")
	b := steptest.NewBrowser(t)
	form, _ := e.authorize(b, "st-waits")
	page := e.username(b, form, "erin")
	answer := make(chan *steptest.Page, 1)
	go func() { answer <- b.Submit(page.Form(t, "/login/step"), nil) }()
	if _, err := phone.ApproveRequest(e.ctx, pending(t, phone), number(t, page)); err != nil {
		t.Fatal(err)
	}
	if q := callback(t, <-answer); q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
}

// TestOverrideCode: an administrative override code signs the user in
// without the phone; a wrong one is refused on the page.
func TestOverrideCode(t *testing.T) {
	e := newEnv(t, nil)
	e.user("frank")
	oc, err := e.local.IssueOverride(e.ctx, step.AccountRef{Username: "frank"}, "lost phone")
	if err != nil {
		t.Fatal(err)
	}
	b := steptest.NewBrowser(t)
	form, verifier := e.authorize(b, "st-code")
	page := e.username(b, form, "frank")
	wrong := b.Submit(page.Form(t, "/login/code"), url.Values{"code": {"000000000"}})
	if wrong.Status != http.StatusOK || !strings.Contains(wrong.Text(), "That code did not work") {
		t.Fatalf("a wrong code: %d\n%s", wrong.Status, wrong.Text())
	}
	q := callback(t, b.Submit(page.Form(t, "/login/code"), url.Values{"code": {oc.Code}}))
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](e.ctx, q.Get("code"), e.party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if c := tokens.IDTokenClaims; c.Subject != e.accountID("frank") || !slices.Equal(c.AuthenticationMethodsReferences, []string{"otp"}) {
		t.Errorf("sub %q amr %v", c.Subject, c.AuthenticationMethodsReferences)
	}
}

// TestUsernameRefused: an unknown user and a suspended one are refused on
// the username form alike; a user with no device gets only the override
// code form.
func TestUsernameRefused(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.local.AddAccount(e.ctx, step.NewAccount{Username: "nodevice"}); err != nil {
		t.Fatal(err)
	}
	b := steptest.NewBrowser(t)
	form, _ := e.authorize(b, "st-nodevice")
	page := e.username(b, form, "nodevice")
	if numberRE.MatchString(page.Body) || strings.Contains(page.Body, `class="qr"`) {
		t.Errorf("a user without a device is shown a number or a QR code:\n%s", page.Body)
	}
	if _, ok := page.FindForm("/login/code"); !ok {
		t.Errorf("no override code form:\n%s", page.Body)
	}
	e.user("gone")
	if _, err := e.local.Suspend(e.ctx, step.AccountRef{Username: "gone"}, "left"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nobody", "gone", ""} {
		b := steptest.NewBrowser(t)
		form, _ := e.authorize(b, "st-x")
		p := b.Submit(form.Form(t, "/login"), url.Values{"username": {name}})
		if p.Status != http.StatusOK || p.Location != "" {
			t.Fatalf("%q: %d → %q", name, p.Status, p.Location)
		}
		want := "This user cannot sign in here"
		if name == "" {
			want = "Type your username"
		}
		if !strings.Contains(p.Text(), want) {
			t.Errorf("%q: %s", name, p.Text())
		}
		if _, ok := p.FindForm("/login"); !ok {
			t.Errorf("%q: no username form again", name)
		}
	}
}

// TestOtherBrowser: the auth request belongs to the browser that opened
// it; another browser (or a cross-site post) gets nothing.
func TestOtherBrowser(t *testing.T) {
	e := newEnv(t, nil)
	e.user("heidi")
	b := steptest.NewBrowser(t)
	form, _ := e.authorize(b, "st-b")
	other := steptest.NewBrowser(t)
	if p := other.Get(form.URL.String()); p.Status != http.StatusForbidden {
		t.Errorf("another browser opening the login: %d", p.Status)
	}
	if p := other.Submit(form.Form(t, "/login"), url.Values{"username": {"heidi"}}); p.Status != http.StatusForbidden {
		t.Errorf("another browser posting the username: %d", p.Status)
	}
	req, err := http.NewRequest(http.MethodPost, e.idp.URL+"/login", strings.NewReader(url.Values{"id": form.Form(t, "/login").Fields["id"], "username": {"heidi"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := b.Do(req); p.Status != http.StatusForbidden {
		t.Errorf("a cross-site post: %d", p.Status)
	}
	// The browser that opened it can still go on.
	if p := b.Get(form.URL.String()); p.Status != http.StatusOK {
		t.Errorf("the same browser again: %d", p.Status)
	}
	e.username(b, form, "heidi")
}

// signIn signs in as typed (the phone approving) and returns the ID
// token's claims.
func (e *env) signIn(phone *authenticator.Authenticator, typed, state string) *oidc.IDTokenClaims {
	e.t.Helper()
	b := steptest.NewBrowser(e.t)
	form, verifier := e.authorize(b, state)
	page := e.username(b, form, typed)
	if _, err := phone.ApproveRequest(e.ctx, pending(e.t, phone), number(e.t, page)); err != nil {
		e.t.Fatal(err)
	}
	q := callback(e.t, b.Submit(page.Form(e.t, "/login/step"), nil))
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](e.ctx, q.Get("code"), e.party, rp.WithCodeVerifier(verifier))
	if err != nil {
		e.t.Fatalf("code exchange: %v", err)
	}
	return tokens.IDTokenClaims
}

// TestSubjectIsAccountID: the name typed in another case is the same
// user, with the same sub (keystep's account id) and preferred_username as
// keystep spells it; an account re-created under a removed one's name gets
// another sub.
func TestSubjectIsAccountID(t *testing.T) {
	e := newEnv(t, nil)
	phone := e.user("alice")
	id := e.accountID("alice")
	for _, typed := range []string{"alice", "Alice", "ALICE"} {
		if c := e.signIn(phone, typed, "st-"+typed); c.Subject != id || c.PreferredUsername != "alice" {
			t.Errorf("typed %q: sub %q preferred_username %q, want %q and alice", typed, c.Subject, c.PreferredUsername, id)
		}
	}
	if _, err := e.local.Remove(e.ctx, step.AccountRef{AccountID: id}, "left"); err != nil {
		t.Fatal(err)
	}
	phone2 := e.user("alice")
	if c := e.signIn(phone2, "alice", "st-new"); c.Subject == id || c.Subject != e.accountID("alice") {
		t.Errorf("the new alice has sub %q (the removed one had %q)", c.Subject, id)
	}
}

// TestSubjectWithoutAccounts: without Options.Accounts the step is begun
// for the typed name; sub is still the account id (from the result), and
// preferred_username is the name as typed.
func TestSubjectWithoutAccounts(t *testing.T) {
	e := newEnv(t, func(o *hostidp.Options) { o.Accounts = nil })
	phone := e.user("alice")
	if c := e.signIn(phone, "Alice", "st-typed"); c.Subject != e.accountID("alice") || c.PreferredUsername != "Alice" {
		t.Errorf("sub %q preferred_username %q", c.Subject, c.PreferredUsername)
	}
}

// fakeStep is a step.Step whose transactions are named after the user;
// Await on an approved one blocks until release is closed; it records the
// BeginRequests.
type fakeStep struct {
	mu       sync.Mutex
	begun    []step.BeginRequest
	awaiting chan string   // gets the id of each blocked Await
	release  chan struct{} // closed: the blocked Awaits return
	approved map[string]bool
	// beginGate, if it has a channel for a user, holds Begin until it
	// is closed (after signalling on beginning).
	beginGate map[string]chan struct{}
	beginning chan string
	cancelled []string
}

func newFakeStep() *fakeStep {
	return &fakeStep{awaiting: make(chan string, 8), release: make(chan struct{}), approved: map[string]bool{},
		beginGate: map[string]chan struct{}{}, beginning: make(chan string, 8)}
}

func (f *fakeStep) Begin(_ context.Context, r step.BeginRequest) (step.Transaction, error) {
	f.mu.Lock()
	gate := f.beginGate[r.Username]
	f.mu.Unlock()
	if gate != nil {
		f.beginning <- r.Username
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.begun = append(f.begun, r)
	return step.Transaction{ID: "tx-" + r.Username, Number: "42", ExpiresAt: time.Now().Add(time.Minute)}, nil
}

func (f *fakeStep) Await(ctx context.Context, id string, _ func(step.Result)) (step.Result, error) {
	f.mu.Lock()
	approved := f.approved[id]
	f.mu.Unlock()
	if !approved {
		<-ctx.Done()
		return step.Result{}, ctx.Err()
	}
	f.awaiting <- id
	select {
	case <-f.release:
	case <-ctx.Done():
		return step.Result{}, ctx.Err()
	}
	return step.Result{ID: id, AccountID: "acct-" + strings.TrimPrefix(id, "tx-"), Status: flows.StatusApproved,
		Method: flows.MethodPush, DecidedAt: time.Now()}, nil
}

func (f *fakeStep) SendCode(context.Context, string, flows.Method) (step.SentCode, error) {
	return step.SentCode{}, flows.ErrInvalid
}

func (f *fakeStep) SubmitCode(context.Context, string, string, string) (step.Result, error) {
	return step.Result{}, flows.ErrWrongCode
}

func (f *fakeStep) Cancel(_ context.Context, id, _ string) (step.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	if f.approved[id] {
		return step.Result{}, flows.ErrAlreadyDecided
	}
	return step.Result{ID: id, Status: flows.StatusCancelled}, nil
}

// TestApprovalIsForTheUserWhoTookTheStep: Mallory signs in as herself,
// presses Continue and approves on her phone; while Continue waits, a
// second POST /login in her browser names alice. Mallory's approval must
// not sign in alice: Continue gets no code, and alice's step stays
// pending.
func TestApprovalIsForTheUserWhoTookTheStep(t *testing.T) {
	f := newFakeStep()
	f.approved["tx-mallory"] = true
	e := newEnv(t, func(o *hostidp.Options) { o.Step, o.Accounts, o.AwaitTimeout = f, nil, time.Minute })
	b := steptest.NewBrowser(t)
	form, verifier := e.authorize(b, "st-race")
	page := e.username(b, form, "mallory")
	answer := make(chan *steptest.Page, 1)
	go func() { answer <- b.Submit(page.Form(t, "/login/step"), nil) }()
	if id := <-f.awaiting; id != "tx-mallory" {
		t.Fatalf("Await(%q)", id)
	}
	// Continue waits on Mallory's approved step; alice is named now.
	e.username(b, form, "alice")
	close(f.release)
	p := <-answer
	if q, err := url.Parse(p.Location); err == nil && q.Query().Get("code") != "" {
		tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](e.ctx, q.Query().Get("code"), e.party, rp.WithCodeVerifier(verifier))
		if err != nil {
			t.Fatalf("Mallory's approval got a code after alice was named (the exchange failed: %v)", err)
		}
		t.Fatalf("Mallory's approval signed in sub %q", tokens.IDTokenClaims.Subject)
	}
	if p.Status != http.StatusConflict {
		t.Errorf("Continue on the replaced step: %d\n%s", p.Status, p.Text())
	}
	// The request is alice's now, and still waits on her step.
	if again := b.Get(e.idp.URL + "/login/step?id=" + url.QueryEscape(form.Form(t, "/login").Fields.Get("id"))); again.Status != http.StatusOK ||
		!strings.Contains(again.Text(), "Signing in as alice") {
		t.Errorf("the step page afterwards: %d\n%s", again.Status, again.Text())
	}
}

// TestUserAgentCleaned: the user agent reaches the step as valid UTF-8,
// without control characters, and clipped on a rune boundary.
func TestUserAgentCleaned(t *testing.T) {
	f := newFakeStep()
	e := newEnv(t, func(o *hostidp.Options) { o.Step, o.Accounts = f, nil })
	b := steptest.NewBrowser(t)
	form, _ := e.authorize(b, "st-ua")
	// (Go's client sends no ASCII control character but tab.)
	ua := "Mozilla/5.0\tbad\u0085\xff " + strings.Repeat("a", 481) + "ééééééééééé"
	req, err := http.NewRequest(http.MethodPost, e.idp.URL+"/login",
		strings.NewReader(url.Values{"id": form.Form(t, "/login").Fields["id"], "username": {"zoe"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("User-Agent", ua)
	if p := b.Do(req); p.Status != http.StatusSeeOther {
		t.Fatalf("POST /login: %d\n%s", p.Status, p.Text())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.begun) != 1 {
		t.Fatalf("%d Begins", len(f.begun))
	}
	got := f.begun[0].UserAgent
	if !utf8.ValidString(got) || strings.ContainsFunc(got, unicode.IsControl) || len(got) > 512 ||
		!strings.HasPrefix(got, "Mozilla/5.0bad\uFFFD aaa") || !strings.HasSuffix(got, "é") {
		t.Errorf("user agent %q (%d bytes)", got, len(got))
	}
}

// TestConcurrentLogins: two POST /login for one auth request at once: the
// one whose step is begun last to be stored loses (its step is cancelled)
// instead of silently replacing a step it never saw.
func TestConcurrentLogins(t *testing.T) {
	f := newFakeStep()
	gate := make(chan struct{})
	f.beginGate["bob"] = gate
	e := newEnv(t, func(o *hostidp.Options) { o.Step, o.Accounts = f, nil })
	b := steptest.NewBrowser(t)
	form, _ := e.authorize(b, "st-two")
	answer := make(chan *steptest.Page, 1)
	go func() { answer <- b.Submit(form.Form(t, "/login"), url.Values{"username": {"bob"}}) }()
	if name := <-f.beginning; name != "bob" {
		t.Fatalf("Begin(%q)", name)
	}
	e.username(b, form, "carol") // while bob's Begin is held
	close(gate)
	if p := <-answer; p.Status != http.StatusConflict {
		t.Errorf("the POST /login overtaken: %d → %q\n%s", p.Status, p.Location, p.Text())
	}
	f.mu.Lock()
	cancelled := slices.Clone(f.cancelled)
	f.mu.Unlock()
	if !slices.Equal(cancelled, []string{"tx-bob"}) {
		t.Errorf("cancelled %v, want [tx-bob]", cancelled)
	}
	page := b.Get(e.idp.URL + "/login/step?id=" + url.QueryEscape(form.Form(t, "/login").Fields.Get("id")))
	if !strings.Contains(page.Text(), "Signing in as carol") {
		t.Errorf("the step page: %d\n%s", page.Status, page.Text())
	}
}
