package integration

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/sqlite"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/provider"
	"github.com/keystep/keystep/provider/authenticator"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// BenchmarkHostIdPSignIn measures whole sign-ins per second through the
// host IdP (internal/hostidp) with about eight in flight, each from a
// fresh browser: the relying party's authorization request (PKCE), the
// username form, Begin, the step page, a real signed approval through the
// device API by the reference authenticator, Continue (Await), and the
// relying party's code exchange with ID token verification.
//
//   - plugin: keystep is the real binary launched through plugin/host
//     (go-plugin, gRPC over AutoMTLS), its device API on its own loopback
//     listener; server-cpu-us/op is the plugin process's CPU time.
//   - in-process: the same sign-ins with step.Local over flows and SQLite
//     in this process, the device API on an httptest server: the
//     difference is what the plugin boundary costs a whole sign-in.
//
// push.limit is raised to 1000 (pushes per 10 minutes and account,
// default 5): the benchmark signs each of its 50 users in about b.N/50
// times.
func BenchmarkHostIdPSignIn(b *testing.B) {
	b.Run("plugin", func(b *testing.B) {
		_, k := launchPlugin(b, slog.LevelWarn, "push:", "  limit: 1000")
		benchHostIdP(b, k)
	})
	b.Run("in-process", func(b *testing.B) {
		benchHostIdP(b, inProcessKeystep(b))
	})
}

// inProcessKeystep is keystep in this process: flows over SQLite,
// step.Local, and the device API on an httptest server.
func inProcessKeystep(b testing.TB) hostKeystep {
	b.Helper()
	ctx := context.Background()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "keystep.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	mux := http.NewServeMux()
	ts := httptest.NewServer(mux)
	b.Cleanup(ts.Close)
	svc, err := flows.New(st, flows.Config{Origin: ts.URL,
		CodeConfig: flows.CodeConfig{CodeKey: []byte("keystep-bench-code-key-0123456789abcdef"), PushLimit: 1000}},
		flows.WithLogger(discard))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	p, err := provider.New(provider.Options{Flows: svc, AdminToken: "admin-token-for-the-bench-0123456789", Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	mux.Handle("/", p.Handler())
	local := &step.Local{Flows: svc}
	return hostKeystep{step: local, accounts: local, deviceAPI: ts.URL}
}

// hostIdPUser is a bench user and its phone.
type hostIdPUser struct {
	name  string
	phone *authenticator.Authenticator
}

// benchHostIdP runs the sign-ins against k.
func benchHostIdP(b *testing.B, k hostKeystep) {
	ctx := context.Background()
	// zitadel/oidc logs each route it registers, and some errors, through
	// slog's default logger: quiet it, so that the benchmark's result
	// lines stay whole.
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.Cleanup(func() { slog.SetDefault(prev) })
	tr := &http.Transport{MaxIdleConns: 4 * benchWorkers, MaxIdleConnsPerHost: 4 * benchWorkers, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: time.Minute}
	pool := make(chan *hostIdPUser, benchUsers)
	for i := range benchUsers {
		name := fmt.Sprintf("user%02d", i)
		phone, err := enrollPhone(ctx, b, k, name, hc)
		if err != nil {
			b.Fatal(err)
		}
		pool <- &hostIdPUser{name: name, phone: phone}
	}
	idpURL, party := startHostIdP(b, k.step, hc, slog.New(slog.NewTextHandler(io.Discard, nil)), 0)
	signIn := func(u *hostIdPUser, state string) error {
		br := steptest.NewBrowser(b)
		br.Client.Transport = tr
		c, err := hostIdPSignIn(ctx, br, idpURL, party, u.phone, u.name, state)
		if err == nil && (c.Subject == "" || c.Subject == u.name || c.PreferredUsername != u.name) {
			err = fmt.Errorf("%s: the ID token's subject is %q and preferred_username %q, want the account id and the name",
				u.name, c.Subject, c.PreferredUsername)
		}
		return err
	}
	// The warm-up fetches the host IdP's key set.
	runSignIns(b, k.pid, pool, signIn)
}
