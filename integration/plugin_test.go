package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/hostidp"
	"github.com/keystep/keystep/plugin/host"
	"github.com/keystep/keystep/plugin/step"
	"github.com/keystep/keystep/provider/authenticator"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// The host IdP's one client, as the relying party knows it.
const (
	hostIdPClientID    = "portal"
	hostIdPSecret      = "portal-secret-for-the-tests-0123"
	hostIdPRedirectURI = "https://app.example.com/callback"
)

// pluginLog collects the log of a host and its plugin (slog), printed
// when the test fails.
type pluginLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *pluginLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *pluginLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// hostKeystep is keystep as a host IdP sees it: the step, the account
// operations and the device API the phones talk to.
type hostKeystep struct {
	step      step.Step
	accounts  step.Accounts
	deviceAPI string
	pid       int // the plugin's process (0: keystep runs in this process)
}

// launchPlugin launches the keystep binary through plugin/host, with a
// configuration that listens on a free loopback port and keeps its data
// in a temporary directory, plus the extra configuration lines. level is
// the least level of the log kept.
func launchPlugin(tb testing.TB, level slog.Level, extra ...string) (*host.Client, hostKeystep) {
	tb.Helper()
	ctx := context.Background()
	data := filepath.Join(tb.TempDir(), "data")
	cfg := strings.Join(append([]string{"listen: 127.0.0.1:0", "data_dir: " + data}, extra...), "\n") + "\n"
	logs := &pluginLog{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("host and plugin log:\n%s", logs.String())
		}
	})
	launchCtx, cancel := context.WithTimeout(ctx, 2*time.Minute) // a hang guard only
	defer cancel()
	c, err := host.Launch(launchCtx, host.Options{Path: keystepBin, Config: []byte(cfg),
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: level}))})
	if err != nil {
		tb.Fatalf("launch the keystep plugin: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	h, err := c.Health(ctx)
	if err != nil {
		tb.Fatalf("health: %v", err)
	}
	if !h.Serving || h.DeviceAPIURL == "" {
		tb.Fatalf("health: %+v", h)
	}
	return c, hostKeystep{step: c, accounts: c, deviceAPI: h.DeviceAPIURL, pid: c.PID()}
}

// enrollPhone adds a user and enrolls a reference authenticator for it
// with an invitation, both through the contract's Accounts; the
// invitation link names the device API.
func enrollPhone(ctx context.Context, tb testing.TB, k hostKeystep, name string, hc *http.Client) (*authenticator.Authenticator, error) {
	if _, err := k.accounts.AddAccount(ctx, step.NewAccount{Username: name, Email: name + "@example.com"}); err != nil {
		return nil, fmt.Errorf("add %s: %w", name, err)
	}
	inv, err := k.accounts.Invite(ctx, step.AccountRef{Username: name})
	if err != nil {
		return nil, fmt.Errorf("invite %s: %w", name, err)
	}
	if !strings.Contains(inv.Link, url.QueryEscape(k.deviceAPI)) {
		return nil, fmt.Errorf("the invitation %q does not name the device API %s", inv.Link, k.deviceAPI)
	}
	opts := []authenticator.Option{}
	if hc != nil {
		opts = append(opts, authenticator.WithHTTPClient(hc))
	}
	phone, err := authenticator.Open(filepath.Join(tb.TempDir(), name+".json"), opts...)
	if err != nil {
		return nil, err
	}
	if _, err := phone.Enroll(ctx, inv.Link); err != nil {
		return nil, fmt.Errorf("enroll %s: %w", name, err)
	}
	return phone, nil
}

// startHostIdP runs the host IdP over s on an httptest server and returns
// its URL and a relying party (zitadel rp, after discovery) for its
// client. hc is the relying party's HTTP client (nil: the default);
// await is how long Continue waits for the phone (0: the default).
func startHostIdP(tb testing.TB, s step.Step, hc *http.Client, log *slog.Logger, await time.Duration) (string, rp.RelyingParty) {
	tb.Helper()
	var handler http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	tb.Cleanup(ts.Close)
	idp, err := hostidp.New(hostidp.Options{Issuer: ts.URL, Step: s, ClientID: hostIdPClientID, ClientSecret: hostIdPSecret,
		RedirectURI: hostIdPRedirectURI, AwaitTimeout: await, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	handler = idp.Handler()
	opts := []rp.Option{rp.WithVerifierOpts(rp.WithSupportedSigningAlgorithms("RS256"))}
	if hc != nil {
		opts = append(opts, rp.WithHTTPClient(hc))
	}
	party, err := rp.NewRelyingPartyOIDC(context.Background(), ts.URL, hostIdPClientID, hostIdPSecret, hostIdPRedirectURI,
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile}, opts...)
	if err != nil {
		tb.Fatalf("discovery of the host IdP: %v", err)
	}
	return ts.URL, party
}

// hostIdPStep takes a browser from the relying party's authorization URL
// through the host IdP's username form to its step page.
func hostIdPStep(br *steptest.Browser, idpURL string, party rp.RelyingParty, username, state string) (step *steptest.Page, verifier string, err error) {
	verifier = oauth2.GenerateVerifier()
	p := br.Get(rp.AuthURL(state, party, rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier))))
	if p.Status != http.StatusFound || !strings.HasPrefix(p.Location, idpURL+"/login?id=") {
		return nil, "", fmt.Errorf("authorize answered %d → %q:\n%s", p.Status, p.Location, p.Body)
	}
	form := br.Follow(p)
	f, ok := form.FindForm("/login")
	if form.Status != http.StatusOK || !ok {
		return nil, "", fmt.Errorf("username form %d:\n%s", form.Status, form.Body)
	}
	p = br.Submit(f, url.Values{"username": {username}})
	if p.Status != http.StatusSeeOther {
		return nil, "", fmt.Errorf("username %s answered %d:\n%s", username, p.Status, p.Body)
	}
	step = br.Follow(p)
	if step.Status != http.StatusOK || !stepNumberRE.MatchString(step.Body) {
		return nil, "", fmt.Errorf("step page %d without a number:\n%s", step.Status, step.Body)
	}
	return step, verifier, nil
}

