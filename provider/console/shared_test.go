package console

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/flows/clocktest"
	"github.com/keystep/keystep/flows/store/postgres"
	"github.com/keystep/keystep/internal/pgtest"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestSessionsSharedByInstances runs two instances (provider and console
// each) over one SQLite store: a session made on one is good on the other,
// and a logout on one ends it on both.
func TestSessionsSharedByInstances(t *testing.T) {
	a := newEnv(t, false)
	b := newEnvOn(t, a.svc.Store(), a.clock, false)
	testSharedSessions(t, a, b)
}

// TestSessionsSharedByInstancesPostgres is the same over PostgreSQL, each
// instance with its own connection pool, as two keystep serve would be.
func TestSessionsSharedByInstancesPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	open := func() flows.Store {
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	clock := clocktest.New(time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC))
	a := newEnvOn(t, open(), clock, false)
	b := newEnvOn(t, open(), clock, false)
	testSharedSessions(t, a, b)
}

// on is the URL u (of any instance) on the instance e: the cookie jar does
// not tell ports apart, so one browser goes to both as through a load
// balancer.
func on(e *env, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.url(p.RequestURI())
}

// sessionRow reads the store's row of the browser's session cookie.
func sessionRow(t *testing.T, e *env, br *steptest.Browser) (string, flows.Session, error) {
	t.Helper()
	for _, c := range br.Client.Jar.Cookies(mustURL(t, e.url("/"))) {
		if c.Name == CookieNameInsecure {
			s, err := e.svc.Store().GetSession(e.ctx, sessionID(c.Value))
			return c.Value, s, err
		}
	}
	t.Fatal("the browser has no session cookie")
	return "", flows.Session{}, nil
}

