package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/grpclog"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/plugin/pluginapi"
	pb "github.com/keystep/keystep/plugin/proto/keystep/v1"
	"github.com/keystep/keystep/plugin/server"
	"github.com/keystep/keystep/plugin/step"
)

// The plugin mode: a host identity provider launches the binary with
// hashicorp/go-plugin (the magic cookie KEYSTEP_PLUGIN=passwordless-step
// in its environment), and the binary serves the v1 plugin contract over
// gRPC, whatever its arguments.
//
// Its configuration is the text of a keystep YAML configuration file in
// KEYSTEP_PLUGIN_CONFIG (empty: the defaults, as keystep serve without
// --config); the KEYSTEP_* overrides of keystep serve are not read, since
// the plugin inherits the host's whole environment. It runs the server
// keystep serve runs (device API, admin API, OpenID Provider, SAML IdP
// and step page) on its own listener, the configured listen address, and
// logs to stderr as JSON lines, one object per line. Nothing is written
// to stdout before go-plugin's handshake line. When the host closes the
// plugin, the server shuts down gracefully and the process exits; SIGTERM
// does the same. Interrupts are ignored (go-plugin's rule: the host
// decides).

// pluginActor names the plugin's host in the audit log.
const pluginActor = "plugin-host"

// version is keystep's version, set when building with
// -ldflags "-X main.version=v1.2.3"; empty: the main module's version in
// the build information ("(devel)" for a build in the source tree).
var version string

// keystepVersion is the version Health reports.
func keystepVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// pluginMode reports whether the host launched the binary as its plugin.
func pluginMode() bool {
	return os.Getenv(pluginapi.MagicCookieKey) == pluginapi.MagicCookieValue
}

// servePlugin serves the plugin until the host closes it and returns the
// exit code. It logs to stderr as JSON lines.
func servePlugin(stderr io.Writer) int {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	// gRPC's own log is text on stderr: it goes to this log instead.
	grpclog.SetLoggerV2(grpcLogger{log.With("logger", "grpc")})
	var cfg Config
	text, err := pluginConfigText()
	if err == nil {
		cfg, err = pluginConfig(text)
	}
	if err != nil {
		log.Error("keystep plugin: configuration", "err", err)
		return exitFailure
	}
	senders, pusher, err := cfg.buildSenders()
	if err != nil {
		log.Error("keystep plugin: configuration", "err", err)
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	err = serveWith(ctx, cfg, stderr, senders, pusher, serveMode{jsonLogs: true, run: runPlugin})
	if err != nil {
		log.Error("keystep plugin", "err", err)
		return exitFailure
	}
	return exitOK
}

// runPlugin serves the plugin contract over svc until the host closes it.
func runPlugin(svc *flows.Service, publicURL string, log *slog.Logger) {
	local := &step.Local{Flows: svc, Actor: pluginActor}
	log.Info("serving the keystep plugin", "protocol_version", pluginapi.ProtocolV1, "device_api_url", publicURL,
		"version", keystepVersion())
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  pluginapi.Handshake,
		VersionedPlugins: pluginapi.Versions(server.New(local, local, pluginHealth(svc, publicURL, log))),
		GRPCServer:       goplugin.DefaultGRPCServer,
		Logger:           pluginLogger(log.With("logger", "go-plugin")),
	})
	log.Info("the host closed the plugin")
}

// pluginConfigText reads the configuration the host passed: from the file
// descriptor ConfigFDEnv names (the SDK's way: no environment holds it),
// else from ConfigEnv, which is then dropped from this process's
// environment so that nothing it starts inherits it.
func pluginConfigText() (string, error) {
	defer os.Unsetenv(pluginapi.ConfigEnv)
	fd := os.Getenv(pluginapi.ConfigFDEnv)
	if fd == "" {
		return os.Getenv(pluginapi.ConfigEnv), nil
	}
	if fd != "3" {
		return "", fmt.Errorf("%s=%q: the configuration is read from file descriptor 3 only", pluginapi.ConfigFDEnv, fd)
	}
	f := os.NewFile(3, "keystep-config")
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return "", fmt.Errorf("read the configuration from file descriptor 3: %w", err)
	}
	if len(data) > maxConfigFile {
		return "", fmt.Errorf("the configuration is larger than %d bytes", maxConfigFile)
	}
	return string(data), nil
}