// approveOnPhone approves the phone's one pending request with number and
// checks the phone names the host IdP.
func approveOnPhone(ctx context.Context, phone *authenticator.Authenticator, number string) error {
	reqs, err := phone.Pending(ctx)
	if err != nil || len(reqs) != 1 {
		return fmt.Errorf("%d pending requests, %v", len(reqs), err)
	}
	if reqs[0].Client != hostidp.ClientName {
		return fmt.Errorf("the phone shows the request from %q, want %q", reqs[0].Client, hostidp.ClientName)
	}
	_, err = phone.ApproveRequest(ctx, reqs[0], number)
	return err
}

// hostIdPCallback checks that an answer redirects to the client and
// returns the redirect's query.
func hostIdPCallback(p *steptest.Page) (url.Values, error) {
	u, err := url.Parse(p.Location)
	if p.Status != http.StatusFound || err != nil || u.Scheme+"://"+u.Host+u.Path != hostIdPRedirectURI {
		return nil, fmt.Errorf("answered %d → %q, not a redirect to the client:\n%s", p.Status, p.Location, p.Body)
	}
	return u.Query(), nil
}

// hostIdPSignIn is one whole sign-in of username through the host IdP:
// the relying party's authorization request (PKCE), the username form,
// the step page, the phone's approval with the number shown, Continue,
// and the code exchange, whose ID token the relying party verifies.
func hostIdPSignIn(ctx context.Context, br *steptest.Browser, idpURL string, party rp.RelyingParty,
	phone *authenticator.Authenticator, username, state string) (*oidc.IDTokenClaims, error) {
	page, verifier, err := hostIdPStep(br, idpURL, party, username, state)
	if err != nil {
		return nil, err
	}
	if err := approveOnPhone(ctx, phone, stepNumberRE.FindStringSubmatch(page.Body)[1]); err != nil {
		return nil, fmt.Errorf("%s: approve: %w", username, err)
	}
	f, ok := page.FindForm("/login/step")
	if !ok {
		return nil, fmt.Errorf("%s: no Continue form:\n%s", username, page.Body)
	}
	q, err := hostIdPCallback(br.Submit(f, nil))
	if err != nil {
		return nil, fmt.Errorf("%s: Continue %w", username, err)
	}
	if q.Get("state") != state || q.Get("code") == "" {
		return nil, fmt.Errorf("%s: callback %v", username, q)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		return nil, fmt.Errorf("%s: code exchange: %w", username, err)
	}
	return tokens.IDTokenClaims, nil
}

