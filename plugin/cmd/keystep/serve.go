package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/postgres"
	"github.com/keystep/keystep/flows/store/postgres/pgevents"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/console"
	"github.com/keystep/keystep/provider/storetiming"
)

// Server timeouts. There is no WriteTimeout: the request stream and the
// admin long-polls stay open for long.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	shutdownTimeout   = 15 * time.Second
	purgeInterval     = time.Hour
	adminTokenFile    = "admin-token"
	sqliteFile        = "keystep.db"
)

func newServeCmd() *cobra.Command {
	var configPath string
	cmd := &cobra.Command{
		Use:   "serve [--config FILE] [--listen ADDR] [--data DIR] [--public-url URL]",
		Short: "Run the keystep server",
		Long: `Run the keystep server: the device API for the app, the admin API, and the
OpenID Provider with its step page (issuer: the public URL; discovery at
/.well-known/openid-configuration).

With no configuration it keeps a SQLite database in ./keystep-data and listens
on 127.0.0.1:8080. Settings come from the YAML file (--config), then the
environment (KEYSTEP_LISTEN, KEYSTEP_PUBLIC_URL, KEYSTEP_DATA_DIR,
KEYSTEP_STORE_DRIVER, KEYSTEP_STORE_DSN, KEYSTEP_CODES_KEY_FILE,
KEYSTEP_CODES_METHODS, KEYSTEP_ALERTS_WEBHOOK_URL,
KEYSTEP_ALERTS_WEBHOOK_SECRET_FILE, KEYSTEP_ALERTS_EMAIL_TO), then the flags.

On first start it writes a random admin token to <data dir>/admin-token
(mode 0600); keystep admin reads it from there. It also writes a random code
key to <data dir>/code-key (mode 0600), which keys the hashes of override and
SMS/email codes; instances that share a PostgreSQL store must share one key
file (codes.key_file). Without a configuration file it also registers the
demo client (id demo, secret in <data dir>/demo-client-secret) for
keystep demo-app.`,
		Args: nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var flags []flagOverride
			for _, f := range []struct{ flag, key string }{{"listen", "listen"}, {"data", "data_dir"}, {"public-url", "public_url"}} {
				if cmd.Flags().Changed(f.flag) {
					v, _ := cmd.Flags().GetString(f.flag)
					flags = append(flags, flagOverride{key: f.key, flag: f.flag, value: v})
				}
			}
			cfg, err := loadConfig(configPath, os.LookupEnv, flags)
			if err != nil {
				return err
			}
			cfg.InsecureDev, _ = cmd.Flags().GetBool("insecure-dev")
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			senders, pusher, err := cfg.buildSenders()
			if err != nil {
				return err
			}
			return serve(ctx, cfg, cmd.ErrOrStderr(), senders, pusher)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configPath, "config", "", "YAML configuration `file`")
	f.String("listen", defaultListen, "`address` to listen on (port 0: any free port)")
	f.String("data", defaultDataDir, "data `directory` (SQLite database, admin token)")
	f.String("public-url", "", "the server's public `URL`, which devices sign (default http://<listen address>)")
	f.Bool("insecure-dev", false, "development only: allow an http:// public URL on a non-loopback host, and cookies without Secure")
	return cmd
}

// serve runs the server until ctx ends, then shuts it down gracefully. The
// senders deliver SMS and email codes (and email alerts); a nil one leaves
// its channel off.
func serve(ctx context.Context, cfg Config, stderr io.Writer, senders Senders, pusher flows.PushSender) error {
	return serveWith(ctx, cfg, stderr, senders, pusher, serveMode{})
}

// serveMode is how the plugin (plugin.go) changes serve.
type serveMode struct {
	// jsonLogs writes the log as JSON lines, one object per line, instead
	// of text.
	jsonLogs bool
	// run, if set, runs once the server is listening, with its flows
	// service and public URL; the server shuts down when run returns (or
	// when ctx ends).
	run func(svc *flows.Service, publicURL string, log *slog.Logger)
}

