package host

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// The plugin's lines become records with their own level, time and
// attributes (groups kept), in the host's handler, whatever way the
// writes split them.
func TestLogWriter(t *testing.T) {
	var out bytes.Buffer
	h := slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug})
	w := newLogWriter(slog.New(h).With("plugin", "keystep").Handler(), slog.LevelWarn, nil)
	input := `{"time":"2026-01-02T03:04:05.123456789Z","level":"WARN","msg":"slow store","ms":12.5,"n":3,"ok":true,"req":{"id":"r1","path":"/x"}}
{"@level":"debug","@message":"hclog line","@module":"plugin","@timestamp":"2026-01-02T03:04:05.000000Z","k":"v"}
{"level":"ERROR+2","msg":"worse"}
not json at all
{"json":"but not a log line"}
panic: boom

goroutine 1 [running]:
`
	// Byte by byte, as the worst pipe would.
	for i := range len(input) {
		w.Write([]byte{input[i]})
	}
	want := []string{
		`{"time":"2026-01-02T03:04:05.123456789Z","level":"WARN","msg":"slow store","plugin":"keystep","ms":12.5,"n":3,"ok":true,"req":{"id":"r1","path":"/x"}}`,
		`{"time":"2026-01-02T03:04:05Z","level":"DEBUG","msg":"hclog line","plugin":"keystep","@module":"plugin","k":"v"}`,
		`"level":"ERROR+2","msg":"worse","plugin":"keystep"}`,
		`"level":"WARN","msg":"not json at all","plugin":"keystep"}`,
		`"level":"WARN","msg":"{\"json\":\"but not a log line\"}","plugin":"keystep"}`,
		`"level":"ERROR","msg":"panic: boom","plugin":"keystep"}`,
		`"level":"ERROR","msg":"goroutine 1 [running]:","plugin":"keystep"}`,
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d records, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, want[i]) && l != want[i] {
			t.Errorf("record %d:\n got %s\nwant …%s", i, l, want[i])
		}
	}
}

// go-plugin's own messages come through the hclog adapter with
// component=go-plugin; its logger for the plugin's stderr is off, since
// logWriter has those lines.
func TestHCLogger(t *testing.T) {
	var out bytes.Buffer
	l := newHCLogger(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}), "keystep")
	l.Debug("starting plugin", "plugin", "/usr/bin/keystep", "pid", 7)
	l.Named("keystep").Info("a stderr line")
	if l.Named("keystep").GetLevel() != hclog.Off || l.Named("stdio").GetLevel() == hclog.Off {
		t.Fatal("the stderr logger is not the only one off")
	}
	l.Named("stdio").With("a", 1).Warn("stdio")
	got := out.String()
	for _, want := range []string{
		`level=DEBUG msg="starting plugin" component=go-plugin command=/usr/bin/keystep pid=7`,
		`level=WARN msg=stdio component=go-plugin logger=stdio a=1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "a stderr line") {
		t.Errorf("the stderr logger logged:\n%s", got)
	}
}