// TestHostIdPWithPlugin: a Go IdP adds keystep's step by launching the
// keystep binary as a go-plugin plugin. Alice's phone (the reference
// authenticator) enrolls with an invitation made through the contract and
// the device API the plugin reports; a relying party (zitadel rp) signs
// in through the host IdP with a browser without JavaScript: username,
// the step page's number approved on the phone, Continue, the code
// exchange with a verified ID token whose subject is alice's account id
// (preferred_username alice). A denial on
// the phone gives the relying party access_denied.
func TestHostIdPWithPlugin(t *testing.T) {
	ctx := context.Background()
	plugin, k := launchPlugin(t, slog.LevelDebug)
	phone, err := enrollPhone(ctx, t, k, "alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, err := plugin.GetAccount(ctx, step.AccountRef{Username: "alice"})
	if err != nil || alice.Devices != 1 || alice.State != flows.AccountActive {
		t.Fatalf("alice through the plugin: %+v, %v", alice, err)
	}
	// Continue waits at most 300 ms for the phone here, so that pressing
	// it too early shows the step page again.
	idpURL, party := startHostIdP(t, plugin, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), 300*time.Millisecond)

	br := steptest.NewBrowser(t)
	began := time.Now()
	page, verifier, err := hostIdPStep(br, idpURL, party, "alice", "st-plugin")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.Body, `<img class="qr" src="data:image/png;base64,`) {
		t.Errorf("the step page has no QR image:\n%s", page.Body)
	}
	// Continue before the phone answers: Await's deadline passes through
	// the plugin and the step page comes back, with the same number.
	early := br.Submit(page.Form(t, "/login/step"), nil)
	if early.Status != http.StatusOK || !strings.Contains(early.Text(), "has not answered yet") || stepNumber(t, early) != stepNumber(t, page) {
		t.Fatalf("Continue before the phone answered: %d\n%s", early.Status, early.Text())
	}
	if err := approveOnPhone(ctx, phone, stepNumber(t, early)); err != nil {
		t.Fatal(err)
	}
	q, err := hostIdPCallback(br.Submit(early.Form(t, "/login/step"), nil))
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("state") != "st-plugin" || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange: %v", err)
	}
	c := tokens.IDTokenClaims
	if c.Subject != alice.ID || c.Issuer != idpURL || !slices.Equal([]string(c.Audience), []string{hostIdPClientID}) ||
		c.PreferredUsername != "alice" || !slices.Equal(c.AuthenticationMethodsReferences, []string{"pop"}) {
		t.Errorf("sub %q iss %q aud %v preferred_username %q amr %v", c.Subject, c.Issuer, c.Audience, c.PreferredUsername,
			c.AuthenticationMethodsReferences)
	}
	checkAuthTime(t, c.AuthTime.AsTime(), began)
	if c.SignatureAlg != "RS256" {
		t.Errorf("signed with %q", c.SignatureAlg)
	}
	if _, err := rp.VerifyIDToken[*oidc.IDTokenClaims](ctx, tamper(tokens.IDToken), party.IDTokenVerifier()); err == nil {
		t.Error("the relying party accepted an ID token with a changed signature")
	}

	// Denied on the phone: the relying party hears access_denied.
	page, _, err = hostIdPStep(br, idpURL, party, "alice", "st-plugin-deny")
	if err != nil {
		t.Fatal(err)
	}
	reqs, err := phone.Pending(ctx)
	if err != nil || len(reqs) != 1 {
		t.Fatalf("pending: %d, %v", len(reqs), err)
	}
	if _, err := phone.Deny(ctx, reqs[0].ID, false); err != nil {
		t.Fatal(err)
	}
	q, err = hostIdPCallback(br.Submit(page.Form(t, "/login/step"), nil))
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("error") != "access_denied" || q.Get("state") != "st-plugin-deny" || q.Get("code") != "" {
		t.Errorf("callback after a denial: %v", q)
	}

	// An unknown user is refused on the username form, with flows' error
	// carried back through the plugin.
	verifier = oauth2.GenerateVerifier()
	form := br.Follow(br.Get(rp.AuthURL("st-nobody", party, rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier)))))
	p := br.Submit(form.Form(t, "/login"), url.Values{"username": {"nobody"}})
	if p.Status != http.StatusOK || !strings.Contains(p.Text(), "This user cannot sign in here") {
		t.Errorf("unknown user: %d %s", p.Status, p.Text())
	}
	if _, err := plugin.Begin(ctx, step.BeginRequest{Username: "nobody", Client: "x"}); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("Begin for an unknown user through the plugin: %v, want flows.ErrNotFound", err)
	}
}

