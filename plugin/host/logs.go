package host

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// maxLogLine bounds a buffered line of the plugin's output; a longer one
// is logged in pieces.
const maxLogLine = 64 << 10

// logWriter re-emits the lines written to it (the plugin's stderr or
// stdout) as slog records. A JSON object line is a structured log line:
// slog's JSON (time, level, msg) or hclog's (@timestamp, @level,
// @message); its other keys become attributes, objects groups. Any other
// line is logged as it is, at level def (Error from a panic on).
type logWriter struct {
	h     slog.Handler
	def   slog.Level
	attrs []slog.Attr

	mu    sync.Mutex
	buf   []byte
	panic bool // a Go panic or fatal error began: the rest is its trace
}

func newLogWriter(h slog.Handler, def slog.Level, attrs []slog.Attr) *logWriter {
	return &logWriter{h: h, def: def, attrs: attrs}
}

// Write implements io.Writer; it never fails.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.buf = append(w.buf, p...)
			if len(w.buf) >= maxLogLine {
				w.emit(w.buf)
				w.buf = w.buf[:0]
			}
			break
		}
		line := p[:i]
		if len(w.buf) > 0 {
			line = append(w.buf, line...)
		}
		w.emit(line)
		w.buf = w.buf[:0]
		p = p[i+1:]
	}
	return n, nil
}

func (w *logWriter) emit(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	ctx := context.Background()
	if r, ok := parseLogLine(line); ok {
		if w.h.Enabled(ctx, r.Level) {
			r.AddAttrs(w.attrs...)
			_ = w.h.Handle(ctx, r)
		}
		return
	}
	s := string(line)
	if strings.HasPrefix(s, "panic: ") || strings.HasPrefix(s, "fatal error: ") {
		w.panic = true
	}
	level := w.def
	if w.panic {
		level = slog.LevelError
	}
	if w.h.Enabled(ctx, level) {
		r := slog.NewRecord(time.Now(), level, s, 0)
		r.AddAttrs(w.attrs...)
		_ = w.h.Handle(ctx, r)
	}
}

// parseLogLine reads a JSON log line into a record, keeping its
// attributes in order.
func parseLogLine(line []byte) (slog.Record, bool) {
	if len(line) == 0 || line[0] != '{' {
		return slog.Record{}, false
	}
	attrs, err := parseObject(line)
	if err != nil {
		return slog.Record{}, false
	}
	r := slog.Record{Level: slog.LevelInfo}
	var rest []slog.Attr
	found := false
	for _, a := range attrs {
		switch a.Key {
		case "msg", "@message":
			r.Message, found = a.Value.String(), true
		case "level", "@level":
			if l, ok := parseLevel(a.Value.String()); ok {
				r.Level = l
			}
			found = true
		case "time", "@timestamp":
			if t, ok := parseTime(a.Value.String()); ok {
				r.Time = t
				continue
			}
			rest = append(rest, a)
		default:
			rest = append(rest, a)
		}
	}
	if !found {
		return slog.Record{}, false // JSON, but not a log line: logged as text
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, 0)
	out.AddAttrs(rest...)
	return out, true
}

// parseLevel reads slog's levels (INFO, WARN+2 …) and hclog's (trace,
// debug, info, warn, error).
func parseLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "trace":
		return slog.LevelDebug - 4, true
	case "warning":
		return slog.LevelWarn, true
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, false
	}
	return l, true
}

func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000000Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// parseObject reads a JSON object as attributes in its keys' order;
// nested objects become groups.
func parseObject(b []byte) ([]slog.Attr, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	attrs, err := decodeObject(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the object")
	}
	return attrs, nil
}

// decodeObject reads an object whose '{' is next.
func decodeObject(dec *json.Decoder) ([]slog.Attr, error) {
	if t, err := dec.Token(); err != nil {
		return nil, err
	} else if d, ok := t.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not an object")
	}
	var attrs []slog.Attr
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		v, err := attrValue(raw)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, slog.Attr{Key: key, Value: v})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	return attrs, nil
}

func attrValue(raw json.RawMessage) (slog.Value, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		group, err := decodeObject(d)
		if err != nil {
			return slog.Value{}, err
		}
		return slog.GroupValue(group...), nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return slog.Value{}, err
	}
	switch v := v.(type) {
	case string:
		return slog.StringValue(v), nil
	case bool:
		return slog.BoolValue(v), nil
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return slog.Int64Value(i), nil
		}
		if f, err := v.Float64(); err == nil {
			return slog.Float64Value(f), nil
		}
		return slog.StringValue(v.String()), nil
	default:
		return slog.AnyValue(v), nil // null, arrays
	}
}

