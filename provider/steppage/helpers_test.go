package steppage

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/notify/notifytest"
	"github.com/keystep/keystep/flows/phonetest"
	"github.com/keystep/keystep/flows/store/sqlite"
)

const (
	testOrigin   = "https://keystep.test"
	answerOrigin = "https://rp.example"
	completedURL = answerOrigin + "/cb?code=ok"
	refusedURL   = answerOrigin + "/cb?error=access_denied"
)

var (
	testCodeKey = []byte("keystep-test-code-key-0123456789abcdef")
	testSealKey = []byte("keystep-test-seal-key-0123456789abcdef")
)

// env is a step page over a real flows service on a real SQLite store,
// with a fake clock and a fake protocol side.
type env struct {
	t     testing.TB
	ctx   context.Context
	clock *clocktest.Clock
	store flows.Store
	svc   *flows.Service
	cfg   flows.Config
	reqs  *fakeRequests
	h     *Handler
	mux   *http.ServeMux
	ts    *httptest.Server
	mail  *notifytest.Mailbox
	// lastSeq is the last audit sequence number auditSeq saw.
	lastSeq int64
}

type envOptions struct {
	secure  bool
	cfg     flows.Config
	noTS    bool // no HTTP listener (fuzz targets call the mux)
	noSMS   bool // no SMS sender on the server
	noEmail bool // no email sender on the server
	// checker is the live check at Begin (nil: none).
	checker flows.AccountChecker
}

func newEnv(t testing.TB) *env { return newEnvWith(t, envOptions{}) }