// serveWith is serve, changed by mode.
func serveWith(ctx context.Context, cfg Config, stderr io.Writer, senders Senders, pusher flows.PushSender, mode serveMode) error {
	jsonLogs := mode.jsonLogs || cfg.LogFormat == logFormatJSON
	handler := func(o *slog.HandlerOptions) slog.Handler {
		if jsonLogs {
			return provider.LogHandler(slog.NewJSONHandler(stderr, o))
		}
		return provider.LogHandler(slog.NewTextHandler(stderr, o))
	}
	log := slog.New(handler(nil))
	// Libraries that log through slog's default (zitadel/oidc) log here
	// too, without the request values they would print (state, URLs that
	// carry codes, hints).
	slog.SetDefault(slog.New(handler(&slog.HandlerOptions{ReplaceAttr: dropRequestSecrets})))

	// Observability: tracing (off without tracing.otlp_endpoint), and the
	// metrics that the flows, the store and the server report to.
	tracer, stopTracing, err := cfg.startTracing(log)
	if err != nil {
		return err
	}
	defer flushTraces(stopTracing, log)
	tel := provider.NewTelemetry(provider.TelemetryOptions{Tracer: tracer})

	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := ensurePrivateDir(dataDir, log); err != nil {
		return err
	}
	tokenPath := filepath.Join(dataDir, adminTokenFile)
	token, created, err := loadOrCreateToken(tokenPath)
	if err != nil {
		return err
	}

	dirConfigs, err := cfg.directorySources(os.LookupEnv)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = defaultPublicURL(ln.Addr(), log)
	}

	store, where, err := openStore(ctx, cfg, dataDir)
	if err != nil {
		return err
	}
	defer store.Close()
	codeKey, keyPath, keyCreated, err := cfg.codeKey(dataDir)
	if err != nil {
		return err
	}
	fc := cfg.flowsConfig(publicURL)
	fc.CodeKey = codeKey
	opts, err := cfg.codeOptions(senders)
	if err != nil {
		return err
	}
	if pusher != nil {
		opts = append(opts, flows.WithPushSender(pusher))
	}
	// The live check goes to flows before the sources exist: they need
	// the service.
	var checker *directory.LiveChecker
	if len(dirConfigs) > 0 {
		checker = directory.NewLiveChecker()
		defer checker.Close()
		opts = append(opts, flows.WithAccountChecker(checker))
	}
	if cfg.Store.Driver == "postgres" { // several instances wake each other (docs/scaling.md)
		ev, err := pgevents.Open(ctx, cfg.Store.DSN, pgevents.WithLogger(log))
		if err != nil {
			return fmt.Errorf("open postgres events: %w", err)
		}
		defer ev.Close()
		opts = append(opts, flows.WithEvents(ev))
	}
	opts = append(opts, flows.WithObserver(tel))
	svc, err := flows.New(storetiming.Wrap(store, tel), fc, append(opts, flows.WithLogger(log))...)
	if err != nil {
		return err
	}
	defer svc.Close() // after the server: lets in-flight pushes finish
	dirSources, err := newDirectorySources(dirConfigs, svc, checker, log)
	if err != nil {
		return err
	}
	admins, err := cfg.adminTokens(token)
	if err != nil {
		return err
	}
	p, err := provider.New(provider.Options{Flows: svc, AdminTokens: admins, TrustedProxies: cfg.TrustedProxies, Logger: log, Clock: flows.SystemClock{},
		Directory: dirSources,
		Telemetry: tel, OptionalDirectories: cfg.Readiness.OptionalDirectories})
	if err != nil {
		return err
	}
	if err := mountFederation(ctx, cfg, p, svc, codeKey, publicURL, dataDir, log); err != nil {
		return err
	}
	if _, err := console.Mount(console.Options{Server: p, Flows: svc, Secure: strings.HasPrefix(publicURL, "https:") || !cfg.InsecureDev, Logger: log}); err != nil {
		return err
	}

	baseCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := &http.Server{
		Handler:           p.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
	}
	// Shutdown waits for requests to end; the request streams and long-polls
	// end when their context does.
	srv.RegisterOnShutdown(cancelRequests)

	log.Info("data directory", "path", dataDir)
	log.Info("store", "driver", cfg.Store.Driver, "database", where)
	if created {
		log.Info("wrote a new admin token; keystep admin reads it from this file", "token_file", tokenPath)
	} else {
		log.Info("admin token", "token_file", tokenPath)
	}
	for _, a := range cfg.Admins {
		log.Info("named admin", "admin", a.Name, "token_file", a.TokenFile)
	}
	if len(cfg.TrustedProxies) > 0 {
		log.Info("trusted proxies: X-Forwarded-For from these names the client", "trusted_proxies", fmt.Sprint(cfg.TrustedProxies))
	}
	if keyCreated {
		log.Info("wrote a new code key; instances that share the store need this same file", "key_file", keyPath)
	} else {
		log.Info("code key", "key_file", keyPath)
	}
	if cfg.Store.Driver == "postgres" && cfg.Codes.KeyFile == "" {
		log.Warn("several instances on one database must share one code key: set codes.key_file to the same file on each", "key_file", keyPath)
	}
	log.Info("codes", "methods", cfgFlowsMethods(svc), "sms", senders.SMS != nil, "email", senders.Email != nil,
		"alerts_webhook", cfg.Alerts.WebhookURL != "", "alerts_email", len(cfg.Alerts.EmailTo))
	logDirectorySources(dirSources, log)
	cfgFlows := svc.Config()
	log.Info("public URL (devices sign it; it must be the URL they use)", "public_url", publicURL,
		"number_digits", cfgFlows.NumberDigits, "signin_ttl", cfgFlows.SignInTTL, "invitation_ttl", formatDuration(cfgFlows.InvitationTTL))
	if jsonLogs {
		log.Info("keystep listening", "address", "http://"+ln.Addr().String())
	} else {
		fmt.Fprintf(stderr, "keystep listening on http://%s\n", ln.Addr())
	}

	purgeCtx, stopPurge := context.WithCancel(ctx)
	purged := make(chan struct{})
	go func() {
		defer close(purged)
		purgeLoop(purgeCtx, svc, log)
	}()
	defer func() { stopPurge(); <-purged }()
	// The directory syncs stop (and are waited for) before the service
	// and the store close.
	defer runDirectory(ctx, dirSources)()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var ran chan struct{} // nil: serve until ctx ends
	if mode.run != nil {
		ran = make(chan struct{})
		go func() {
			defer close(ran)
			mode.run(svc, publicURL, log)
		}()
	}
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	case <-ran:
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shut down: %w", err)
	}
	log.Info("stopped")
	return nil
}

