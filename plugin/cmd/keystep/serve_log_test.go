package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLibraryLogsDropSecrets: what a library logs through slog's default
// loses the request values that are secrets.
func TestLibraryLogsDropSecrets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{ReplaceAttr: dropRequestSecrets}))
	log.Warn("auth request redirect", slog.Group("oidc_error", "state", "STATE-SECRET", "type", "login_required"),
		"url", "https://idp.example/cb#code=CODE-SECRET", "client_id", "demo")
	out := buf.String()
	if strings.Contains(out, "SECRET") || !strings.Contains(out, "login_required") || !strings.Contains(out, "client_id=demo") {
		t.Errorf("log line %q", out)
	}
}
