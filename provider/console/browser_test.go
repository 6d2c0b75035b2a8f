package console

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
)

// The browser harness follows integration/browser_helpers_test.go: the
// real Chromium of the Debian package, a tab that records its console and
// its navigations, waits that end on what the browser reports, and
// screenshots in $KEYSTEP_TEST_ARTIFACTS.

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// browserWait bounds each wait on the browser: a hang guard, never a
// synchronisation.
const browserWait = 30 * time.Second

// startChromium starts a headless Chromium for the test. Without it the
// test fails: it never skips.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	if fi, err := os.Stat(chromiumPath); err != nil || fi.IsDir() {
		t.Fatalf("the console's browser tests need Chromium at %s: install the Debian package chromium (%v)", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	return ctx
}

// tab is one browser tab in a fresh browser context; it records console
// messages and main-frame navigations. A Content Security Policy message
// in its console fails the test.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []string
	csp     []string
	navs    []string
	changed chan struct{}
}

func openTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	tb := &tab{t: t, ctx: ctx, changed: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		tb.mu.Lock()
		defer tb.mu.Unlock()
		if len(tb.csp) > 0 {
			t.Errorf("Content Security Policy violations in the console:\n%s", strings.Join(tb.csp, "\n"))
		}
		if t.Failed() {
			t.Logf("browser console:\n%s\nnavigations: %q", strings.Join(tb.console, "\n"), tb.navs)
		}
	})
	if err := chromedp.Listen(ctx, tb.event); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	return tb
}

// event records one event; it runs on the tab's reading goroutine.
func (tb *tab) event(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *log.EventEntryAdded:
		msg = fmt.Sprintf("%s (%s): %s [%s]", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	case *runtime.EventConsoleAPICalled:
		msg = fmt.Sprintf("console.%s", ev.Type)
		for _, a := range ev.Args {
			msg += " " + a.Description + strings.Trim(string(a.Value), `"`)
		}
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
	case *page.EventFrameNavigated:
		if ev.Frame.ParentID != "" {
			return
		}
		tb.mu.Lock()
		tb.navs = append(tb.navs, ev.Frame.URL)
		tb.signal()
		tb.mu.Unlock()
		return
	default:
		return
	}
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.console = append(tb.console, msg)
	if strings.Contains(msg, "Content Security Policy") || strings.Contains(msg, "Content-Security-Policy") {
		tb.csp = append(tb.csp, msg)
	}
	tb.signal()
}

// signal wakes the waiters; tb.mu is held.
func (tb *tab) signal() {
	close(tb.changed)
	tb.changed = make(chan struct{})
}

// do runs actions on the tab within browserWait.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates a JavaScript expression in the page (DevTools only: the
// pages themselves run no script).
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("browser: %s: %v", expr, err)
	}
	return v
}

// mark is the number of navigations so far.
func (tb *tab) mark() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.navs)
}

// waitNavigation waits for a main-frame navigation after the from'th to a
// URL that starts with prefix.
func (tb *tab) waitNavigation(from int, prefix string) string {
	tb.t.Helper()
	guard := time.NewTimer(browserWait)
	defer guard.Stop()
	for {
		tb.mu.Lock()
		for _, u := range tb.navs[from:] {
			if strings.HasPrefix(u, prefix) {
				tb.mu.Unlock()
				return u
			}
		}
		navs := append([]string(nil), tb.navs[from:]...)
		ch := tb.changed
		tb.mu.Unlock()
		select {
		case <-ch:
		case <-guard.C:
			tb.t.Fatalf("the tab did not go to %s; it went to %q", prefix, navs)
		}
	}
}