// hcLogger is the hclog.Logger that go-plugin logs its own messages to
// (starting, exiting, negotiating), re-emitted to slog with
// component=go-plugin. The plugin's stderr lines reach slog through
// logWriter instead, so the logger go-plugin names after the binary for
// them is off.
type hcLogger struct {
	h       slog.Handler
	name    string
	stderr  string // the binary's base name
	implied []any
	off     bool
}

func newHCLogger(h slog.Handler, binary string) hclog.Logger {
	return &hcLogger{h: h.WithAttrs([]slog.Attr{slog.String("component", "go-plugin")}), stderr: binary}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Trace:
		return slog.LevelDebug - 4
	case hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Log re-emits one of go-plugin's messages.
func (l *hcLogger) Log(level hclog.Level, msg string, args ...any) {
	if l.off {
		return
	}
	lv := slogLevel(level)
	ctx := context.Background()
	if !l.h.Enabled(ctx, lv) {
		return
	}
	r := slog.NewRecord(time.Now(), lv, msg, 0)
	if l.name != "" {
		r.AddAttrs(slog.String("logger", l.name))
	}
	r.Add(l.implied...)
	r.Add(renamePlugin(args)...)
	_ = l.h.Handle(ctx, r)
}

// renamePlugin renames go-plugin's "plugin" argument (the binary's path)
// to "command", so that plugin=keystep stays the only one.
func renamePlugin(args []any) []any {
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && k == "plugin" {
			args = append([]any(nil), args...)
			args[i] = "command"
		}
	}
	return args
}

// Trace logs at slog's debug-4.
func (l *hcLogger) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }

// Debug logs at debug.
func (l *hcLogger) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }

// Info logs at info.
func (l *hcLogger) Info(msg string, args ...any) { l.Log(hclog.Info, msg, args...) }

// Warn logs at warn.
func (l *hcLogger) Warn(msg string, args ...any) { l.Log(hclog.Warn, msg, args...) }

// Error logs at error.
func (l *hcLogger) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *hcLogger) enabled(level hclog.Level) bool {
	return !l.off && l.h.Enabled(context.Background(), slogLevel(level))
}

// IsTrace reports whether trace is logged.
func (l *hcLogger) IsTrace() bool { return l.enabled(hclog.Trace) }

// IsDebug reports whether debug is logged.
func (l *hcLogger) IsDebug() bool { return l.enabled(hclog.Debug) }

// IsInfo reports whether info is logged.
func (l *hcLogger) IsInfo() bool { return l.enabled(hclog.Info) }

// IsWarn reports whether warn is logged.
func (l *hcLogger) IsWarn() bool { return l.enabled(hclog.Warn) }

// IsError reports whether error is logged.
func (l *hcLogger) IsError() bool { return l.enabled(hclog.Error) }

// ImpliedArgs returns the arguments of With.
func (l *hcLogger) ImpliedArgs() []any { return l.implied }

// With returns a logger that adds args to each message.
func (l *hcLogger) With(args ...any) hclog.Logger {
	n := *l
	n.implied = append(append([]any(nil), l.implied...), args...)
	return &n
}

// Name returns the logger's name.
func (l *hcLogger) Name() string { return l.name }

// Named returns a sub-logger; the one named after the binary (for its
// stderr) is off.
func (l *hcLogger) Named(name string) hclog.Logger {
	n := *l
	if l.name != "" {
		name = l.name + "." + name
	}
	n.name = name
	n.off = l.off || name == l.stderr
	return &n
}

// ResetNamed returns a logger with the name given.
func (l *hcLogger) ResetNamed(name string) hclog.Logger {
	n := *l
	n.name = name
	n.off = name == l.stderr
	return &n
}

// SetLevel is ignored: the slog handler decides.
func (l *hcLogger) SetLevel(hclog.Level) {}

// GetLevel is Off for the stderr logger, else Trace (the handler filters).
func (l *hcLogger) GetLevel() hclog.Level {
	if l.off {
		return hclog.Off
	}
	return hclog.Trace
}

// StandardLogger returns a log.Logger that writes to the handler.
func (l *hcLogger) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(l.StandardWriter(opts), "", 0)
}

// StandardWriter returns a writer of lines to the handler.
func (l *hcLogger) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return newLogWriter(l.h, slog.LevelInfo, nil)
}
