package provider

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/api"
)

// The code routes' fuzz targets hold to the promises of fuzz_test.go. A
// well-formed wrong code is the one refusal that leaves a trace: it counts
// against the account (code.failed, codes.locked) by design.

// newCodesFuzzEnv has alice, with an email address and a phone number, an
// override code and a pending sign-in open to every code method. The rate
// limits are out of the way so the fuzzer reaches the parsers.
func newCodesFuzzEnv(f *testing.F) (*fuzzEnv, api.Challenge) {
	e, _ := newCodesEnv(f, flows.Config{CodeConfig: flows.CodeConfig{
		CodeChecksPerIPPerMinute: 10000, CodeChecksPerAccountPerMinute: 10000, MaxFailedCodes: 100,
		OTPSendsPerHour: 1000, OTPResendCooldown: time.Second,
	}})
	decode[api.User](f, e.admin("POST", api.PathUsers, api.NewUser{Username: "alice", Email: "alice@example.com", Phone: "+15551234567"}), http.StatusCreated)
	decode[api.OverrideCode](f, e.admin("POST", overridePath("alice"), nil), http.StatusCreated)
	ch := e.testSignIn("alice", "sms", "email", "override")
	return &fuzzEnv{env: e}, ch
}

func FuzzOverride(f *testing.F) {
	e, _ := newCodesFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := e.serve(t, adminRequest(overridePath("alice"), body))
		if rec.Code == http.StatusCreated {
			oc := decodeRecorded[api.OverrideCode](t, rec)
			if !grouped.MatchString(oc.Code) {
				t.Fatalf("issued %+v", oc)
			}
		}
	})
}

func FuzzUnlock(f *testing.F) {
	e, _ := newCodesFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.serve(t, adminRequest(unlockPath("alice"), body))
	})
}

func FuzzSendCode(f *testing.F) {
	e, _ := newCodesFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		e.clock.Advance(time.Second) // past the cooldown
		ch, err := e.svc.Begin(t.Context(), flows.BeginRequest{Username: "alice", Client: "fuzz",
			Methods: []flows.Method{flows.MethodSMS, flows.MethodEmail}})
		if err != nil {
			t.Fatal(err)
		}
		rec := e.serve(t, adminRequest(sendCodePath(ch.SignIn.ID), body))
		if rec.Code == http.StatusOK {
			if sent := decodeRecorded[api.SentCode](t, rec); sent.To == "" || (sent.Channel != "sms" && sent.Channel != "email") {
				t.Fatalf("sent %+v", sent)
			}
		}
	})
}

func FuzzSubmitCode(f *testing.F) {
	e, ch := newCodesFuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := e.svc.UnlockCodes(t.Context(), "admin", "alice"); err != nil {
			t.Fatal(err)
		}
		before := auditLen(t, e.svc)
		srv, err := New(Options{Flows: e.svc, AdminToken: testToken, Logger: e.srv.log, Clock: e.clock})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, adminRequest(codePath(ch.ID), body))
		if rec.Code >= 500 {
			t.Fatalf("%d: %s", rec.Code, rec.Body)
		}
		checkSecurityHeaders(t, rec.Header())
		if rec.Code == http.StatusOK {
			t.Fatalf("a fuzzed code approved the sign-in: %s", body)
		}
		p, err := parseProblem(rec.Header(), rec.Body.Bytes())
		if err != nil || p.Status != rec.Code {
			t.Fatalf("%d: %v: %s", rec.Code, err, rec.Body)
		}
		counted := p.Type == api.ProblemWrongCode || p.Type == api.ProblemLocked
		if after := auditLen(t, e.svc); after != before && !counted {
			t.Fatalf("a refused request (%d %s) changed the audit log", rec.Code, p.Type)
		}
	})
}

// decodeRecorded decodes a recorded JSON answer.
func decodeRecorded[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	resp := rec.Result()
	resp.Request = httptest.NewRequest("POST", "/", nil)
	return decode[T](t, resp, rec.Code)
}
