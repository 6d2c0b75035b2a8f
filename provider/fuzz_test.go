package provider

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// Every fuzz target posts its input to the real handler over a real SQLite
// store and checks the same promises: never a 5xx, a well-formed problem
// document on every 4xx, and no trace in the audit log of a refused
// request. The seeds under testdata/fuzz run with every go test.

// fuzzEnv has alice with an enrolled phone and a pending push sign-in.
type fuzzEnv struct {
	*env
	phone phone
	ch    api.Challenge
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	e := newEnv(f)
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.testSignIn("alice")
	return &fuzzEnv{env: e, phone: p, ch: ch}
}

// serve runs req through a fresh Server on the same flows (so the rate
// limits of one iteration do not spill into the next) and checks the
// promises. It returns the recorded response.
func (e *fuzzEnv) serve(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	srv, err := New(Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	before := auditLen(t, e.svc)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	if rec.Code >= 500 {
		t.Fatalf("%s %s: %d: %s", req.Method, req.URL.Path, rec.Code, body)
	}
	checkSecurityHeaders(t, rec.Header())
	if rec.Code >= 400 {
		p, err := parseProblem(rec.Header(), body)
		if err != nil {
			t.Fatalf("%s %s: %d: %v: %s", req.Method, req.URL.Path, rec.Code, err, body)
		}
		if p.Status != rec.Code {
			t.Fatalf("problem status %d on a %d response", p.Status, rec.Code)
		}
		if after := auditLen(t, e.svc); after != before {
			t.Fatalf("a refused request (%d %s) changed the audit log: %d events, was %d", rec.Code, p.Type, after, before)
		}
		return rec
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" || !json.Valid(body) {
		t.Fatalf("%d answer with %q: %s", rec.Code, ct, body)
	}
	return rec
}

// jsonRequest is a POST of body as application/json.
func jsonRequest(path string, body []byte) *http.Request {
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

func adminRequest(path string, body []byte) *http.Request {
	req := jsonRequest(path, body)
	req.Header.Set("Authorization", "Bearer "+testToken)
	return req
}

// auditLen counts the audit events.
func auditLen(t *testing.T, svc *flows.Service) int {
	t.Helper()
	evs, err := svc.Audit(t.Context(), flows.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

// deviceRequest is a POST of body signed by e's phone.
func (e *fuzzEnv) deviceRequest(t *testing.T, path string, body []byte) *http.Request {
	t.Helper()
	now, nonce := e.clock.Now(), flows.NewSecret(16)
	msg, err := flows.RequestPayload(testOrigin, "POST", path, now, nonce, body)
	req := jsonRequest(path, body)
	req.Header.Set(api.HeaderDevice, e.phone.id)
	req.Header.Set(api.HeaderTime, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(api.HeaderNonce, nonce)
	req.Header.Set(api.HeaderSignature, sign(t, e.phone.key, msg, err))
	return req
}

func FuzzEnroll(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := e.serve(t, jsonRequest(api.PathEnroll, body))
		if rec.Code < 400 {
			t.Fatalf("an enrollment nobody signed succeeded: %s", rec.Body)
		}
	})
}

func FuzzDecision(f *testing.F) {
	e := newFuzzEnv(f)
	path := decisionPath(e.ch.ID)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := e.serve(t, e.deviceRequest(t, path, body))
		if rec.Code < 400 {
			t.Fatalf("a decision nobody signed was taken: %s", rec.Body)
		}
	})
}

func FuzzQRClaim(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.serve(t, e.deviceRequest(t, api.PathQRClaim, body))
	})
}

func FuzzNewUser(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.serve(t, adminRequest(api.PathUsers, body))
	})
}

func FuzzStateChange(f *testing.F) {
	e := newFuzzEnv(f)
	e.addUser("bob")
	f.Fuzz(func(t *testing.T, body []byte) {
		e.serve(t, adminRequest(userPath(api.PathUserSuspend, "bob"), body))
	})
}

func FuzzUnregister(f *testing.F) {
	e := newFuzzEnv(f)
	path := strings.Replace(userPath(api.PathDeviceUnreg, "alice"), "{device}", e.phone.id, 1)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.serve(t, adminRequest(path, body))
	})
}

func FuzzTestSignIn(f *testing.F) {
	e := newFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.serve(t, adminRequest(userPath(api.PathTestSignIn, "alice"), body))
	})
}

// FuzzDeviceAuth sends arbitrary Keystep-* headers: none of them can
// authenticate without the device key, and all get the same 401.
func FuzzDeviceAuth(f *testing.F) {
	e := newFuzzEnv(f)
	f.Add(e.phone.id, "1795770000", flows.NewSecret(16), b64.EncodeToString(make([]byte, 64)))
	f.Fuzz(func(t *testing.T, device, when, nonce, signature string) {
		req := httptest.NewRequest("GET", api.PathDeviceAccount, nil)
		req.Header.Set(api.HeaderDevice, device)
		req.Header.Set(api.HeaderTime, when)
		req.Header.Set(api.HeaderNonce, nonce)
		req.Header.Set(api.HeaderSignature, signature)
		rec := e.serve(t, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("forged device headers answered %d: %s", rec.Code, rec.Body)
		}
	})
}