func testSharedSessions(t *testing.T, a, b *env) {
	carol := a.addUser("carol")
	br := a.browser()

	// The login form comes from a, the login is posted to b.
	form := br.Get(a.url("/console/login")).Form(t, "/console/login")
	form.Action = on(b, form.Action)
	p := br.Submit(form, url.Values{"token": {aliceToken}})
	if p.Status != http.StatusSeeOther || p.Location != b.url("/console/") {
		t.Fatalf("login on b with a's form: %d → %q\n%s", p.Status, p.Location, p.Body)
	}
	login := a.clock.Now()

	// The store keeps the token's hash, never the token.
	token, row, err := sessionRow(t, a, br)
	if err != nil {
		t.Fatalf("the session is not in the store: %v", err)
	}
	if row.Kind != SessionKind || row.Subject != "alice-admin" || row.ID == token || strings.Contains(string(row.Data), token) ||
		strings.Contains(string(row.Data), aliceToken) ||
		!row.CreatedAt.Equal(login) || !row.ExpiresAt.Equal(login.Add(DefaultLifetime)) {
		t.Fatalf("stored session %+v (token %q)", row, token)
	}
	thief := a.browser()
	thief.Client.Jar.SetCookies(mustURL(t, a.url("/")), []*http.Cookie{{Name: CookieNameInsecure, Value: row.ID}})
	if p := thief.Get(a.url("/console/users")); p.Status != http.StatusSeeOther {
		t.Errorf("the stored id works as a cookie: %d", p.Status)
	}

	// a knows the session b made.
	users := br.Get(a.url("/console/users/" + carol.ID))
	if users.Status != http.StatusOK || !strings.Contains(users.Text(), "admin: alice-admin") {
		t.Fatalf("a does not know b's session: %d\n%s", users.Status, users.Text())
	}
	// A POST on a with the CSRF token of a page of b; its message shows on
	// the page b serves after the redirect.
	token0 := csrf(t, br.Get(b.url("/console/users/"+carol.ID)))
	p = br.Post(a.url("/console/users/"+carol.ID+"/suspend"), url.Values{"csrf": {token0}, "reason": {"left"}})
	if p.Status != http.StatusSeeOther {
		t.Fatalf("suspend on a: %d\n%s", p.Status, p.Text())
	}
	if got := br.Get(on(b, p.Location)).Text(); !strings.Contains(got, "carol is suspended.") {
		t.Errorf("b does not show a's message:\n%s", got)
	}
	if got := br.Get(on(a, p.Location)).Text(); strings.Contains(got, "carol is suspended.") {
		t.Errorf("the message is shown twice:\n%s", got)
	}
	if got := a.account(carol.ID); got.State != flows.AccountSuspended {
		t.Errorf("carol is %s", got.State)
	}

	// Uses are recorded at most once a minute.
	_, row, _ = sessionRow(t, a, br)
	if !row.LastSeenAt.Equal(login) {
		t.Errorf("LastSeenAt %v right after the login at %v", row.LastSeenAt, login)
	}
	a.clock.Advance(30 * time.Second)
	br.Get(b.url("/console/"))
	if _, row, _ = sessionRow(t, a, br); !row.LastSeenAt.Equal(login) {
		t.Errorf("a use 30 s after the last one was written: LastSeenAt %v", row.LastSeenAt)
	}
	a.clock.Advance(31 * time.Second)
	br.Get(a.url("/console/"))
	if _, row, _ = sessionRow(t, a, br); !row.LastSeenAt.Equal(a.clock.Now()) {
		t.Errorf("a use 61 s after the last one was not written: LastSeenAt %v, now %v", row.LastSeenAt, a.clock.Now())
	}
	// The idle timeout runs from the last recorded use, on both instances.
	a.clock.Advance(DefaultIdleTimeout - time.Second)
	if p := br.Get(b.url("/console/")); p.Status != http.StatusOK {
		t.Fatalf("within the idle timeout on b: %d", p.Status)
	}

	// Logout on b ends the session on a too, and deletes its row.
	kept := br.Client.Jar.Cookies(mustURL(t, a.url("/")))
	home := br.Get(b.url("/console/"))
	csrfToken := csrf(t, home)
	if p := br.Submit(home.Form(t, "/console/logout"), nil); p.Status != http.StatusSeeOther || p.Location != b.url("/console/login") {
		t.Fatalf("logout on b: %d → %q", p.Status, p.Location)
	}
	if _, err := a.svc.Store().GetSession(a.ctx, sessionID(token)); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("the logged-out session is still stored: %v", err)
	}
	replay := a.browser()
	replay.Client.Jar.SetCookies(mustURL(t, a.url("/")), kept)
	if p := replay.Get(a.url("/console/users")); p.Status != http.StatusSeeOther || p.Location != a.url("/console/login") {
		t.Errorf("a accepts the session logged out on b: %d → %q", p.Status, p.Location)
	}
	if p := replay.Post(a.url("/console/users/"+carol.ID+"/restore"), url.Values{"csrf": {csrfToken}, "reason": {"back"}}); p.Status != http.StatusForbidden {
		t.Errorf("a POST on a with the session logged out on b: %d", p.Status)
	}
	if got := a.account(carol.ID); got.State != flows.AccountSuspended {
		t.Errorf("carol is %s after a refused restore", got.State)
	}

	// A new login on a replaces the browser's session on b as well.
	first := a.browser()
	if p := a.login(first, bobToken); p.Status != http.StatusSeeOther {
		t.Fatalf("login on a: %d", p.Status)
	}
	old := first.Client.Jar.Cookies(mustURL(t, a.url("/")))
	fresh := b.browser() // a signed-in browser is sent away from the login page: take a login form elsewhere
	form = fresh.Get(b.url("/console/login")).Form(t, "/console/login")
	first.Client.Jar.SetCookies(mustURL(t, b.url("/")), fresh.Client.Jar.Cookies(mustURL(t, b.url("/"))))
	if p := first.Submit(form, url.Values{"token": {bobToken}}); p.Status != http.StatusSeeOther {
		t.Fatalf("second login on b: %d", p.Status)
	}
	stale := b.browser()
	stale.Client.Jar.SetCookies(mustURL(t, b.url("/")), old)
	if p := stale.Get(b.url("/console/")); p.Status != http.StatusSeeOther {
		t.Errorf("the replaced session still works on b: %d", p.Status)
	}
	if p := first.Get(a.url("/console/")); p.Status != http.StatusOK || !strings.Contains(p.Text(), "admin: bob") {
		t.Errorf("the new session does not work on a: %d", p.Status)
	}

	// Purge (either instance's) deletes sessions past their lifetime.
	_, row, err = sessionRow(t, a, first)
	if err != nil {
		t.Fatal(err)
	}
	a.clock.Advance(DefaultLifetime - time.Second)
	if err := b.svc.Purge(b.ctx); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := a.svc.Store().GetSession(a.ctx, row.ID); err != nil {
		t.Errorf("purge deleted a session within its lifetime: %v", err)
	}
	a.clock.Advance(2 * time.Second)
	if err := b.svc.Purge(b.ctx); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := a.svc.Store().GetSession(a.ctx, row.ID); !errors.Is(err, flows.ErrNotFound) {
		t.Errorf("purge left an expired session: %v", err)
	}
}

