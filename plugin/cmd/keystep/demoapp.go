package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

func newDemoAppCmd() *cobra.Command {
	var issuer, listen, dataDir string
	cmd := &cobra.Command{
		Use:   "demo-app [--issuer URL] [--listen ADDR] [--data DIR]",
		Short: "Run a tiny application that signs in through keystep",
		Long: `Run a tiny web application on 127.0.0.1:5556 that signs in through keystep's
OpenID Provider as the demo client: type a username, approve on the phone (or
with "keystep device approve"), and see the ID token's claims (acr, amr,
auth_time). It reads the demo client's secret from <data dir>/demo-client-secret,
which keystep serve writes on its first start.`,
		Args: nArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			secret, err := readTokenFile(filepath.Join(dataDir, demoClientSecretFile))
			if err != nil {
				return fmt.Errorf("demo client secret (is keystep serve running with its default data directory?): %w", err)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemoApp(ctx, issuer, listen, secret, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&issuer, "issuer", "http://127.0.0.1:8080", "keystep's public `URL`")
	f.StringVar(&listen, "listen", "127.0.0.1:"+demoAppPort, "`address` to listen on")
	f.StringVar(&dataDir, "data", defaultDataDir, "keystep's data `directory`")
	return cmd
}

var demoPage = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>keystep demo app</title></head>
<body>
<h1>keystep demo app</h1>
{{if .Claims}}<p>Signed in. The ID token from keystep says:</p><pre>{{.Claims}}</pre><p><a href="/">Sign in again</a></p>
{{else}}{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login"><label for="u">Username</label>
<input id="u" name="username" autocomplete="username" required autofocus>
<button type="submit">Sign in with keystep</button></form>{{end}}
</body></html>`))

// runDemoApp serves the demo application until ctx ends.
func runDemoApp(ctx context.Context, issuer, listen, secret string, stderr interface{ Write([]byte) (int, error) }) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	redirect := "http://127.0.0.1:" + port + "/callback"
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	cookies := httphelper.NewCookieHandler(key, key, httphelper.WithUnsecure())
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	party, err := rp.NewRelyingPartyOIDC(dctx, issuer, demoClientID, secret, redirect,
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile}, rp.WithPKCE(cookies), rp.WithSigningAlgsFromDiscovery())
	if err != nil {
		return fmt.Errorf("discover keystep at %s: %w", issuer, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { renderDemo(w, issuer, "", "") })
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		user := r.PostFormValue("username")
		if user == "" {
			renderDemo(w, issuer, "", "Type a username.")
			return
		}
		rp.AuthURLHandler(newState, party, rp.WithURLParam("login_hint", user)).ServeHTTP(w, r)
	})
	mux.Handle("GET /callback", rp.CodeExchangeHandler(func(w http.ResponseWriter, _ *http.Request, tokens *oidc.Tokens[*oidc.IDTokenClaims], _ string, _ rp.RelyingParty) {
		b, _ := json.MarshalIndent(tokens.IDTokenClaims, "", "  ")
		renderDemo(w, issuer, string(b), "")
	}, party))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stderr, "keystep demo app on http://%s (signing in through %s)\n", ln.Addr(), issuer)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func newState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// renderDemo shows the demo page; its form may post to the app and be
// redirected on to keystep (issuer).
func renderDemo(w http.ResponseWriter, issuer, claims, errText string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self' "+issuer+"; frame-ancestors 'none'")
	if err := demoPage.Execute(w, struct{ Claims, Error string }{claims, errText}); err != nil {
		slog.Error("demo page", "err", err)
	}
}
