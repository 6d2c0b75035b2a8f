package provider

import (
	"bytes"
	"context"
	"errors"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

func TestNewRefuses(t *testing.T) {
	e := newBareEnv(t)
	if _, err := New(Options{AdminToken: testToken}); err == nil {
		t.Error("New without Flows succeeded")
	}
	if _, err := New(Options{Flows: e.svc, AdminToken: "short"}); err == nil {
		t.Error("New with a short admin token succeeded")
	}
	if _, err := New(Options{Flows: e.svc, AdminToken: testToken}); err != nil {
		t.Errorf("New with defaults: %v", err)
	}
}

func TestBodies(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	p := e.enroll("alice")
	big := append([]byte(`{"username":"`), bytes.Repeat([]byte("a"), MaxBodyBytes)...)
	big = append(big, `"}`...)

	// Admin API.
	wantProblem(t, e.admin("POST", api.PathUsers, big), http.StatusRequestEntityTooLarge, api.ProblemTooLarge)
	p1 := wantProblem(t, e.admin("POST", api.PathUsers, []byte(`{"username":"bob","role":"root"}`)), http.StatusBadRequest, api.ProblemInvalid)
	if !strings.Contains(p1.Detail, `"role"`) {
		t.Errorf("unknown field detail %q", p1.Detail)
	}
	for _, b := range []string{`{"username":"bob"} {}`, `{"username":"bob"`, `["bob"]`, `{"username":7}`, `not json`} {
		wantProblem(t, e.admin("POST", api.PathUsers, []byte(b)), http.StatusBadRequest, api.ProblemInvalid)
	}
	p2 := wantProblem(t, e.admin("POST", api.PathUsers, []byte(`{"username":7}`)), http.StatusBadRequest, api.ProblemInvalid)
	if strings.Contains(p2.Detail, "Go") || strings.Contains(p2.Detail, "api.") || !strings.Contains(p2.Detail, "username") {
		t.Errorf("type error detail %q", p2.Detail)
	}
	// Content-Type must be JSON.
	req, _ := http.NewRequest("POST", e.ts.URL+api.PathUsers, strings.NewReader(`{"username":"bob"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "text/plain")
	wantProblem(t, e.send(req), http.StatusBadRequest, api.ProblemInvalid)
	req, _ = http.NewRequest("POST", e.ts.URL+api.PathUsers, strings.NewReader(`{"username":"bob"}`))
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	decode[api.User](t, e.send(req), http.StatusCreated)

	// Device API: enrollment and signed calls.
	wantProblem(t, e.post(api.PathEnroll, big), http.StatusRequestEntityTooLarge, api.ProblemTooLarge)
	wantProblem(t, e.post(api.PathEnroll, []byte(`{"token":"x","extra":true}`)), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, big), http.StatusRequestEntityTooLarge, api.ProblemTooLarge)
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, []byte(`{"payload":"x","more":1}`)), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.device(p, "POST", decisionPath("abc"), []byte(`{"decision":"approve","time":"now"}`)), http.StatusBadRequest, api.ProblemInvalid)
	wantProblem(t, e.device(p, "POST", api.PathQRClaim, nil), http.StatusBadRequest, api.ProblemInvalid)
}

func TestRouteMisses(t *testing.T) {
	e := newEnv(t)
	wantProblem(t, e.admin("GET", "/nowhere", nil), http.StatusNotFound, api.ProblemNotFound)
	wantProblem(t, e.admin("GET", api.DevicePrefix+"/nowhere", nil), http.StatusNotFound, api.ProblemNotFound)
	resp := e.admin("DELETE", api.PathEnroll, nil)
	wantProblem(t, resp, http.StatusMethodNotAllowed, "about:blank")
	if resp.Header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
}

func TestHealth(t *testing.T) {
	e := newEnv(t)
	resp := e.admin("GET", api.PathHealth, nil)
	if got := decode[map[string]string](t, resp, http.StatusOK); got["status"] != "ok" {
		t.Fatalf("health %v", got)
	}
	e.breakStore()
	resp = e.admin("GET", api.PathHealth, nil)
	if got := decode[map[string]string](t, resp, http.StatusServiceUnavailable); got["status"] == "ok" {
		t.Fatalf("health with a closed store %v", got)
	}
}

func TestInternalErrorsAreHidden(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice")
	e.breakStore()
	resp := e.admin("GET", api.PathUsers, nil)
	id := resp.Header.Get(HeaderRequestID)
	p := wantProblem(t, resp, http.StatusInternalServerError, api.ProblemInternal)
	if id == "" || !strings.Contains(p.Detail, id) {
		t.Fatalf("internal problem %+v does not quote request id %q", p, id)
	}
	if strings.Contains(strings.ToLower(p.Detail), "sql") || strings.Contains(p.Detail, "disk") {
		t.Fatalf("internal detail leaks: %q", p.Detail)
	}
	if logs := e.logText(); !strings.Contains(logs, id) || !strings.Contains(logs, "disk I/O error") {
		t.Fatalf("the log does not hold the error with request id %s:\n%s", id, logs)
	}
}

// brokenStore is a real store whose reads of accounts and of the audit log
// fail the way a broken database does.
type brokenStore struct{ flows.Store }

var errDisk = errors.New("sql: disk I/O error at /var/lib/keystep/keystep.db")

func (brokenStore) ListAccounts(context.Context, flows.AccountFilter) ([]flows.Account, error) {
	return nil, errDisk
}

func (brokenStore) ListAudit(context.Context, flows.AuditFilter) ([]flows.AuditEvent, error) {
	return nil, errDisk
}

// breakStore rebuilds the server on a broken view of its store.
func (e *env) breakStore() {
	e.t.Helper()
	svc, err := flows.New(brokenStore{e.store}, flows.Config{Origin: testOrigin, CodeConfig: flows.CodeConfig{CodeKey: testCodeKey}}, flows.WithClock(e.clock))
	if err != nil {
		e.t.Fatal(err)
	}
	srv, err := New(Options{Flows: svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock})
	if err != nil {
		e.t.Fatal(err)
	}
	e.ts.Config.Handler = srv.Handler()
}

func TestHealthSurvivesAPanickingStore(t *testing.T) {
	e := newEnv(t)
	e.store.Close() // the SQLite store's statements are gone: it panics when used
	resp := e.admin("GET", api.PathHealth, nil)
	decode[map[string]string](t, resp, http.StatusServiceUnavailable)
}

func TestPanicsAreRecovered(t *testing.T) {
	e := newBareEnv(t)
	h := e.srv.guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("secret internals") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	b := rec.Body.Bytes()
	p, err := parseProblem(rec.Header(), b)
	if err != nil || rec.Code != http.StatusInternalServerError || p.Type != api.ProblemInternal {
		t.Fatalf("panic answered %d %s (%v)", rec.Code, b, err)
	}
	if bytes.Contains(b, []byte("secret")) || bytes.Contains(b, []byte("goroutine")) {
		t.Fatalf("panic answer leaks: %s", b)
	}
	checkSecurityHeaders(t, rec.Header())
	if logs := e.logText(); !strings.Contains(logs, "secret internals") || !strings.Contains(logs, rec.Header().Get(HeaderRequestID)) {
		t.Fatalf("panic not logged with its request id:\n%s", logs)
	}
}

func TestRateLimits(t *testing.T) {
	t.Run("enroll failures", func(t *testing.T) {
		e := newEnv(t)
		e.addUser("alice")
		e.addUser("bob")
		// Malformed requests touch no secret and spend nothing.
		for range 2 * enrollBurst {
			wantProblem(t, e.post(api.PathEnroll, []byte(`{}`)), http.StatusBadRequest, api.ProblemInvalid)
		}
		link := e.invite("alice")
		// A used invitation and an unknown one are failures.
		good, _ := e.enrollRequest(link)
		decode[api.EnrollResponse](t, e.post(api.PathEnroll, good), http.StatusCreated)
		unknown := link
		unknown.Token = flows.NewSecret(32)
		for i := range enrollBurst {
			req := good
			if i%2 == 1 {
				req, _ = e.enrollRequest(unknown)
			}
			resp := e.post(api.PathEnroll, req)
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode < 400 {
				t.Fatalf("failure %d answered %d", i+1, resp.StatusCode)
			}
		}
		bad, _ := e.enrollRequest(unknown)
		resp := e.post(api.PathEnroll, bad)
		wantProblem(t, resp, http.StatusTooManyRequests, api.ProblemRateLimited)
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 {
			t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
		}
		// A bad signature is a failure too.
		forged, _ := e.enrollRequest(e.invite("bob"))
		forged.Signature = bad.Signature
		wantProblem(t, e.post(api.PathEnroll, forged), http.StatusTooManyRequests, api.ProblemRateLimited)
		// A valid enrollment from the same, spent address gets through.
		ok, _ := e.enrollRequest(e.invite("bob"))
		decode[api.EnrollResponse](t, e.post(api.PathEnroll, ok), http.StatusCreated)
		// Time gives back one failure, and only one.
		e.clock.Advance(enrollEvery)
		wantProblem(t, e.post(api.PathEnroll, bad), http.StatusNotFound, api.ProblemNotFound)
		wantProblem(t, e.post(api.PathEnroll, bad), http.StatusTooManyRequests, api.ProblemRateLimited)
	})
	t.Run("device auth failures", func(t *testing.T) {
		e := newEnv(t)
		e.addUser("alice")
		p := e.enroll("alice")
		stranger, _ := newKey(t)
		fake := phone{key: stranger, id: p.id}
		for range deviceAuthBurst {
			wantProblem(t, e.device(fake, "GET", api.PathDeviceAccount, nil), http.StatusUnauthorized, api.ProblemBadSignature)
		}
		wantProblem(t, e.device(fake, "GET", api.PathDeviceAccount, nil), http.StatusTooManyRequests, api.ProblemRateLimited)
		// Unsigned requests are failures too.
		req, _ := http.NewRequest("GET", e.ts.URL+api.PathDeviceAccount, nil)
		wantProblem(t, e.send(req), http.StatusTooManyRequests, api.ProblemRateLimited)
		// The genuine device behind the same address still gets through,
		// again and again, and spends nothing.
		for range 2 * deviceAuthBurst {
			decode[api.AccountView](t, e.device(p, "GET", api.PathDeviceAccount, nil), http.StatusOK)
		}
		wantProblem(t, e.device(fake, "GET", api.PathDeviceAccount, nil), http.StatusTooManyRequests, api.ProblemRateLimited)
		e.clock.Advance(deviceAuthEvery)
		wantProblem(t, e.device(fake, "GET", api.PathDeviceAccount, nil), http.StatusUnauthorized, api.ProblemBadSignature)
		wantProblem(t, e.device(fake, "GET", api.PathDeviceAccount, nil), http.StatusTooManyRequests, api.ProblemRateLimited)
	})
	t.Run("admin auth failures", func(t *testing.T) {
		e := newEnv(t)
		for range adminAuthBurst {
			wantProblem(t, e.adminAs("guess-guess-guess-guess", "GET", api.PathUsers, nil), http.StatusUnauthorized, api.ProblemUnauthorized)
		}
		wantProblem(t, e.adminAs("guess-guess-guess-guess", "GET", api.PathUsers, nil), http.StatusTooManyRequests, api.ProblemRateLimited)
		wantProblem(t, e.adminAs("", "GET", api.PathUsers, nil), http.StatusTooManyRequests, api.ProblemRateLimited)
		// The right token is compared first and always gets through.
		for range 2 * adminAuthBurst {
			decode[api.UserList](t, e.admin("GET", api.PathUsers, nil), http.StatusOK)
		}
		wantProblem(t, e.adminAs("guess-guess-guess-guess", "GET", api.PathUsers, nil), http.StatusTooManyRequests, api.ProblemRateLimited)
		e.clock.Advance(adminAuthEvery)
		wantProblem(t, e.adminAs("guess-guess-guess-guess", "GET", api.PathUsers, nil), http.StatusUnauthorized, api.ProblemUnauthorized)
		wantProblem(t, e.adminAs("guess-guess-guess-guess", "GET", api.PathUsers, nil), http.StatusTooManyRequests, api.ProblemRateLimited)
	})
}

func TestClientKey(t *testing.T) {
	e := newBareEnv(t)
	for addr, want := range map[string]string{
		"192.0.2.7:5555":              "192.0.2.7",
		"[::ffff:192.0.2.7]:5555":     "192.0.2.7",
		"[2001:db8:1:2:3:4:5:6]:5555": "2001:db8:1:2::/64",
		"[2001:db8:1:2:9:9:9:9]:1":    "2001:db8:1:2::/64",
		"127.0.0.1:80":                "127.0.0.1", // no trusted proxies: X-Forwarded-For is ignored
		"@":                           "@",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		if got := e.srv.clientKey(r); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestTrustedProxies(t *testing.T) {
	e := newBareEnv(t)
	srv, err := New(Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"127.0.0.1:1", []string{"203.0.113.9"}, "203.0.113.9"},
		// The right-most untrusted entry; those left of it are the client's to forge.
		{"127.0.0.1:1", []string{"198.51.100.1, 203.0.113.9, 10.1.2.3"}, "203.0.113.9"},
		{"127.0.0.1:1", []string{"198.51.100.1", "203.0.113.9 , 10.1.2.3"}, "203.0.113.9"},
		{"127.0.0.1:1", []string{"2001:db8:1:2::9"}, "2001:db8:1:2::/64"},
		{"127.0.0.1:1", nil, "127.0.0.1"},
		// A malformed entry: the last address a trusted proxy vouched for.
		{"127.0.0.1:1", []string{"203.0.113.9, nonsense, 10.1.2.3"}, "10.1.2.3"},
		// Only trusted proxies: the left-most of them.
		{"127.0.0.1:1", []string{"10.9.9.9, 10.1.2.3"}, "10.9.9.9"},
		// An untrusted peer's header is ignored.
		{"192.0.2.7:1", []string{"203.0.113.9"}, "192.0.2.7"},
		{"[2001:db8::1]:1", []string{"203.0.113.9"}, "2001:db8::/64"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := srv.clientKey(r); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: clientKey %q, want %q", c.peer, c.xff, got, c.want)
		}
	}
	if _, err := New(Options{Flows: e.svc, AdminToken: testToken, TrustedProxies: []netip.Prefix{{}}}); err == nil {
		t.Fatal("an invalid prefix was accepted")
	}
}

// TestTrustedProxyLimits checks end to end that clients behind a trusted
// proxy get buckets of their own, and that behind an untrusted one the
// header changes nothing.
func TestTrustedProxyLimits(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		e := newBareEnv(t)
		o := Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock}
		if trusted {
			o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		}
		srv, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		e.ts = httptest.NewServer(srv.Handler())
		t.Cleanup(e.ts.Close)
		guess := func(from string) *http.Response {
			req, _ := http.NewRequest("GET", e.ts.URL+api.PathUsers, nil)
			req.Header.Set("Authorization", "Bearer guess-guess-guess-guess")
			req.Header.Set("X-Forwarded-For", from)
			return e.send(req)
		}
		for range adminAuthBurst {
			wantProblem(t, guess("203.0.113.9"), http.StatusUnauthorized, api.ProblemUnauthorized)
		}
		wantProblem(t, guess("203.0.113.9"), http.StatusTooManyRequests, api.ProblemRateLimited)
		if trusted {
			wantProblem(t, guess("198.51.100.1"), http.StatusUnauthorized, api.ProblemUnauthorized)
		} else {
			wantProblem(t, guess("198.51.100.1"), http.StatusTooManyRequests, api.ProblemRateLimited)
		}
	}
}

func TestLimiterForgetsIdleClients(t *testing.T) {
	e := newBareEnv(t)
	l := newLimiter(e.clock, 2, 1)
	for i := range maxBuckets + 10 {
		l.take(strconv.Itoa(i))
	}
	e.clock.Advance(10)
	l.take("new")
	if n := len(l.buckets); n > 20 {
		t.Fatalf("%d buckets kept after a sweep", n)
	}
}