// cliLogin is a Go IdP's login with no browser at all, as a command-line
// login does it: it begins the step, prints the number for the user to
// choose on the phone, prints each status while it waits, and returns the
// decision.
func cliLogin(ctx context.Context, s step.Step, username string, out io.Writer) (step.Result, error) {
	tx, err := s.Begin(ctx, step.BeginRequest{Username: username, Client: "keystep CLI login",
		Methods: []flows.Method{flows.MethodPush}})
	if err != nil {
		return step.Result{}, fmt.Errorf("sign in as %s: %w", username, err)
	}
	fmt.Fprintf(out, "Signing in as %s. On your phone, choose %s (before %s).\n", username, tx.Number, tx.ExpiresAt.Format(time.TimeOnly))
	res, err := s.Await(ctx, tx.ID, func(r step.Result) { fmt.Fprintf(out, "status: %s\n", r.Status) })
	if err != nil {
		return step.Result{}, fmt.Errorf("sign in as %s: %w", username, err)
	}
	if res.Approved() {
		fmt.Fprintf(out, "Signed in as %s.\n", username)
	} else {
		fmt.Fprintf(out, "Not signed in: the sign-in was %s.\n", res.Status)
	}
	return res, nil
}

var cliNumberRE = regexp.MustCompile(`choose (\d+) `)

// cliRun runs cliLogin in the background and returns its output lines
// and its outcome.
func cliRun(ctx context.Context, s step.Step, username string) (<-chan string, <-chan step.Result, <-chan error) {
	pr, pw := io.Pipe()
	lines := make(chan string, 16)
	results := make(chan step.Result, 1)
	errs := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() {
		res, err := cliLogin(ctx, s, username, pw)
		pw.Close()
		results <- res
		errs <- err
	}()
	return lines, results, errs
}

// nextLine reads the next line the login printed.
func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("the login ended early")
		}
		return l
	case <-time.After(time.Minute): // a hang guard only, never a synchronisation
		t.Fatal("the login printed nothing for a minute")
	}
	return ""
}

// TestCLILoginWithPlugin: the contract does not assume a web page. A Go
// "IdP" with no browser, a command-line login, begins the step through
// the plugin, prints the number, and waits on Await while the phone
// decides: an approval gives status approved, a denial status denied.
func TestCLILoginWithPlugin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard only
	defer cancel()
	_, k := launchPlugin(t, slog.LevelDebug)
	phone, err := enrollPhone(ctx, t, k, "bob", nil)
	if err != nil {
		t.Fatal(err)
	}

	for _, approve := range []bool{true, false} {
		lines, results, errs := cliRun(ctx, k.step, "bob")
		first := nextLine(t, lines)
		m := cliNumberRE.FindStringSubmatch(first)
		if m == nil {
			t.Fatalf("the login printed %q, no number", first)
		}
		if l := nextLine(t, lines); l != "status: pending" {
			t.Errorf("the first status printed: %q, want pending", l)
		}
		reqs, err := phone.Pending(ctx)
		if err != nil || len(reqs) != 1 || reqs[0].Client != "keystep CLI login" {
			t.Fatalf("pending on the phone: %+v, %v", reqs, err)
		}
		if approve {
			_, err = phone.ApproveRequest(ctx, reqs[0], m[1])
		} else {
			_, err = phone.Deny(ctx, reqs[0].ID, false)
		}
		if err != nil {
			t.Fatal(err)
		}
		res, err := <-results, <-errs
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		want, wantLast := flows.StatusApproved, "Signed in as bob."
		if !approve {
			want, wantLast = flows.StatusDenied, "Not signed in: the sign-in was denied."
		}
		if res.Status != want || res.Approved() != approve || res.Method != flows.MethodPush || res.AccountID == "" {
			t.Errorf("result %+v, want status %s", res, want)
		}
		if len(rest) != 2 || rest[0] != "status: "+string(want) || rest[1] != wantLast {
			t.Errorf("the login printed %q after the number", rest)
		}
	}
}
