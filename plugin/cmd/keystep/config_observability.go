package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"gopkg.in/yaml.v3"
)

// TracingConfig turns on OpenTelemetry tracing: spans are exported by
// OTLP over HTTP (protobuf). Without an endpoint tracing is off: no
// exporter, no spans.
type TracingConfig struct {
	// OTLPEndpoint is the collector's traces URL, like
	// https://otel.example.com:4318/v1/traces (a URL with no path gets
	// /v1/traces).
	OTLPEndpoint string
	// ServiceName is the service.name of the spans (default keystep).
	ServiceName string
	// SampleRatio is the share of requests traced, 0 to 1 (default 1).
	SampleRatio *float64
	// HeadersFile holds the headers sent with each export, one
	// "Name: value" a line (an API key), in a file only keystep reads.
	HeadersFile string
}

// ReadinessConfig is what /readyz waits for.
type ReadinessConfig struct {
	// OptionalDirectories are directory sources keystep is ready without
	// (by default it waits for each source's first finished sync).
	OptionalDirectories []string
}

// Log formats.
const (
	logFormatText = "text"
	logFormatJSON = "json"
)

// observabilitySchema is the keys of the log format, tracing and readiness.
func (c *Config) observabilitySchema() schema {
	return schema{
		"log_format": stringValue(&c.LogFormat),
		"tracing": schema{
			"otlp_endpoint": stringValue(&c.Tracing.OTLPEndpoint),
			"service_name":  stringValue(&c.Tracing.ServiceName),
			"sample_ratio":  floatValue(&c.Tracing.SampleRatio),
			"headers_file":  stringValue(&c.Tracing.HeadersFile),
		},
		"readiness": schema{
			"optional_directories": listValue(&c.Readiness.OptionalDirectories),
		},
	}
}

func floatValue(p **float64) setter {
	return func(n *yaml.Node) error {
		v, err := scalar(n)
		if err != nil {
			return err
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || (n.Tag != "!!float" && n.Tag != "!!int") {
			return fmt.Errorf("must be a number, not %q", v)
		}
		*p = &f
		return nil
	}
}

// validateObservability checks the log format, tracing and readiness keys.
func (c *Config) validateObservability() []error {
	var errs []error
	switch c.LogFormat {
	case "", logFormatText, logFormatJSON:
	default:
		errs = append(errs, c.keyError("log_format", "must be text or json, not %q", c.LogFormat))
	}
	t := c.Tracing
	if t.OTLPEndpoint != "" {
		u, err := url.Parse(t.OTLPEndpoint)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, c.keyError("tracing.otlp_endpoint", "must be an http(s) URL like https://otel.example.com:4318/v1/traces, not %q", t.OTLPEndpoint))
		}
	} else if t.ServiceName != "" || t.SampleRatio != nil || t.HeadersFile != "" {
		errs = append(errs, c.keyError("tracing.otlp_endpoint", "is required with the other tracing keys (without it tracing is off)"))
	}
	if r := t.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, c.keyError("tracing.sample_ratio", "must be from 0 to 1, not %v", *r))
	}
	for _, name := range c.Readiness.OptionalDirectories {
		if !slices.ContainsFunc(c.Directory.Sources, func(s DirectorySourceConfig) bool { return s.Name == name }) {
			errs = append(errs, c.keyError("readiness.optional_directories", "%q is not a directory source", name))
		}
	}
	return errs
}

// tracesURL is the endpoint with /v1/traces when it has no path.
func tracesURL(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return endpoint
	}
	u.Path = "/v1/traces"
	return u.String()
}

// startTracing builds the tracer of the configuration (nil when tracing is
// off) and the function that flushes and stops it.
func (c *Config) startTracing(log *slog.Logger) (trace.Tracer, func(context.Context) error, error) {
	t := c.Tracing
	if t.OTLPEndpoint == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	endpoint := tracesURL(t.OTLPEndpoint)
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	if t.HeadersFile != "" {
		h, err := readHeadersFile(t.HeadersFile)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, otlptracehttp.WithHeaders(h))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: %w", err)
	}
	name := t.ServiceName
	if name == "" {
		name = "keystep"
	}
	ratio := 1.0
	if t.SampleRatio != nil {
		ratio = *t.SampleRatio
	}
	res := resource.NewSchemaless(semconv.ServiceName(name), semconv.ServiceVersion(keystepVersion()))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
	log.Info("tracing", "otlp_endpoint", endpoint, "service_name", name, "sample_ratio", ratio)
	return tp.Tracer("github.com/keystep/keystep"), tp.Shutdown, nil
}

// maxHeadersFile bounds the headers file.
const maxHeadersFile = 64 << 10

// readHeadersFile reads "Name: value" lines (blank lines and # comments
// skipped) from a file others may not read.
func readHeadersFile(path string) (map[string]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("tracing.headers_file: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("tracing.headers_file %s is open to other users (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tracing.headers_file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxHeadersFile+1))
	if err != nil {
		return nil, fmt.Errorf("tracing.headers_file: %w", err)
	}
	if len(data) > maxHeadersFile {
		return nil, fmt.Errorf("tracing.headers_file %s: larger than %d bytes", path, maxHeadersFile)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		name, value, ok := strings.Cut(text, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || strings.ContainsAny(name, " \t") || value == "" {
			return nil, fmt.Errorf("tracing.headers_file %s: line %d: want \"Name: value\"", path, line)
		}
		out[name] = value
	}
	return out, nil
}

// flushTraces exports the spans still buffered and stops the exporter,
// giving it shutdownTimeout.
func flushTraces(stop func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn("tracing: the last spans were not exported", "err", err)
	}
}
