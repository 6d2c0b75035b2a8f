package console

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/provider/steppage/steptest"
)

// checkHeaders checks the security headers every console answer carries,
// and that the page's style sheet carries the CSP's nonce.
func checkHeaders(t *testing.T, p *steptest.Page) {
	t.Helper()
	h := p.Header
	m := regexp.MustCompile(`^default-src 'none'; style-src 'nonce-([A-Za-z0-9_-]{22})'; img-src 'none'; script-src 'none'; ` +
		`form-action 'self'; frame-ancestors 'none'; base-uri 'none'$`).FindStringSubmatch(h.Get("Content-Security-Policy"))
	if m == nil {
		t.Errorf("%s: Content-Security-Policy %q", p.URL.Path, h.Get("Content-Security-Policy"))
	}
	for k, want := range map[string]string{
		"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", p.URL.Path, k, got, want)
		}
	}
	if strings.Contains(p.Body, "<html") {
		if m != nil && !strings.Contains(p.Body, `<style nonce="`+m[1]+`">`) {
			t.Errorf("%s: the style sheet does not carry the CSP's nonce", p.URL.Path)
		}
		for _, bad := range []string{"<script", " style=", " onclick=", " onload=", " onsubmit=", "javascript:"} {
			if strings.Contains(p.Body, bad) {
				t.Errorf("%s: the page holds %q", p.URL.Path, bad)
			}
		}
	}
}

