package provider

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/keystep/keystep/flows"
)

// TelemetryOptions configures a Telemetry.
type TelemetryOptions struct {
	// Tracer, when set, makes a span of every request (named by its route
	// pattern) and, inside it, of each Begin, Decide and SubmitCode of the
	// flows; nil: no tracing, and no cost.
	Tracer trace.Tracer
}

// Telemetry is keystep's metrics (served on /metrics) and tracing. It is
// the flows' observer (flows.WithObserver) and the store's timer
// (storetiming.Wrap), so it is made before both, and given to New as
// Options.Telemetry. One Telemetry serves one Server.
type Telemetry struct {
	reg    *prometheus.Registry
	tracer trace.Tracer // nil: no tracing
	used   atomic.Bool  // given to a Server already

	signInsStarted  *prometheus.CounterVec
	signInsFinished *prometheus.CounterVec
	decisionLatency *prometheus.HistogramVec
	rateLimited     *prometheus.CounterVec
	fraudReports    prometheus.Counter
	storeLatency    *prometheus.HistogramVec
	httpRequests    *prometheus.CounterVec
	httpDuration    *prometheus.HistogramVec
}

var _ flows.Observer = (*Telemetry)(nil)

// Buckets of the latency histograms, in seconds.
var (
	decisionBuckets = []float64{1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600}
	storeBuckets    = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	httpBuckets     = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

// NewTelemetry makes the metrics, with the Go runtime's and the process's.
func NewTelemetry(o TelemetryOptions) *Telemetry {
	t := &Telemetry{
		reg:    prometheus.NewRegistry(),
		tracer: o.Tracer,
		signInsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_signins_started_total",
			Help: "Sign-ins begun, by the methods open on them (push+qr, …)."}, []string{"methods"}),
		signInsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_signins_finished_total",
			Help: "Sign-ins that left pending, by the method that decided them (none for an expiry or a cancellation) and outcome."},
			[]string{"method", "outcome"}),
		decisionLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keystep_signin_decision_seconds",
			Help: "Time from Begin to the decision (approved, denied, fraud), by the method that decided.", Buckets: decisionBuckets},
			[]string{"method"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_rate_limited_total",
			Help: "Requests refused (or pushes left out) by a rate limit, by limit."}, []string{"limit"}),
		fraudReports: prometheus.NewCounter(prometheus.CounterOpts{Name: "keystep_fraud_reports_total",
			Help: "Sign-ins a user reported as not started by them."}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keystep_store_operation_seconds",
			Help: "Time each store call took, by operation (InTx: a whole transaction).", Buckets: storeBuckets},
			[]string{"op"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "keystep_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status code."}, []string{"route", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "keystep_http_request_duration_seconds",
			Help: "Time to answer an HTTP request, by route pattern (streams and long-polls count their whole life).", Buckets: httpBuckets},
			[]string{"route"}),
	}
	t.reg.MustRegister(t.signInsStarted, t.signInsFinished, t.decisionLatency, t.rateLimited, t.fraudReports,
		t.storeLatency, t.httpRequests, t.httpDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return t
}

// Registry is where the metrics are registered; other packages may add
// theirs.
func (t *Telemetry) Registry() *prometheus.Registry { return t.reg }

// Tracer is the tracer given to NewTelemetry (nil: none).
func (t *Telemetry) Tracer() trace.Tracer { return t.tracer }

// methodOrder is the order of methods in the methods label.
var methodOrder = []flows.Method{flows.MethodPush, flows.MethodQR, flows.MethodSMS, flows.MethodEmail, flows.MethodOverride}

// methodsLabel writes a set of methods in a fixed order: "push+qr".
func methodsLabel(ms []flows.Method) string {
	var b strings.Builder
	for _, m := range methodOrder {
		for _, x := range ms {
			if x == m {
				if b.Len() > 0 {
					b.WriteByte('+')
				}
				b.WriteString(string(m))
				break
			}
		}
	}
	return b.String()
}

func noEnd(error) {}

// Start starts a span for a flows operation, when tracing is on.
func (t *Telemetry) Start(ctx context.Context, op string) (context.Context, func(error)) {
	if t.tracer == nil {
		return ctx, noEnd
	}
	ctx, span := t.tracer.Start(ctx, op)
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// SignInStarted counts a sign-in begun.
func (t *Telemetry) SignInStarted(methods []flows.Method) {
	t.signInsStarted.WithLabelValues(methodsLabel(methods)).Inc()
}

// SignInFinished counts a sign-in that left pending, and observes the
// decision's latency when a method decided it.
func (t *Telemetry) SignInFinished(method flows.Method, outcome flows.Outcome, latency time.Duration) {
	m := string(method)
	if m == "" {
		m = "none"
	}
	t.signInsFinished.WithLabelValues(m, string(outcome)).Inc()
	if method != "" && latency >= 0 {
		t.decisionLatency.WithLabelValues(m).Observe(latency.Seconds())
	}
}

// RateLimited counts a hit on a rate limit.
func (t *Telemetry) RateLimited(limit string) { t.rateLimited.WithLabelValues(limit).Inc() }

// FraudReported counts a fraud report.
func (t *Telemetry) FraudReported() { t.fraudReports.Inc() }

// ObserveStore observes one store call (storetiming.Observer).
func (t *Telemetry) ObserveStore(op string, d time.Duration) {
	t.storeLatency.WithLabelValues(op).Observe(d.Seconds())
}

// routeLabel is a request's route: its mux pattern without the method, or
// "unmatched".
func routeLabel(pattern string) string {
	if pattern == "" {
		return "unmatched"
	}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		return path
	}
	return pattern
}

// observeRequest counts a request answered and, with tracing, ends its
// span. start is when it came in; pattern the mux pattern that served it.
func (t *Telemetry) observeRequest(r *http.Request, span trace.Span, pattern string, code int, start time.Time) {
	route := routeLabel(pattern)
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	t.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	t.httpDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	if span == nil {
		return
	}
	span.SetName(r.Method + " " + route)
	span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", code))
	if code >= 500 {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
	span.End()
}

// startRequest starts a request's span, when tracing is on; the route is
// not known yet (observeRequest names the span once it is).
func (t *Telemetry) startRequest(r *http.Request, id string) (*http.Request, trace.Span) {
	if t.tracer == nil {
		return r, nil
	}
	ctx, span := t.tracer.Start(r.Context(), r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("keystep.request_id", id)))
	return r.WithContext(ctx), span
}
