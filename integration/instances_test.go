package integration

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/store/postgres/pgevents"
	"github.com/keystep/keystep/internal/pgtest"
	"github.com/keystep/keystep/internal/slapdtest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// Several instances: two `keystep serve` processes on one PostgreSQL, with
// one code key file, behind one public URL. A small reverse proxy stands in
// for the load balancer: the devices and relying parties only know the
// public URL (a device signs it), and the proxy decides which instance
// answers each request.

// The OIDC client the cluster's configuration registers.
const (
	clusterClientID    = "app"
	clusterClientName  = "app"
	clusterRedirectURI = "http://127.0.0.1:5556/callback"
)

// cluster is one PostgreSQL database, a shared code key, a load balancer
// and the instances behind it.
type cluster struct {
	t       testing.TB
	dsn     string
	dir     string // the shared files: code key, client secret
	secret  string // the OIDC client's secret
	lb      *httptest.Server
	extra   []string // more configuration lines for every instance
	mu      sync.Mutex
	route   func(r *http.Request) *instance // which instance answers r
	counts  map[string]int                  // requests by instance name and path prefix
	members []*instance
}

// instance is one `keystep serve` of the cluster.
type instance struct {
	name string
	srv  server // URL: the instance itself, behind the load balancer
	d    *daemon
	url  *url.URL
}

// newCluster creates the database, the shared files and the load balancer
// (which sends everything to the first instance until route says
// otherwise).
func newCluster(t testing.TB, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dsn: pgtest.DSN(t), dir: t.TempDir(), extra: extra, counts: map[string]int{}}
	c.secret = "cluster-client-secret-0123456789abcdef"
	// The code key every instance shares (codes.key_file must exist).
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "code.key"), []byte(base64.RawURLEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "client-secret"), []byte(c.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.lb = httptest.NewServer(&httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			in := c.pick(pr.In)
			pr.SetURL(in.url)
			pr.Out.Host = pr.In.Host // the instances see the public host
		},
		FlushInterval: -1, // event streams pass at once
	})
	t.Cleanup(c.lb.Close)
	return c
}

// pick chooses the instance for r and counts it.
func (c *cluster) pick(r *http.Request) *instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := c.members[0]
	if c.route != nil {
		in = c.route(r)
	}
	c.counts[in.name+" "+prefix(r.URL.Path)]++
	return in
}

// prefix is the first segment of a path: /device, /oauth, /step.
func prefix(path string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	return "/" + first
}

// count is how many requests for paths under pfx went to the instance.
func (c *cluster) count(name, pfx string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[name+" "+pfx]
}

// setRoute changes where the load balancer sends requests.
func (c *cluster) setRoute(f func(r *http.Request) *instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.route = f
}

// start starts one more instance and waits until it listens. Instances
// start one after the other: the first one creates the shared keys.
func (c *cluster) start(name string) *instance {
	c.t.Helper()
	lines := []string{
		"public_url: " + c.lb.URL,
		"store:",
		"  driver: postgres",
		fmt.Sprintf("  dsn: %q", c.dsn),
		"codes:",
		"  key_file: " + filepath.Join(c.dir, "code.key"),
		"push:",
		"  limit: 1000",
		"oidc:",
		"  authorize_per_ip_per_minute: 1000000",
		"  clients:",
		"    - id: " + clusterClientID,
		"      secret_file: " + filepath.Join(c.dir, "client-secret"),
		"      redirect_uris: [" + clusterRedirectURI + "]",
		"      allow_http_redirects: true",
	}
	cfg := writeConfig(c.t, append(lines, c.extra...)...)
	srv, d := startLoggedServer(c.t, "--config", cfg)
	u, err := url.Parse(srv.URL)
	if err != nil {
		c.t.Fatal(err)
	}
	in := &instance{name: name, srv: srv, d: d, url: u}
	c.mu.Lock()
	c.members = append(c.members, in)
	c.mu.Unlock()
	return in
}

// public is the cluster as its users see it: the load balancer's URL, and
// the admin token of the instance whose data directory holds it.
func (c *cluster) public(in *instance) server {
	return server{URL: c.lb.URL, Data: in.srv.Data}
}