// ensurePrivateDir makes the data directory with mode 0700, and warns when
// an existing one is open to others.
func ensurePrivateDir(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", dir)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the data directory is open to other users; chmod 700 it", "path", dir, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
	return nil
}

// loadOrCreateToken returns the admin token in path, making a new random
// one (32 bytes, base64url) with mode 0600 if there is none. A token file
// that others may read is refused.
func loadOrCreateToken(path string) (token string, created bool, err error) {
	token, err = readTokenFile(path)
	if err == nil {
		return token, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	// Write a temporary file and link it into place: the token file appears
	// whole or not at all, and a concurrent first start cannot overwrite it.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+adminTokenFile+".tmp-*")
	if err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(token + "\n")
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) { // another start won the race
			token, err = readTokenFile(path)
			return token, false, err
		}
		return "", false, fmt.Errorf("admin token: %w", err)
	}
	return token, true, nil
}

// readTokenFile reads an admin token file, refusing one open to others.
func readTokenFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("admin token file %s is open to other users (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if len(token) < provider.MinAdminTokenLen {
		return "", fmt.Errorf("admin token file %s is empty or too short; delete it to make a new one", path)
	}
	return token, nil
}

// defaultPublicURL is http://<the bound address>, with localhost for an
// address that listens on every interface.
func defaultPublicURL(addr net.Addr, log *slog.Logger) string {
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		log.Warn("listening on every interface without a public URL; set public_url so that phones can reach the server", "using", "http://localhost:"+port)
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// openStore opens the configured store and says where it is (no secrets).
func openStore(ctx context.Context, cfg Config, dataDir string) (flows.Store, string, error) {
	switch cfg.Store.Driver {
	case "postgres":
		st, err := postgres.Open(ctx, cfg.Store.DSN)
		if err != nil {
			return nil, "", fmt.Errorf("open postgres store: %w", err)
		}
		return st, redactDSN(cfg.Store.DSN), nil
	default:
		path := cfg.Store.DSN
		if path == "" {
			path = filepath.Join(dataDir, sqliteFile)
		}
		st, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, "", fmt.Errorf("open sqlite store %s: %w", path, err)
		}
		return st, path, nil
	}
}

// redactDSN hides a PostgreSQL connection string's password, in URL or
// key=value form.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.Redacted()
	}
	return kvPassword.ReplaceAllString(dsn, "${1}xxxxx")
}

// kvPassword finds the password of a key=value connection string.
var kvPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)`)

// purgeLoop runs Flows.Purge every hour until ctx ends.
func purgeLoop(ctx context.Context, svc *flows.Service, log *slog.Logger) {
	t := time.NewTicker(purgeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := svc.Purge(ctx); err != nil && ctx.Err() == nil {
				log.Error("purge", "err", err)
			}
		}
	}
}

// dropRequestSecrets removes, from the libraries' log lines, the values
// of a request that are secrets or lead to one.
func dropRequestSecrets(_ []string, a slog.Attr) slog.Attr {
	switch a.Key {
	case "state", "url", "code", "id_token_hint", "login_hint", "nonce", "code_challenge":
		return slog.Attr{}
	}
	return a
}
