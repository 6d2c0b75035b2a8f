package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/storetiming"
)

// newTelEnv is newEnv wired the way keystep serve wires it: flows observed
// by tel, over a store timed by tel, logging JSON through LogHandler, with
// email and SMS senders.
func newTelEnv(t *testing.T, tel *Telemetry) (*env, *outbox) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "keystep.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC))
	logs := &bytes.Buffer{}
	lw := &lockedWriter{w: logs}
	log := slog.New(LogHandler(slog.NewJSONHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug})))
	o := &outbox{}
	svc, err := flows.New(storetiming.Wrap(st, tel), flows.Config{Origin: testOrigin, CodeConfig: flows.CodeConfig{CodeKey: testCodeKey, FraudPushBlock: time.Hour}},
		flows.WithClock(clock), flows.WithLogger(log), flows.WithObserver(tel), flows.WithEmailSender(o), flows.WithSMSSender(o))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Flows: svc, AdminToken: testToken, Logger: log, Clock: clock, Telemetry: tel})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, clock: clock, store: st, svc: svc, srv: srv, logs: logs, logMu: &lw.mu}
	e.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(e.ts.Close)
	return e, o
}

// scrape reads /metrics and parses it.
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	resp := e.admin("GET", PathMetrics, nil)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		e.t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// metricValue is the value of the counter (or a histogram's count) of
// family name with exactly the labels given; -1 if there is none.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if labels[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestMetricsCountSignIns drives real sign-ins through the API and reads
// the counters they moved on /metrics.
func TestMetricsCountSignIns(t *testing.T) {
	e, _ := newTelEnv(t, NewTelemetry(TelemetryOptions{}))
	e.addUser("alice")
	p := e.enroll("alice")

	// Approved by push, 3 s after Begin; denied; reported.
	ch := e.testSignIn("alice")
	e.clock.Advance(3 * time.Second)
	decode[api.SignIn](t, e.decide(p, ch, flows.DecisionApprove, ch.Number), http.StatusOK)
	ch = e.testSignIn("alice")
	decode[api.SignIn](t, e.decide(p, ch, flows.DecisionDeny, ""), http.StatusOK)
	ch = e.testSignIn("alice")
	decode[api.SignIn](t, e.decide(p, ch, flows.DecisionReport, ""), http.StatusOK)
	// After the report pushes are blocked: QR takes push's place.
	ch = e.testSignIn("alice")
	if ch.Number != "" {
		t.Fatalf("push after a fraud report: %+v", ch)
	}
	// That one expires.
	e.clock.Advance(e.svc.Config().SignInTTL)
	if s := e.signIn(ch.ID); s.Status != "expired" {
		t.Fatalf("sign-in %+v", s)
	}
	// An override code approves one.
	oc := decode[api.OverrideCode](t, e.admin("POST", overridePath("alice"), api.OverrideRequest{}), http.StatusCreated)
	ch = e.testSignIn("alice", "override")
	decode[api.SignIn](t, e.admin("POST", codePath(ch.ID), api.SubmitCodeRequest{Code: oc.Code}), http.StatusOK)
	// An email code asked for twice: the cooldown refuses the second.
	ch = e.testSignIn("alice", "email")
	decode[api.SentCode](t, e.admin("POST", sendCodePath(ch.ID), api.SendCodeRequest{Channel: "email"}), http.StatusOK)
	wantProblem(t, e.admin("POST", sendCodePath(ch.ID), api.SendCodeRequest{Channel: "email"}), http.StatusTooManyRequests, api.ProblemRateLimited)
	// The phone is lost: the pending email sign-in is cancelled with it.
	decode[api.UnregisterAllResult](t, e.admin("POST", userPath(api.PathDevicesUnregAll, "alice"), api.Unregister{Reason: "lost"}), http.StatusOK)
	// Suspending the account cancels its pending override sign-in.
	e.testSignIn("alice", "override")
	decode[api.User](t, e.admin("POST", userPath(api.PathUserSuspend, "alice"), api.StateChange{Reason: "left"}), http.StatusOK)
	// Bad admin tokens past the burst.
	for range adminAuthBurst + 1 {
		e.adminAs("wrong-token-wrong-token-wrong", "GET", api.PathUsers, nil).Body.Close()
	}

	fams := e.scrape()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"keystep_signins_started_total", map[string]string{"methods": "push+qr"}, 3},
		{"keystep_signins_started_total", map[string]string{"methods": "qr"}, 1},
		{"keystep_signins_started_total", map[string]string{"methods": "override"}, 2},
		{"keystep_signins_started_total", map[string]string{"methods": "email"}, 1},
		{"keystep_signins_finished_total", map[string]string{"method": "push", "outcome": "approved"}, 1},
		{"keystep_signins_finished_total", map[string]string{"method": "push", "outcome": "denied"}, 1},
		{"keystep_signins_finished_total", map[string]string{"method": "push", "outcome": "fraud"}, 1},
		{"keystep_signins_finished_total", map[string]string{"method": "none", "outcome": "expired"}, 1},
		{"keystep_signins_finished_total", map[string]string{"method": "override", "outcome": "approved"}, 1},
		{"keystep_signins_finished_total", map[string]string{"method": "none", "outcome": "cancelled"}, 2},
		{"keystep_signin_decision_seconds", map[string]string{"method": "push"}, 3},
		{"keystep_signin_decision_seconds", map[string]string{"method": "override"}, 1},
		{"keystep_fraud_reports_total", map[string]string{}, 1},
		{"keystep_rate_limited_total", map[string]string{"limit": flows.LimitPushFraud}, 1},
		{"keystep_rate_limited_total", map[string]string{"limit": flows.LimitOTPCooldown}, 1},
		{"keystep_rate_limited_total", map[string]string{"limit": "admin-auth"}, 1},
		{"keystep_http_requests_total", map[string]string{"route": api.PathTestSignIn, "code": "201"}, 7},
		{"keystep_http_requests_total", map[string]string{"route": api.PathSendCode, "code": "429"}, 1},
	} {
		if got := metricValue(fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The push approval took 3 s: in the 5 s bucket, not the 2 s one.
	for _, m := range fams["keystep_signin_decision_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() != "push" {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			if b.GetUpperBound() == 2 && b.GetCumulativeCount() != 2 || b.GetUpperBound() == 5 && b.GetCumulativeCount() != 3 {
				t.Errorf("push decision bucket le=%v has %d", b.GetUpperBound(), b.GetCumulativeCount())
			}
		}
	}
	// Every store call is timed, transactions whole.
	for _, op := range []string{"InTx", "CreateSignIn", "GetSignIn", "DecideSignIn", "HitRateLimit"} {
		if got := metricValue(fams, "keystep_store_operation_seconds", map[string]string{"op": op}); got < 1 {
			t.Errorf("store op %s observed %v times", op, got)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

// TestLogsCarryRequestID: a line flows logs while serving a request (a
// fraud report) carries the request id the response's X-Request-Id gave.
func TestLogsCarryRequestID(t *testing.T) {
	e, _ := newTelEnv(t, NewTelemetry(TelemetryOptions{}))
	e.addUser("alice")
	p := e.enroll("alice")
	ch := e.testSignIn("alice")
	resp := e.decide(p, ch, flows.DecisionReport, "")
	decode[api.SignIn](t, resp, http.StatusOK)
	id := resp.Header.Get(HeaderRequestID)
	if id == "" {
		t.Fatal("no X-Request-Id")
	}
	found := false
	sc := bufio.NewScanner(strings.NewReader(e.logText()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line["msg"] == "user reported a sign-in they did not start" {
			found = true
			if line["request_id"] != id {
				t.Errorf("fraud log line %v: request_id is not %s", line, id)
			}
		}
	}
	if !found {
		t.Fatalf("no fraud log line:\n%s", e.logText())
	}
}

// TestTracing: with a tracer, a request's span is named by its route
// pattern and holds the flows' span; without one there are no spans.
func TestTracing(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e, _ := newTelEnv(t, NewTelemetry(TelemetryOptions{Tracer: tp.Tracer("test")}))
	e.addUser("alice")
	p := e.enroll("alice")
	exp.Reset()
	ch := e.testSignIn("alice")
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans, want 2: %v", len(spans), spans)
	}
	begin, req := spans[0], spans[1] // the child ends first
	if req.Name != "POST "+api.PathTestSignIn || begin.Name != "flows.Begin" {
		t.Fatalf("spans %q, %q", req.Name, begin.Name)
	}
	if begin.Parent.SpanID() != req.SpanContext.SpanID() || begin.SpanContext.TraceID() != req.SpanContext.TraceID() {
		t.Error("flows.Begin is not a child of the request's span")
	}
	attrs := map[string]string{}
	for _, a := range req.Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if attrs["http.route"] != api.PathTestSignIn || attrs["http.response.status_code"] != "201" || attrs["http.request.method"] != "POST" {
		t.Errorf("request span attributes %v", attrs)
	}
	// A failed Decide marks its span.
	exp.Reset()
	resp := e.device(p, "POST", decisionPath(ch.ID), e.decision(p, ch.ID, "wrong-nonce", flows.DecisionApprove, flows.MethodPush, ch.Number))
	resp.Body.Close()
	var decide *tracetest.SpanStub
	for i, s := range exp.GetSpans() {
		if s.Name == "flows.Decide" {
			decide = &exp.GetSpans()[i]
		}
	}
	if decide == nil || decide.Status.Code.String() != "Error" {
		t.Errorf("failed decision's span %+v", decide)
	}
}

// TestTelemetryServesOneServer: its metrics would be registered twice.
func TestTelemetryServesOneServer(t *testing.T) {
	e, _ := newTelEnv(t, NewTelemetry(TelemetryOptions{}))
	if _, err := New(Options{Flows: e.svc, AdminToken: testToken, Telemetry: e.srv.tel}); err == nil {
		t.Fatal("one Telemetry served two servers")
	}
}

// BenchmarkStoreTiming is what timing a store call into the Prometheus
// histogram costs: one GetAccount on SQLite, raw and through
// storetiming.Wrap with a Telemetry.
func BenchmarkStoreTiming(b *testing.B) {
	ctx := context.Background()
	raw, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "keystep.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	now := time.Now().UTC()
	a := flows.Account{ID: flows.NewID(), Username: "alice", State: flows.AccountActive, CreatedAt: now, UpdatedAt: now}
	if err := raw.CreateAccount(ctx, a); err != nil {
		b.Fatal(err)
	}
	tel := NewTelemetry(TelemetryOptions{})
	for _, c := range []struct {
		name string
		st   flows.Store
	}{{"raw", raw}, {"timed", storetiming.Wrap(raw, tel)}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.st.GetAccount(ctx, a.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("observe-only", func(b *testing.B) {
		for b.Loop() {
			tel.ObserveStore("GetAccount", time.Microsecond)
		}
	})
}
