package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/provider/adminclient"
	"github.com/keystep/keystep/provider/api"
	"github.com/keystep/keystep/provider/authenticator"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// Benchmark shape: enough users that no account sees two sign-ins at
// once, and about eight sign-ins in flight.
const (
	benchUsers   = 50
	benchWorkers = 8
)

// benchUser is an account and the authenticator enrolled for it.
type benchUser struct {
	name  string
	phone *authenticator.Authenticator
}

// BenchmarkOIDCSignIn measures complete OpenID Connect sign-ins per second
// against one real `keystep serve` process over loopback HTTP: the demo
// client's authorization request (PKCE), the step page, a real signed
// approval through the device API by the reference authenticator, the
// Continue button, and the relying party's code exchange with ID token
// verification. Every step runs in this process except the server.
//
// The configuration raises two limits that guard against strangers and
// would throttle a load generator: push.limit to 1000 (pushes per 10
// minutes and account, default 5: the benchmark signs each user in about
// b.N/50 times) and oidc.authorize_per_ip_per_minute to a million (new
// auth requests per client address, default 600: every browser here is
// 127.0.0.1).
func BenchmarkOIDCSignIn(b *testing.B) {
	cfg := writeConfig(b, "push:", "  limit: 1000", "oidc:", "  authorize_per_ip_per_minute: 1000000", "  demo_client: true")
	srv, keystepServe := startLoggedServer(b, "--config", cfg)
	ctx := context.Background()

	tr, hc, pool := benchUsersOn(ctx, b, srv)
	party, err := rp.NewRelyingPartyOIDC(ctx, srv.URL, demoClientID, demoSecret(b, srv), demoRedirectURI,
		[]string{oidc.ScopeOpenID}, rp.WithHTTPClient(hc), rp.WithVerifierOpts(rp.WithSupportedSigningAlgorithms("ES256")))
	if err != nil {
		b.Fatal(err)
	}
	// The warm-up makes the signing keys and fetches the key set.
	runSignIns(b, keystepServe.pid, pool, func(u *benchUser, state string) error {
		return benchSignIn(ctx, b, srv, party, tr, u, state)
	})
}