// devicePaths sends the device API to b and everything else to a.
func devicePaths(a, b *instance) func(r *http.Request) *instance {
	return func(r *http.Request) *instance {
		if strings.HasPrefix(r.URL.Path, "/device/") {
			return b
		}
		return a
	}
}

// TestInstancesSignInAcross: a sign-in begun on A and approved through B
// completes on A, woken by B's NOTIFY, not by Await's fallback re-read.
func TestInstancesSignInAcross(t *testing.T) {
	c := newCluster(t)
	a := c.start("A")
	b := c.start("B")
	c.setRoute(devicePaths(a, b))
	// The admin talks to A directly; the phone only knows the public URL.
	w := walk{t: t, srv: a.srv, dir: t.TempDir()}
	w.addUser("alice", "alice@example.com")
	w.enroll("alice", "phone.json") // the invitation, made on A, is redeemed on B
	if n := c.count("B", "/device"); n == 0 {
		t.Fatal("the enrollment did not go to B")
	}

	for i := range 3 {
		s, ch := w.signIn("alice") // begun on A: A's admin API waits for it
		decisions := c.count("B", "/device")
		ok(t, nil, w.device("phone.json", "approve", ch.ID, "--number", ch.Number)...)
		approved := time.Now() // the approve command has its answer from B
		o, code := w.outcome(s)
		wake := time.Since(approved) // tiny: A's answer was on its way before the command exited
		if o.Status != "approved" || code != 0 {
			t.Fatalf("sign-in %d: %+v, exit %d", i, o, code)
		}
		if c.count("B", "/device") == decisions {
			t.Fatal("the approval did not go to B")
		}
		t.Logf("sign-in %d: test-signin on A printed the outcome %s after the approve command (through B) exited", i, wake)
		// The fallback re-reads every flows.AwaitRecheck: an answer well
		// before it came from the notification.
		if wake >= flows.AwaitRecheck/2 {
			t.Errorf("sign-in %d: A answered %s after the approval on B; the NOTIFY did not wake it", i, wake)
		}
	}
	if c.count("A", "/device") != 0 {
		t.Errorf("%d device requests went to A", c.count("A", "/device"))
	}
}

// TestInstancesOIDCAcross: the authorization request and the step page
// are served by A, the phone's approval by B, and the relying party's
// token request lands on B: the code, the session and the signing keys
// are shared.
func TestInstancesOIDCAcross(t *testing.T) {
	c := newCluster(t)
	a := c.start("A")
	b := c.start("B")
	w := walk{t: t, srv: a.srv, dir: t.TempDir()}
	aliceID := w.addUser("alice", "alice@example.com")
	w.enroll("alice", "phone.json")

	device := devicePaths(a, b)
	c.setRoute(func(r *http.Request) *instance {
		if r.URL.Path == "/oauth/token" {
			return b
		}
		return device(r)
	})
	ctx := context.Background()
	pub := c.public(a)
	party, err := rp.NewRelyingPartyOIDC(ctx, pub.URL, clusterClientID, c.secret, clusterRedirectURI,
		[]string{oidc.ScopeOpenID, oidc.ScopeProfile}, rp.WithVerifierOpts(rp.WithSupportedSigningAlgorithms("ES256")))
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	verifier := oauth2.GenerateVerifier()
	br := steptest.NewBrowser(t)
	step := startStep(t, br, pub, rp.AuthURL("st-across", party,
		rp.WithCodeChallenge(oauth2.S256ChallengeFromVerifier(verifier)), rp.AuthURLOpt(rp.WithURLParam("login_hint", "alice"))))
	q := redirectParams(t, w.approveStep(br, step, "phone.json", clusterClientName), clusterRedirectURI)
	if q.Get("state") != "st-across" || q.Get("code") == "" {
		t.Fatalf("callback %v", q)
	}
	tokens, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(verifier))
	if err != nil {
		t.Fatalf("code exchange on B: %v", err)
	}
	if cl := tokens.IDTokenClaims; cl.Issuer != pub.URL || cl.Subject != aliceID || cl.PreferredUsername != "alice" {
		t.Errorf("ID token iss %q sub %q preferred_username %q", cl.Issuer, cl.Subject, cl.PreferredUsername)
	}
	if c.count("B", "/oauth") == 0 || c.count("A", "/oauth") != 0 {
		t.Errorf("token requests: A %d, B %d; want all on B", c.count("A", "/oauth"), c.count("B", "/oauth"))
	}
	if c.count("A", "/authorize") == 0 || c.count("A", "/step") == 0 {
		t.Errorf("the authorization and the step page did not go to A")
	}
	// The code is single-use across instances: A refuses it too.
	c.setRoute(device)
	if _, err := rp.CodeExchange[*oidc.IDTokenClaims](ctx, q.Get("code"), party, rp.WithCodeVerifier(verifier)); err == nil {
		t.Error("A exchanged a code B had already exchanged")
	}
}