// waitLoaded waits for the current document to finish loading and for
// its h1 to hold heading. A document that goes away while polled (the
// navigation was still landing) is polled again in the next one, once the
// browser reports something new.
func (tb *tab) waitLoaded(heading string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	expr := fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector("h1") && document.querySelector("h1").textContent.includes(%q)`, heading)
	for {
		tb.mu.Lock()
		changed := tb.changed
		tb.mu.Unlock()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingInterval(20*time.Millisecond)))
		if err == nil {
			return
		}
		if ctx.Err() != nil {
			tb.t.Fatalf("waited for a page headed %q: %v (navigations %q)", heading, err, tb.navs)
		}
		retry := time.NewTimer(100 * time.Millisecond)
		select {
		case <-changed:
		case <-retry.C:
		case <-ctx.Done():
		}
		retry.Stop()
	}
}

// goTo loads a URL and waits for its page.
func (tb *tab) goTo(u, heading string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(u))
	tb.waitLoaded(heading)
}

// click clicks sel and waits for the page it leads to (at a URL that
// starts with prefix, headed heading).
func (tb *tab) click(sel, prefix, heading string) {
	tb.t.Helper()
	from := tb.mark()
	tb.do(chromedp.Click(chromedp.CSS(sel)))
	tb.waitNavigation(from, prefix)
	tb.waitLoaded(heading)
}

// typeIn sets a text field's value by typing it.
func (tb *tab) typeIn(sel, text string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// screenshot saves a full-page PNG as name in the artifacts directory.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("KEYSTEP_TEST_ARTIFACTS")
	if dir == "" {
		dir = "artifacts" // go test runs in the package's directory
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
}

// TestConsoleInChromium drives the console in a real headless Chromium:
// sign in with an admin token, look at the chart, browse and search the
// users, suspend and restore one, issue an override code, invite, look at
// the directory and the audit log (the fraud report highlighted), sign
// out. The pages' styles apply under the CSP, and no CSP message shows in
// the console. Screenshots: $KEYSTEP_TEST_ARTIFACTS/console-*.png.
func TestConsoleInChromium(t *testing.T) {
	browser := startChromium(t)
	e := newEnvAt(t, true, time.Date(2026, 11, 27, 9, 40, 0, 0, time.UTC))
	e.clock.Advance(-23 * time.Hour)
	users := map[string]flows.Account{}
	phones := map[string]phone{}
	for _, n := range []string{"carol", "dave", "erin", "frank", "grace"} {
		users[n] = e.addUser(n)
		phones[n] = e.addDevice(users[n], n+"'s phone")
	}
	if err := e.svc.Store().PutDirectoryLink(e.ctx, flows.DirectoryLink{Source: "corp", ExternalID: "x-dave", AccountID: users["dave"].ID, DN: "uid=dave,dc=example", UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	// A day of sign-ins: busy mornings, a few denials, one fraud report.
	for h := range 23 {
		for i, n := range []string{"carol", "dave", "erin", "frank", "grace"} {
			if (h+i)%4 == 0 {
				continue
			}
			outcome := "approve"
			switch {
			case h == 17 && n == "erin":
				outcome = "report"
			case (h*7+i)%11 == 0:
				outcome = "deny"
			case (h*5+i)%13 == 0:
				outcome = "cancel"
			}
			e.signIn(users[n], phones[n], outcome)
		}
		e.clock.Advance(time.Hour)
	}
	if _, err := e.svc.SuspendAccount(e.ctx, "directory:corp", users["frank"].ID, flows.SourceDirectory, "disabled in the directory"); err != nil {
		t.Fatal(err)
	}
	started := e.clock.Now().Add(-20 * time.Minute)
	e.setCorpStatus(directory.Status{Source: "corp", Health: "ok", Mode: "syncrepl", Server: "ldaps://dc1.example",
		LastFull: &directory.RunReport{Run: "r1", Kind: "full", Started: started, Finished: started.Add(3 * time.Second),
			Entries: 5, Unchanged: 3, Created: 1, Suspended: 1}})

	tb := openTab(t, browser)
	base := e.ts.URL

	// Signed out, the console leads to its login page.
	from := tb.mark()
	tb.do(chromedp.Navigate(base + "/console/users"))
	tb.waitNavigation(from, base+"/console/login")
	tb.waitLoaded("Sign in to the console")
	// The nonce'd style sheet applies: the CSP lets it in.
	if bg := eval[string](tb, `getComputedStyle(document.querySelector("header")).backgroundColor`); bg != "rgb(23, 32, 54)" {
		t.Errorf("the style sheet did not apply: header background %q", bg)
	}
	tb.typeIn("#token", "a-wrong-token-0123456789")
	tb.click("form[action='/console/login'] button[type=submit]", base+"/console/login", "Sign in to the console")
	if msg := eval[string](tb, `document.querySelector("[role=alert]").textContent`); !strings.Contains(msg, "not an admin token") {
		t.Errorf("wrong token: %q", msg)
	}
	tb.screenshot("console-login.png")
	tb.typeIn("#token", aliceToken)
	tb.click("form[action='/console/login'] button[type=submit]", base+"/console/", "Overview")

	// The chart: bars in the SVG, and the fraud report counted.
	if n := eval[int](tb, `document.querySelectorAll("#signin-chart rect").length`); n < 23 {
		t.Errorf("the chart has %d bars", n)
	}
	if n := eval[int](tb, `document.querySelectorAll("#signin-chart rect.o-fraud").length`); n != 1 {
		t.Errorf("the chart has %d fraud bars", n)
	}
	if fill := eval[string](tb, `getComputedStyle(document.querySelector("#signin-chart rect.o-approved")).fill`); fill != "rgb(18, 183, 106)" {
		t.Errorf("approved bars are filled %q", fill)
	}
	if w := eval[float64](tb, `document.querySelector("#signin-chart").getBoundingClientRect().width`); w < 500 {
		t.Errorf("the chart is %v px wide", w)
	}
	if got := eval[string](tb, `document.querySelector("#fraud-count").textContent`); got != "1" {
		t.Errorf("fraud count %q", got)
	}
	tb.screenshot("console-overview.png")

	// Users: the list, then a search.
	tb.click(`header nav a[href="/console/users"]`, base+"/console/users", "Users")
	if got := eval[[]string](tb, `[...document.querySelectorAll("#users tbody tr[data-user]")].map(r => r.dataset.user)`); strings.Join(got, ",") != "carol,dave,erin,frank,grace" {
		t.Errorf("users %q", got)
	}
	tb.screenshot("console-users.png")
	tb.do(chromedp.SetValue(chromedp.CSS("#state"), "suspended"))
	tb.click(`form[action="/console/users"] button[type=submit]`, base+"/console/users?", "Users")
	if got := eval[[]string](tb, `[...document.querySelectorAll("#users tbody tr[data-user]")].map(r => r.dataset.user)`); strings.Join(got, ",") != "frank" {
		t.Errorf("suspended users %q", got)
	}
	tb.goTo(base+"/console/users?q=car", "Users")
	tb.click(`#users a`, base+"/console/users/"+users["carol"].ID, "carol")

	// Suspend and restore carol.
	tb.typeIn("#suspend-reason", "laptop stolen")
	tb.click("#suspend button[type=submit]", base+"/console/users/"+users["carol"].ID, "carol")
	if got := eval[string](tb, `document.querySelector("#user-state").textContent`); got != "suspended" {
		t.Errorf("after suspend the page says %q", got)
	}
	if a := e.account(users["carol"].ID); a.State != flows.AccountSuspended {
		t.Fatalf("carol is %s", a.State)
	}
	tb.screenshot("console-user-suspended.png")
	tb.typeIn("#restore-reason", "laptop found")
	tb.click("#restore button[type=submit]", base+"/console/users/"+users["carol"].ID, "carol")
	if a := e.account(users["carol"].ID); a.State != flows.AccountActive {
		t.Fatalf("carol is %s", a.State)
	}
	if ev := e.lastEvent(flows.AuditAccountRestored); ev.Actor != "admin:alice-admin" || ev.Detail != "laptop found" {
		t.Errorf("restore audited as %+v", ev)
	}

	// An override code, shown once.
	tb.typeIn("#override-reason", "phone at home")
	tb.click("#override button[type=submit]", base+"/console/users/"+users["carol"].ID+"/override", "Override code for carol")
	code := eval[string](tb, `document.querySelector("#override-code").textContent`)
	ch, err := e.svc.Begin(e.ctx, flows.BeginRequest{AccountID: users["carol"].ID, Client: "Payroll", Methods: []flows.Method{flows.MethodOverride}, Actor: "client:payroll"})
	if err != nil {
		t.Fatal(err)
	}
	if sgn, err := e.svc.SubmitCode(e.ctx, flows.SubmitCodeRequest{SignInID: ch.SignIn.ID, Code: code}); err != nil || sgn.Status != flows.StatusApproved {
		t.Errorf("the code %q shown does not sign in: %v", code, err)
	}
	tb.screenshot("console-override.png")

	// An invitation, with its QR code drawn inline.
	tb.goTo(base+"/console/users/"+users["grace"].ID, "grace")
	tb.click("#invite button[type=submit]", base+"/console/users/"+users["grace"].ID+"/invite", "Invitation for grace")
	if w := eval[float64](tb, `document.querySelector("#invite-qr svg").getBoundingClientRect().width`); w < 200 {
		t.Errorf("the QR code is %v px wide", w)
	}
	tb.screenshot("console-invite.png")

	// The directory.
	tb.click(`header nav a[href="/console/directory"]`, base+"/console/directory", "Directory")
	tb.click(`form[action="/console/directory/corp/sync"] button`, base+"/console/directory", "Directory")
	if msg := eval[string](tb, `document.querySelector(".flash").textContent`); !strings.Contains(msg, "Asked corp for a full sync") {
		t.Errorf("sync now: %q", msg)
	}
	tb.screenshot("console-directory.png")

	// The audit log: filtered to sign-ins, the fraud report stands out.
	tb.click(`header nav a[href="/console/audit"]`, base+"/console/audit", "Audit log")
	tb.typeIn("#action", "signin.")
	tb.do(chromedp.SetValue(chromedp.CSS("#from"), "2026-11-27T02:00"), chromedp.SetValue(chromedp.CSS("#to"), "2026-11-27T05:00"))
	tb.click(`form[action="/console/audit"] button[type=submit]`, base+"/console/audit?", "Audit log")
	if n := eval[int](tb, `document.querySelectorAll("table.events tr.fraud").length`); n != 1 {
		t.Errorf("%d fraud rows highlighted", n)
	}
	if bg := eval[string](tb, `getComputedStyle(document.querySelector("tr.fraud td")).backgroundColor`); bg != "rgb(255, 241, 240)" {
		t.Errorf("the fraud row's background is %q", bg)
	}
	tb.screenshot("console-audit.png")
	tb.goTo(base+"/console/audit?account=carol", "Audit log")
	if got := eval[string](tb, `document.querySelector("table.events tbody tr td:nth-child(3)").textContent`); got != flows.AuditSignInApproved {
		t.Errorf("carol's newest event: %q", got)
	}

	// Sign out: the console is closed again.
	tb.click("#logout", base+"/console/login", "Sign in to the console")
	from = tb.mark()
	tb.do(chromedp.Navigate(base + "/console/users"))
	tb.waitNavigation(from, base+"/console/login")
	tb.waitLoaded("Sign in to the console")
}
