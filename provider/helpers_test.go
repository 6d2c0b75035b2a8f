package provider

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider/api"
)

const (
	testOrigin = "https://keystep.test"
	testToken  = "admin-token-for-tests-0123456789"
)

// env is a provider over a real SQLite store with a fake clock, served by
// httptest.
type env struct {
	t     testing.TB
	ctx   context.Context
	clock *clocktest.Clock
	store flows.Store
	svc   *flows.Service
	srv   *Server
	ts    *httptest.Server
	logs  *bytes.Buffer
	logMu *sync.Mutex
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := newBareEnv(t)
	e.ts = httptest.NewServer(e.srv.Handler())
	t.Cleanup(e.ts.Close)
	return e
}

// newBareEnv is newEnv without the HTTP listener (fuzz targets call the
// handler directly).
func newBareEnv(t testing.TB) *env {
	t.Helper()
	return newBareEnvWith(t, flows.Config{})
}

// testCodeKey is the code key of the tests' services.
var testCodeKey = []byte("keystep-test-code-key-0123456789abcdef")

// newBareEnvWith is newBareEnv with a policy of its own (the origin and
// code key are filled in) and more options for flows.
func newBareEnvWith(t testing.TB, cfg flows.Config, opts ...flows.Option) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	logs := &bytes.Buffer{}
	lw := &lockedWriter{w: logs}
	log := slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Origin = testOrigin
	if cfg.CodeKey == nil {
		cfg.CodeKey = testCodeKey
	}
	svc, err := flows.New(st, cfg, append([]flows.Option{flows.WithClock(clock), flows.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("flows: %v", err)
	}
	srv, err := New(Options{Flows: svc, AdminToken: testToken, Logger: log, Clock: clock})
	if err != nil {
		t.Fatalf("provider: %v", err)
	}
	return &env{t: t, ctx: ctx, clock: clock, store: st, svc: svc, srv: srv, logs: logs, logMu: &lw.mu}
}

// lockedWriter lets concurrent handlers log into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// logText returns what the server logged so far.
func (e *env) logText() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.logs.String()
}