// TestInstancesDirectoryLease: with one slapd source configured on both
// instances, one of them syncs; kill -9 it, and the other takes the lease
// over once it expires and applies the directory's changes.
func TestInstancesDirectoryLease(t *testing.T) {
	ldap := slapdtest.Start(t, slapdtest.Options{LDIF: slapdtest.UsersLDIF(5, "people")})
	caFile := ldap.CAFile
	pwFile := filepath.Join(t.TempDir(), "ldap-password")
	if err := os.WriteFile(pwFile, []byte(ldap.SyncPassword), 0o600); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t,
		"directory:",
		"  sources:",
		"    - name: corp",
		"      urls: ["+ldap.URL+"]",
		"      ca_file: "+caFile,
		"      bind_dn: "+ldap.SyncDN,
		"      bind_password_file: "+pwFile,
		"      base_dn: "+ldap.BaseDN,
		"      user_filter: (objectClass=inetOrgPerson)",
		"      suspension: {preset: openldap_ppolicy}",
		"      incremental: syncrepl",
	)
	a := c.start("A")
	b := c.start("B")
	db, err := sql.Open("pgx", c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	events := watchEvents(t, c.dsn)
	holderOf := func() string {
		var h string
		_ = db.QueryRow(`SELECT holder FROM leases WHERE name = 'directory:corp'`).Scan(&h)
		return h
	}
	pidOf := func(holder string) int {
		var host string
		var pid int
		if _, err := fmt.Sscanf(strings.ReplaceAll(holder, "/", " "), "%s %d", &host, &pid); err != nil {
			t.Fatalf("holder %q: %v", holder, err)
		}
		return pid
	}
	userIs := func(user, state string) func() bool {
		return func() bool {
			var st string
			_ = db.QueryRow(`SELECT state FROM accounts WHERE username = $1`, user).Scan(&st)
			return st == state
		}
	}
	// One of them took the lease and synced the five users.
	events.until(t, "user000001 synced", userIs("user000001", "active"))
	holder := holderOf()
	holderInst, other := a, b
	switch pidOf(holder) {
	case a.d.pid:
	case b.d.pid:
		holderInst, other = b, a
	default:
		t.Fatalf("the lease holder %q is neither instance (pids %d, %d)", holder, a.d.pid, b.d.pid)
	}
	t.Logf("%s holds the lease (%s)", holderInst.name, holder)

	// kill -9 the holder: its lease stays until it expires, then the other
	// instance takes it and follows the directory.
	if err := syscall.Kill(holderInst.d.pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	ldap.LockPermanently(t, slapdtest.UserDN("user000002", "people"))
	events.until(t, "user000002 suspended by "+other.name, userIs("user000002", "suspended"))
	took := time.Since(killed)
	h := holderOf()
	if pidOf(h) != other.d.pid {
		t.Fatalf("after the kill the lease is %q, not %s's (pid %d)", h, other.name, other.d.pid)
	}
	t.Logf("%s took over and applied the change %s after the kill", other.name, took)
}

// eventWatch listens on keystep's NOTIFY channel: every change an instance
// makes (an audit event, a sign-in decided) is a notification.
type eventWatch struct{ conn *pgx.Conn }

func watchEvents(t testing.TB, dsn string) *eventWatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+pgevents.Channel); err != nil {
		t.Fatal(err)
	}
	return &eventWatch{conn: conn}
}

// until waits for cond, checking it after each notification.
func (w *eventWatch) until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard only
	defer cancel()
	for !cond() {
		if _, err := w.conn.WaitForNotification(ctx); err != nil {
			t.Fatalf("gave up waiting for %s: %v", what, err)
		}
	}
}
