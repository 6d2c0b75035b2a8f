package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keystep/keystep/directory"
	"github.com/keystep/keystep/flows"
	"github.com/keystep/keystep/internal/browsertest"
)

// The browser harness is internal/browsertest, as in the integration
// tests: the real Chromium of the Debian package, a tab that records its
// console and its navigations, waits that end on what the browser reports,
// and screenshots in $KEYSTEP_TEST_ARTIFACTS.

// tab is one browser tab in a fresh browser context (a browsertest.Tab),
// with the console tests' own steps. A Content Security Policy message in
// its console fails the test.
type tab struct {
	*browsertest.Tab
	t *testing.T
}

// openTab opens a tab of browser in a new browser context.
func openTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	return &tab{Tab: browsertest.OpenTab(t, browser), t: t}
}

// eval evaluates a JavaScript expression in the page (DevTools only: the
// pages themselves run no script).
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	return browsertest.Eval[T](tb.Tab, expr)
}

// waitNavigation waits for a main-frame navigation after the from'th to a
// URL that starts with prefix.
func (tb *tab) waitNavigation(from int, prefix string) {
	tb.t.Helper()
	tb.WaitNavigation(from, prefix, browsertest.Wait)
}

// waitLoaded waits for the current document to finish loading and for
// its h1 to hold heading. A document that goes away while polled (the
// navigation was still landing) is polled again in the next one, once the
// browser reports something new.
func (tb *tab) waitLoaded(heading string) {
	tb.t.Helper()
	expr := fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector("h1") && document.querySelector("h1").textContent.includes(%q)`, heading)
	browsertest.WaitJS[bool](tb.Tab, expr, browsertest.Wait, chromedp.WithPollingInterval(20*time.Millisecond))
}

// goTo loads a URL and waits for its page.
func (tb *tab) goTo(u, heading string) {
	tb.t.Helper()
	tb.Do(chromedp.Navigate(u))
	tb.waitLoaded(heading)
}

// click clicks sel and waits for the page it leads to (at a URL that
// starts with prefix, headed heading).
func (tb *tab) click(sel, prefix, heading string) {
	tb.t.Helper()
	from := tb.Mark()
	tb.Do(chromedp.Click(chromedp.CSS(sel)))
	tb.waitNavigation(from, prefix)
	tb.waitLoaded(heading)
}

// typeIn sets a text field's value by typing it.
func (tb *tab) typeIn(sel, text string) {
	tb.t.Helper()
	tb.Do(chromedp.SendKeys(chromedp.CSS(sel), text))
}

// TestConsoleInChromium drives the console in a real headless Chromium:
// sign in with an admin token, look at the chart, browse and search the
// users, suspend and restore one, issue an override code, invite, look at
// the directory and the audit log (the fraud report highlighted), sign
// out. The pages' styles apply under the CSP, and no CSP message shows in
// the console. Screenshots: $KEYSTEP_TEST_ARTIFACTS/console-*.png.
func TestConsoleInChromium(t *testing.T) {
	browser := browsertest.Start(t, browsertest.For("the console's browser tests"), browsertest.WindowSize(1200, 900))
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
	from := tb.Mark()
	tb.Do(chromedp.Navigate(base + "/console/users"))
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
	tb.Screenshot("console-login.png")
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
	tb.Screenshot("console-overview.png")

	// Users: the list, then a search.
	tb.click(`header nav a[href="/console/users"]`, base+"/console/users", "Users")
	if got := eval[[]string](tb, `[...document.querySelectorAll("#users tbody tr[data-user]")].map(r => r.dataset.user)`); strings.Join(got, ",") != "carol,dave,erin,frank,grace" {
		t.Errorf("users %q", got)
	}
	tb.Screenshot("console-users.png")
	tb.Do(chromedp.SetValue(chromedp.CSS("#state"), "suspended"))
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
	tb.Screenshot("console-user-suspended.png")
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
	tb.Screenshot("console-override.png")

	// An invitation, with its QR code drawn inline.
	tb.goTo(base+"/console/users/"+users["grace"].ID, "grace")
	tb.click("#invite button[type=submit]", base+"/console/users/"+users["grace"].ID+"/invite", "Invitation for grace")
	if w := eval[float64](tb, `document.querySelector("#invite-qr svg").getBoundingClientRect().width`); w < 200 {
		t.Errorf("the QR code is %v px wide", w)
	}
	tb.Screenshot("console-invite.png")

	// The directory.
	tb.click(`header nav a[href="/console/directory"]`, base+"/console/directory", "Directory")
	tb.click(`form[action="/console/directory/corp/sync"] button`, base+"/console/directory", "Directory")
	if msg := eval[string](tb, `document.querySelector(".flash").textContent`); !strings.Contains(msg, "Asked corp for a full sync") {
		t.Errorf("sync now: %q", msg)
	}
	tb.Screenshot("console-directory.png")

	// The audit log: filtered to sign-ins, the fraud report stands out.
	tb.click(`header nav a[href="/console/audit"]`, base+"/console/audit", "Audit log")
	tb.typeIn("#action", "signin.")
	tb.Do(chromedp.SetValue(chromedp.CSS("#from"), "2026-11-27T02:00"), chromedp.SetValue(chromedp.CSS("#to"), "2026-11-27T05:00"))
	tb.click(`form[action="/console/audit"] button[type=submit]`, base+"/console/audit?", "Audit log")
	if n := eval[int](tb, `document.querySelectorAll("table.events tr.fraud").length`); n != 1 {
		t.Errorf("%d fraud rows highlighted", n)
	}
	if bg := eval[string](tb, `getComputedStyle(document.querySelector("tr.fraud td")).backgroundColor`); bg != "rgb(255, 241, 240)" {
		t.Errorf("the fraud row's background is %q", bg)
	}
	tb.Screenshot("console-audit.png")
	tb.goTo(base+"/console/audit?account=carol", "Audit log")
	if got := eval[string](tb, `document.querySelector("table.events tbody tr td:nth-child(3)").textContent`); got != flows.AuditSignInApproved {
		t.Errorf("carol's newest event: %q", got)
	}

	// Sign out: the console is closed again.
	tb.click("#logout", base+"/console/login", "Sign in to the console")
	from = tb.Mark()
	tb.Do(chromedp.Navigate(base + "/console/users"))
	tb.waitNavigation(from, base+"/console/login")
	tb.waitLoaded("Sign in to the console")
}