// pluginConfig parses the configuration text the host passed, in memory
// (no file holds it). It counts as a configuration file even when empty:
// the demo client stays off. Environment overrides are not read, since
// the plugin inherits the host's whole environment.
func pluginConfig(text string) (Config, error) {
	noEnv := func(string) (string, bool) { return "", false }
	return loadConfigData([]byte(text), pluginapi.ConfigEnv, noEnv, nil)
}

// pluginHealth reports serving while the store answers a cheap query (as
// /healthz does), with the version and the URL phones reach the device
// API at.
func pluginHealth(svc *flows.Service, publicURL string, log *slog.Logger) func(context.Context) (*pb.HealthStatus, error) {
	return func(ctx context.Context) (*pb.HealthStatus, error) {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := svc.Audit(ctx, flows.AuditFilter{Limit: 1})
		if err != nil {
			log.Error("health check failed", "err", err)
		}
		return &pb.HealthStatus{Serving: err == nil, Version: keystepVersion(), DeviceApiUrl: publicURL}, nil
	}
}

// pluginLogger is an hclog logger (go-plugin's) that writes to log.
func pluginLogger(log *slog.Logger) hclog.Logger {
	l := hclog.NewInterceptLogger(&hclog.LoggerOptions{Output: io.Discard, Level: hclog.Off})
	l.RegisterSink(hclogSink{log})
	return l
}

// hclogSink writes hclog's records to slog; trace and debug are slog's
// debug.
type hclogSink struct{ log *slog.Logger }

// Accept logs one of hclog's records.
func (s hclogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	l := slog.LevelDebug
	switch {
	case level >= hclog.Error:
		l = slog.LevelError
	case level == hclog.Warn:
		l = slog.LevelWarn
	case level == hclog.Info:
		l = slog.LevelInfo
	}
	if name != "" {
		args = append(args, "name", name)
	}
	s.log.Log(context.Background(), l, msg, args...)
}

// grpcLogger is gRPC's logger writing to slog; gRPC's info is slog's
// debug.
type grpcLogger struct{ log *slog.Logger }

// Info logs at slog's debug level.
func (g grpcLogger) Info(args ...any) { g.log.Debug(fmt.Sprint(args...)) }

// Infoln logs at slog's debug level.
func (g grpcLogger) Infoln(args ...any) { g.log.Debug(sprintln(args...)) }

// Infof logs at slog's debug level.
func (g grpcLogger) Infof(format string, args ...any) { g.log.Debug(fmt.Sprintf(format, args...)) }

// Warning logs a warning.
func (g grpcLogger) Warning(args ...any) { g.warn(fmt.Sprint(args...)) }

// Warningln logs a warning.
func (g grpcLogger) Warningln(args ...any) { g.warn(sprintln(args...)) }

// Warningf logs a warning.
func (g grpcLogger) Warningf(format string, args ...any) { g.warn(fmt.Sprintf(format, args...)) }

// warn logs a warning, but only at debug level the ones gRPC writes when
// the host closes the plugin while a call is answered (the connection
// goes first): that is how every plugin ends, not a problem.
func (g grpcLogger) warn(msg string) {
	if strings.Contains(msg, "transport is closing") {
		g.log.Debug(msg)
		return
	}
	g.log.Warn(msg)
}

// Error logs an error.
func (g grpcLogger) Error(args ...any) { g.log.Error(fmt.Sprint(args...)) }

// Errorln logs an error.
func (g grpcLogger) Errorln(args ...any) { g.log.Error(sprintln(args...)) }

// Errorf logs an error.
func (g grpcLogger) Errorf(format string, args ...any) { g.log.Error(fmt.Sprintf(format, args...)) }

// Fatal logs an error and exits.
func (g grpcLogger) Fatal(args ...any) { g.fatal(fmt.Sprint(args...)) }

// Fatalln logs an error and exits.
func (g grpcLogger) Fatalln(args ...any) { g.fatal(sprintln(args...)) }

// Fatalf logs an error and exits.
func (g grpcLogger) Fatalf(format string, args ...any) { g.fatal(fmt.Sprintf(format, args...)) }

func (g grpcLogger) fatal(msg string) {
	g.log.Error(msg)
	os.Exit(exitFailure)
}

// V reports whether verbosity level l is logged: only 0.
func (g grpcLogger) V(l int) bool { return l <= 0 }

// sprintln is fmt.Sprintln without the newline.
func sprintln(args ...any) string { return strings.TrimSuffix(fmt.Sprintln(args...), "\n") }