// TestFlashCookieBoundToSession checks that a flash message's cookie is
// shown only to the session that made it: another session's, or a forged
// one, is dropped unseen.
func TestFlashCookieBoundToSession(t *testing.T) {
	e := newEnv(t, false)
	carol := e.addUser("carol")
	alice := e.signedIn()
	p := alice.Post(e.url("/console/users/"+carol.ID+"/suspend"), url.Values{"csrf": {csrf(t, alice.Get(e.url("/console/users/"+carol.ID)))}, "reason": {"left"}})
	fc := cookieNamed(p.Header, FlashCookieNameInsecure)
	if p.Status != http.StatusSeeOther || fc == nil || !fc.HttpOnly || fc.SameSite != http.SameSiteStrictMode || fc.Path != "/" {
		t.Fatalf("suspend: %d, flash cookie %+v", p.Status, fc)
	}
	other := e.signedIn()
	forged := *fc
	payload, _, _ := strings.Cut(fc.Value, ".")
	forged.Value = payload + "." + strings.Repeat("A", 43)
	for name, c := range map[string]*http.Cookie{"alice's": fc, "forged": &forged} {
		other.Client.Jar.SetCookies(mustURL(t, e.url("/")), []*http.Cookie{c})
		pg := other.Get(p.Location)
		if pg.Status != http.StatusOK || strings.Contains(pg.Text(), "carol is suspended.") {
			t.Errorf("%s flash cookie shown to another session: %d\n%s", name, pg.Status, pg.Text())
		}
		if c := cookieNamed(pg.Header, FlashCookieNameInsecure); c == nil || c.MaxAge >= 0 {
			t.Errorf("%s flash cookie not cleared: %+v", name, c)
		}
	}
	if got := alice.Follow(p).Text(); !strings.Contains(got, "carol is suspended.") {
		t.Errorf("alice does not see her message:\n%s", got)
	}
}

// TestSessionNeedsTheAdminHere checks that a session is good only on an
// instance whose admin check still accepts the admin token it was made
// with: an admin removed from the configuration, or whose token changed,
// is signed out there, and only there.
func TestSessionNeedsTheAdminHere(t *testing.T) {
	a := newEnv(t, false)
	rotated := newEnvWith(t, a.svc.Store(), a.clock, false, map[string]string{"alice-admin": "alice-new-token-0123456789abcdef", "bob": bobToken})
	removed := newEnvWith(t, a.svc.Store(), a.clock, false, map[string]string{"bob": bobToken})
	alice, bob := a.signedIn(), a.browser()
	if p := a.login(bob, bobToken); p.Status != http.StatusSeeOther {
		t.Fatalf("bob's login: %d", p.Status)
	}
	for name, e := range map[string]*env{"rotated": rotated, "removed": removed} {
		if p := bob.Get(e.url("/console/")); p.Status != http.StatusOK {
			t.Errorf("%s: bob's session refused: %d", name, p.Status)
		}
	}
	if p := alice.Get(removed.url("/console/")); p.Status != http.StatusSeeOther || p.Location != removed.url("/console/login") {
		t.Errorf("an instance without alice-admin accepts her session: %d → %q", p.Status, p.Location)
	}
	if p := alice.Get(rotated.url("/console/")); p.Status != http.StatusSeeOther {
		t.Errorf("an instance with another token for alice-admin accepts her session: %d", p.Status)
	}
	// Where her token is still good (an instance's own admin token file),
	// her session goes on.
	if p := alice.Get(a.url("/console/")); p.Status != http.StatusOK {
		t.Errorf("the session refused elsewhere no longer works where it was made: %d", p.Status)
	}
}