func newEnvWith(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	cfg := o.cfg
	cfg.Origin = testOrigin
	cfg.CodeKey = testCodeKey
	mail := &notifytest.Mailbox{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opts := []flows.Option{flows.WithClock(clock), flows.WithLogger(log)}
	if !o.noEmail {
		opts = append(opts, flows.WithEmailSender(mail))
	}
	if !o.noSMS {
		opts = append(opts, flows.WithSMSSender(notifytest.SMSSink{}))
	}
	if o.checker != nil {
		opts = append(opts, flows.WithAccountChecker(o.checker))
	}
	svc, err := flows.New(st, cfg, opts...)
	if err != nil {
		t.Fatalf("flows: %v", err)
	}
	reqs := &fakeRequests{store: st, svc: svc, clock: clock}
	h, err := New(ctx, Options{Flows: svc, Requests: reqs, SealKey: testSealKey, Secure: o.secure, Clock: clock, Logger: log})
	if err != nil {
		t.Fatalf("steppage: %v", err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	e := &env{t: t, ctx: ctx, clock: clock, store: st, svc: svc, cfg: cfg, reqs: reqs, h: h, mux: mux, mail: mail}
	if !o.noTS {
		e.ts = httptest.NewServer(mux)
		t.Cleanup(e.ts.Close)
	}
	return e
}

// addUser adds an active account with an email address and a phone number.
func (e *env) addUser(name string) flows.Account {
	e.t.Helper()
	a, err := e.svc.AddAccount(e.ctx, "admin", flows.NewAccount{Username: name, Email: name + "@example.com", Phone: "+14155550100"})
	if err != nil {
		e.t.Fatalf("add %s: %v", name, err)
	}
	return a
}

// phone is an enrolled test device.
type phone struct {
	key    *ecdsa.PrivateKey
	device flows.Device
}

// enroll enrolls a device for the user, as the app would.
func (e *env) enroll(user string) phone {
	e.t.Helper()
	p := phonetest.Enroll(e.t, e.svc, user)
	return phone{key: p.Key, device: p.Device}
}

// decide signs and records a decision on the request's current sign-in,
// as the phone would (by push, with the number shown on the page).
func (e *env) decide(p phone, requestID string, d flows.Decision) flows.SignIn {
	e.t.Helper()
	return e.decideOn(e.svc, p, e.signIn(requestID), d)
}

func (e *env) decideOn(svc *flows.Service, p phone, sgn flows.SignIn, d flows.Decision) flows.SignIn {
	e.t.Helper()
	number := ""
	if d == flows.DecisionApprove {
		number = sgn.Number
	}
	now := e.clock.Now()
	msg, err := flows.DecisionPayload(testOrigin, sgn.ID, sgn.Nonce, d, flows.MethodPush, number, now)
	if err != nil {
		e.t.Fatal(err)
	}
	sig, err := flows.SignES256(p.key, msg)
	if err != nil {
		e.t.Fatal(err)
	}
	out, err := svc.Decide(e.ctx, flows.DecisionRequest{SignInID: sgn.ID, DeviceID: p.device.ID, Decision: d,
		Method: flows.MethodPush, Number: number, Time: now, Signature: sig})
	if err != nil {
		e.t.Fatalf("decide %s: %v", d, err)
	}
	return out
}

// newRequest stores a federation request for the account, allowing the
// given methods (none: the flows default).
func (e *env) newRequest(a flows.Account, methods ...flows.Method) string {
	e.t.Helper()
	b, err := json.Marshal(methods)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now().UTC()
	ar := flows.AuthRequest{
		ID: flows.NewID(), ClientID: "payroll", Protocol: "oidc", Request: b, AccountID: a.ID, Subject: a.Username,
		CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute),
	}
	if err := e.store.CreateAuthRequest(e.ctx, ar); err != nil {
		e.t.Fatalf("create auth request: %v", err)
	}
	return ar.ID
}

// authRequest reads a request from the store.
func (e *env) authRequest(id string) flows.AuthRequest {
	e.t.Helper()
	ar, err := e.store.GetAuthRequest(e.ctx, id)
	if err != nil {
		e.t.Fatalf("auth request %s: %v", id, err)
	}
	return ar
}

// signIn reads the request's current sign-in.
func (e *env) signIn(requestID string) flows.SignIn {
	e.t.Helper()
	ar := e.authRequest(requestID)
	if ar.SignInID == "" {
		e.t.Fatalf("request %s has no sign-in", requestID)
	}
	sgn, err := e.svc.GetSignIn(e.ctx, ar.SignInID)
	if err != nil {
		e.t.Fatal(err)
	}
	return sgn
}

// auditCount is the length of the audit log.
func (e *env) auditCount() int {
	e.t.Helper()
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

// fakeRequests is the protocol side: it looks requests up in the store
// and records what the step page hands it.
type fakeRequests struct {
	store flows.Store
	svc   *flows.Service
	clock flows.Clock

	mu        sync.Mutex
	completed []completion
	refused   []refusal
	locales   []string
}

type completion struct {
	id  string
	sgn flows.SignIn
}

type refusal struct{ id, reason string }

func (f *fakeRequests) Lookup(ctx context.Context, id string) (Request, error) {
	ar, err := f.store.GetAuthRequest(ctx, id)
	if err != nil {
		return Request{}, fmt.Errorf("auth request: %w", err)
	}
	if ar.Done() || !f.clock.Now().Before(ar.ExpiresAt) {
		return Request{}, fmt.Errorf("auth request %s: %w", id, flows.ErrExpired)
	}
	var methods []flows.Method
	if err := json.Unmarshal(ar.Request, &methods); err != nil {
		return Request{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return Request{ID: ar.ID, ClientName: "Payroll", AccountID: ar.AccountID, Methods: methods,
		AnswerOrigin: answerOrigin, ExpiresAt: ar.ExpiresAt, Locales: f.locales}, nil
}

func (f *fakeRequests) Complete(w http.ResponseWriter, r *http.Request, id string, sgn flows.SignIn) {
	ar, err := f.store.GetAuthRequest(r.Context(), id)
	if err != nil || ar.SignInID != sgn.ID || sgn.Status != flows.StatusApproved {
		http.Error(w, "not this request's approved sign-in", http.StatusBadRequest)
		return
	}
	err = f.store.CompleteAuthRequest(r.Context(), id, flows.AuthResult{AuthTime: sgn.DecidedAt, ACR: "test", AMR: []string{string(sgn.DecidedBy)}, At: f.clock.Now().UTC()})
	if err != nil {
		http.Error(w, "already answered", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.completed = append(f.completed, completion{id, sgn})
	f.mu.Unlock()
	http.Redirect(w, r, completedURL, http.StatusSeeOther)
}

func (f *fakeRequests) Refuse(w http.ResponseWriter, r *http.Request, id, reason string) {
	f.mu.Lock()
	f.refused = append(f.refused, refusal{id, reason})
	f.mu.Unlock()
	http.Redirect(w, r, refusedURL, http.StatusSeeOther)
}

func (f *fakeRequests) calls() ([]completion, []refusal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.completed), slices.Clone(f.refused)
}

// browser is one browser: its own cookie jar, and the CSRF token of the
// last page it saw. It does not follow redirects.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{e: e, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// response is a read response.
type response struct {
	*http.Response
	body string
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (b *browser) do(req *http.Request) response {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	if m := csrfField.FindStringSubmatch(string(body)); m != nil {
		b.csrf = m[1]
	}
	return response{resp, string(body)}
}

func (b *browser) get(path string) response {
	b.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, b.e.ts.URL+path, nil)
	if err != nil {
		b.e.t.Fatal(err)
	}
	return b.do(req)
}

// post posts a form with the browser's CSRF token (unless form has one).
func (b *browser) post(path string, form url.Values, header ...string) response {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, b.e.ts.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

// wantStatus fails the test unless the response has the status.
func wantStatus(t testing.TB, r response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body:\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
}

// wantText fails the test unless the body holds each text (HTML-escaped
// as the template escapes it).
func wantText(t testing.TB, r response, texts ...string) {
	t.Helper()
	for _, s := range texts {
		if !strings.Contains(r.body, htmlEscape(s)) {
			t.Errorf("%s %s: body lacks %q:\n%s", r.Request.Method, r.Request.URL.Path, s, r.body)
		}
	}
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "'", "&#39;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

var errNoFinal = errors.New("the stream ended without a final event")