// runSignIns measures sign-ins by signIn, about benchWorkers at once, each
// for a user taken from pool (and put back), after one warm-up sign-in.
// It reports sign-ins per second and where the machine's time went: the
// CPU time per sign-in of the server process (serverPID; 0: none) and of
// this one (browser, phone, relying party, and keystep itself when it runs
// in process).
func runSignIns[U any](b *testing.B, serverPID int, pool chan U, signIn func(u U, state string) error) {
	b.Helper()
	u := <-pool
	if err := signIn(u, "warm-up"); err != nil {
		b.Fatal(err)
	}
	pool <- u
	var seq atomic.Int64
	b.SetParallelism((benchWorkers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	serverCPU, okServer := cpuTime(serverPID)
	selfCPU, okSelf := cpuTime(os.Getpid())
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := <-pool
			err := signIn(u, fmt.Sprint("st-", seq.Add(1)))
			pool <- u
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signins/s")
	if now, ok := cpuTime(serverPID); serverPID != 0 && ok && okServer {
		b.ReportMetric(float64((now-serverCPU).Microseconds())/float64(b.N), "server-cpu-us/op")
	}
	if now, ok := cpuTime(os.Getpid()); ok && okSelf {
		b.ReportMetric(float64((now-selfCPU).Microseconds())/float64(b.N), "client-cpu-us/op")
	}
}

// benchUsersOn makes benchUsers users on srv, each with an enrolled
// reference authenticator, and returns them in a pool with the HTTP
// transport and client they share.
func benchUsersOn(ctx context.Context, b *testing.B, srv server) (*http.Transport, *http.Client, chan *benchUser) {
	b.Helper()
	tr := &http.Transport{MaxIdleConns: 4 * benchWorkers, MaxIdleConnsPerHost: 4 * benchWorkers, IdleConnTimeout: time.Minute}
	b.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: time.Minute}

	token, err := os.ReadFile(filepath.Join(srv.Data, "admin-token"))
	if err != nil {
		b.Fatal(err)
	}
	admin, err := adminclient.New(srv.URL, string(token), adminclient.WithHTTPClient(hc))
	if err != nil {
		b.Fatal(err)
	}
	pool := make(chan *benchUser, benchUsers)
	dir := b.TempDir()
	for i := range benchUsers {
		name := fmt.Sprintf("user%02d", i)
		if _, err := admin.AddUser(ctx, api.NewUser{Username: name, Email: name + "@example.com"}); err != nil {
			b.Fatal(err)
		}
		inv, err := admin.Invite(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		phone, err := authenticator.Open(filepath.Join(dir, name+".json"), authenticator.WithHTTPClient(hc))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := phone.Enroll(ctx, inv.Link); err != nil {
			b.Fatal(err)
		}
		pool <- &benchUser{name: name, phone: phone}
	}
	return tr, hc, pool
}

// cpuTime is the user and system CPU time a process has used so far, from
// /proc (Linux only: elsewhere ok is false).
func cpuTime(pid int) (d time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses: state
	// is the first, utime the 12th and stime the 13th (in USER_HZ ticks,
	// 100 a second).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, false
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, false
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / 100), true
}

// benchSignIn runs one sign-in of u from a fresh browser and checks the
// ID token the relying party verified.
func benchSignIn(ctx context.Context, tb testing.TB, srv server, party rp.RelyingParty, tr http.RoundTripper, u *benchUser, state string) error {
	br := steptest.NewBrowser(tb)
	br.Client.Transport = tr
	verifier := oauth2.GenerateVerifier()
	p := br.Get(rp.AuthURL(state, party, rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier)),
		rp.AuthURLOpt(rp.WithURLParam("login_hint", u.name))))
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, srv.URL+"/step/") {
		return fmt.Errorf("%s: authorize answered %d → %q:\n%s", u.name, p.Status, p.Location, p.Body)
	}
	ans, err := approveOnStepPage(ctx, br, p, u)
	if err != nil {
		return err
	}
	loc, err := url.Parse(ans.Location)
	if ans.Status != http.StatusSeeOther || err != nil || loc.Query().Get("state") != state {
		return fmt.Errorf("%s: Continue answered %d → %q:\n%s", u.name, ans.Status, ans.Location, ans.Body)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, loc.Query().Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		return fmt.Errorf("%s: code exchange: %w", u.name, err)
	}
	if c := tokens.IDTokenClaims; c.AuthenticationContextClassReference != acrDevice || len(c.AuthenticationMethodsReferences) != 1 {
		return fmt.Errorf("%s: acr %q amr %v", u.name, c.AuthenticationContextClassReference, c.AuthenticationMethodsReferences)
	}
	return nil
}

// approveOnStepPage follows the redirect p to the step page, has u's phone
// approve with the number shown, and presses Continue: the answer is what
// the step page sends back to the protocol.
func approveOnStepPage(ctx context.Context, br *steptest.Browser, p *steptest.Page, u *benchUser) (*steptest.Page, error) {
	step := br.Follow(p)
	m := stepNumberRE.FindStringSubmatch(step.Body)
	if step.Status != http.StatusOK || m == nil {
		return nil, fmt.Errorf("%s: step page %d without a number:\n%s", u.name, step.Status, step.Body)
	}
	reqs, err := u.phone.Pending(ctx)
	if err != nil || len(reqs) != 1 {
		return nil, fmt.Errorf("%s: %d pending requests, %v", u.name, len(reqs), err)
	}
	if _, err := u.phone.ApproveRequest(ctx, reqs[0], m[1]); err != nil {
		return nil, fmt.Errorf("%s: approve: %w", u.name, err)
	}
	f, ok := step.FindForm("/finish")
	if !ok {
		return nil, fmt.Errorf("%s: no Continue form:\n%s", u.name, step.Body)
	}
	ans := br.Submit(f, nil)
	return ans, nil
}