func cookieNamed(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestLoginSessionLogout(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	// Signed out, every page leads to the login page.
	p := b.Get(e.url("/console/"))
	if p.Status != http.StatusSeeOther || p.Location != e.url("/console/login") {
		t.Fatalf("GET /console/ signed out: %d → %q", p.Status, p.Location)
	}
	checkHeaders(t, p)
	login := b.Get(e.url("/console/login"))
	checkHeaders(t, login)
	p = b.Submit(login.Form(t, "/console/login"), url.Values{"token": {aliceToken}})
	if p.Status != http.StatusSeeOther || p.Location != e.url("/console/") {
		t.Fatalf("login: %d → %q\n%s", p.Status, p.Location, p.Body)
	}
	c := cookieNamed(p.Header, CookieNameInsecure)
	if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure ||
		c.MaxAge != int(DefaultLifetime/time.Second) {
		t.Fatalf("session cookie %+v", c)
	}
	home := b.Follow(p)
	if home.Status != http.StatusOK || !strings.Contains(home.Text(), "admin: alice-admin") {
		t.Fatalf("overview: %d\n%s", home.Status, home.Text())
	}
	checkHeaders(t, home)
	if ev := e.lastEvent("console.login"); ev.Actor != "admin:alice-admin" {
		t.Errorf("login audited as %+v", ev)
	}
	// Logging in again replaces the session: the old cookie is dead.
	first := b.Client.Jar.Cookies(home.URL)
	for _, c := range first {
		c.Path = "/"
	}
	b2 := e.browser()
	form := b2.Get(e.url("/console/login")).Form(t, "/console/login")
	b2.Client.Jar.SetCookies(home.URL, first) // the signed-in browser, with a login form
	if p := b2.Submit(form, url.Values{"token": {aliceToken}}); p.Status != http.StatusSeeOther {
		t.Fatalf("second login: %d", p.Status)
	}
	stale := e.browser()
	stale.Client.Jar.SetCookies(home.URL, first)
	if p := stale.Get(e.url("/console/users")); p.Status != http.StatusSeeOther {
		t.Errorf("the replaced session still works: %d", p.Status)
	}
	b = b2
	home = b.Get(e.url("/console/"))
	// The session's cookie, kept aside, is dead after logout.
	old := b.Client.Jar.Cookies(home.URL)
	p = b.Submit(home.Form(t, "/console/logout"), nil)
	if p.Status != http.StatusSeeOther || p.Location != e.url("/console/login") {
		t.Fatalf("logout: %d → %q", p.Status, p.Location)
	}
	if ev := e.lastEvent("console.logout"); ev.Actor != "admin:alice-admin" {
		t.Errorf("logout audited as %+v", ev)
	}
	if p := b.Get(e.url("/console/users")); p.Status != http.StatusSeeOther {
		t.Errorf("after logout /console/users: %d", p.Status)
	}
	replay := e.browser()
	replay.Client.Jar.SetCookies(home.URL, old)
	if p := replay.Get(e.url("/console/users")); p.Status != http.StatusSeeOther || p.Location != e.url("/console/login") {
		t.Errorf("the logged-out session's cookie still works: %d", p.Status)
	}
}

func TestSecureCookie(t *testing.T) {
	e := newEnv(t, true)
	b := e.browser()
	login := b.Get(e.url("/console/login"))
	if c := cookieNamed(login.Header, LoginCookieNameSecure); c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login cookie %+v", c)
	}
	// Go's cookie jar sends Secure cookies to 127.0.0.1 only over https:
	// post the form with its cookie by hand.
	req, _ := http.NewRequest(http.MethodPost, e.url("/console/login"), strings.NewReader(url.Values{
		"csrf": {login.Form(t, "/console/login").Fields.Get("csrf")}, "token": {bobToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(cookieNamed(login.Header, LoginCookieNameSecure))
	p := e.browser().Do(req)
	c := cookieNamed(p.Header, CookieNameSecure)
	if p.Status != http.StatusSeeOther || c == nil || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("login: %d, cookie %+v", p.Status, c)
	}
	if ev := e.lastEvent("console.login"); ev.Actor != "admin:bob" {
		t.Errorf("login audited as %+v", ev)
	}
}

func TestWrongToken(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	for _, tok := range []string{"", "not-a-token", aliceToken + "x", " " + aliceToken[1:]} {
		p := e.login(b, tok)
		if p.Status != http.StatusUnauthorized || !strings.Contains(p.Text(), "not an admin token") {
			t.Errorf("token %q: %d\n%s", tok, p.Status, p.Text())
		}
		if cookieNamed(p.Header, CookieNameInsecure) != nil {
			t.Errorf("token %q: a session cookie was set", tok)
		}
		checkHeaders(t, p)
	}
	if p := b.Get(e.url("/console/")); p.Status != http.StatusSeeOther {
		t.Errorf("a wrong token made a session: %d", p.Status)
	}
	for _, ev := range e.audit() {
		if ev.Action == "console.login" {
			t.Errorf("a wrong token was audited as a login: %+v", ev)
		}
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	for i := range loginLimit {
		if p := e.login(b, "wrong-token-"+string(rune('a'+i))); p.Status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, p.Status)
		}
	}
	// Past the limit even the right token is refused: the limit is checked
	// before the token.
	p := e.login(b, aliceToken)
	if p.Status != http.StatusTooManyRequests || p.Header.Get("Retry-After") == "" || !strings.Contains(p.Text(), "Too many sign-in attempts") {
		t.Fatalf("over the limit: %d, Retry-After %q\n%s", p.Status, p.Header.Get("Retry-After"), p.Text())
	}
	if p := b.Get(e.url("/console/")); p.Status != http.StatusSeeOther {
		t.Errorf("signed in past the limit: %d", p.Status)
	}
	e.clock.Advance(loginWindow)
	if p := e.login(b, aliceToken); p.Status != http.StatusSeeOther {
		t.Fatalf("after the window: %d\n%s", p.Status, p.Text())
	}
}

func TestLoginCSRF(t *testing.T) {
	e := newEnv(t, false)
	b := e.browser()
	login := b.Get(e.url("/console/login"))
	f := login.Form(t, "/console/login")
	for name, set := range map[string]url.Values{
		"missing": {"token": {aliceToken}, "csrf": {""}},
		"wrong":   {"token": {aliceToken}, "csrf": {strings.Repeat("A", 43)}},
	} {
		if p := b.Submit(f, set); p.Status != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d", name, p.Status)
		}
	}
	// Without the login cookie (another browser), the form's token is worthless.
	if p := e.browser().Submit(f, url.Values{"token": {aliceToken}}); p.Status != http.StatusForbidden {
		t.Errorf("without the login cookie: %d", p.Status)
	}
	// A cross-site POST is refused before anything else.
	req, _ := http.NewRequest(http.MethodPost, e.url("/console/login"), strings.NewReader(url.Values{"token": {aliceToken}, "csrf": {f.Fields.Get("csrf")}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if p := b.Do(req); p.Status != http.StatusForbidden {
		t.Errorf("cross-site login: %d", p.Status)
	}
}

func TestPostCSRF(t *testing.T) {
	e := newEnv(t, false)
	a := e.addUser("carol")
	b := e.signedIn()
	page := b.Get(e.url("/console/users/" + a.ID))
	f := page.Form(t, "/suspend")
	post := func(fields url.Values, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, f.Action, strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return b.Do(req).Status
	}
	token := f.Fields.Get("csrf")
	for name, c := range map[string]struct {
		fields url.Values
		hdr    map[string]string
	}{
		"no token":       {url.Values{"reason": {"x"}}, nil},
		"empty token":    {url.Values{"reason": {"x"}, "csrf": {""}}, nil},
		"wrong token":    {url.Values{"reason": {"x"}, "csrf": {token[:42] + "A"}}, nil},
		"cross-site":     {url.Values{"reason": {"x"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"same-site":      {url.Values{"reason": {"x"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "same-site"}},
		"foreign Origin": {url.Values{"reason": {"x"}, "csrf": {token}}, map[string]string{"Origin": "https://evil.example"}},
	} {
		if status := post(c.fields, c.hdr); status != http.StatusForbidden {
			t.Errorf("%s: %d", name, status)
		}
	}
	if got := e.account(a.ID); got.State != flows.AccountActive {
		t.Fatalf("a refused POST changed the account: %s", got.State)
	}
	// Another admin's session has another token.
	other := e.browser()
	if p := e.login(other, bobToken); p.Status != http.StatusSeeOther {
		t.Fatal(p.Status)
	}
	if p := other.Submit(f, url.Values{"reason": {"x"}}); p.Status != http.StatusForbidden {
		t.Errorf("another session's token: %d", p.Status)
	}
	// The right one works.
	if status := post(url.Values{"reason": {"left"}, "csrf": {token}}, map[string]string{"Sec-Fetch-Site": "same-origin"}); status != http.StatusSeeOther {
		t.Fatalf("the right token: %d", status)
	}
	if got := e.account(a.ID); got.State != flows.AccountSuspended {
		t.Fatalf("state %s", got.State)
	}
}

func TestSecurityHeadersEverywhere(t *testing.T) {
	e := newEnv(t, false)
	a := e.addUser("carol")
	b := e.signedIn()
	for _, path := range []string{"/console/", "/console/users", "/console/users/" + a.ID, "/console/directory",
		"/console/audit", "/console/nope", "/console/users/nobody", "/console/login"} {
		checkHeaders(t, b.Get(e.url(path)))
	}
	// Forms, refusals and results carry them too.
	checkHeaders(t, b.Post(e.url("/console/users/"+a.ID+"/suspend"), url.Values{"reason": {"x"}}))
	checkHeaders(t, e.browser().Get(e.url("/console/users")))
}

func TestNonAdminReachesNothing(t *testing.T) {
	e := newEnv(t, false)
	a := e.addUser("carol")
	p := e.addDevice(a, "Pixel")
	gets := []string{"/console/", "/console/users", "/console/users?state=all", "/console/users/" + a.ID, "/console/users/carol",
		"/console/directory", "/console/audit", "/console/audit?account=carol", "/console/nope", "/console/users/" + a.ID + "/devices"}
	posts := []string{"/console/logout", "/console/users/" + a.ID + "/suspend", "/console/users/" + a.ID + "/restore",
		"/console/users/" + a.ID + "/remove", "/console/users/" + a.ID + "/invite", "/console/users/" + a.ID + "/override",
		"/console/users/" + a.ID + "/unlock", "/console/users/" + a.ID + "/devices/" + p.dev.ID + "/unregister",
		"/console/directory/corp/sync"}
	clients := map[string]*steptest.Browser{"no cookie": e.browser()}
	// A forged cookie, and the admin API's bearer token, are no way in.
	forged := e.browser()
	forged.Client.Jar.SetCookies(mustURL(t, e.url("/")), []*http.Cookie{{Name: CookieNameInsecure, Value: "MTcwMDAwMDAwMHxmb3JnZWR8"}})
	clients["forged cookie"] = forged
	for name, b := range clients {
		for _, path := range gets {
			for _, bearer := range []bool{false, true} {
				req, _ := http.NewRequest(http.MethodGet, e.url(path), nil)
				if bearer {
					req.Header.Set("Authorization", "Bearer "+aliceToken)
				}
				pg := b.Do(req)
				if pg.Status != http.StatusSeeOther || pg.Location != e.url("/console/login") || strings.Contains(pg.Body, "carol") {
					t.Errorf("%s: GET %s (bearer %v): %d → %q", name, path, bearer, pg.Status, pg.Location)
				}
			}
		}
		for _, path := range posts {
			pg := b.Post(e.url(path), url.Values{"reason": {"x"}, "csrf": {strings.Repeat("A", 43)}, "confirm": {"carol"}})
			if pg.Status != http.StatusForbidden {
				t.Errorf("%s: POST %s: %d", name, path, pg.Status)
			}
		}
	}
	if got := e.account(a.ID); got.State != flows.AccountActive {
		t.Errorf("account %s", got.State)
	}
	for _, ev := range e.audit() {
		if strings.HasPrefix(ev.Actor, "admin:") && ev.Actor != "admin:setup" {
			t.Errorf("a signed-out request was audited: %+v", ev)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSessionTimeouts(t *testing.T) {
	e := newEnv(t, false)
	b := e.signedIn()
	e.clock.Advance(DefaultIdleTimeout - time.Second)
	if p := b.Get(e.url("/console/users")); p.Status != http.StatusOK {
		t.Fatalf("within the idle timeout: %d", p.Status)
	}
	e.clock.Advance(DefaultIdleTimeout)
	if p := b.Get(e.url("/console/users")); p.Status != http.StatusSeeOther {
		t.Fatalf("past the idle timeout: %d", p.Status)
	}
	// A session in use still ends at its lifetime.
	b = e.signedIn()
	for elapsed := time.Duration(0); elapsed < DefaultLifetime-10*time.Minute; elapsed += 10 * time.Minute {
		e.clock.Advance(10 * time.Minute)
		if p := b.Get(e.url("/console/users")); p.Status != http.StatusOK {
			t.Fatalf("after %s in use: %d", elapsed+10*time.Minute, p.Status)
		}
	}
	e.clock.Advance(10 * time.Minute)
	if p := b.Get(e.url("/console/users")); p.Status != http.StatusSeeOther {
		t.Fatalf("past the lifetime: %d", p.Status)
	}
}

func TestUsersListAndFilter(t *testing.T) {
	e := newEnv(t, false)
	carol := e.addUser("carol")
	dave := e.addUser("dave")
	erin := e.addUser("erin")
	if err := e.svc.Store().PutDirectoryLink(e.ctx, flows.DirectoryLink{Source: "corp", ExternalID: "e-1", AccountID: dave.ID, DN: "uid=dave,dc=example", UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SuspendAccount(e.ctx, "admin:setup", erin.ID, flows.SourceAdmin, "on leave"); err != nil {
		t.Fatal(err)
	}
	b := e.signedIn()
	rows := func(p *steptest.Page) []string {
		var out []string
		for _, m := range regexp.MustCompile(`<tr data-user="([^"]+)">`).FindAllStringSubmatch(p.Body, -1) {
			out = append(out, m[1])
		}
		return out
	}
	p := b.Get(e.url("/console/users"))
	if got := strings.Join(rows(p), ","); got != "carol,dave,erin" {
		t.Errorf("users: %s", got)
	}
	text := p.Text()
	for _, want := range []string{"dave Dave dave@example.com active directory: corp", "carol Carol carol@example.com active admin", "erin Erin erin@example.com suspended admin admin: on leave"} {
		if !strings.Contains(text, want) {
			t.Errorf("the list lacks %q:\n%s", want, text)
		}
	}
	for q, want := range map[string]string{
		"state=suspended": "erin", "state=active": "carol,dave", "q=DAV": "dave", "q=" + carol.ID: "carol", "q=nobody": "",
	} {
		if got := strings.Join(rows(b.Get(e.url("/console/users?"+q))), ","); got != want {
			t.Errorf("%s: %q, want %q", q, got, want)
		}
	}
	if p := b.Get(e.url("/console/users?state=bogus")); p.Status != http.StatusBadRequest {
		t.Errorf("bad state: %d", p.Status)
	}
	if p := b.Get(e.url("/console/users/" + dave.ID)); !strings.Contains(p.Text(), "Source directory: corp") {
		t.Errorf("dave's page:\n%s", p.Text())
	}
}

func TestUserActions(t *testing.T) {
	e := newEnv(t, false)
	a := e.addUser("carol")
	ph := e.addDevice(a, "Carol's Pixel")
	b := e.signedIn()
	page := func() *steptest.Page {
		t.Helper()
		p := b.Get(e.url("/console/users/" + a.ID))
		if p.Status != http.StatusOK {
			t.Fatalf("user page: %d", p.Status)
		}
		return p
	}
	submit := func(suffix string, set url.Values) *steptest.Page {
		t.Helper()
		p := b.Submit(page().Form(t, suffix), set)
		checkHeaders(t, p)
		return p
	}
	back := func(p *steptest.Page, flash string) {
		t.Helper()
		if p.Status != http.StatusSeeOther || p.Location != e.url("/console/users/"+a.ID) {
			t.Fatalf("%d → %q\n%s", p.Status, p.Location, p.Text())
		}
		if got := b.Follow(p).Text(); !strings.Contains(got, flash) {
			t.Errorf("the page does not say %q:\n%s", flash, got)
		}
	}
	audited := func(action, detail string) flows.AuditEvent {
		t.Helper()
		ev := e.lastEvent(action)
		if ev.Actor != "admin:alice-admin" || ev.AccountID != a.ID || !strings.Contains(ev.Detail, detail) {
			t.Errorf("%s audited as %+v", action, ev)
		}
		return ev
	}

	// Suspend needs a reason.
	back(submit("/suspend", url.Values{"reason": {"  "}}), "Give a reason")
	if e.account(a.ID).State != flows.AccountActive {
		t.Fatal("suspended without a reason")
	}
	back(submit("/suspend", url.Values{"reason": {"laptop stolen"}}), "carol is suspended.")
	if got := e.account(a.ID); got.State != flows.AccountSuspended || got.StateReason != "laptop stolen" || got.StateSource != flows.SourceAdmin {
		t.Fatalf("after suspend: %+v", got)
	}
	audited(flows.AuditAccountSuspended, "laptop stolen")
	if _, ok := page().FindForm("/override"); ok {
		t.Error("a suspended account offers an override code")
	}

	back(submit("/restore", url.Values{"reason": {"laptop found"}}), "carol is restored.")
	if got := e.account(a.ID); got.State != flows.AccountActive {
		t.Fatalf("after restore: %s", got.State)
	}
	audited(flows.AuditAccountRestored, "laptop found")

	// Override code: shown once, works once.
	p := submit("/override", url.Values{"reason": {"phone at home"}, "ttl": {"1h"}})
	if p.Status != http.StatusOK {
		t.Fatalf("override: %d\n%s", p.Status, p.Text())
	}
	code := regexp.MustCompile(`id="override-code">([^<]+)<`).FindStringSubmatch(p.Body)
	if code == nil || !strings.Contains(p.Text(), "Shown once") {
		t.Fatalf("no code shown:\n%s", p.Body)
	}
	oc := audited(flows.AuditOverrideIssued, "phone at home")
	if strings.Contains(oc.Detail, code[1]) || strings.Contains(page().Body, code[1]) {
		t.Error("the code is shown again")
	}
	ch, err := e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: a.ID, Client: "Payroll", Methods: []flows.Method{flows.MethodOverride}, Actor: "client:payroll"})
	if err != nil {
		t.Fatal(err)
	}
	if sgn, err := e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: ch.SignIn.ID, Code: code[1]}); err != nil || sgn.Status != flows.StatusApproved {
		t.Fatalf("the override code: %v %+v", err, sgn)
	}
	if p := submit("/override", url.Values{"reason": {"x"}, "ttl": {"3y"}}); p.Status != http.StatusBadRequest {
		t.Errorf("bad ttl: %d", p.Status)
	}

	// Invitation: link and QR, once.
	p = submit("/invite", nil)
	link := regexp.MustCompile(`id="invite-link">([^<]+)<`).FindStringSubmatch(p.Body)
	if p.Status != http.StatusOK || link == nil || !strings.HasPrefix(link[1], "keystep://enroll?") ||
		!regexp.MustCompile(`<svg viewBox="0 0 \d+ \d+"[^>]*><path d="M`).MatchString(p.Body) {
		t.Fatalf("invite: %d\n%s", p.Status, p.Body)
	}
	audited(flows.AuditInvitationCreated, "")

	// Unlock codes, once a wrong code locked them.
	if _, _, err := e.svc.Store().RecordCodeFailure(e.ctx, a.ID, e.clock.Now(), 1, time.Hour); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page().Text(), "Codes locked until") {
		t.Errorf("the lock is not shown:\n%s", page().Text())
	}
	back(submit("/unlock", nil), "Unlocked the codes of carol.")
	audited(flows.AuditCodesUnlocked, "")

	// Unregister a device: a reason is required.
	unreg := "/devices/" + ph.dev.ID + "/unregister"
	back(submit(unreg, url.Values{"reason": {""}}), "Give a reason")
	back(submit(unreg, url.Values{"reason": {"phone lost"}}), "Unregistered the device Carol's Pixel.")
	_, ds, err := e.svc.ListDevices(e.ctx, a.ID)
	if err != nil || len(ds) != 1 || ds[0].State != flows.DeviceUnregistered || ds[0].UnregisterReason != "phone lost" {
		t.Fatalf("devices: %v %+v", err, ds)
	}
	if ev := e.lastEvent(flows.AuditDeviceUnregistered); ev.Actor != "admin:alice-admin" || ev.DeviceID != ph.dev.ID {
		t.Errorf("unregister audited as %+v", ev)
	}

	// Remove needs the username typed.
	back(submit("/remove", url.Values{"reason": {"left"}, "confirm": {"caro"}}), "type the username to confirm")
	if e.account(a.ID).State != flows.AccountActive {
		t.Fatal("removed without confirmation")
	}
	back(submit("/remove", url.Values{"reason": {"left the company"}, "confirm": {"carol"}}), "carol is removed.")
	if got := e.account(a.ID); got.State != flows.AccountRemoved {
		t.Fatalf("after remove: %s", got.State)
	}
	audited(flows.AuditAccountRemoved, "left the company")
	if _, ok := page().FindForm("/suspend"); ok {
		t.Error("a removed account offers actions")
	}

	// An unknown action, user or device changes nothing.
	if p := b.Post(e.url("/console/users/"+a.ID+"/explode"), url.Values{"csrf": {csrf(t, page())}}); p.Status != http.StatusNotFound {
		t.Errorf("unknown action: %d", p.Status)
	}
	if p := b.Post(e.url("/console/users/nobody/suspend"), url.Values{"csrf": {csrf(t, page())}, "reason": {"x"}}); p.Status != http.StatusNotFound {
		t.Errorf("unknown user: %d", p.Status)
	}
}

func TestActionOnSuspendedIsRefusedClearly(t *testing.T) {
	e := newEnv(t, false)
	a := e.addUser("carol")
	b := e.signedIn()
	p := b.Get(e.url("/console/users/" + a.ID))
	f := p.Form(t, "/override")
	if _, err := e.svc.SuspendAccount(e.ctx, "admin:bob", a.ID, flows.SourceAdmin, "meanwhile"); err != nil {
		t.Fatal(err)
	}
	r := b.Submit(f, url.Values{"reason": {"x"}})
	if r.Status != http.StatusSeeOther {
		t.Fatalf("%d", r.Status)
	}
	if got := b.Follow(r).Text(); !strings.Contains(got, "Could not issue an override code: carol is suspended.") {
		t.Errorf("page:\n%s", got)
	}
}

func TestDirectoryPage(t *testing.T) {
	e := newEnv(t, false)
	b := e.signedIn()
	if p := b.Get(e.url("/console/directory")); !strings.Contains(p.Text(), "corp never") || !strings.Contains(p.Text(), "No full sync has run yet") {
		t.Errorf("before any sync:\n%s", p.Text())
	}
	started := e.clock.Now().Add(-time.Hour)
	e.setCorpStatus(directory.Status{Source: "corp", Health: "ok", Mode: "syncrepl", Server: "ldaps://dc1.example",
		LastFull: &directory.RunReport{Run: "r1", Kind: "full", Started: started, Finished: started.Add(2 * time.Second),
			Entries: 1234, Unchanged: 1200, Created: 20, Updated: 7, Suspended: 4, Restored: 2, Removed: 1, Conflicts: 0, Failed: 0}})
	p := b.Get(e.url("/console/directory"))
	for _, want := range []string{"corp ok", "syncrepl", "full 2026-11-27 08:30:00 UTC 2026-11-27 08:30:02 UTC 1234 1200 20 7 4 2 1 0 0 0"} {
		if !strings.Contains(p.Text(), want) {
			t.Errorf("the page lacks %q:\n%s", want, p.Text())
		}
	}
	r := b.Submit(p.Form(t, "/console/directory/corp/sync"), nil)
	if r.Status != http.StatusSeeOther || !strings.Contains(b.Follow(r).Text(), "Asked corp for a full sync now") {
		t.Fatalf("sync now: %d", r.Status)
	}
	if ev := e.lastEvent("directory.sync_requested"); ev.Actor != "admin:alice-admin" || !strings.HasPrefix(ev.Detail, "corp:") {
		t.Errorf("sync audited as %+v", ev)
	}
	if r := b.Post(e.url("/console/directory/nope/sync"), url.Values{"csrf": {csrf(t, p)}}); r.Status != http.StatusNotFound {
		t.Errorf("unknown source: %d", r.Status)
	}
	if home := b.Get(e.url("/console/")); !strings.Contains(home.Text(), "corp ok 2026-11-27 08:30:02 UTC") {
		t.Errorf("overview:\n%s", home.Text())
	}
}

func TestAuditFilters(t *testing.T) {
	e := newEnv(t, false)
	carol := e.addUser("carol")
	dave := e.addUser("dave")
	pc, pd := e.addDevice(carol, "c"), e.addDevice(dave, "d")
	e.signIn(carol, pc, "approve")
	e.clock.Advance(time.Hour)
	e.signIn(dave, pd, "report")
	e.clock.Advance(time.Hour)
	e.signIn(carol, pc, "deny")
	b := e.signedIn()
	actions := func(p *steptest.Page) string {
		var out []string
		for _, m := range regexp.MustCompile(`(?s)<td>(?:<span class="badge-fraud">FRAUD</span> )?([a-z_]+\.[a-z_.]+)</td>`).FindAllStringSubmatch(p.Body, -1) {
			out = append(out, m[1])
		}
		return strings.Join(out, ",")
	}
	p := b.Get(e.url("/console/audit?action=signin."))
	if got := actions(p); got != "signin.denied,signin.started,signin.fraud_reported,signin.started,signin.approved,signin.started" {
		t.Errorf("signin.: %s", got)
	}
	if !strings.Contains(p.Body, `<tr class="fraud">`) || !strings.Contains(p.Text(), "1 fraud report") {
		t.Errorf("the fraud report is not highlighted:\n%s", p.Body)
	}
	for q, want := range map[string]string{
		"account=carol&action=signin.denied":                       "signin.denied",
		"account=" + dave.ID:                                       "signin.fraud_reported,signin.started,account.created",
		"action=signin.approved&account=dave":                      "",
		"from=2026-11-27T10:00&to=2026-11-27T11:00&action=signin.": "signin.fraud_reported,signin.started",
		"from=2026-11-27T11:00&action=account.created":             "",
		"action=account.created":                                   "account.created,account.created",
	} {
		if got := actions(b.Get(e.url("/console/audit?" + q))); got != want {
			t.Errorf("%s: %q, want %q", q, got, want)
		}
	}
	for _, q := range []string{"from=yesterday", "account=nobody", "to=2026-13-01T00:00"} {
		if p := b.Get(e.url("/console/audit?" + q)); p.Status != http.StatusBadRequest || !strings.Contains(p.Body, `role="alert"`) {
			t.Errorf("%s: %d", q, p.Status)
		}
	}
}

func TestScanAuditPages(t *testing.T) {
	e := newEnv(t, false)
	for i := range 2*auditPage + 17 {
		if err := e.svc.RecordEvent(e.ctx, "test", "test.event", string(rune('a'+i%26))); err != nil {
			t.Fatal(err)
		}
	}
	top := int64(2*auditPage + 17)
	evs, more, err := e.con.scanAudit(e.ctx, auditQuery{Action: "test.event", Max: 1500})
	if err != nil || len(evs) != 1500 || !more || evs[0].Seq != top || evs[1499].Seq != top-1499 {
		t.Fatalf("scan: %d events, more %v, %v", len(evs), more, err)
	}
	evs, more, err = e.con.scanAudit(e.ctx, auditQuery{Max: 5000})
	if err != nil || len(evs) != int(top) || more || evs[len(evs)-1].Seq != 1 {
		t.Fatalf("scan all: %d, %v, %v", len(evs), more, err)
	}
	empty := newEnv(t, false)
	if evs, more, err := empty.con.scanAudit(empty.ctx, auditQuery{Max: 10}); err != nil || len(evs) != 0 || more {
		t.Fatalf("empty log: %d, %v, %v", len(evs), more, err)
	}
}

func TestSignInChart(t *testing.T) {
	e := newEnvAt(t, false, time.Date(2026, 11, 26, 9, 10, 0, 0, time.UTC))
	carol := e.addUser("carol")
	ph := e.addDevice(carol, "c")
	e.signIn(carol, ph, "approve") // more than 24 hours before the chart's end: left out
	e.clock.Advance(2 * time.Hour) // 11:10 the day before
	e.signIn(carol, ph, "approve")
	e.signIn(carol, ph, "approve")
	e.signIn(carol, ph, "deny")
	e.clock.Advance(20 * time.Hour) // 07:10
	e.signIn(carol, ph, "report")
	e.signIn(carol, ph, "cancel")
	e.clock.Advance(2 * time.Hour) // 09:10, the last hour
	e.signIn(carol, ph, "approve")
	ch, err := e.con.signInChart(e.ctx, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC); !ch.Start.Equal(want) {
		t.Errorf("start %s, want %s", ch.Start, want)
	}
	if ch.Totals != [numOutcomes]int{3, 1, 1, 0, 1} || ch.Total != 6 {
		t.Errorf("totals %v (%d)", ch.Totals, ch.Total)
	}
	if h := ch.Hours[1]; h.Hour != "11:00–12:00" || h.Counts != [numOutcomes]int{2, 1, 0, 0, 0} {
		t.Errorf("hour 1: %+v", h)
	}
	if h := ch.Hours[21]; h.Counts != [numOutcomes]int{0, 0, 1, 0, 1} {
		t.Errorf("hour 21: %+v", h)
	}
	if h := ch.Hours[23]; h.Hour != "09:00–10:00" || h.Counts[outcomeApproved] != 1 {
		t.Errorf("hour 23: %+v", h)
	}
	if len(ch.Bars) != 5 {
		t.Errorf("%d bars", len(ch.Bars))
	}
	for _, bar := range ch.Bars {
		if bar.Y < chartTop || bar.Y+bar.H != chartBase && bar.Y+bar.H > chartBase {
			t.Errorf("bar out of the plot: %+v", bar)
		}
	}
	b := e.signedIn()
	p := b.Get(e.url("/console/"))
	if !strings.Contains(p.Body, `<svg class="chart" id="signin-chart"`) || strings.Count(p.Body, "<rect ") != 5 ||
		!strings.Contains(p.Body, "<title>11:00–12:00: 2 approved</title>") || !strings.Contains(p.Text(), "reported as fraud (1)") {
		t.Errorf("overview:\n%s", p.Body)
	}
	if !strings.Contains(p.Body, `id="fraud-count">1<`) {
		t.Errorf("the fraud count is not shown")
	}
}

func TestNiceCeil(t *testing.T) {
	for n, want := range map[int]int{0: 4, 1: 4, 4: 4, 5: 8, 9: 20, 21: 40, 41: 80, 81: 200, 1999: 2000, 2001: 4000} {
		if got := niceCeil(n); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", n, got, want)
		}
	}
}
