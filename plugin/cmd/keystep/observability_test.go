package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func TestConfigObservability(t *testing.T) {
	c, err := loadConfig(writeConfig(t, `log_format: json
tracing:
  otlp_endpoint: https://otel.example.com:4318
  service_name: keystep-eu
  sample_ratio: 0.1
  headers_file: /etc/keystep/otlp-headers
`), envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.LogFormat != "json" || c.Tracing.OTLPEndpoint != "https://otel.example.com:4318" || c.Tracing.ServiceName != "keystep-eu" ||
		c.Tracing.SampleRatio == nil || *c.Tracing.SampleRatio != 0.1 || c.Tracing.HeadersFile != "/etc/keystep/otlp-headers" {
		t.Errorf("config %+v", c)
	}
	if got := tracesURL(c.Tracing.OTLPEndpoint); got != "https://otel.example.com:4318/v1/traces" {
		t.Errorf("traces URL %s", got)
	}
	if got := tracesURL("http://127.0.0.1:4318/custom/traces"); got != "http://127.0.0.1:4318/custom/traces" {
		t.Errorf("traces URL with a path %s", got)
	}
	c, err = loadConfig("", envOf(map[string]string{"KEYSTEP_LOG_FORMAT": "json"}), nil)
	if err != nil || c.LogFormat != "json" {
		t.Errorf("KEYSTEP_LOG_FORMAT: %q, %v", c.LogFormat, err)
	}

	for _, bad := range []struct{ yaml, want string }{
		{"log_format: xml\n", `log_format (`},
		{"tracing:\n  otlp_endpoint: otel.example.com:4318\n", "tracing.otlp_endpoint ("},
		{"tracing:\n  otlp_endpoint: https://u:p@otel.example.com\n", "tracing.otlp_endpoint ("},
		{"tracing:\n  service_name: keystep\n", "tracing.otlp_endpoint (default): is required with the other tracing keys"},
		{"tracing:\n  otlp_endpoint: https://otel.example.com\n  sample_ratio: 1.5\n", "tracing.sample_ratio ("},
		{"tracing:\n  otlp_endpoint: https://otel.example.com\n  sample_ratio: half\n", "tracing.sample_ratio: must be a number"},
		{"readiness:\n  optional_directories: [corp]\n", `readiness.optional_directories (`},
	} {
		_, err := loadConfig(writeConfig(t, bad.yaml), envOf(nil), nil)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.yaml, err, bad.want)
		}
	}
}

func TestHeadersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "headers")
	if err := os.WriteFile(path, []byte("# the collector's key\nAuthorization: Bearer abc\n\nX-Scope: eu\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := readHeadersFile(path)
	if err != nil || len(h) != 2 || h["Authorization"] != "Bearer abc" || h["X-Scope"] != "eu" {
		t.Fatalf("headers %v, %v", h, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readHeadersFile(path); err == nil || !strings.Contains(err.Error(), "open to other users") {
		t.Errorf("world-readable headers file: %v", err)
	}
	if err := os.WriteFile(path, []byte("no colon here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readHeadersFile(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad headers file: %v", err)
	}
}

// otlpReceiver is an OTLP/HTTP traces endpoint: it decodes each export and
// sends it on got.
type otlpReceiver struct {
	got chan received
}

type received struct {
	req    *coltracepb.ExportTraceServiceRequest
	header http.Header
}

func (o otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != "POST" || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "not an OTLP/HTTP protobuf export", http.StatusBadRequest)
		return
	}
	b, err := io.ReadAll(r.Body)
	req := &coltracepb.ExportTraceServiceRequest{}
	if err == nil {
		err = proto.Unmarshal(b, req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o.got <- received{req, r.Header.Clone()}
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// TestServeTracesAndJSONLogs runs keystep serve with JSON logs and tracing
// to an OTLP/HTTP receiver: the log is JSON lines, and the spans of a
// request reach the receiver, with the headers of the headers file, when
// the server stops.
func TestServeTracesAndJSONLogs(t *testing.T) {
	for _, k := range []string{"KEYSTEP_LISTEN", "KEYSTEP_PUBLIC_URL", "KEYSTEP_DATA_DIR", "KEYSTEP_STORE_DRIVER", "KEYSTEP_STORE_DSN", "KEYSTEP_ADMIN_TOKEN", "KEYSTEP_LOG_FORMAT"} {
		t.Setenv(k, "")
	}
	rcv := otlpReceiver{got: make(chan received, 16)}
	collector := httptest.NewServer(rcv)
	defer collector.Close()
	dir := t.TempDir()
	headers := filepath.Join(dir, "otlp-headers")
	if err := os.WriteFile(headers, []byte("Authorization: Bearer collector-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "log_format: json\ntracing:\n  otlp_endpoint: "+collector.URL+"\n  service_name: keystep-test\n  headers_file: "+headers+"\n")
	srv := start("serve", "--config", cfg, "--listen", "127.0.0.1:0", "--data", filepath.Join(dir, "data"))
	m := srv.err.next(t, regexp.MustCompile(`"msg":"keystep listening","address":"(http://127\.0\.0\.1:[0-9]+)"`))

	resp, err := http.Get(m[1] + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var ready struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&ready); err != nil || resp.StatusCode != http.StatusOK || ready.Status != "ready" {
		t.Fatalf("readyz: %d %+v %v", resp.StatusCode, ready, err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("serve exited %d:\n%s", code, srv.err.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(srv.err.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("log line %q is not JSON", line)
		}
	}

	// The spans were exported before serve returned.
	var spans []string
	service := ""
	for len(rcv.got) > 0 {
		r := <-rcv.got
		if r.header.Get("Authorization") != "Bearer collector-key" {
			t.Errorf("export without the headers file's header: %v", r.header)
		}
		for _, rs := range r.req.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					service = a.GetValue().GetStringValue()
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					spans = append(spans, s.GetName())
				}
			}
		}
	}
	if service != "keystep-test" || !strings.Contains(strings.Join(spans, ","), "GET /readyz") {
		t.Errorf("exported spans %v of service %q", spans, service)
	}
}