// phone is a test device: its key and its id.
type phone struct {
	key *ecdsa.PrivateKey
	id  string
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

func sign(t testing.TB, key *ecdsa.PrivateKey, msg []byte, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	sig, err := flows.SignES256(key, msg)
	if err != nil {
		t.Fatal(err)
	}
	return b64.EncodeToString(sig)
}

// send sends a request to the test server and checks the security headers.
func (e *env) send(req *http.Request) *http.Response {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	e.t.Cleanup(func() { resp.Body.Close() })
	checkSecurityHeaders(e.t, resp.Header)
	return resp
}

func checkSecurityHeaders(t testing.TB, h http.Header) {
	t.Helper()
	for k, v := range securityHeaders {
		if got := h.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	if b, ok := v.([]byte); ok {
		return b
	}
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// admin calls the admin API with the admin token; body is a value to
// marshal, raw []byte, or nil.
func (e *env) admin(method, path string, body any) *http.Response {
	e.t.Helper()
	return e.adminAs(testToken, method, path, body)
}

func (e *env) adminAs(token, method, path string, body any) *http.Response {
	e.t.Helper()
	b := jsonBody(e.t, body)
	req, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	if b != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.send(req)
}

// signed builds a device API request signed by p at time at with nonce.
func (e *env) signed(p phone, method, path string, body []byte, at time.Time, nonce string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	msg, err := flows.RequestPayload(testOrigin, method, req.URL.RequestURI(), at, nonce, body)
	req.Header.Set(api.HeaderDevice, p.id)
	req.Header.Set(api.HeaderTime, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(api.HeaderNonce, nonce)
	req.Header.Set(api.HeaderSignature, sign(e.t, p.key, msg, err))
	return req
}

// device calls the device API as p, signed now with a fresh nonce.
func (e *env) device(p phone, method, path string, body any) *http.Response {
	e.t.Helper()
	return e.send(e.signed(p, method, path, jsonBody(e.t, body), e.clock.Now(), flows.NewSecret(16)))
}

// addUser creates an account through the admin API.
func (e *env) addUser(name string) api.User {
	e.t.Helper()
	return decode[api.User](e.t, e.admin("POST", api.PathUsers, api.NewUser{Username: name, Email: name + "@example.com"}), http.StatusCreated)
}

// invite returns a fresh enrollment link for user.
func (e *env) invite(user string) flows.EnrollLink {
	e.t.Helper()
	inv := decode[api.Invitation](e.t, e.admin("POST", userPath(api.PathUserInvite, user), nil), http.StatusCreated)
	link, err := flows.ParseEnrollLink(inv.Link)
	if err != nil {
		e.t.Fatalf("invitation link %q: %v", inv.Link, err)
	}
	return link
}

// enrollRequest is a correctly signed enrollment for link with a new key.
func (e *env) enrollRequest(link flows.EnrollLink) (api.EnrollRequest, *ecdsa.PrivateKey) {
	e.t.Helper()
	key, der := newKey(e.t)
	msg, err := flows.EnrollPayload(link.Server, link.Token, der)
	return api.EnrollRequest{Token: link.Token, PublicKey: b64.EncodeToString(der), Signature: sign(e.t, key, msg, err), Name: "test phone"}, key
}

func (e *env) post(path string, body any) *http.Response {
	e.t.Helper()
	b := jsonBody(e.t, body)
	req, err := http.NewRequest("POST", e.ts.URL+path, bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return e.send(req)
}

// enroll adds user's phone through the API.
func (e *env) enroll(user string) phone {
	e.t.Helper()
	req, key := e.enrollRequest(e.invite(user))
	res := decode[api.EnrollResponse](e.t, e.post(api.PathEnroll, req), http.StatusCreated)
	return phone{key: key, id: res.DeviceID}
}

// testSignIn begins an admin test sign-in for user.
func (e *env) testSignIn(user string, methods ...string) api.Challenge {
	e.t.Helper()
	return decode[api.Challenge](e.t, e.admin("POST", userPath(api.PathTestSignIn, user), api.TestSignIn{Methods: methods}), http.StatusCreated)
}

// decision is p's signed decision on sign-in id with the given nonce.
func (e *env) decision(p phone, id, nonce string, d flows.Decision, m flows.Method, number string) api.DecisionRequest {
	e.t.Helper()
	now := e.clock.Now()
	msg, err := flows.DecisionPayload(testOrigin, id, nonce, d, m, number, now)
	return api.DecisionRequest{Decision: string(d), Method: string(m), Number: number, Time: now.Unix(), Signature: sign(e.t, p.key, msg, err)}
}

// pendingFor lists p's pending requests.
func (e *env) pendingFor(p phone) []api.SignInRequest {
	e.t.Helper()
	return decode[api.RequestList](e.t, e.device(p, "GET", api.PathRequests, nil), http.StatusOK).Requests
}

// decide decides the only pending request of p's with the number given.
func (e *env) decide(p phone, ch api.Challenge, d flows.Decision, number string) *http.Response {
	e.t.Helper()
	var nonce string
	for _, r := range e.pendingFor(p) {
		if r.ID == ch.ID {
			nonce = r.Nonce
		}
	}
	if nonce == "" {
		e.t.Fatalf("sign-in %s is not pending for device %s", ch.ID, p.id)
	}
	return e.device(p, "POST", decisionPath(ch.ID), e.decision(p, ch.ID, nonce, d, flows.MethodPush, number))
}

func (e *env) signIn(id string) api.SignIn {
	e.t.Helper()
	return decode[api.SignIn](e.t, e.admin("GET", api.AdminPrefix+"/signins/"+id, nil), http.StatusOK)
}

func (e *env) auditLen() int {
	e.t.Helper()
	evs, err := e.svc.Audit(e.ctx, flows.AuditFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(evs)
}

func userPath(pattern, user string) string {
	return strings.Replace(pattern, "{user}", user, 1)
}

func decisionPath(id string) string {
	return strings.Replace(api.PathDecision, "{id}", id, 1)
}

// decode checks the status and content type and decodes the JSON body.
func decode[T any](t testing.TB, resp *http.Response, status int) T {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q, want application/json", ct)
	}
	var v T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T from %s: %v", v, b, err)
	}
	return v
}

// wantProblem checks that resp is the problem document typ with status.
func wantProblem(t testing.TB, resp *http.Response, status int, typ string) api.Problem {
	t.Helper()
	b, _ := io.ReadAll(resp.Body)
	p, err := parseProblem(resp.Header, b)
	if err != nil {
		t.Fatalf("%s %s: %v: %s", resp.Request.Method, resp.Request.URL.Path, err, b)
	}
	if resp.StatusCode != status || p.Status != status || p.Type != typ {
		t.Fatalf("%s %s: status %d, problem %s (%d), want %d %s: %s", resp.Request.Method, resp.Request.URL.Path,
			resp.StatusCode, p.Type, p.Status, status, typ, b)
	}
	return p
}

// parseProblem checks that b is a well-formed problem document.
func parseProblem(h http.Header, b []byte) (api.Problem, error) {
	var p api.Problem
	if ct := h.Get("Content-Type"); ct != ContentTypeProblem {
		return p, fmt.Errorf("Content-Type %q, want %s", ct, ContentTypeProblem)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return p, fmt.Errorf("problem document does not decode: %v", err)
	}
	if (p.Type != "about:blank" && !strings.HasPrefix(p.Type, api.ProblemBase)) || p.Title == "" || p.Status < 400 {
		return p, fmt.Errorf("malformed problem %+v", p)
	}
	return p, nil
}

// sse is one Server-Sent Event (or comment, with Event "comment").
type sse struct {
	Event string
	Data  string
}

// readEvents parses resp's event stream into a channel, closed at the end.
func readEvents(resp *http.Response) <-chan sse {
	ch := make(chan sse, 16)
	go func() {
		defer close(ch)
		br := bufio.NewReader(resp.Body)
		var ev sse
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimRight(line, "\n")
			switch {
			case line == "":
				if ev.Event != "" {
					ch <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, ":"):
				ev = sse{Event: "comment", Data: strings.TrimSpace(line[1:])}
			case strings.HasPrefix(line, "event: "):
				ev.Event = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.Data = line[len("data: "):]
			}
		}
	}()
	return ch
}

// next waits for the next event; the timeout only turns a hang into a failure.
func next(t testing.TB, ch <-chan sse) sse {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event stream ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return sse{}
}
